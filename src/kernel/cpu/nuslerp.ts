// NuSLERP (mergekit nuslerp.py `nuslerp`): spherical interpolation of two tensors at t, over the flattened
// tensor (flatten), over each row along the last dim, or (rowWise) over each vector along dim 0; with a base,
// of the two task vectors, added back to the base. torch float32: every scalar of a vector (norms, cos θ, θ,
// sin θ) is a float32 tensor, and the division by sin θ is per element, after the weighted sum.

import { multiRowSum, norm32, sum32 } from './f32-reductions.ts';

/** nuslerp's `eps`: |sin θ| below it takes the linear branch. */
const COLINEAR_EPS = 1e-8;
/** `_normalize`'s clamp of the norm. */
const NORM_EPS = Math.fround(1e-7);

/** How a tensor of `shape` splits into the vectors nuslerp slerps: `count` vectors of `length`, `stride` apart. */
export function nuslerpVectors(
  shape: readonly number[],
  flatten: boolean,
  rowWise: boolean,
): { count: number; length: number; stride: number; step: number } {
  const n = shape.reduce((a, b) => a * b, 1);
  if (flatten || shape.length <= 1) return { count: 1, length: n, stride: 1, step: 0 };
  if (rowWise) {
    // transpose(0, -1): the vectors run along dim 0, one per index of the other dims.
    const length = shape[0]!;
    return { count: n / length, length, stride: n / length, step: 1 };
  }
  const length = shape[shape.length - 1]!;
  return { count: n / length, length, stride: 1, step: length };
}

/** out = slerp(t, a − base, b − base) + base (or slerp(t, a, b) without base), vector by vector. */
export function nuslerp(
  t: number,
  a: Float32Array,
  b: Float32Array,
  base: Float32Array | undefined,
  shape: readonly number[],
  flatten: boolean,
  rowWise: boolean,
  out: Float32Array = new Float32Array(a.length),
): Float32Array {
  const n = a.length;
  let v0 = a;
  let v1 = b;
  if (base !== undefined) {
    v0 = new Float32Array(n);
    v1 = new Float32Array(n);
    for (let e = 0; e < n; e++) {
      v0[e] = a[e]! - base[e]!;
      v1[e] = b[e]! - base[e]!;
    }
  }
  // Python scalars meet float32 tensors: t and 1 − t (float64 in Python) are rounded to float32.
  const tf = Math.fround(t);
  const omt = Math.fround(1 - t);
  const { count, length, stride, step } = nuslerpVectors(shape, flatten, rowWise);
  for (let v = 0; v < count; v++) {
    const start = v * step;
    let n0 = norm32(v0, start, length, stride);
    let n1 = norm32(v1, start, length, stride);
    if (n0 < NORM_EPS) n0 = NORM_EPS;
    if (n1 < NORM_EPS) n1 = NORM_EPS;
    const cos = cosine(v0, v1, n0, n1, start, length, stride);
    const theta = Math.fround(Math.acos(cos < -1 ? -1 : cos > 1 ? 1 : cos));
    const sinTheta = Math.fround(Math.sin(theta));
    if (Math.abs(sinTheta) < COLINEAR_EPS) {
      for (let j = 0, e = start; j < length; j++, e += stride) {
        out[e] = Math.fround(omt * v0[e]!) + Math.fround(tf * v1[e]!);
      }
    } else {
      const s0 = Math.fround(Math.sin(Math.fround(omt * theta)));
      const s1 = Math.fround(Math.sin(Math.fround(tf * theta)));
      for (let j = 0, e = start; j < length; j++, e += stride) {
        out[e] = Math.fround(Math.fround(s0 * v0[e]!) + Math.fround(s1 * v1[e]!)) / sinTheta;
      }
    }
  }
  if (base !== undefined) for (let e = 0; e < n; e++) out[e] = base[e]! + out[e]!;
  return out;
}

/** Σ (v0/n0)·(v1/n1) over one vector, reduced as torch does for a contiguous or a strided dim. */
function cosine(
  v0: Float32Array,
  v1: Float32Array,
  n0: number,
  n1: number,
  start: number,
  length: number,
  stride: number,
): number {
  const term = (j: number): number => {
    const e = start + j * stride;
    return Math.fround(Math.fround(v0[e]! / n0) * Math.fround(v1[e]! / n1));
  };
  return stride === 1 ? sum32(term, length) : multiRowSum(term, length, 1, 1)[0]![0]!;
}
