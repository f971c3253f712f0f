// Test fixture: writes an ONNX graph of the zoo's Llama architecture in the layout optimum exports for
// decoders with a KV cache (inputs input_ids, attention_mask, position_ids, past_key_values.N.{key,value};
// outputs logits, present.N.{key,value}), weights under their Hugging Face names, built op by op with the
// same float32 operations as the zoo's own model.onnx (RMSNorm as x·(1/√(mean x²+ε)), rotate_half RoPE).
import { writeFileSync } from 'node:fs';
import {
  encodeModel,
  type NodeMessage,
  type TensorMessage,
  type ValueInfoMessage,
} from '../../../src/graph/onnx-proto.ts';
import type { TensorSource } from '../../../src/checkpoint/tensor-source.ts';

const FLOAT = 1;
const INT64 = 7;
const LAYERS = 6;
const HEADS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 32;
const HIDDEN = 128;

/** `attentionMask: false` leaves the attention_mask input out (a graph that cannot hide padding). */
export function writeKvLlamaGraph(path: string, weights: TensorSource, opts: { attentionMask?: boolean } = {}): void {
  const withMask = opts.attentionMask !== false;
  const nodes: NodeMessage[] = [];
  const inits: TensorMessage[] = [];
  let k = 0;
  const fresh = (stem: string) => `/${stem}_${k++}`;
  const node = (op: string, inputs: string[], attrs: NodeMessage['attribute'] = [], out?: string): string => {
    const o = out ?? fresh(op);
    nodes.push({ opType: op, input: inputs, output: [o], name: o, attribute: attrs });
    return o;
  };
  const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v });
  const int = (name: string, v: number) => ({ name, type: 2, i: v });
  const constF = (v: number[], dims: number[]): string => {
    const name = fresh('constF');
    inits.push({ name, dataType: FLOAT, dims, rawData: new Uint8Array(Float32Array.from(v).buffer) });
    return name;
  };
  const constI = (v: number[], dims: number[]): string => {
    const name = fresh('constI');
    inits.push({ name, dataType: INT64, dims, rawData: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer) });
    return name;
  };
  for (const name of weights.tensorNames()) {
    const t = weights.readTensor(name);
    inits.push({
      name,
      dataType: FLOAT,
      dims: [...t.shape],
      rawData: new Uint8Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)),
    });
  }
  const matmulW = (x: string, w: string) => node('MatMul', [x, node('Transpose', [w], [ints('perm', [1, 0])])]);
  const two = constF([2], []);
  const eps = constF([1e-5], []);
  const one = constF([1], []);
  const rms = (x: string, w: string) => {
    const ms = node('ReduceMean', [node('Pow', [x, two])], [ints('axes', [-1]), int('keepdims', 1)]);
    const inv = node('Div', [one, node('Sqrt', [node('Add', [ms, eps])])]);
    return node('Mul', [w, node('Mul', [x, inv])]);
  };

  // Rotary tables from position_ids, as the zoo graph computes them from its Range.
  const invFreq = constF(
    Array.from({ length: HEAD_DIM / 2 }, (_, i) => Math.fround(1 / Math.fround(10000 ** ((2 * i) / HEAD_DIM)))),
    [1, HEAD_DIM / 2],
  );
  const posF = node('Unsqueeze', [node('Cast', ['position_ids'], [int('to', FLOAT)]), constI([-1], [1])]);
  const freqs = node('Mul', [posF, invFreq]);
  const embRot = node('Concat', [freqs, freqs], [int('axis', -1)]);
  const axis1 = constI([1], [1]);
  const cos = node('Unsqueeze', [node('Cos', [embRot]), axis1]);
  const sin = node('Unsqueeze', [node('Sin', [embRot]), axis1]);

  // Attention mask over past + current keys as transformers builds it: key index j is hidden from the query at
  // index i (past + its offset) when j > i, or when attention_mask is 0 there (padding); hidden keys get
  // float32's lowest value, so a padding query that sees no key stays finite.
  const total = node('Add', [
    node('Gather', [node('Shape', ['past_key_values.0.key']), constI([2], [])], [int('axis', 0)]),
    node('Gather', [node('Shape', ['input_ids']), constI([1], [])], [int('axis', 0)]),
  ]);
  const seqLen = node('Gather', [node('Shape', ['input_ids']), constI([1], [])], [int('axis', 0)]);
  const keyIdx = node('Range', [constI([0], []), total, constI([1], [])]);
  const queryIdx = node('Unsqueeze', [
    node('Range', [node('Sub', [total, seqLen]), total, constI([1], [])]),
    constI([-1], [1]),
  ]);
  const future = node('Greater', [keyIdx, queryIdx]);
  const hidden = withMask
    ? node('Or', [future, node('Unsqueeze', [node('Equal', ['attention_mask', constI([0], [])]), constI([1, 2], [2])])])
    : future;
  const mask = node('Where', [hidden, constF([-3.4028234663852886e38], []), constF([0], [])]);

  const half = HEAD_DIM / 2;
  const rope = (x: string) => {
    const x1 = node('Slice', [x, constI([0], [1]), constI([half], [1]), constI([3], [1])]);
    const x2 = node('Slice', [x, constI([half], [1]), constI([HEAD_DIM], [1]), constI([3], [1])]);
    const rot = node('Concat', [node('Neg', [x2]), x1], [int('axis', -1)]);
    return node('Add', [node('Mul', [x, cos]), node('Mul', [rot, sin])]);
  };
  const heads = (x: string, n: number) =>
    node('Transpose', [node('Reshape', [x, constI([0, 0, n, HEAD_DIM], [4])])], [ints('perm', [0, 2, 1, 3])]);
  const repeat = (x: string) => {
    const u = node('Unsqueeze', [x, constI([2], [1])]);
    return node('Reshape', [node('Concat', [u, u], [int('axis', 2)]), constI([0, HEADS, -1, HEAD_DIM], [4])]);
  };
  const scale = constF([Math.sqrt(HEAD_DIM)], []);

  let x = node('Gather', ['model.embed_tokens.weight', 'input_ids']);
  const outputs: ValueInfoMessage[] = [];
  const inputs: ValueInfoMessage[] = [
    vi('input_ids', INT64, ['batch', 'seq']),
    ...(withMask ? [vi('attention_mask', INT64, ['batch', 'total'])] : []),
    vi('position_ids', INT64, ['batch', 'seq']),
  ];
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}`;
    const h = rms(x, `${p}.input_layernorm.weight`);
    const q = rope(heads(matmulW(h, `${p}.self_attn.q_proj.weight`), HEADS));
    const kNew = rope(heads(matmulW(h, `${p}.self_attn.k_proj.weight`), KV_HEADS));
    const vNew = heads(matmulW(h, `${p}.self_attn.v_proj.weight`), KV_HEADS);
    for (const kv of ['key', 'value']) {
      inputs.push(vi(`past_key_values.${l}.${kv}`, FLOAT, ['batch', KV_HEADS, 'past', HEAD_DIM]));
      outputs.push(vi(`present.${l}.${kv}`, FLOAT, ['batch', KV_HEADS, 'total', HEAD_DIM]));
    }
    const kAll = node('Concat', [`past_key_values.${l}.key`, kNew], [int('axis', 2)], `present.${l}.key`);
    const vAll = node('Concat', [`past_key_values.${l}.value`, vNew], [int('axis', 2)], `present.${l}.value`);
    const scores = node('Add', [
      node('Div', [node('MatMul', [q, node('Transpose', [repeat(kAll)], [ints('perm', [0, 1, 3, 2])])]), scale]),
      mask,
    ]);
    const attn = node('MatMul', [node('Softmax', [scores], [int('axis', -1)]), repeat(vAll)]);
    const merged = node('Reshape', [
      node('Transpose', [attn], [ints('perm', [0, 2, 1, 3])]),
      constI([0, 0, HIDDEN], [3]),
    ]);
    x = node('Add', [x, matmulW(merged, `${p}.self_attn.o_proj.weight`)]);
    const h2 = rms(x, `${p}.post_attention_layernorm.weight`);
    const g = matmulW(h2, `${p}.mlp.gate_proj.weight`);
    const act = node('Mul', [g, node('Sigmoid', [g])]);
    x = node('Add', [
      x,
      matmulW(node('Mul', [act, matmulW(h2, `${p}.mlp.up_proj.weight`)]), `${p}.mlp.down_proj.weight`),
    ]);
  }
  node(
    'MatMul',
    [rms(x, 'model.norm.weight'), node('Transpose', ['lm_head.weight'], [ints('perm', [1, 0])])],
    [],
    'logits',
  );
  outputs.unshift(vi('logits', FLOAT, ['batch', 'seq', 256]));
  writeFileSync(
    path,
    encodeModel({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      producerName: 'evomerge-test',
      graph: { name: 'kv-llama', node: nodes, initializer: inits, input: inputs, output: outputs },
    }),
  );
}

function vi(name: string, elemType: number, dims: (number | string)[]): ValueInfoMessage {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}
