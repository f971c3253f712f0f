// SLERP of two whole tensors treated as flat vectors (mergekit slerp.py `slerp`, numpy float32), with the
// near-colinear linear fallback (|dot| > 0.9995 → lerp of the original tensors).

/** mergekit slerp.py DOT_THRESHOLD. */
export const DOT_THRESHOLD = 0.9995;
const NORM_EPS = 1e-8;

/** Which branch mergekit takes for these two tensors, and the normalised dot product that decided it. */
export function slerpBranch(a: Float32Array, b: Float32Array): { dot: number; linear: boolean } {
  let aa = 0;
  let bb = 0;
  let ab = 0;
  for (let e = 0; e < a.length; e++) {
    const x = a[e];
    const y = b[e];
    aa += x * x;
    bb += y * y;
    ab += x * y;
  }
  // normalize(v): divide by ‖v‖ only when ‖v‖ > eps (mergekit slerp.py `normalize`).
  const na = Math.sqrt(aa);
  const nb = Math.sqrt(bb);
  const dot = ab / (na > NORM_EPS ? na : 1) / (nb > NORM_EPS ? nb : 1);
  return { dot, linear: Math.abs(dot) > DOT_THRESHOLD };
}

/**
 * out = sin((1−t)θ)/sin θ · a + sin(tθ)/sin θ · b with θ = arccos(dot), or (1−t)·a + t·b when colinear.
 * Scalars are computed in float64 (mergekit: numpy float32 scalars; within 1e-6), then rounded to float32
 * as numpy does when it multiplies a float32 array by a scalar; the element-wise work is float32.
 */
export function slerp(
  t: number,
  a: Float32Array,
  b: Float32Array,
  out: Float32Array = new Float32Array(a.length),
): Float32Array {
  const n = a.length;
  const { dot, linear } = slerpBranch(a, b);
  let s0: number;
  let s1: number;
  if (linear) {
    s0 = Math.fround(1 - t);
    s1 = Math.fround(t);
  } else {
    const theta0 = Math.acos(dot);
    const sinTheta0 = Math.sin(theta0);
    const thetaT = theta0 * t;
    s0 = Math.fround(Math.sin(theta0 - thetaT) / sinTheta0);
    s1 = Math.fround(Math.sin(thetaT) / sinTheta0);
  }
  for (let e = 0; e < n; e++) out[e] = Math.fround(s0 * a[e]) + Math.fround(s1 * b[e]);
  return out;
}
