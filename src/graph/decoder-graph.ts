// Builds the ONNX graph of a Llama-family causal LM (Llama, Mistral, Qwen2, Qwen3, Phi-3, Gemma 2 and 3) from its
// config, with a KV cache in the layout optimum exports (inputs input_ids, attention_mask, position_ids,
// past_key_values.N.key|value [batch, kv_heads, past, head_dim]; outputs logits, present.N.key|value), so that the
// session and the tasks run it exactly as a user-exported decoder. The graph runs a **layer path**: the list of
// source layers, in order; graph layer N reads the weights of source layer path[N] (a layer may appear twice, or
// not at all). Its generalisation, a **slot list**, is what a data-flow-space search evolves: each slot names a
// layer of one of several models (the config's model, or another one of the same shape whose tensors carry a
// per-model name prefix) and a scale applied to the hidden state entering that layer. A layer used by several slots
// is one initializer.
//
// Weight initializers carry the checkpoint's tensor names and shapes ([out, in] for projections, as stored) and
// no data: a candidate's tensors fill them by name (onnx-session.ts decides how they reach the device). Two
// operator sets:
// - 'plain': standard ONNX ops only (opset 17), runs on every provider. Projections are MatMul(x, Wᵀ) with
//   the Transpose on the weight, which ONNX Runtime folds once when the weights are built into the session.
// - 'cpu': ONNX Runtime's fused CPU kernels (the operators onnxruntime-genai's model builder emits):
//   com.microsoft FusedMatMul (transB, so no transpose at all, even with weights fed per run),
//   SimplifiedLayerNormalization (RMSNorm) and GroupQueryAttention (RoPE, cache concatenation, causal and
//   sliding-window masking and grouped heads in one kernel, with cos/sin tables computed per run for the
//   positions the batch holds), where the kernel accepts the config (fused-kernels.ts: head_dim a multiple of
//   16); else the standard-op attention seam, the rest of the graph still fused.
// Compute dtype 'f16' (plain ops only, for GPU providers): weights and activations in float16 as transformers
// runs a float16 model (HF LlamaRMSNorm, eager attention): RMSNorm statistics and the attention softmax in
// float32, the scores scaled in float32; the graph's inputs and outputs (logits, KV cache) stay float32, so
// the session and the tasks run both dtypes alike (the cache values are float16 values, stored exactly).
//
// The builder is a set of seams, each a function over one GraphContext (graph-context.ts): embedding, norm,
// attention (decoder-attention.ts: a fused GroupQueryAttention variant and a standard-op variant), MLP and head,
// assembled layer by layer. What differs
// between model families is a row of decoder-families.ts that the seams read. Nodes are named by their path
// in the model (`embed/Gather`, `layers.3/attn/q_proj/MatMul`, `final_norm/…`, `lm_head/MatMul`; parts all
// layers share under `rope_tables/`, `attn_mask/`, `gqa_inputs/`), so that ORT's profiles and errors read.
import { EvomergeError, invariant } from '../errors.ts';
import { OnnxDataType, type ModelMessage, type ValueInfoMessage } from './onnx-proto.ts';
import { decoderFamilySpec } from './decoder-families.ts';
import {
  checkLayerPath,
  checkLayerSlots,
  layerWeights,
  outerWeights,
  sourceTensorName,
  type DecoderConfig,
  type LayerSlot,
  type WeightSpec,
} from './decoder-config.ts';
import { attrInt, MS_DOMAIN, OnnxWriter, valueInfo } from './onnx-writer.ts';
import {
  constCompute,
  linear,
  packedWeight,
  rmsNorm,
  splitLast,
  toCompute,
  toF32,
  weight,
  type ComputeDtype,
  type GraphContext,
  type InitializerSpec,
  type LayerWeights,
  type OpSet,
} from './graph-context.ts';
import { attention, attentionKind } from './decoder-attention.ts';

export type { ComputeDtype, InitializerSpec, OpSet } from './graph-context.ts';
export { packWeight } from './graph-context.ts';
export { ropeInverseFrequencies } from './decoder-attention.ts';

/** The input naming the positions whose logits a graph built with `logitPositions` computes. */
export const LOGIT_POSITIONS = 'logit_positions';

export interface DecoderGraphOptions {
  /** Source layers to run, in order (default: every layer once, 0..num_hidden_layers−1, each scaled by the
   *  config's layer input scales when it has them). */
  layerPath?: readonly number[];
  /** Instead of a layer path: the slots to run, in order, each a layer of a model with an input scale. */
  slots?: readonly LayerSlot[];
  opSet?: OpSet;
  /** Weights and activations in float32 (default) or float16 (opSet 'plain' only). */
  computeDtype?: ComputeDtype;
  /**
   * Where the checkpoint stores q_proj/k_proj/v_proj (and gate_proj/up_proj) separately, read them as one packed
   * initializer each (concatenated along the output axis, biases too) and run one MatMul instead of three (two),
   * as onnxruntime-genai's model builder does; the packed q/k/v goes straight into GroupQueryAttention when no
   * q/k norm comes between. The initializers are then not all checkpoint tensors: `initializers` says what
   * fills each. Off by default (an exported model.onnx keeps the checkpoint's names); graph: auto turns it on.
   */
  pack?: boolean;
  /**
   * Add the input `logit_positions` (int64 [batch, k]): the positions of each row whose logits the graph computes
   * (final norm and lm_head on those k hidden states only), `logits` then [batch, k, vocab]. Generation feeds each
   * row's last real position (k = 1), scoring feeds every position (0..seq−1, the same logits bit for bit). An
   * input rather than a second output, so one graph (one session per candidate) serves both: ONNX Runtime runs
   * every node of a graph whichever outputs are fetched (microsoft/onnxruntime#16483), so an extra last-position
   * output would not spare the full one, and a second graph would double the sessions. Off by default (an exported
   * model.onnx keeps optimum's inputs); graph: auto turns it on.
   */
  logitPositions?: boolean;
}

export interface DecoderGraph {
  readonly model: ModelMessage;
  /** The checkpoint tensors the graph reads (each once, in first-use order). */
  readonly weights: readonly WeightSpec[];
  /** The weight initializers and the checkpoint tensors filling each (a tensor of the same name unless packed). */
  readonly initializers: readonly InitializerSpec[];
  readonly layerPath: readonly number[];
  /** The slots run (a layer path's slots all read the config's model, at the config's scales or 1). */
  readonly slots: readonly LayerSlot[];
}

export function buildDecoderGraph(c: DecoderConfig, options: DecoderGraphOptions = {}): DecoderGraph {
  if (options.layerPath && options.slots)
    throw new EvomergeError('internal', 'a layer path or slots, not both (this is a bug in evomerge)');
  let slots: readonly LayerSlot[];
  if (options.slots) {
    checkLayerSlots(c, options.slots);
    slots = options.slots;
  } else {
    const path = options.layerPath ?? Array.from({ length: c.layers }, (_, i) => i);
    checkLayerPath(c, path);
    // the config's layer input scales belong to its own layers in order: an explicit path runs them unscaled
    const scales = options.layerPath ? undefined : c.layerInputScales;
    slots = path.map((layer, i) => ({ source: 0, layer, scale: scales?.[i] ?? 1 }));
  }
  const opSet = options.opSet ?? 'plain';
  const f16 = options.computeDtype === 'f16';
  invariant(!f16 || opSet === 'plain', 'float16 compute is built with the plain operator set only');
  const family = decoderFamilySpec(c.family);
  invariant(family, `no family row for ${c.family}`);
  const ctx: GraphContext = {
    c,
    family,
    g: new OnnxWriter(),
    opSet,
    f16,
    pack: options.pack === true,
    weights: [],
    weightNames: new Set(),
    initializerSpecs: [],
    inputs: [
      valueInfo('input_ids', OnnxDataType.INT64, ['batch', 'seq']),
      valueInfo('attention_mask', OnnxDataType.INT64, ['batch', 'total']),
      valueInfo('position_ids', OnnxDataType.INT64, ['batch', 'seq']),
    ],
    outputs: [
      valueInfo('logits', OnnxDataType.FLOAT, ['batch', options.logitPositions ? 'logit_seq' : 'seq', c.vocabSize]),
    ],
    shared: { ropeTables: new Map(), masks: new Map(), gqaTables: new Map() },
  };
  const outer = new Map(outerWeights(c).map((w) => [w.name, w]));

  let x = ctx.g.scope('embed', () => embedding(ctx, weight(ctx, outer.get('model.embed_tokens.weight')!)));
  slots.forEach((slot, n) => {
    x = ctx.g.scope(`layers.${n}`, () => decoderLayer(ctx, x, n, slot));
  });
  if (options.logitPositions) {
    ctx.inputs.push(valueInfo(LOGIT_POSITIONS, OnnxDataType.INT64, ['batch', 'logit_seq']));
    x = ctx.g.scope('logit_positions', () => {
      // [batch, k] → [batch, k, hidden] indices for GatherElements along the sequence axis
      const index = ctx.g.node('Expand', [
        ctx.g.node('Unsqueeze', [LOGIT_POSITIONS, ctx.g.constI([-1], [1])]),
        ctx.g.constI([1, 1, c.hiddenSize], [3]),
      ]);
      return ctx.g.node('GatherElements', [x, index], [attrInt('axis', 1)]);
    });
  }
  head(ctx, x, outer);

  const opsetImport = [{ domain: '', version: 17 }, ...(opSet === 'cpu' ? [{ domain: MS_DOMAIN, version: 1 }] : [])];
  const model: ModelMessage = {
    irVersion: 8,
    opsetImport,
    producerName: 'evomerge',
    graph: {
      name: `${c.family}-decoder`,
      node: ctx.g.nodes,
      initializer: ctx.g.initializers,
      input: ctx.inputs,
      output: ctx.outputs,
    },
  };
  return {
    model,
    weights: ctx.weights,
    initializers: ctx.initializerSpecs,
    layerPath: slots.map((s) => s.layer),
    slots: [...slots],
  };
}

/** The embedding seam: token ids → hidden states [batch, seq, hidden]. */
function embedding(ctx: GraphContext, table: string): string {
  const x = ctx.g.node('Gather', [table, 'input_ids']);
  switch (ctx.family.embeddingScale) {
    case 'none':
      return x;
    case 'sqrt_hidden':
      // √hidden_size rounded to the compute dtype, as transformers casts the normalizer to the weights' dtype
      return ctx.g.node('Mul', [x, constCompute(ctx, Math.sqrt(ctx.c.hiddenSize))]);
  }
}

/** Graph layer `n`: source layer `slot.layer` of model `slot.source`, its input scaled by `slot.scale`. */
function decoderLayer(ctx: GraphContext, input: string, n: number, slot: LayerSlot): string {
  const { c, g } = ctx;
  const prefix = `model.layers.${slot.layer}.`;
  const spec = new Map(
    layerWeights(c, slot.layer).map((w) => [
      w.name.slice(prefix.length),
      { name: sourceTensorName(slot.source ?? 0, w.name), shape: w.shape },
    ]),
  );
  const lw: LayerWeights = {
    weight: (key) => weight(ctx, spec.get(key)!),
    bias: (key) => (spec.has(key) ? weight(ctx, spec.get(key)!) : undefined),
    packed: (name, keys) => {
      const biases = keys.filter((k) => spec.has(`${k}.bias`)).length;
      if (biases !== 0 && biases !== keys.length) return undefined;
      const packedName = (suffix: string) => sourceTensorName(slot.source ?? 0, `${prefix}${name}.packed.${suffix}`);
      const parts = (suffix: string) => keys.map((k) => spec.get(`${k}.${suffix}`)!);
      return {
        weight: packedWeight(ctx, packedName('weight'), parts('weight')),
        ...(biases > 0 ? { bias: packedWeight(ctx, packedName('bias'), parts('bias')) } : {}),
      };
    },
  };
  // the hop's scale multiplies the whole hidden state entering the layer (residual stream included)
  // (in the hidden state's own dtype: float16 in a float16 graph)
  let x = input;
  if ((slot.scale ?? 1) !== 1)
    x = g.scope('input_scale', () =>
      g.node('Mul', [x, ctx.f16 ? g.constF16([slot.scale!], []) : g.constF([slot.scale!], [])]),
    );
  const h = g.scope('input_norm', () => rmsNorm(ctx, x, lw.weight('input_layernorm.weight')));
  for (const kv of ['key', 'value']) {
    ctx.inputs.push(
      valueInfo(`past_key_values.${n}.${kv}`, OnnxDataType.FLOAT, ['batch', c.kvHeads, 'past', c.headDim]),
    );
    ctx.outputs.push(valueInfo(`present.${n}.${kv}`, OnnxDataType.FLOAT, ['batch', c.kvHeads, 'total', c.headDim]));
  }
  const attn = g.scope('attn', () => attention(ctx, n, h, lw, attentionKind(c, slot.layer)));
  switch (ctx.family.layerNorms) {
    case 'pre': {
      x = g.scope('attn_residual', () => g.node('Add', [x, attn]));
      const h2 = g.scope('post_attn_norm', () => rmsNorm(ctx, x, lw.weight('post_attention_layernorm.weight')));
      const mlpOut = g.scope('mlp', () => mlp(ctx, h2, lw));
      return g.scope('mlp_residual', () => g.node('Add', [x, mlpOut]));
    }
    case 'sandwich': {
      // Gemma: each branch normed on the way in and on the way out, before its residual add
      const a = g.scope('post_attn_norm', () => rmsNorm(ctx, attn, lw.weight('post_attention_layernorm.weight')));
      x = g.scope('attn_residual', () => g.node('Add', [x, a]));
      const h2 = g.scope('pre_mlp_norm', () => rmsNorm(ctx, x, lw.weight('pre_feedforward_layernorm.weight')));
      const mlpOut = g.scope('mlp', () => mlp(ctx, h2, lw));
      const m = g.scope('post_mlp_norm', () => rmsNorm(ctx, mlpOut, lw.weight('post_feedforward_layernorm.weight')));
      return g.scope('mlp_residual', () => g.node('Add', [x, m]));
    }
  }
}

/** The MLP seam: the normed hidden state → down_proj's output. */
function mlp(ctx: GraphContext, h: string, lw: LayerWeights): string {
  const { g } = ctx;
  let gate: string, up: string;
  switch (ctx.family.projections) {
    case 'separate': {
      const packed = ctx.pack ? lw.packed('mlp.gate_up_proj', ['mlp.gate_proj', 'mlp.up_proj']) : undefined;
      if (packed) {
        const both = linear(ctx, 'gate_up_proj', h, packed.weight, packed.bias);
        const I = ctx.c.intermediateSize;
        [gate, up] = splitLast(ctx, 'gate_up_split', both, [I, I]) as [string, string];
        break;
      }
      gate = linear(ctx, 'gate_proj', h, lw.weight('mlp.gate_proj.weight'), lw.bias('mlp.gate_proj.bias'));
      up = linear(ctx, 'up_proj', h, lw.weight('mlp.up_proj.weight'), lw.bias('mlp.up_proj.bias'));
      break;
    }
    case 'fused': {
      // Phi-3: gate first, up second (transformers' chunk(2, dim=-1))
      const both = linear(ctx, 'gate_up_proj', h, lw.weight('mlp.gate_up_proj.weight'));
      [gate, up] = splitLast(ctx, 'gate_up_split', both, [ctx.c.intermediateSize, ctx.c.intermediateSize]) as [
        string,
        string,
      ];
    }
  }
  let act: string;
  switch (ctx.family.activation) {
    case 'silu':
      act = g.scope('act', () => g.node('Mul', [gate, g.node('Sigmoid', [gate])]));
      break;
    case 'gelu_tanh':
      act = g.scope('act', () => geluTanh(ctx, gate));
  }
  const product = g.node('Mul', [act, up]);
  return linear(ctx, 'down_proj', product, lw.weight('mlp.down_proj.weight'), lw.bias('mlp.down_proj.bias'));
}

/**
 * GELU's tanh approximation (transformers' gelu_pytorch_tanh): ORT's FastGelu on the CPU, else
 * 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 x³))) in float32 (as PyTorch computes it for float16 tensors).
 */
function geluTanh(ctx: GraphContext, x: string): string {
  const { g } = ctx;
  if (ctx.opSet === 'cpu') return g.node('FastGelu', [x], [], undefined, MS_DOMAIN);
  const x32 = toF32(ctx, x);
  const cube = g.node('Mul', [g.node('Mul', [x32, x32]), x32]);
  const inner = g.node('Mul', [
    g.node('Add', [x32, g.node('Mul', [cube, g.constF([0.044715], [])])]),
    g.constF([Math.sqrt(2 / Math.PI)], []),
  ]);
  const y = g.node('Mul', [
    g.node('Mul', [x32, g.constF([0.5], [])]),
    g.node('Add', [g.node('Tanh', [inner]), g.constF([1], [])]),
  ]);
  return toCompute(ctx, y);
}

/** The head seam: final norm, lm_head (or the tied embeddings), and the float32 `logits` output. */
function head(ctx: GraphContext, x: string, outer: ReadonlyMap<string, WeightSpec>): void {
  const { c, g } = ctx;
  const normed = g.scope('final_norm', () => rmsNorm(ctx, x, weight(ctx, outer.get('model.norm.weight')!)));
  const table = c.tiedEmbeddings ? 'model.embed_tokens.weight' : weight(ctx, outer.get('lm_head.weight')!);
  let logits = linear(ctx, 'lm_head', normed, table);
  if (c.finalSoftcap !== undefined) {
    // Gemma 2: cap · tanh(logits / cap), in the compute dtype as transformers does
    const cap = constCompute(ctx, c.finalSoftcap);
    logits = g.scope('logit_softcap', () => g.node('Mul', [g.node('Tanh', [g.node('Div', [logits, cap])]), cap]));
  }
  g.scope('logits', () =>
    ctx.f16
      ? g.node('Cast', [logits], [attrInt('to', OnnxDataType.FLOAT)], 'logits')
      : g.node('Identity', [logits], [], 'logits'),
  );
}

/** The checkpoint's tensors against the shapes the config implies: one line naming the first that disagrees. */
export function checkCheckpointShapes(
  c: DecoderConfig,
  weights: readonly WeightSpec[],
  checkpoint: {
    location: string;
    hasTensor(name: string): boolean;
    tensorInfo(name: string): { shape: readonly number[] };
  },
): void {
  for (const w of weights) {
    if (!checkpoint.hasTensor(w.name)) {
      throw new EvomergeError(
        'graph.missing_tensor',
        `the checkpoint lacks this tensor, which ${c.family} with this config.json needs`,
        { file: checkpoint.location, field: `tensor "${w.name}"` },
      );
    }
    const shape = checkpoint.tensorInfo(w.name).shape;
    if (shape.length !== w.shape.length || shape.some((d, i) => d !== w.shape[i])) {
      throw new EvomergeError(
        'graph.shape_mismatch',
        `shape [${shape.join(', ')}] but ${c.file} implies [${w.shape.join(', ')}]`,
        { file: checkpoint.location, field: `tensor "${w.name}"` },
      );
    }
  }
}
