// The combine step of the task-arithmetic family (mergekit generalized_task_arithmetic.py GTATask.execute):
// weighted trimmed deltas, optional sign consensus, normalisation, lambda, base + mixed. float32 throughout,
// models accumulated in input order; one chunked pass over base and the inputs.

import type { Trim } from './trim.ts';

export interface CombineInput {
  readonly base: Float32Array;
  readonly xs: readonly Float32Array[];
  readonly weights: readonly number[];
  readonly trims: readonly Trim[];
  readonly consensus: 'none' | 'sum';
  readonly normalize: boolean;
  readonly lambda: number;
}

const CHUNK = 4096;

/**
 * out = base + λ·mixed, with (mergekit GTATask.execute, get_mask 'sum'):
 * - δᵢ = fround(trim(τᵢ) · fround(wᵢ));
 * - no consensus: mixed = Σ δᵢ, divided by Σ wᵢ (1 if |Σ wᵢ| < 1e-8) when normalize;
 * - consensus 'sum': elected = +1 if Σ δᵢ ≥ 0 else −1; agreeᵢ = sign(δᵢ) == elected (a zero never agrees);
 *   mixed = Σ agreeᵢ·δᵢ, divided element-wise by Σ agreeᵢ·wᵢ (1 where that is 0) when normalize.
 */
/**
 * The divisor of normalize without consensus: Σ wᵢ summed in float32 in model order, as torch does, and 1 when
 * |Σ wᵢ| < 1e-8 (mergekit generalized_task_arithmetic.py). Shared by the plain and the SIMD combine.
 */
export function scalarWeightSum(weights32: ArrayLike<number>): number {
  let sum = 0;
  for (let m = 0; m < weights32.length; m++) sum = Math.fround(sum + weights32[m]);
  return Math.abs(sum) < 1e-8 ? 1 : sum;
}

export function combineTaskVectors(
  input: CombineInput,
  out: Float32Array = new Float32Array(input.base.length),
): Float32Array {
  const { base, xs, trims, consensus, normalize } = input;
  const n = base.length;
  const models = xs.length;
  if (models === 0) {
    out.set(base);
    return out;
  }
  const w32 = Float64Array.from(input.weights, (w) => Math.fround(w));
  const lambda32 = Math.fround(input.lambda);
  const applyLambda = input.lambda !== 1;
  const scalarDivisor = normalize && consensus === 'none' ? scalarWeightSum(w32) : 1;

  const deltas = new Float32Array(models * CHUNK);
  const acc = new Float32Array(CHUNK);
  const tau = new Float32Array(CHUNK);
  const tauBits = new Uint32Array(tau.buffer);
  // Per-model counters of elements equal to a cut, carried across chunks (ties keep the lowest indices).
  const keepEqualSeen = new Float64Array(models);
  const dropEqualSeen = new Float64Array(models);

  for (let start = 0; start < n; start += CHUNK) {
    const count = Math.min(CHUNK, n - start);
    for (let m = 0; m < models; m++) {
      const x = xs[m];
      const w = w32[m];
      const trim = trims[m];
      const d = deltas.subarray(m * CHUNK, m * CHUNK + count);
      if (consensus === 'none' && trim.kind === 'all') {
        // Fast path (task_arithmetic, linear-style DARE at density 1): accumulate directly.
        if (m === 0) for (let j = 0; j < count; j++) acc[j] = Math.fround(x[start + j] - base[start + j]) * w;
        else for (let j = 0; j < count; j++) acc[j] += Math.fround(Math.fround(x[start + j] - base[start + j]) * w);
        continue;
      }
      switch (trim.kind) {
        case 'all':
          for (let j = 0; j < count; j++) d[j] = Math.fround(x[start + j] - base[start + j]) * w;
          break;
        case 'zero':
          d.fill(0);
          break;
        case 'values': {
          const v = trim.values;
          for (let j = 0; j < count; j++) d[j] = v[start + j] * w;
          break;
        }
        case 'mask': {
          const mask = trim.mask;
          const mul = trim.mul;
          const div = trim.div;
          for (let j = 0; j < count; j++) {
            const e = start + j;
            if ((mask[e >>> 5] >>> (e & 31)) & 1) {
              const t = Math.fround(x[e] - base[e]);
              d[j] = (div === 1 ? Math.fround(t * mul) : Math.fround(t / div)) * w;
            } else d[j] = 0;
          }
          break;
        }
        case 'cut': {
          for (let j = 0; j < count; j++) tau[j] = x[start + j] - base[start + j];
          const kb = trim.keep.bits;
          const kq = trim.keep.keepEqual;
          const db = trim.drop.bits;
          const dq = trim.drop.keepEqual;
          const mul = trim.mul;
          const div = trim.div;
          let ke = keepEqualSeen[m];
          let de = dropEqualSeen[m];
          for (let j = 0; j < count; j++) {
            const v = tauBits[j] & 0x7fffffff;
            let kept = v > kb;
            if (v === kb) kept = ke++ < kq;
            if (v > db) kept = false;
            else if (v === db && de++ < dq) kept = false;
            if (kept) {
              const t = tau[j];
              d[j] = (div === 1 ? Math.fround(t * mul) : Math.fround(t / div)) * w;
            } else d[j] = 0;
          }
          keepEqualSeen[m] = ke;
          dropEqualSeen[m] = de;
          break;
        }
      }
      if (consensus === 'none') {
        if (m === 0) acc.set(d);
        else for (let j = 0; j < count; j++) acc[j] += d[j];
      }
    }

    if (consensus === 'none') {
      for (let j = 0; j < count; j++) {
        let mixed = acc[j];
        if (scalarDivisor !== 1) mixed = Math.fround(mixed / scalarDivisor);
        if (applyLambda) mixed = Math.fround(mixed * lambda32);
        out[start + j] = base[start + j] + mixed;
      }
      continue;
    }

    // Sign consensus 'sum' (mergekit get_mask): the vote is the sum of the weighted trimmed deltas.
    for (let j = 0; j < count; j++) {
      let vote = 0;
      for (let m = 0; m < models; m++) vote = Math.fround(vote + deltas[m * CHUNK + j]);
      const positive = vote >= 0; // ties go to +; a NaN vote elects −
      let mixed = 0;
      let divisor = 0;
      for (let m = 0; m < models; m++) {
        const dv = deltas[m * CHUNK + j];
        if (positive ? dv > 0 : dv < 0) {
          mixed = Math.fround(mixed + dv);
          divisor = Math.fround(divisor + w32[m]);
        } else if (dv - dv !== 0) {
          mixed = NaN; // torch: a non-finite δ times a false mask is NaN
        }
      }
      if (normalize) mixed = Math.fround(mixed / (divisor === 0 ? 1 : divisor));
      if (applyLambda) mixed = Math.fround(mixed * lambda32);
      out[start + j] = base[start + j] + mixed;
    }
  }
  return out;
}
