// Builds the ONNX graph of a Llama-family causal LM (Llama, Mistral, Qwen2) from its config, with a KV cache in
// the layout optimum exports (inputs input_ids, attention_mask, position_ids, past_key_values.N.key|value [batch,
// kv_heads, past, head_dim]; outputs logits, present.N.key|value), so that the session and the tasks run it exactly as
// a user-exported decoder. The graph runs a **layer path**: the list of source layers, in order; graph layer
// N reads the weights of source layer path[N] (a layer may appear twice, or not at all). Its generalisation,
// a **slot list**, is what a data-flow-space search evolves: each slot names a layer of one of several models
// (the config's model, or another one of the same shape whose tensors carry a per-model name prefix) and a
// scale applied to the hidden state entering that layer. A layer used by several slots is one initializer.
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
// The builder is a set of seams, each a function over one GraphContext: embedding, norm, attention (a fused
// GroupQueryAttention variant and a standard-op variant), MLP and head, assembled layer by layer. What differs
// between model families is a row of decoder-families.ts that the seams read. Nodes are named by their path
// in the model (`embed/Gather`, `layers.3/attn/q_proj/MatMul`, `final_norm/…`, `lm_head/MatMul`; parts all
// layers share under `rope_tables/`, `attn_mask/`, `gqa_inputs/`), so that ORT's profiles and errors read.
import { EvomergeError, invariant } from '../errors.ts';
import { OnnxDataType, type ModelMessage, type ValueInfoMessage } from './onnx-proto.ts';
import { decoderFamilySpec, type DecoderFamilySpec } from './decoder-families.ts';
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
import { attrFloat, attrInt, attrInts, MS_DOMAIN, OnnxWriter, valueInfo } from './onnx-writer.ts';
import { groupQueryAttentionRefusal } from './fused-kernels.ts';

export type OpSet = 'plain' | 'cpu';
export type ComputeDtype = 'f32' | 'f16';

export interface DecoderGraphOptions {
  /** Source layers to run, in order (default: every layer once, 0..num_hidden_layers−1, each scaled by the
   *  config's layer input scales when it has them). */
  layerPath?: readonly number[];
  /** Instead of a layer path: the slots to run, in order, each a layer of a model with an input scale. */
  slots?: readonly LayerSlot[];
  opSet?: OpSet;
  /** Weights and activations in float32 (default) or float16 (opSet 'plain' only). */
  computeDtype?: ComputeDtype;
}

export interface DecoderGraph {
  readonly model: ModelMessage;
  /** The checkpoint tensors the graph reads (each once, in first-use order). */
  readonly weights: readonly WeightSpec[];
  readonly layerPath: readonly number[];
  /** The slots run (a layer path's slots all read the config's model, at the config's scales or 1). */
  readonly slots: readonly LayerSlot[];
}

/** RoPE inverse frequencies as transformers computes them (float32), with the config's scaling applied. */
export function ropeInverseFrequencies(c: DecoderConfig): Float32Array {
  const half = c.headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++)
    inv[i] = Math.fround(1 / Math.fround(Math.pow(c.ropeTheta, Math.fround((2 * i) / c.headDim))));
  const s = c.ropeScaling;
  if (s.type === 'linear') for (let i = 0; i < half; i++) inv[i] = Math.fround(inv[i]! / s.factor);
  if (s.type === 'llama3') {
    // Long wavelengths are slowed down by `factor`, short ones kept, the band between interpolated.
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) inv[i] = Math.fround(f / s.factor);
      else {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = Math.fround((1 - smooth) * (f / s.factor) + smooth * f);
      }
    }
  }
  return inv;
}

/**
 * What every seam of the builder reads and writes: the config and its family's row, the writer, the operator
 * set and compute dtype, the checkpoint weights read so far (each once, in first-use order), and the parts
 * every layer shares, built where first needed (rotary tables, the attention mask, GroupQueryAttention's inputs).
 */
interface GraphContext {
  readonly c: DecoderConfig;
  readonly family: DecoderFamilySpec;
  readonly g: OnnxWriter;
  readonly opSet: OpSet;
  readonly f16: boolean;
  readonly weights: WeightSpec[];
  readonly weightNames: Set<string>;
  readonly inputs: ValueInfoMessage[];
  readonly outputs: ValueInfoMessage[];
  readonly shared: {
    normConsts?: { eps: string; two: string; one: string };
    ropeTables?: { cos: string; sin: string };
    totalLength?: string;
    mask?: string;
    scale?: string;
    gqa?: { seqlensK: string; total: string; cos: string; sin: string };
  };
}

/** A layer's tensors by their name inside the layer (`self_attn.q_proj.weight`); `bias` is undefined when absent. */
interface LayerWeights {
  weight(key: string): string;
  bias(key: string): string | undefined;
}

/** A checkpoint tensor as a graph initializer (declared once, without data: a candidate's tensors fill it). */
function weight(ctx: GraphContext, spec: WeightSpec): string {
  if (!ctx.weightNames.has(spec.name)) {
    ctx.weightNames.add(spec.name);
    ctx.weights.push(spec);
    const dataType = ctx.f16 ? OnnxDataType.FLOAT16 : OnnxDataType.FLOAT;
    ctx.g.initializers.push({ name: spec.name, dataType, dims: [...spec.shape] });
  }
  return spec.name;
}

// Activations in the compute dtype; what must stay float32 (norm statistics, softmax, cache, logits) is cast.
const toF32 = (ctx: GraphContext, v: string): string =>
  ctx.f16 ? ctx.g.node('Cast', [v], [attrInt('to', OnnxDataType.FLOAT)]) : v;
const toCompute = (ctx: GraphContext, v: string): string =>
  ctx.f16 ? ctx.g.node('Cast', [v], [attrInt('to', OnnxDataType.FLOAT16)]) : v;

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
    weights: [],
    weightNames: new Set(),
    inputs: [
      valueInfo('input_ids', OnnxDataType.INT64, ['batch', 'seq']),
      valueInfo('attention_mask', OnnxDataType.INT64, ['batch', 'total']),
      valueInfo('position_ids', OnnxDataType.INT64, ['batch', 'seq']),
    ],
    outputs: [valueInfo('logits', OnnxDataType.FLOAT, ['batch', 'seq', c.vocabSize])],
    shared: {},
  };
  const outer = new Map(outerWeights(c).map((w) => [w.name, w]));

  let x = ctx.g.scope('embed', () => embedding(ctx, weight(ctx, outer.get('model.embed_tokens.weight')!)));
  slots.forEach((slot, n) => {
    x = ctx.g.scope(`layers.${n}`, () => decoderLayer(ctx, x, n, slot));
  });
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
  return { model, weights: ctx.weights, layerPath: slots.map((s) => s.layer), slots: [...slots] };
}

/** The embedding seam: token ids → hidden states [batch, seq, hidden]. */
function embedding(ctx: GraphContext, table: string): string {
  const x = ctx.g.node('Gather', [table, 'input_ids']);
  switch (ctx.family.embeddingScale) {
    case 'none':
      return x;
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
  const attn = g.scope('attn', () => attention(ctx, n, h, lw));
  x = g.scope('attn_residual', () => g.node('Add', [x, attn]));
  const h2 = g.scope('post_attn_norm', () => rmsNorm(ctx, x, lw.weight('post_attention_layernorm.weight')));
  const mlpOut = g.scope('mlp', () => mlp(ctx, h2, lw));
  return g.scope('mlp_residual', () => g.node('Add', [x, mlpOut]));
}

/** The norm seam: RMSNorm, x · w / √(mean x² + ε), statistics in float32 (HF LlamaRMSNorm). */
function rmsNorm(ctx: GraphContext, x: string, stored: string): string {
  const { c, g } = ctx;
  const w = normWeight(ctx, stored);
  if (ctx.opSet === 'cpu')
    return g.node('SimplifiedLayerNormalization', [x, w], [attrInt('axis', -1), attrFloat('epsilon', c.rmsNormEps)]);
  const { eps, two, one } = (ctx.shared.normConsts ??= g.at('norm_consts', () => ({
    eps: g.constF([c.rmsNormEps], []),
    two: g.constF([2], []),
    one: g.constF([1], []),
  })));
  const x32 = toF32(ctx, x);
  const meanSquare = g.node(
    'ReduceMean',
    [g.node('Pow', [x32, two])],
    [attrInts('axes', [-1]), attrInt('keepdims', 1)],
  );
  const inv = g.node('Div', [one, g.node('Sqrt', [g.node('Add', [meanSquare, eps])])]);
  return g.node('Mul', [w, toCompute(ctx, g.node('Mul', [x32, inv]))]);
}

/** The weight RMSNorm multiplies by, from the one the checkpoint stores: the same tensor at offset 0. */
function normWeight(ctx: GraphContext, stored: string): string {
  switch (ctx.family.normWeightOffset) {
    case 0:
      return stored;
  }
}

/** A projection x · Wᵀ (+ b) named `name` (`q_proj`), W stored [out, in] as the checkpoint has it. */
function linear(ctx: GraphContext, name: string, x: string, w: string, bias?: string): string {
  const { g } = ctx;
  return g.scope(name, () => {
    const y =
      ctx.opSet === 'cpu'
        ? g.node('FusedMatMul', [x, w], [attrInt('transB', 1), attrFloat('alpha', 1)], undefined, MS_DOMAIN)
        : g.node('MatMul', [x, g.node('Transpose', [w], [attrInts('perm', [1, 0])])]);
    return bias ? g.node('Add', [y, bias]) : y;
  });
}

/** The attention seam: the normed hidden state → o_proj's output, updating layer n's KV cache. */
function attention(ctx: GraphContext, n: number, h: string, lw: LayerWeights): string {
  let q: string, k: string, v: string;
  switch (ctx.family.projections) {
    case 'separate':
      q = linear(ctx, 'q_proj', h, lw.weight('self_attn.q_proj.weight'), lw.bias('self_attn.q_proj.bias'));
      k = linear(ctx, 'k_proj', h, lw.weight('self_attn.k_proj.weight'), lw.bias('self_attn.k_proj.bias'));
      v = linear(ctx, 'v_proj', h, lw.weight('self_attn.v_proj.weight'), lw.bias('self_attn.v_proj.bias'));
  }
  const fused = ctx.opSet === 'cpu' && groupQueryAttentionRefusal(ctx.c) === undefined;
  const out = fused ? fusedAttention(ctx, n, q, k, v) : standardAttention(ctx, n, q, k, v);
  return linear(ctx, 'o_proj', out, lw.weight('self_attn.o_proj.weight'), lw.bias('self_attn.o_proj.bias'));
}

/**
 * Attention with ORT's GroupQueryAttention (opSet 'cpu'): RoPE (rotate_half) on q and k, the cache
 * concatenation, causal (and sliding-window) masking and grouped heads in one kernel, from the flat projections.
 */
function fusedAttention(ctx: GraphContext, n: number, q: string, k: string, v: string): string {
  const { c, g } = ctx;
  const out = g.fresh('attention');
  const gqa = gqaInputs(ctx);
  g.nodeN(
    'GroupQueryAttention',
    [q, k, v, `past_key_values.${n}.key`, `past_key_values.${n}.value`, gqa.seqlensK, gqa.total, gqa.cos, gqa.sin],
    [out, `present.${n}.key`, `present.${n}.value`],
    [
      attrInt('num_heads', c.heads),
      attrInt('kv_num_heads', c.kvHeads),
      attrFloat('scale', 1 / Math.sqrt(c.headDim)),
      attrInt('do_rotary', 1),
      attrInt('rotary_interleaved', 0),
      ...(c.slidingWindow !== undefined ? [attrInt('local_window_size', c.slidingWindow)] : []),
    ],
    MS_DOMAIN,
  );
  return out;
}

/** Attention in standard ops (opSet 'plain', every provider): RoPE, the cache as Concat, the additive mask. */
function standardAttention(ctx: GraphContext, n: number, qFlat: string, kFlat: string, vFlat: string): string {
  const { c, g } = ctx;
  const { headDim: D, heads: H, kvHeads: KV } = c;
  const groups = H / KV;
  const toHeads = (y: string, count: number) =>
    g.node('Transpose', [g.node('Reshape', [y, g.constI([0, 0, count, D], [4])])], [attrInts('perm', [0, 2, 1, 3])]);
  const q = g.scope('q_rope', () => rope(ctx, toHeads(qFlat, H)));
  const kNew = g.scope('k_rope', () => rope(ctx, toHeads(kFlat, KV)));
  const vNew = toHeads(vFlat, KV);
  const kPresent = g.node(
    'Concat',
    [`past_key_values.${n}.key`, toF32(ctx, kNew)],
    [attrInt('axis', 2)],
    `present.${n}.key`,
  );
  const vPresent = g.node(
    'Concat',
    [`past_key_values.${n}.value`, toF32(ctx, vNew)],
    [attrInt('axis', 2)],
    `present.${n}.value`,
  );
  const kAll = toCompute(ctx, kPresent);
  const vAll = toCompute(ctx, vPresent);
  // Grouped-query attention without copying keys: queries as [batch, kv, groups, seq, D] against keys as
  // [batch, kv, 1, D, total] (query head h reads kv head ⌊h / groups⌋, transformers' repeat_kv).
  const q5 = g.node('Reshape', [q, g.constI([0, KV, groups, -1, D], [5])]);
  const k5 = g.node('Unsqueeze', [g.node('Transpose', [kAll], [attrInts('perm', [0, 1, 3, 2])]), g.constI([2], [1])]);
  const v5 = g.node('Unsqueeze', [vAll, g.constI([2], [1])]);
  const scale = (ctx.shared.scale ??= g.at('attn_scale', () => g.constF([1 / Math.sqrt(D)], [])));
  const scores = g.node('Add', [g.node('Mul', [toF32(ctx, g.node('MatMul', [q5, k5])), scale]), attentionMask(ctx)]);
  const attn = g.node('MatMul', [toCompute(ctx, g.node('Softmax', [scores], [attrInt('axis', -1)])), v5]);
  return g.node('Reshape', [
    g.node('Transpose', [g.node('Reshape', [attn, g.constI([0, H, -1, D], [4])])], [attrInts('perm', [0, 2, 1, 3])]),
    g.constI([0, 0, H * D], [3]),
  ]);
}

/** RoPE on [batch, heads, seq, head_dim], rotate_half layout (the halves, not pairs), tables from position_ids. */
function rope(ctx: GraphContext, x: string): string {
  const { c, g } = ctx;
  const D = c.headDim;
  const tables = (ctx.shared.ropeTables ??= g.at('rope_tables', () => {
    const invFreq = g.constF(ropeInverseFrequencies(c), [1, D / 2]);
    const posF = g.node('Unsqueeze', [
      g.node('Cast', ['position_ids'], [attrInt('to', OnnxDataType.FLOAT)]),
      g.constI([-1], [1]),
    ]);
    const freqs = g.node('Mul', [posF, invFreq]);
    const angles = g.node('Concat', [freqs, freqs], [attrInt('axis', -1)]);
    const axis1 = g.constI([1], [1]);
    return {
      cos: toCompute(ctx, g.node('Unsqueeze', [g.node('Cos', [angles]), axis1])),
      sin: toCompute(ctx, g.node('Unsqueeze', [g.node('Sin', [angles]), axis1])),
    };
  }));
  const x1 = g.node('Slice', [x, g.constI([0], [1]), g.constI([D / 2], [1]), g.constI([3], [1])]);
  const x2 = g.node('Slice', [x, g.constI([D / 2], [1]), g.constI([D], [1]), g.constI([3], [1])]);
  const rotated = g.node('Concat', [g.node('Neg', [x2]), x1], [attrInt('axis', -1)]);
  return g.node('Add', [g.node('Mul', [x, tables.cos]), g.node('Mul', [rotated, tables.sin])]);
}

/** Past + new positions (a scalar), from the first cache input and input_ids. */
function totalLength(ctx: GraphContext): string {
  const { g } = ctx;
  return (ctx.shared.totalLength ??= g.at('total_length', () =>
    g.node('Add', [
      g.node('Gather', [g.node('Shape', ['past_key_values.0.key']), g.constI([2], [])], [attrInt('axis', 0)]),
      g.node('Gather', [g.node('Shape', ['input_ids']), g.constI([1], [])], [attrInt('axis', 0)]),
    ]),
  ));
}

/**
 * Additive attention mask over past + new keys, [batch, 1, 1, seq, total]. Causality and the sliding window W
 * compare indices in the sequence (past + new), which differ from positions by a row's left padding only, so
 * index differences are position differences; keys at padding (attention_mask 0) are hidden as well. Hidden
 * keys get float32's lowest value rather than −∞: a padding query that sees no key then averages garbage
 * instead of making NaN, which the next layer's keys would carry into every real query.
 */
function attentionMask(ctx: GraphContext): string {
  const { c, g } = ctx;
  if (ctx.shared.mask) return ctx.shared.mask;
  const total = totalLength(ctx);
  return (ctx.shared.mask = g.at('attn_mask', () => {
    const keyIdx = g.node('Range', [g.constI([0], []), total, g.constI([1], [])]);
    const newTokens = g.node('Gather', [g.node('Shape', ['input_ids']), g.constI([1], [])], [attrInt('axis', 0)]);
    const queryIdx = g.node('Unsqueeze', [
      g.node('Range', [g.node('Sub', [total, newTokens]), total, g.constI([1], [])]),
      g.constI([-1], [1]),
    ]);
    let hiddenKeys = g.node('Greater', [keyIdx, queryIdx]);
    if (c.slidingWindow !== undefined) {
      const tooOld = g.node('LessOrEqual', [keyIdx, g.node('Sub', [queryIdx, g.constI([c.slidingWindow], [])])]);
      hiddenKeys = g.node('Or', [hiddenKeys, tooOld]);
    }
    const padding = g.node('Unsqueeze', [
      g.node('Equal', ['attention_mask', g.constI([0], [])]),
      g.constI([1, 2, 3], [3]),
    ]);
    return g.node('Where', [
      g.node('Or', [hiddenKeys, padding]),
      g.constF([-3.4028234663852886e38], []),
      g.constF([0], []),
    ]);
  }));
}

/**
 * GroupQueryAttention's extra inputs: per row the index of its last key and the batch's longest total, from
 * attention_mask as onnxruntime-genai's model builder derives them (a row's keys are its first seqlens_k + 1
 * positions: rows of different lengths are padded on the right), and cos/sin tables [total, D/2] computed per
 * run for the positions 0..total−1 the batch holds (float32 angles, as the standard-op RoPE): their size follows
 * what runs, never max_position_embeddings.
 */
function gqaInputs(ctx: GraphContext): { seqlensK: string; total: string; cos: string; sin: string } {
  const { c, g } = ctx;
  const D = c.headDim;
  return (ctx.shared.gqa ??= g.at('gqa_inputs', () => {
    const keys = g.node('ReduceSum', ['attention_mask', g.constI([1], [1])], [attrInt('keepdims', 0)]);
    const seqlensK = g.node('Cast', [g.node('Sub', [keys, g.constI([1], [])])], [attrInt('to', OnnxDataType.INT32)]);
    const t = g.node('Gather', [g.node('Shape', ['attention_mask']), g.constI([1], [])], [attrInt('axis', 0)]);
    const positions = g.node('Unsqueeze', [
      g.node('Cast', [g.node('Range', [g.constI([0], []), t, g.constI([1], [])])], [attrInt('to', OnnxDataType.FLOAT)]),
      g.constI([-1], [1]),
    ]);
    const angles = g.node('Mul', [positions, g.constF(ropeInverseFrequencies(c), [1, D / 2])]);
    return {
      seqlensK,
      total: g.node('Cast', [t], [attrInt('to', OnnxDataType.INT32)]),
      cos: g.node('Cos', [angles]),
      sin: g.node('Sin', [angles]),
    };
  }));
}

/** The MLP seam: the normed hidden state → down_proj's output. */
function mlp(ctx: GraphContext, h: string, lw: LayerWeights): string {
  const { g } = ctx;
  let gate: string, up: string;
  switch (ctx.family.projections) {
    case 'separate':
      gate = linear(ctx, 'gate_proj', h, lw.weight('mlp.gate_proj.weight'), lw.bias('mlp.gate_proj.bias'));
      up = linear(ctx, 'up_proj', h, lw.weight('mlp.up_proj.weight'), lw.bias('mlp.up_proj.bias'));
  }
  let act: string;
  switch (ctx.family.activation) {
    case 'silu':
      act = g.scope('act', () => g.node('Mul', [gate, g.node('Sigmoid', [gate])]));
  }
  const product = g.node('Mul', [act, up]);
  return linear(ctx, 'down_proj', product, lw.weight('mlp.down_proj.weight'), lw.bias('mlp.down_proj.bias'));
}

/** The head seam: final norm, lm_head (or the tied embeddings), and the float32 `logits` output. */
function head(ctx: GraphContext, x: string, outer: ReadonlyMap<string, WeightSpec>): void {
  const { c, g } = ctx;
  const normed = g.scope('final_norm', () => rmsNorm(ctx, x, weight(ctx, outer.get('model.norm.weight')!)));
  const table = c.tiedEmbeddings ? 'model.embed_tokens.weight' : weight(ctx, outer.get('lm_head.weight')!);
  const logits = linear(ctx, 'lm_head', normed, table);
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
