// WGSL for multislerp (mergekit multislerp.py), as the CPU kernel (kernel/cpu/multislerp.ts) rounds it in
// float32: helper functions for the task vectors vₖ, the unit vectors vₖ/(‖vₖ‖+eps), their weighted mean and
// the weighted tangent sum at the normalised mean, recomputed per element by every pass (nothing but the
// output is stored). The host computes the scalars between passes (MultislerpLayout).

import { paramsBinding } from './params.ts';
import { sourceBinding, type SourceFormat } from './source.ts';

/** Indices of the scalars in the params uniform for m inputs. */
export function multislerpLayout(m: number) {
  return {
    w: 0,
    den: m,
    meanNorm: 2 * m,
    dot: 2 * m + 1,
    c: 3 * m + 1,
    sc: 3 * m + 2,
    avg: 3 * m + 3,
    count: 3 * m + 4,
  };
}

/** Sources x0.. at 2.., the base after them when present, then the params uniform. */
export function multislerpDecls(formats: readonly SourceFormat[], baseFormat: SourceFormat | undefined): string {
  const m = formats.length;
  const L = multislerpLayout(m);
  const lines: string[] = formats.map((f, k) => sourceBinding(2 + k, `x${k}`, f));
  if (baseFormat !== undefined) lines.push(sourceBinding(2 + m, 'base', baseFormat));
  lines.push(paramsBinding(2 + m + (baseFormat === undefined ? 0 : 1), L.count));
  for (let k = 0; k < m; k++) {
    const v = baseFormat === undefined ? `x${k}_at(i)` : `x${k}_at(i) - base_at(i)`;
    lines.push(`fn v${k}(i: u32) -> f32 { return ${v}; }`);
    lines.push(`fn unit${k}(i: u32) -> f32 { return v${k}(i) / P(${L.den + k}u); }`);
  }
  const meanTerms = formats.map((_, k) => `s = s + unit${k}(i) * P(${L.w + k}u);`).join(' ');
  lines.push(`fn mean_at(i: u32) -> f32 { var s = 0.0; ${meanTerms} return s; }`);
  lines.push(`fn meanhat_at(i: u32) -> f32 { return mean_at(i) / P(${L.meanNorm}u); }`);
  const tangentTerms = formats
    .map((_, k) => `s = s + (unit${k}(i) - P(${L.dot + k}u) * mh) * P(${L.w + k}u);`)
    .join(' ');
  lines.push(`fn tangent_sum(i: u32, mh: f32) -> f32 { var s = 0.0; ${tangentTerms} return s; }`);
  return lines.join('\n');
}
