// Dense task arithmetic (no sparsification, no consensus) and linear from the inputs as stored: each source's bytes are read
// once into the runtime's memory, and chunk by chunk decoded into the combine's input slots (bf16 / f16 by the
// wasm decoders, f32 by a copy within the memory), scanned for NaN and ±Inf there while in cache, combined by the
// same wasm function as combineTaskVectorsSimd's dense path (linear: wasm-weighted-sum.ts), scanned again, copied out. One pass over each
// source instead of decode → float32 array → guard → copy in → combine → copy out → guard; the same bits.

import type { SourceRef, StoredReader, StoredTensor, TaskVectorInput } from '../../kernel.ts';
import { SIMD_CHUNK, SLOT_BYTES, type SimdRuntime } from './simd-runtime.ts';
import { UNROLLED_MODELS, unrolledName } from './wasm-task-arithmetic.ts';
import { scalarWeightSum } from '../task-arithmetic.ts';

const CHUNK = SIMD_CHUNK;
const SLOT = SLOT_BYTES;
const BYTES: Record<StoredTensor['dtype'], number> = { F32: 4, F16: 2, BF16: 2 };
/** The sources of one tensor are held in the runtime's memory only up to this many bytes (else: the f32 path). */
export const STORED_LIMIT_BYTES = 1 << 30;

/** The task-arithmetic job this path takes: every task vector kept whole (sparsifyAll's dense case), no consensus. */
export interface DenseJob {
  readonly base: SourceRef;
  readonly inputs: readonly TaskVectorInput[];
  readonly sparsification: string;
  readonly consensus: 'none' | 'sum';
  readonly normalize: boolean;
  readonly lambda: number;
}

/** Whether combineTaskVectorsSimd would take its dense path: every trim 'all' (isDense of sparsify.ts), no consensus. */
export function isDenseTaskArithmetic(op: DenseJob): boolean {
  return (
    op.consensus === 'none' &&
    op.inputs.length > 0 &&
    op.inputs.every((i) => op.sparsification === 'none' || i.density >= 1)
  );
}

/**
 * out = the same bits as combineTaskVectorsSimd over the inputs upcast to float32, or null (out then unspecified)
 * when a source or the result holds a NaN or ±Inf, a source is not n elements, or the sources exceed the limit.
 */
export function denseFromStored(
  rt: SimdRuntime,
  op: DenseJob,
  stored: StoredReader,
  out: Float32Array,
): Float32Array | null {
  const models = op.inputs.length;
  // Layout (bytes): [0, 64) scratch | base | x₀..x₍ₘ₋₁₎ | d₀..d₍ₘ₋₁₎ | out | splatted weights | the sources.
  const xOff = (m: number) => IN + (1 + m) * SLOT;
  const dOff = IN + (1 + models) * SLOT;
  const outOff = dOff + models * SLOT;
  const wOff = outOff + SLOT;
  const w32 = Float64Array.from(op.inputs, (i) => Math.fround(i.weight));
  const lambda32 = Math.fround(op.lambda);
  const useLambda = op.lambda !== 1 ? 1 : 0;
  const scalarDivisor = op.normalize ? scalarWeightSum(w32) : 1;
  const useScalarDiv = scalarDivisor !== 1 ? 1 : 0;
  const { fn } = rt;
  const unrolled = models <= UNROLLED_MODELS ? fn[unrolledName('dense', models) as `combine_cut_${string}`] : null;
  return fromStored(rt, [stored(op.base), ...op.inputs.map((i) => stored(i.ref))], out, {
    outOff,
    end: wOff + 16 * models,
    prepare: () => splatWeights(rt, wOff, w32),
    combine: (bytes) => {
      if (unrolled !== null)
        unrolled(
          xOff(0),
          models,
          SLOT,
          wOff,
          dOff,
          IN,
          outOff,
          bytes,
          scalarDivisor,
          useScalarDiv,
          lambda32,
          useLambda,
        );
      else
        fn.combine_dense(
          xOff(0),
          models,
          SLOT,
          wOff,
          IN,
          outOff,
          bytes,
          scalarDivisor,
          useScalarDiv,
          lambda32,
          useLambda,
        );
    },
  });
}

/** linear: out = the same bits as weightedSum (weighted-sum.ts) over the inputs upcast to float32, or null as above. */
export function weightedSumFromStored(
  rt: SimdRuntime,
  inputs: readonly { readonly ref: SourceRef; readonly weight: number }[],
  normalize: boolean,
  stored: StoredReader,
  out: Float32Array,
): Float32Array | null {
  const models = inputs.length;
  if (models === 0) return null;
  // Layout (bytes): [0, 64) scratch | x₀..x₍ₘ₋₁₎ | out | splatted weights | the sources.
  const outOff = IN + models * SLOT;
  const wOff = outOff + SLOT;
  const w32 = Float64Array.from(inputs, (i) => Math.fround(i.weight));
  let weightSum = 0;
  for (let m = 0; m < models; m++) weightSum = Math.fround(weightSum + w32[m]);
  return fromStored(
    rt,
    inputs.map((i) => stored(i.ref)),
    out,
    {
      outOff,
      end: wOff + 16 * models,
      prepare: () => splatWeights(rt, wOff, w32),
      combine: (bytes) => rt.fn.weighted_sum(IN, models, SLOT, wOff, outOff, bytes, weightSum, normalize ? 1 : 0),
    },
  );
}

/** Where the first input slot starts; slot k (source k in the order given) is at IN + k·SLOT. */
const IN = 64;

interface Pass {
  /** Byte offset of the output slot. */
  readonly outOff: number;
  /** End of the pass's own layout (slots, weights); the sources as stored follow. */
  readonly end: number;
  /** Writes the pass's parameters into memory (after it has grown). */
  readonly prepare: () => void;
  /** Combines one chunk's slots (whole vectors: `bytes` a multiple of 16) into the output slot. */
  readonly combine: (bytes: number) => void;
}

/**
 * The sources read as stored into the runtime's memory (64-byte aligned, 64 bytes of slack: a decode reads whole
 * vectors past the end), then per chunk: each decoded into its slot and scanned, the combine, the result scanned
 * and copied out. Null on a NaN or ±Inf, a source of the wrong size, or sources past STORED_LIMIT_BYTES.
 */
function fromStored(
  rt: SimdRuntime,
  sources: readonly StoredTensor[],
  out: Float32Array,
  pass: Pass,
): Float32Array | null {
  const n = out.length;
  if (sources.some((s) => s.byteLength !== n * BYTES[s.dtype])) return null;
  const at: number[] = [];
  let end = align64(pass.end);
  for (const s of sources) {
    at.push(end);
    end = align64(end + s.byteLength + 64);
  }
  if (end > STORED_LIMIT_BYTES) return null;
  rt.ensure(end);
  const u8 = rt.u8;
  sources.forEach((s, k) => s.readInto(u8.subarray(at[k], at[k] + s.byteLength)));
  pass.prepare();
  const { f32, fn } = rt;
  const outOff = pass.outOff;
  for (let start = 0; start < n; start += CHUNK) {
    const count = Math.min(CHUNK, n - start);
    const scan = (count + 15) & ~15; // any_nonfinite reads 64-byte steps: lanes count … scan are zeroed first
    for (let k = 0; k < sources.length; k++) {
      const dst = IN + k * SLOT;
      const s = sources[k];
      if (s.dtype === 'F32') u8.copyWithin(dst, at[k] + 4 * start, at[k] + 4 * (start + count));
      else (s.dtype === 'BF16' ? fn.decode_bf16 : fn.decode_f16)(at[k] + 2 * start, dst, 2 * ((count + 7) & ~7));
      if (scan !== count) f32.fill(0, (dst >> 2) + count, (dst >> 2) + scan);
      if (fn.any_nonfinite(dst, 4 * scan) !== 0) return null;
    }
    pass.combine(((count + 3) & ~3) * 4); // whole vectors, as the float32 drivers compute them
    if (scan !== count) f32.fill(0, (outOff >> 2) + count, (outOff >> 2) + scan);
    if (fn.any_nonfinite(outOff, 4 * scan) !== 0) return null;
    out.set(f32.subarray(outOff >> 2, (outOff >> 2) + count), start);
  }
  return out;
}

function splatWeights(rt: SimdRuntime, wOff: number, w32: Float64Array): void {
  for (let m = 0; m < w32.length; m++) rt.f32.fill(w32[m], (wOff >> 2) + 4 * m, (wOff >> 2) + 4 * m + 4);
}

function align64(x: number): number {
  return (x + 63) & ~63;
}
