// Multi-SLERP (mergekit multislerp.py): barycentric interpolation of N tensors on the hypersphere. Project the
// unit directions to the tangent space at their normalised weighted mean, take the weighted tangent sum,
// map it back with the exponential map and scale by the weighted mean norm; with a base, of the task vectors
// around it. torch float32; the sums over the models run in input order, rounding after each add.

import { EvomergeError } from '../../errors.ts';
import { norm32, sequentialSum32 } from './f32-reductions.ts';

export function multislerp(
  xs: readonly Float32Array[],
  weights: readonly number[],
  base: Float32Array | undefined,
  normalizeWeights: boolean,
  eps: number,
  out: Float32Array,
  tensorName: string,
): Float32Array {
  const n = out.length;
  const m = xs.length;
  // One model: mergekit returns its tensor as is, not base + its task vector (same value up to rounding).
  if (m === 1) return (out.set(xs[0]!), out);
  // `tensors -= base_tensor`: the task vectors, float32.
  const vs = base === undefined ? xs : xs.map((x) => x.map((v, e) => v - base[e]!));
  // torch.tensor(weight) is float32; normalize divides by its float32 sum.
  let w = weights.map((x) => Math.fround(x));
  if (normalizeWeights) {
    const sum = sequentialSum32(w);
    w = w.map((x) => Math.fround(x / sum));
  }
  const epsf = Math.fround(eps);
  const norms = vs.map((v) => norm32(v));
  const dens = norms.map((nm) => Math.fround(nm + epsf));
  const unit = (i: number, e: number): number => Math.fround(vs[i]![e]! / dens[i]!);

  // Weighted mean of the unit vectors.
  const mean = new Float32Array(n);
  for (let e = 0; e < n; e++) {
    let s = 0;
    for (let i = 0; i < m; i++) s = Math.fround(s + Math.fround(unit(i, e) * w[i]!));
    mean[e] = s;
  }
  const meanNorm = norm32(mean);
  if (meanNorm < eps) {
    if (m === 2) {
      // mergekit's fallback for two antipodal inputs: the plain weighted sum.
      for (let e = 0; e < n; e++) {
        const r = Math.fround(vs[0]![e]! * w[0]!) + Math.fround(vs[1]![e]! * w[1]!);
        out[e] = base === undefined ? r : base[e]! + Math.fround(r);
      }
      return out;
    }
    throw new EvomergeError(
      'merge.multislerp_degenerate',
      'the weighted sum of the unit inputs is zero (antipodal inputs with balancing weights); change the weights',
      { field: `tensor "${tensorName}"` },
    );
  }
  for (let e = 0; e < n; e++) mean[e] = Math.fround(mean[e]! / meanNorm);

  // Tangent vectors at the mean, and their weighted sum (into out).
  const dots = new Array<number>(m);
  for (let i = 0; i < m; i++) {
    let s = 0;
    for (let e = 0; e < n; e++) s += Math.fround(unit(i, e) * mean[e]!);
    dots[i] = Math.fround(s);
  }
  for (let e = 0; e < n; e++) {
    let s = 0;
    for (let i = 0; i < m; i++) {
      const tangent = Math.fround(unit(i, e) - Math.fround(dots[i]! * mean[e]!));
      s = Math.fround(s + Math.fround(tangent * w[i]!));
    }
    out[e] = s;
  }
  // Exponential map back to the sphere, scaled by the weighted mean norm.
  const tn = Math.fround(norm32(out) + epsf);
  const c = Math.fround(Math.cos(tn));
  const sc = Math.fround(Math.fround(Math.sin(tn)) / tn);
  const avgNorm = sequentialSum32(norms.map((nm, i) => Math.fround(nm * w[i]!)));
  for (let e = 0; e < n; e++) {
    const r = Math.fround(Math.fround(Math.fround(mean[e]! * c) + Math.fround(out[e]! * sc)) * avgNorm);
    out[e] = base === undefined ? r : base[e]! + r;
  }
  return out;
}
