// The attention seam of the decoder builder: the projections (separate q/k/v or Phi-3's fused qkv_proj), the
// per-head q/k norm (Qwen3, Gemma 3), and two variants of the attention itself: ONNX Runtime's
// GroupQueryAttention ('cpu') and standard ops ('plain', every provider, float32 or float16). A source layer
// decides its kind: global or sliding-window attention (Mistral and Phi-3 slide everywhere, Gemma on some
// layers), global or local RoPE tables (Gemma 3's local layers), and the shared parts (masks, rotary tables,
// GroupQueryAttention's inputs) are built once per kind.
import { OnnxDataType } from './onnx-proto.ts';
import type { DecoderConfig } from './decoder-config.ts';
import { attrFloat, attrInt, attrInts, MS_DOMAIN } from './onnx-writer.ts';
import { groupQueryAttentionRefusal } from './fused-kernels.ts';
import { linear, rmsNorm, splitLast, toCompute, toF32, type GraphContext, type LayerWeights } from './graph-context.ts';

/** How a source layer attends: the window it keeps (undefined: every key) and whether its RoPE is local. */
export interface AttentionKind {
  readonly window?: number;
  readonly local: boolean;
}

/** The kind of source layer `layer`: sliding when the config has a window that applies to it. */
export function attentionKind(c: DecoderConfig, layer: number): AttentionKind {
  const slides = c.slidingWindow !== undefined && (c.slidingLayers?.[layer] ?? true);
  return slides ? { window: c.slidingWindow, local: c.localRopeTheta !== undefined } : { local: false };
}

/**
 * RoPE inverse frequencies as transformers computes them (float32), with the config's scaling applied; `local`:
 * Gemma 3's local layers (base rope_local_base_freq, no scaling).
 */
export function ropeInverseFrequencies(c: DecoderConfig, local = false): Float32Array {
  const half = c.headDim / 2;
  const theta = local ? c.localRopeTheta! : c.ropeTheta;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++)
    inv[i] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / c.headDim))));
  const s = c.ropeScaling;
  if (local) return inv;
  if (s.type === 'linear') for (let i = 0; i < half; i++) inv[i] = Math.fround(inv[i]! / s.factor);
  if (s.type === 'longrope')
    for (let i = 0; i < half; i++)
      inv[i] = Math.fround(
        1 / Math.fround(s.shortFactor[i]! * Math.fround(Math.pow(theta, Math.fround((2 * i) / c.headDim)))),
      );
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

/** What cos and sin are multiplied by: longrope's attention factor on global RoPE, else 1. */
function ropeAttentionFactor(c: DecoderConfig, local: boolean): number {
  return c.ropeScaling.type === 'longrope' && !local ? c.ropeScaling.attentionFactor : 1;
}

/** The attention seam: the normed hidden state → o_proj's output, updating layer n's KV cache. */
export function attention(ctx: GraphContext, n: number, h: string, lw: LayerWeights, kind: AttentionKind): string {
  const { c } = ctx;
  // one q/k/v projection: Phi-3's fused qkv_proj, or the separate ones packed (pack); else three
  let qkv: string | undefined;
  switch (ctx.family.projections) {
    case 'separate': {
      const packed = ctx.pack
        ? lw.packed('self_attn.qkv_proj', ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'])
        : undefined;
      if (packed) qkv = linear(ctx, 'qkv_proj', h, packed.weight, packed.bias);
      break;
    }
    case 'fused':
      qkv = linear(ctx, 'qkv_proj', h, lw.weight('self_attn.qkv_proj.weight'));
  }
  // the fused kernel only where ORT accepts the config (fused-kernels.ts), else standard ops on every provider
  const fused = ctx.opSet === 'cpu' && groupQueryAttentionRefusal(c) === undefined;
  let out: string;
  if (fused && qkv !== undefined && ctx.family.qkNorm === 'none') {
    // GroupQueryAttention takes the packed [batch, seq, (heads + 2 kv_heads) · head_dim] as its query and no
    // key or value (onnxruntime-genai's builder does so): no Split at all
    out = fusedAttention(ctx, n, qkv, '', '', lw, kind);
  } else {
    let q: string, k: string, v: string;
    if (qkv !== undefined) {
      const kv = c.kvHeads * c.headDim;
      [q, k, v] = splitLast(ctx, 'qkv_split', qkv, [c.heads * c.headDim, kv, kv]) as [string, string, string];
    } else {
      q = linear(ctx, 'q_proj', h, lw.weight('self_attn.q_proj.weight'), lw.bias('self_attn.q_proj.bias'));
      k = linear(ctx, 'k_proj', h, lw.weight('self_attn.k_proj.weight'), lw.bias('self_attn.k_proj.bias'));
      v = linear(ctx, 'v_proj', h, lw.weight('self_attn.v_proj.weight'), lw.bias('self_attn.v_proj.bias'));
    }
    out = fused ? fusedAttention(ctx, n, q, k, v, lw, kind) : standardAttention(ctx, n, q, k, v, lw, kind);
  }
  return linear(ctx, 'o_proj', out, lw.weight('self_attn.o_proj.weight'), lw.bias('self_attn.o_proj.bias'));
}

/** The q/k norm seam on heads laid out with head_dim last: RMSNorm of each head (q_norm, k_norm), or nothing. */
function qkNorm(ctx: GraphContext, which: 'q' | 'k', x: string, lw: LayerWeights): string {
  switch (ctx.family.qkNorm) {
    case 'none':
      return x;
    case 'per_head_rms':
      return ctx.g.scope(`${which}_norm`, () => rmsNorm(ctx, x, lw.weight(`self_attn.${which}_norm.weight`)));
  }
}

/**
 * Attention with ORT's GroupQueryAttention (opSet 'cpu'): RoPE (rotate_half) on q and k, the cache
 * concatenation, causal (and sliding-window) masking, soft-capping and grouped heads in one kernel, from the flat
 * projections. A per-head q/k norm goes before it: [batch, seq, heads, head_dim], normed, flat again.
 */
function fusedAttention(
  ctx: GraphContext,
  n: number,
  qFlat: string,
  kFlat: string,
  v: string,
  lw: LayerWeights,
  kind: AttentionKind,
): string {
  const { c, g } = ctx;
  const perHead = (which: 'q' | 'k', y: string, count: number) =>
    ctx.family.qkNorm === 'none'
      ? y
      : g.node('Reshape', [
          qkNorm(ctx, which, g.node('Reshape', [y, g.constI([0, 0, count, c.headDim], [4])]), lw),
          g.constI([0, 0, count * c.headDim], [3]),
        ]);
  // (a packed q/k/v comes as qFlat with kFlat and v empty, only without a q/k norm)
  const q = perHead('q', qFlat, c.heads);
  const k = kFlat === '' ? '' : perHead('k', kFlat, c.kvHeads);
  const out = g.fresh('attention');
  const gqa = gqaInputs(ctx, kind);
  g.nodeN(
    'GroupQueryAttention',
    [q, k, v, `past_key_values.${n}.key`, `past_key_values.${n}.value`, gqa.seqlensK, gqa.total, gqa.cos, gqa.sin],
    [out, `present.${n}.key`, `present.${n}.value`],
    [
      attrInt('num_heads', c.heads),
      attrInt('kv_num_heads', c.kvHeads),
      attrFloat('scale', c.attentionScale),
      attrInt('do_rotary', 1),
      attrInt('rotary_interleaved', 0),
      ...(kind.window !== undefined ? [attrInt('local_window_size', kind.window)] : []),
      ...(c.attnSoftcap !== undefined ? [attrFloat('softcap', c.attnSoftcap)] : []),
    ],
    MS_DOMAIN,
  );
  return out;
}

/** Attention in standard ops (opSet 'plain', every provider): RoPE, the cache as Concat, the additive mask. */
function standardAttention(
  ctx: GraphContext,
  n: number,
  qFlat: string,
  kFlat: string,
  vFlat: string,
  lw: LayerWeights,
  kind: AttentionKind,
): string {
  const { c, g } = ctx;
  const { headDim: D, heads: H, kvHeads: KV } = c;
  const groups = H / KV;
  const toHeads = (y: string, count: number) =>
    g.node('Transpose', [g.node('Reshape', [y, g.constI([0, 0, count, D], [4])])], [attrInts('perm', [0, 2, 1, 3])]);
  const q = g.scope('q_rope', () => rope(ctx, qkNorm(ctx, 'q', toHeads(qFlat, H), lw), kind.local));
  const kNew = g.scope('k_rope', () => rope(ctx, qkNorm(ctx, 'k', toHeads(kFlat, KV), lw), kind.local));
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
  const scale = (ctx.shared.scale ??= g.at('attn_scale', () => g.constF([c.attentionScale], [])));
  let scores = g.node('Mul', [toF32(ctx, g.node('MatMul', [q5, k5])), scale]);
  if (c.attnSoftcap !== undefined) {
    const cap = g.constF([c.attnSoftcap], []);
    scores = g.scope('softcap', () => g.node('Mul', [g.node('Tanh', [g.node('Div', [scores, cap])]), cap]));
  }
  scores = g.node('Add', [scores, attentionMask(ctx, kind.window)]);
  const attn = g.node('MatMul', [toCompute(ctx, g.node('Softmax', [scores], [attrInt('axis', -1)])), v5]);
  return g.node('Reshape', [
    g.node('Transpose', [g.node('Reshape', [attn, g.constI([0, H, -1, D], [4])])], [attrInts('perm', [0, 2, 1, 3])]),
    g.constI([0, 0, H * D], [3]),
  ]);
}

/** RoPE on [batch, heads, seq, head_dim], rotate_half layout (the halves, not pairs), tables from position_ids. */
function rope(ctx: GraphContext, x: string, local: boolean): string {
  const { c, g } = ctx;
  const D = c.headDim;
  const key = local ? 'local' : 'global';
  let tables = ctx.shared.ropeTables.get(key);
  if (!tables) {
    tables = g.at(local ? 'rope_tables_local' : 'rope_tables', () => {
      const invFreq = g.constF(ropeInverseFrequencies(c, local), [1, D / 2]);
      const posF = g.node('Unsqueeze', [
        g.node('Cast', ['position_ids'], [attrInt('to', OnnxDataType.FLOAT)]),
        g.constI([-1], [1]),
      ]);
      const freqs = g.node('Mul', [posF, invFreq]);
      const angles = g.node('Concat', [freqs, freqs], [attrInt('axis', -1)]);
      const axis1 = g.constI([1], [1]);
      const factor = ropeAttentionFactor(c, local);
      const scaled = (t: string) => (factor === 1 ? t : g.node('Mul', [t, g.constF([factor], [])]));
      return {
        cos: toCompute(ctx, g.node('Unsqueeze', [scaled(g.node('Cos', [angles])), axis1])),
        sin: toCompute(ctx, g.node('Unsqueeze', [scaled(g.node('Sin', [angles])), axis1])),
      };
    });
    ctx.shared.ropeTables.set(key, tables);
  }
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
 * Additive attention mask over past + new keys, [batch, 1, 1, seq, total], for layers keeping `window` keys
 * (undefined: all). Causality and the sliding window W compare indices in the sequence (past + new), which differ
 * from positions by a row's left padding only, so index differences are position differences; keys at padding
 * (attention_mask 0) are hidden as well. Hidden keys get float32's lowest value rather than −∞: a padding query
 * that sees no key then averages garbage instead of making NaN, which the next layer's keys would carry into
 * every real query. Named `attn_mask` (`attn_mask_sliding` for the sliding layers of a family that mixes both).
 */
function attentionMask(ctx: GraphContext, window: number | undefined): string {
  const { c, g } = ctx;
  const key = String(window ?? 'full');
  const known = ctx.shared.masks.get(key);
  if (known) return known;
  const total = totalLength(ctx);
  const mask = g.at(window !== undefined && c.slidingLayers ? 'attn_mask_sliding' : 'attn_mask', () => {
    const keyIdx = g.node('Range', [g.constI([0], []), total, g.constI([1], [])]);
    const newTokens = g.node('Gather', [g.node('Shape', ['input_ids']), g.constI([1], [])], [attrInt('axis', 0)]);
    const queryIdx = g.node('Unsqueeze', [
      g.node('Range', [g.node('Sub', [total, newTokens]), total, g.constI([1], [])]),
      g.constI([-1], [1]),
    ]);
    let hiddenKeys = g.node('Greater', [keyIdx, queryIdx]);
    if (window !== undefined) {
      const tooOld = g.node('LessOrEqual', [keyIdx, g.node('Sub', [queryIdx, g.constI([window], [])])]);
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
  });
  ctx.shared.masks.set(key, mask);
  return mask;
}

/**
 * GroupQueryAttention's extra inputs: per row the index of its last key and the batch's longest total, from
 * attention_mask as onnxruntime-genai's model builder derives them (a row's keys are its first seqlens_k + 1
 * positions: rows of different lengths are padded on the right), and cos/sin tables [total, D/2] computed per
 * run for the positions 0..total−1 the batch holds (global and, for Gemma 3's local layers, local ones).
 */
function gqaInputs(
  ctx: GraphContext,
  kind: AttentionKind,
): { seqlensK: string; total: string; cos: string; sin: string } {
  const { c, g } = ctx;
  const D = c.headDim;
  const base = (ctx.shared.gqa ??= g.at('gqa_inputs', () => {
    const keys = g.node('ReduceSum', ['attention_mask', g.constI([1], [1])], [attrInt('keepdims', 0)]);
    const seqlensK = g.node('Cast', [g.node('Sub', [keys, g.constI([1], [])])], [attrInt('to', OnnxDataType.INT32)]);
    const t = g.node('Gather', [g.node('Shape', ['attention_mask']), g.constI([1], [])], [attrInt('axis', 0)]);
    // positions 0..total−1 as a float32 column: the tables follow what runs, never max_position_embeddings
    const positions = g.node('Unsqueeze', [
      g.node('Cast', [g.node('Range', [g.constI([0], []), t, g.constI([1], [])])], [attrInt('to', OnnxDataType.FLOAT)]),
      g.constI([-1], [1]),
    ]);
    return { seqlensK, total: g.node('Cast', [t], [attrInt('to', OnnxDataType.INT32)]), positions };
  }));
  const key = kind.local ? 'local' : 'global';
  let tables = ctx.shared.gqaTables.get(key);
  if (!tables) {
    tables = g.at(kind.local ? 'gqa_inputs_local' : 'gqa_inputs', () => {
      const angles = g.node('Mul', [base.positions, g.constF(ropeInverseFrequencies(c, kind.local), [1, D / 2])]);
      const factor = ropeAttentionFactor(c, kind.local);
      const scaled = (t: string) => (factor === 1 ? t : g.node('Mul', [t, g.constF([factor], [])]));
      return { cos: scaled(g.node('Cos', [angles])), sin: scaled(g.node('Sin', [angles])) };
    });
    ctx.shared.gqaTables.set(key, tables);
  }
  const { seqlensK, total } = base;
  return { seqlensK, total, ...tables };
}
