// WGSL for the Karcher mean (mergekit karcher.py), as the CPU kernel (kernel/cpu/karcher.ts) rounds it in
// float32: the unit inputs xₖ/‖xₖ‖, the current mean direction u (kept on the device, unnormalised, with its
// norm as a scalar so that u/‖u‖ is the CPU's stored value), and the weighted tangent at u, recomputed per
// element by each pass. The host runs the iteration's scalar steps between passes (karcherLayout).

import { paramsBinding } from './params.ts';
import { sourceBinding, type SourceFormat } from './source.ts';

/** Indices of the scalars in the params uniform for m (valid) inputs. */
export function karcherLayout(m: number) {
  return {
    alpha: 0,
    norm: m,
    uNorm: 2 * m,
    dot: 2 * m + 1,
    coef: 3 * m + 1,
    tangentNorm: 4 * m + 1,
    c: 4 * m + 2,
    s: 4 * m + 3,
    scale: 4 * m + 4,
    count: 4 * m + 5,
  };
}

/** Sources x0.. at 2.., the mean direction u (read-write window) after them, then the params uniform. */
export function karcherDecls(formats: readonly SourceFormat[]): string {
  const m = formats.length;
  const L = karcherLayout(m);
  const lines: string[] = formats.map((f, k) => sourceBinding(2 + k, `x${k}`, f));
  lines.push(`@group(0) @binding(${2 + m}) var<storage, read_write> u: array<f32>;`);
  lines.push(paramsBinding(3 + m, L.count));
  for (let k = 0; k < m; k++) lines.push(`fn unit${k}(i: u32) -> f32 { return x${k}_at(i) / P(${L.norm + k}u); }`);
  lines.push(`fn u_at(i: u32) -> f32 { return u[i] / P(${L.uNorm}u); }`);
  const init = formats.map((_, k) => `s = s + P(${L.alpha + k}u) * unit${k}(i);`).join(' ');
  lines.push(`fn initial_at(i: u32) -> f32 { var s = 0.0; ${init} return s; }`);
  const tangent = formats.map((_, k) => `t = t + P(${L.coef + k}u) * (unit${k}(i) - P(${L.dot + k}u) * uu);`).join(' ');
  lines.push(`fn tangent_at(i: u32, uu: f32) -> f32 { var t = 0.0; ${tangent} return t; }`);
  // Phony reads of every binding, for passes that use only some: layout 'auto' drops unused bindings.
  const touch = formats.map((_, k) => `_ = x${k}_at(0u);`).join(' ');
  lines.push(`fn keep_bindings() { ${touch} _ = u[0]; _ = P(0u); }`);
  return lines.join('\n');
}
