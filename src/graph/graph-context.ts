// What the seams of the decoder builder share (decoder-graph.ts, decoder-attention.ts): the GraphContext every
// seam reads and writes, checkpoint weights as initializers, dtype casts, the norm seam and the projection seam.
import { OnnxDataType, type ValueInfoMessage } from './onnx-proto.ts';
import type { DecoderFamilySpec } from './decoder-families.ts';
import type { DecoderConfig, WeightSpec } from './decoder-config.ts';
import { attrFloat, attrInt, attrInts, MS_DOMAIN, type OnnxWriter } from './onnx-writer.ts';

export type OpSet = 'plain' | 'cpu';
export type ComputeDtype = 'f32' | 'f16';

/**
 * What every seam of the builder reads and writes: the config and its family's row, the writer, the operator
 * set and compute dtype, the checkpoint weights read so far (each once, in first-use order), and the parts
 * every layer shares, built where first needed (rotary tables, attention masks, GroupQueryAttention's inputs;
 * keyed by kind where a family's layers differ: global or sliding-window attention, global or local RoPE).
 */
export interface GraphContext {
  readonly c: DecoderConfig;
  readonly family: DecoderFamilySpec;
  readonly g: OnnxWriter;
  readonly opSet: OpSet;
  readonly f16: boolean;
  /** Pack q/k/v and gate/up into one projection each where the checkpoint stores them separately. */
  readonly pack: boolean;
  readonly weights: WeightSpec[];
  readonly weightNames: Set<string>;
  /** The weight initializers, each filled by one checkpoint tensor or by several packed (InitializerSpec). */
  readonly initializerSpecs: InitializerSpec[];
  readonly inputs: ValueInfoMessage[];
  readonly outputs: ValueInfoMessage[];
  readonly shared: {
    normConsts?: { eps: string; two: string; one: string };
    ropeTables: Map<string, { cos: string; sin: string }>;
    totalLength?: string;
    masks: Map<string, string>;
    scale?: string;
    gqa?: { seqlensK: string; total: string; positions: string };
    gqaTables: Map<string, { cos: string; sin: string }>;
  };
}

/**
 * A weight initializer of the graph and the checkpoint tensors that fill it: one tensor of the same name, or
 * (packed) several concatenated along their first axis, the output axis of a projection stored [out, in] (q, k
 * and v; gate and up), which whoever feeds the graph copies into one array per candidate (packWeight).
 */
export interface InitializerSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly parts: readonly WeightSpec[];
}

/** A layer's tensors by their name inside the layer (`self_attn.q_proj.weight`); `bias` is undefined when absent. */
export interface LayerWeights {
  weight(key: string): string;
  bias(key: string): string | undefined;
  /**
   * The projections `keys` (`self_attn.q_proj`, …) as one initializer packed along the output axis, weight and
   * bias (a bias only when every projection has one); undefined when some have a bias and some not.
   */
  packed(name: string, keys: readonly string[]): { weight: string; bias?: string } | undefined;
}

/** A checkpoint tensor as a graph initializer (declared once, without data: a candidate's tensors fill it). */
export function weight(ctx: GraphContext, spec: WeightSpec): string {
  return packedWeight(ctx, spec.name, [spec]);
}

/**
 * Checkpoint tensors concatenated along their first axis as one graph initializer named `name` (one tensor:
 * the tensor itself, under its own name). Declared once, without data.
 */
export function packedWeight(ctx: GraphContext, name: string, parts: readonly WeightSpec[]): string {
  if (!ctx.weightNames.has(name)) {
    ctx.weightNames.add(name);
    for (const p of parts) if (!ctx.weights.some((w) => w.name === p.name)) ctx.weights.push(p);
    const rows = parts.reduce((n, p) => n + p.shape[0]!, 0);
    const shape = [rows, ...parts[0]!.shape.slice(1)];
    ctx.initializerSpecs.push({ name, shape, parts: [...parts] });
    const dataType = ctx.f16 ? OnnxDataType.FLOAT16 : OnnxDataType.FLOAT;
    ctx.g.initializers.push({ name, dataType, dims: shape });
  }
  return name;
}

/**
 * The data of one initializer from its parts' float32 data (read in order): the tensor's own array when it is
 * one, else one new array holding the parts one after another (row-major [out, in] parts concatenated along
 * `out` are their arrays end to end) — the one copy per candidate that packing costs.
 */
export function packWeight(spec: InitializerSpec, read: (part: WeightSpec) => Float32Array): Float32Array {
  if (spec.parts.length === 1) return read(spec.parts[0]!);
  const out = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
  let at = 0;
  for (const p of spec.parts) {
    const data = read(p);
    out.set(data, at);
    at += data.length;
  }
  return out;
}

// Activations in the compute dtype; what must stay float32 (norm statistics, softmax, cache, logits) is cast.
export const toF32 = (ctx: GraphContext, v: string): string =>
  ctx.f16 ? ctx.g.node('Cast', [v], [attrInt('to', OnnxDataType.FLOAT)]) : v;
export const toCompute = (ctx: GraphContext, v: string): string =>
  ctx.f16 ? ctx.g.node('Cast', [v], [attrInt('to', OnnxDataType.FLOAT16)]) : v;

/** A scalar constant in the compute dtype. */
export const constCompute = (ctx: GraphContext, value: number): string =>
  ctx.f16 ? ctx.g.constF16([value], []) : ctx.g.constF([value], []);

/**
 * The norm seam: RMSNorm over the last axis, x · w / √(mean x² + ε), statistics in float32 (HF LlamaRMSNorm:
 * normalised x cast back, then times w; Gemma's (1 + w) multiplies in float32, then the cast).
 */
export function rmsNorm(ctx: GraphContext, x: string, stored: string): string {
  const { c, g } = ctx;
  if (ctx.opSet === 'cpu')
    return g.node(
      'SimplifiedLayerNormalization',
      [x, normWeight(ctx, stored)],
      [attrInt('axis', -1), attrFloat('epsilon', c.rmsNormEps)],
    );
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
  switch (ctx.family.normWeightOffset) {
    case 0:
      return g.node('Mul', [normWeight(ctx, stored), toCompute(ctx, g.node('Mul', [x32, inv]))]);
    case 1:
      return toCompute(ctx, g.node('Mul', [g.node('Mul', [x32, inv]), g.node('Add', [toF32(ctx, stored), one])]));
  }
}

/** The weight RMSNorm multiplies by, from the one the checkpoint stores: the same at offset 0, 1 + w at 1. */
function normWeight(ctx: GraphContext, stored: string): string {
  switch (ctx.family.normWeightOffset) {
    case 0:
      return stored;
    case 1:
      return ctx.g.scope('weight', () => ctx.g.node('Add', [stored, constCompute(ctx, 1)]));
  }
}

/** A projection x · Wᵀ (+ b) named `name` (`q_proj`), W stored [out, in] as the checkpoint has it. */
export function linear(ctx: GraphContext, name: string, x: string, w: string, bias?: string): string {
  const { g } = ctx;
  return g.scope(name, () => {
    const y =
      ctx.opSet === 'cpu'
        ? g.node('FusedMatMul', [x, w], [attrInt('transB', 1), attrFloat('alpha', 1)], undefined, MS_DOMAIN)
        : g.node('MatMul', [x, g.node('Transpose', [w], [attrInts('perm', [1, 0])])]);
    return bias ? g.node('Add', [y, bias]) : y;
  });
}

/** A fused projection's output split on its last axis into parts of `sizes` (Phi-3's qkv_proj, gate_up_proj). */
export function splitLast(ctx: GraphContext, name: string, y: string, sizes: number[]): string[] {
  const { g } = ctx;
  return g.scope(name, () => {
    const outs = sizes.map(() => g.fresh('part'));
    g.nodeN('Split', [y, g.constI(sizes, [sizes.length])], outs, [attrInt('axis', -1)]);
    return outs;
  });
}
