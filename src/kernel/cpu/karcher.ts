// Karcher mean (mergekit karcher.py `karcher_merge_tensors`): the Riemannian mean of the inputs' unit
// directions on the sphere, by fixed-point iteration from their normalised arithmetic mean, then scaled by the
// mean of the input norms. Equal weights 1/N. torch float32 tensors; the Python-side scalars (alphas, the
// norms taken with .item(), the final scale) are float64 and meet tensors rounded to float32.

import { dot32, norm32 } from './f32-reductions.ts';

export function karcher(xs: readonly Float32Array[], maxIter: number, tol: number, out: Float32Array): Float32Array {
  const n = out.length;
  const m = xs.length;
  if (m === 1) return (out.set(xs[0]!), out);
  const alphas = xs.map(() => 1 / m);
  const norms = xs.map((x) => norm32(x));
  // Units t / ‖t‖; a zero tensor's unit is zero (and it is not a valid direction below).
  const units = xs.map((x, i) => (norms[i] === 0 ? new Float32Array(n) : x.map((v) => v / norms[i]!)));
  const valid = norms.flatMap((nm, i) => (nm > tol ? [i] : []));
  if (valid.length === 0) return out.fill(0);
  let alphaSum = 0;
  for (const i of valid) alphaSum += alphas[i]!;
  const a = valid.map((i) => alphas[i]! / alphaSum);
  const us = valid.map((i) => units[i]!);

  // Initial guess: the normalised weighted arithmetic mean (u += a·uᵢ, float32).
  let u = new Float32Array(n);
  us.forEach((ui, k) => {
    const af = Math.fround(a[k]!);
    for (let e = 0; e < n; e++) u[e] = u[e]! + Math.fround(af * ui[e]!);
  });
  const normU = norm32(u);
  if (normU < tol) u = us[0]!.slice();
  else for (let e = 0; e < n; e++) u[e] = u[e]! / normU;

  const tangent = new Float32Array(n);
  for (let iter = 0; iter < maxIter; iter++) {
    tangent.fill(0);
    us.forEach((ui, k) => {
      let dot = dot32(u, ui);
      dot = dot < -1 ? -1 : dot > 1 ? 1 : dot;
      const theta = Math.fround(Math.acos(dot));
      if (theta < tol) return;
      const sinTheta = Math.fround(Math.sin(theta));
      // `a * (theta / sin_theta) * (ui - dot * u)`: a 0-dim float32 coefficient, then per element.
      const coef = Math.fround(Math.fround(a[k]!) * Math.fround(theta / sinTheta));
      for (let e = 0; e < n; e++) {
        const d = Math.fround(ui[e]! - Math.fround(dot * u[e]!));
        tangent[e] = tangent[e]! + Math.fround(coef * d);
      }
    });
    const normT = norm32(tangent);
    if (normT < tol) break;
    const c = Math.fround(Math.cos(normT));
    const s = Math.fround(Math.sin(normT));
    for (let e = 0; e < n; e++) u[e] = Math.fround(c * u[e]!) + Math.fround(s * Math.fround(tangent[e]! / normT));
    const normNew = norm32(u);
    if (normNew > tol) for (let e = 0; e < n; e++) u[e] = u[e]! / normNew;
  }
  // Global scale: Σ αᵢ‖xᵢ‖ over every input (zero tensors included), a Python float.
  let scale = 0;
  alphas.forEach((al, i) => (scale += al * norms[i]!));
  const sf = Math.fround(scale);
  for (let e = 0; e < n; e++) out[e] = sf * u[e]!;
  return out;
}
