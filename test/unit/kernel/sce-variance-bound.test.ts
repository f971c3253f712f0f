// The error bound the GPU kernel's sce cut rests on (src/kernel/gpu/wgsl/sce.ts sceVarianceBound): the device's
// float32 variance Σ_{a<b} (τa − τb)² · (1/m²), emulated here operation by operation with Math.fround, stays
// within the bound (before its safety factor of 4) of the CPU kernel's float64-then-float32 variance
// (sceVarianceAt); where the task vectors sit far from zero with a spread of a few ulps the two agree exactly.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sceVarianceAt } from '../../../src/kernel/cpu/sce.ts';
import { sceVarianceBound } from '../../../src/kernel/gpu/wgsl/sce.ts';

const f = Math.fround;

/** sce_var of the WGSL decls, each operation rounded to float32 as the device does without fused multiply-adds. */
function deviceVariance(tv: readonly number[]): number {
  const m = tv.length;
  const invM2 = f(1 / (m * m));
  let s = 0;
  for (let a = 0; a < m; a++) {
    for (let b = a + 1; b < m; b++) {
      const d = f(tv[a]! - tv[b]!);
      s = f(s + f(d * d));
    }
  }
  return f(s * invM2);
}

/** Worst |device − CPU| / CPU over the draws, for variances ≥ 2⁻⁸⁰ (the GPU kernel gathers smaller ones). */
function worstRelative(draws: readonly number[][]): number {
  let worst = 0;
  for (const tv of draws) {
    const cpu = sceVarianceAt(
      tv.map((v) => [v]),
      0,
    );
    if (cpu < 2 ** -80) continue;
    worst = Math.max(worst, Math.abs(deviceVariance(tv) - cpu) / cpu);
  }
  return worst;
}

describe('sce: the float32 device variance against the CPU kernel', () => {
  it('stays within sceVarianceBound(m)/4 on random task vectors of 2 to 6 models', () => {
    let seen = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }),
        fc.array(fc.float({ min: -4, max: 4, noNaN: true, noDefaultInfinity: true }), { minLength: 6, maxLength: 6 }),
        (m, values) => {
          const tv = values.slice(0, m).map(f);
          const worst = worstRelative([tv]);
          seen = Math.max(seen, worst);
          expect(worst).toBeLessThanOrEqual(sceVarianceBound(m) / 4);
        },
      ),
      { numRuns: 2000, seed: 21 },
    );
    // The draws do exercise the float32 rounding: the device value is not always the CPU's.
    expect(seen).toBeGreaterThan(0);
  });

  it('stays within the bound where the spread is a few ulps of a large common value (cancellation)', () => {
    const draws: number[][] = [];
    for (const m of [2, 3, 4, 6]) {
      for (let k = 0; k < 500; k++) {
        const centre = f(1 + k / 7);
        const ulp = f(centre * 2 ** -23);
        draws.push(Array.from({ length: m }, (_, i) => f(centre + ulp * ((i * 7 + k) % 5))));
      }
      const worst = worstRelative(draws.filter((d) => d.length === m));
      expect(worst).toBeLessThanOrEqual(sceVarianceBound(m) / 4);
    }
    // Differences of nearby float32 values are exact (Sterbenz): here the device value is the CPU's.
    expect(worstRelative(draws)).toBe(0);
  });
});
