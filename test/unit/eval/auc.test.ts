// The auc metric (AUC with DeLong's SE and pseudo-values) and the paired difference of pseudo-values.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { auc } from '../../../src/eval/tasks/auc.ts';
import { mean, pairedDifference, ratio } from '../../../src/eval/stats.ts';

/** P(pos > neg) + ½ P(pos = neg), by brute force over all pairs. */
function bruteAuc(scores: number[], positive: boolean[]): number {
  let s = 0;
  let pairs = 0;
  scores.forEach((a, i) => {
    if (!positive[i]) return;
    scores.forEach((b, j) => {
      if (positive[j]) return;
      pairs++;
      s += a > b ? 1 : a === b ? 0.5 : 0;
    });
  });
  return s / pairs;
}

describe('auc', () => {
  it('is 1 for a perfect ranking, 0 for a reversed one, ½ for all ties', () => {
    expect(auc([3, 2, 1, 0], [true, true, false, false]).value).toBe(1);
    expect(auc([0, 1, 2, 3], [true, true, false, false]).value).toBe(0);
    expect(auc([1, 1, 1, 1], [true, false, true, false]).value).toBe(0.5);
  });

  it('matches the pairwise definition, and its pseudo-values average to it (property)', () => {
    fc.assert(
      fc.property(
        fc
          .array(fc.tuple(fc.integer({ min: -5, max: 5 }), fc.boolean()), { minLength: 2, maxLength: 40 })
          .filter((xs) => xs.some((x) => x[1]) && xs.some((x) => !x[1])),
        (xs) => {
          const scores = xs.map((x) => x[0]);
          const pos = xs.map((x) => x[1]);
          const r = auc(scores, pos);
          expect(r.value).toBeCloseTo(bruteAuc(scores, pos), 12);
          expect(r.pseudo!.reduce((a, b) => a + b, 0) / xs.length).toBeCloseTo(r.value, 10);
        },
      ),
    );
  });

  it("has DeLong's SE: √(s²(V₁₀)/m + s²(V₀₁)/n)", () => {
    // positives 0.9, 0.6, 0.4; negatives 0.5, 0.3: V₁₀ = 1, 1, ½; V₀₁ = ⅔, 1
    const r = auc([0.9, 0.5, 0.6, 0.3, 0.4], [true, false, true, false, true]);
    expect(r.value).toBeCloseTo(5 / 6, 12);
    const var10 = ((1 - 5 / 6) ** 2 * 2 + (0.5 - 5 / 6) ** 2) / 2;
    const var01 = ((2 / 3 - 5 / 6) ** 2 + (1 - 5 / 6) ** 2) / 1;
    expect(r.se).toBeCloseTo(Math.sqrt(var10 / 3 + var01 / 2), 12);
  });

  it('is NaN without both classes', () => {
    expect(auc([1, 2], [true, true]).value).toBeNaN();
  });
});

describe('pseudo-values and paired differences', () => {
  it("a ratio's pseudo-values reproduce its value and its delta-method SE", () => {
    const ys = [-10, -14, -9, -20, -13];
    const xs = [8, 10, 7, 15, 9];
    const r = ratio(ys, xs);
    const m = mean(r.pseudo!);
    expect(m.value).toBeCloseTo(r.value, 12);
    expect(m.se).toBeCloseTo(r.se, 12);
  });

  it('the paired SE removes what two models share (item difficulty)', () => {
    const difficulty = [0.1, 0.9, 0.4, 0.7, 0.2, 0.8, 0.3, 0.6];
    const a = difficulty.map((d, i) => d + 0.05 + (i % 2 ? 0.01 : -0.01));
    const d = pairedDifference(a, difficulty);
    expect(d.value).toBeCloseTo(0.05, 12);
    const independent = Math.sqrt(mean(a).se ** 2 + mean(difficulty).se ** 2);
    expect(d.se).toBeLessThan(independent / 10);
    expect(() => pairedDifference([1], [1, 2])).toThrow(RangeError);
  });
});
