// Packed projections (buildDecoderGraph's `pack`, what graph: auto builds): q/k/v and gate/up read as one
// initializer each, concatenated from the checkpoint's separate tensors along the output axis (biases too), one
// MatMul each, the packed q/k/v fed straight into GroupQueryAttention where no q/k norm comes between. Against
// the float64 reference (within 1e-4, the decoder-graph test's bound) and the unpacked graph, for a prefill and
// cached decoding: GQA 3:1 with head_dim 24 (the CPU set's standard-op attention) and 48 (GroupQueryAttention),
// Qwen2's q/k/v biases, Qwen3's q/k norms (split before the kernel), Phi-3's fused tensors untouched; both
// operator sets on the CPU and the standard-op set on WebGPU (lavapipe, one tiny case).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { parseDecoderConfig } from '../../../src/graph/decoder-config.ts';
import { buildDecoderGraph, type OpSet } from '../../../src/graph/decoder-graph.ts';
import type { ExecutionProvider, KvCache } from '../../../src/eval/onnx-session.ts';
import { writeTinyDecoder, type TinyName } from '../../fixtures/tiny-decoders.ts';
import { ReferenceDecoder } from '../../fixtures/reference-decoder.ts';
import { mulberry32 } from '../../fixtures/seeded-random.ts';
import { builtGraphSession } from '../../fixtures/built-graph-session.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-packed-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Case {
  label: string;
  family: TinyName;
  config?: Record<string, unknown>;
}

const CASES: Case[] = [
  {
    label: 'GQA 6:2, head_dim 24',
    family: 'llama-linear',
    config: { num_attention_heads: 6, num_key_value_heads: 2, head_dim: 24 },
  },
  {
    label: 'GQA 6:2, head_dim 48',
    family: 'llama-linear',
    config: { num_attention_heads: 6, num_key_value_heads: 2, head_dim: 48 },
  },
  { label: 'Qwen2 q/k/v biases', family: 'qwen2' },
  { label: 'Qwen3 q/k norms', family: 'qwen3' },
  { label: 'Phi-3 fused tensors', family: 'phi3' },
];

interface Run {
  prefill: Float32Array;
  decode: Float32Array[];
  graph: ReturnType<typeof buildDecoderGraph>;
}

/** Two rows of 10 tokens: the prefill's logits, then 3 cached steps after a 7-token prefix. */
async function run(dir: string, rows: number[][], opSet: OpSet, pack: boolean, ep: ExecutionProvider): Promise<Run> {
  const { session, built } = await builtGraphSession(dir, { opSet, pack }, ep);
  try {
    const prefill = await session.forward(Int32Array.from(rows.flat()), rows.length, 10);
    let step = await session.forwardWithCache(Int32Array.from(rows.flatMap((r) => r.slice(0, 7))), 2, 7, undefined);
    let cache: KvCache = step.cache;
    const decode: Float32Array[] = [];
    for (let t = 7; t < 10; t++) {
      step = await session.forwardWithCache(Int32Array.from(rows.map((r) => r[t]!)), 2, 1, cache);
      cache = step.cache;
      decode.push(step.logits.data);
    }
    return { prefill: prefill.data, decode, graph: built };
  } finally {
    await session.close();
  }
}

function worst(a: Float32Array, b: ArrayLike<number>, offset = 0): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[offset + i]! - b[i]!));
  return Number.isNaN(m) ? Infinity : m;
}

/** The packed run against the reference: worst prefill and decode differences. */
function againstReference(dir: string, rows: number[][], got: Run): { prefill: number; decode: number } {
  const model = openModelDir(dir);
  const arrays = new Map(model.tensors.tensorNames().map((n) => [n, model.tensors.readTensor(n).data]));
  const vocab = Number(model.config.vocab_size);
  model.close();
  const ref = new ReferenceDecoder(model.config, (n) => arrays.get(n));
  let prefill = 0;
  rows.forEach((row, r) =>
    ref
      .run(row, ref.emptyCache())
      .forEach((w, t) => (prefill = Math.max(prefill, worst(got.prefill, w, (r * 10 + t) * vocab)))),
  );
  let decode = 0;
  const caches = rows.map((row) => {
    const c = ref.emptyCache();
    ref.run(row.slice(0, 7), c);
    return c;
  });
  for (let t = 7; t < 10; t++)
    rows.forEach((row, r) => {
      const [want] = ref.run([row[t]!], caches[r]!);
      decode = Math.max(decode, worst(got.decode[t - 7]!, want!, r * vocab));
    });
  return { prefill, decode };
}

const opNames = (r: Run) => r.graph.model.graph!.node!.map((n) => n.name ?? '');

describe('packed q/k/v and gate/up projections', () => {
  for (const c of CASES) {
    for (const opSet of ['cpu', 'plain'] as const) {
      it(`${c.label} (${opSet} ops): within 1e-4 of the reference and of the unpacked graph`, async () => {
        const dir = join(tmp, `${c.family}-${c.label.replace(/[^a-z0-9]+/gi, '-')}-${opSet}`);
        writeTinyDecoder(dir, c.family, { seed: 11, ...(c.config ? { config: c.config } : {}) });
        const rand = mulberry32(5);
        const rows = [0, 1].map(() => Array.from({ length: 10 }, () => Math.floor(rand() * 97)));
        const packed = await run(dir, rows, opSet, true, 'cpu');
        const plain = await run(dir, rows, opSet, false, 'cpu');
        const ref = againstReference(dir, rows, packed);
        expect(ref.prefill, 'prefill vs reference').toBeLessThanOrEqual(1e-4);
        expect(ref.decode, 'cached decode vs reference').toBeLessThanOrEqual(1e-4);
        expect(worst(packed.prefill, plain.prefill), 'prefill vs unpacked').toBeLessThanOrEqual(1e-4);
        packed.decode.forEach((d, i) =>
          expect(worst(d, plain.decode[i]!), 'decode vs unpacked').toBeLessThanOrEqual(1e-4),
        );
        const names = opNames(packed);
        expect(
          names.filter((n) => /\/(q|k|v|gate|up)_proj\//.test(n)),
          'no separate projections',
        ).toEqual([]);
        expect(names.filter((n) => /\/qkv_proj\/(Fused)?MatMul/.test(n)).length, 'one q/k/v MatMul a layer').toBe(3);
        expect(names.filter((n) => /\/gate_up_proj\/(Fused)?MatMul/.test(n)).length, 'one gate/up MatMul a layer').toBe(
          3,
        );
        const gqa = packed.graph.model.graph!.node!.filter((n) => n.opType === 'GroupQueryAttention');
        // GroupQueryAttention (CPU set, head_dim a multiple of 16) takes the packed q/k/v unless a q/k norm intervenes
        const direct = opSet === 'cpu' && c.label !== 'GQA 6:2, head_dim 24' && c.family !== 'qwen3';
        expect(gqa.length, 'GroupQueryAttention nodes').toBe(
          opSet === 'cpu' && c.label !== 'GQA 6:2, head_dim 24' ? 3 : 0,
        );
        for (const n of gqa) expect(n.input![1] === '', 'packed input, no key').toBe(direct);
        if (c.family !== 'phi3')
          expect(packed.graph.initializers.filter((i) => i.parts.length > 1).length, 'packed initializers').toBe(
            c.family === 'qwen2' || c.family === 'qwen3' ? 9 : 6, // Qwen3's tiny config has attention_bias
          );
      });
    }
  }

  it('on WebGPU (standard ops, lavapipe): Qwen2 packed with biases is within 1e-4 of the reference', async () => {
    const dir = join(tmp, 'qwen2-webgpu');
    writeTinyDecoder(dir, 'qwen2', { seed: 11, config: { num_hidden_layers: 1 } });
    const rand = mulberry32(5);
    const rows = [0, 1].map(() => Array.from({ length: 10 }, () => Math.floor(rand() * 97)));
    const packed = await run(dir, rows, 'plain', true, 'webgpu');
    const ref = againstReference(dir, rows, packed);
    expect(ref.prefill, 'prefill').toBeLessThanOrEqual(1e-4);
    expect(ref.decode, 'cached decode').toBeLessThanOrEqual(1e-4);
  });
});
