// Arcee Fusion (mergekit arcee_fusion.py): keep the expert's delta where it matters. Importance of an entry
// = |expert − base| × KL(softmax(expert row) ‖ softmax(base row)) of its row (last dim; a 1-D tensor is one
// row); the delta is kept where importance ≥ median + 1.5·IQR of the tensor's importances. torch float32.

import { sum32 } from './f32-reductions.ts';

const EPS = Math.fround(1e-8);

/** softmax of one row as torch's CPU kernel: exp(x − max), their sum, then a multiply by 1/sum; + 1e-8. */
function softmaxRow(x: Float32Array, start: number, length: number, out: Float32Array): void {
  let max = -Infinity;
  for (let j = 0; j < length; j++) if (x[start + j]! > max) max = x[start + j]!;
  for (let j = 0; j < length; j++) out[j] = Math.fround(Math.exp(Math.fround(x[start + j]! - max)));
  // torch's float32 vector sum (reduce_all) with its SLEEF exp is not reproduced bit for bit; of the sums
  // tried (torch's lane order, sequential, cascade, float64), float64 agrees best with mergekit's keep/drop.
  let sum = 0;
  for (let j = 0; j < length; j++) sum += out[j]!;
  sum = Math.fround(sum);
  const inv = Math.fround(1 / sum);
  for (let j = 0; j < length; j++) out[j] = Math.fround(out[j]! * inv) + EPS;
}

/** KL(softmax(x row) ‖ softmax(base row)) of the row at `start`, float32 (p, q: scratch of `length`). */
export function fusionRowKl(
  base: Float32Array,
  x: Float32Array,
  start: number,
  length: number,
  p: Float32Array,
  q: Float32Array,
): number {
  softmaxRow(x, start, length, p);
  softmaxRow(base, start, length, q);
  return sum32((j) => Math.fround(p[j]! * Math.fround(Math.log(Math.fround(p[j]! / q[j]!)))), length);
}

/** The importance scores |x − base| · KL(p‖q) per entry, float32. */
export function fusionImportance(base: Float32Array, x: Float32Array, shape: readonly number[]): Float32Array {
  const n = base.length;
  const length = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  const p = new Float32Array(length);
  const q = new Float32Array(length);
  const importance = new Float32Array(n);
  for (let start = 0; start < n; start += length) {
    const klf = fusionRowKl(base, x, start, length, p, q);
    for (let j = 0; j < length; j++) {
      importance[start + j] = Math.abs(Math.fround(x[start + j]! - base[start + j]!)) * klf;
    }
  }
  return importance;
}

/**
 * median + 1.5·(q3 − q1) of the scores, each quantile the sorted entry at int(q·(n − 1)) (q a float32 tensor).
 * mergekit samples 10⁶ random entries of larger tensors (torch.randperm, not reproducible); evomerge takes the
 * quantiles of all entries, the value that sample estimates.
 */
export function fusionThreshold(importance: Float32Array): number {
  const sorted = importance.slice().sort();
  const at = (q: number): number => sorted[Math.trunc(Math.fround(Math.fround(q) * Math.fround(sorted.length - 1)))]!;
  const iqr = Math.fround(at(0.75) - at(0.25));
  return Math.fround(at(0.5) + Math.fround(1.5 * iqr));
}

export function arceeFusion(
  base: Float32Array,
  x: Float32Array,
  shape: readonly number[],
  out: Float32Array,
): Float32Array {
  const importance = fusionImportance(base, x, shape);
  const threshold = fusionThreshold(importance);
  for (let e = 0; e < base.length; e++) {
    // fused = base + delta·mask: base + fround(x − base) where kept, base where not.
    out[e] = importance[e]! >= threshold ? base[e]! + Math.fround(x[e]! - base[e]!) : base[e]!;
  }
  return out;
}
