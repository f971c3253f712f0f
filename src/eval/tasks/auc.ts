// The `auc` metric of two-choice tasks: the area under the ROC curve of a per-item score (the log-probability
// margin of the first choice over the second), the first choice being the positive class. Threshold-free and
// continuous, so a search sees a merge improve the ranking of items before any prediction flips.
import type { Estimate } from '../../estimate.ts';

/**
 * AUC = P(score of a positive > score of a negative), ties counting ½ (the Mann–Whitney statistic / mn), with
 * DeLong's SE (DeLong, DeLong & Clarke-Pearson 1988): each positive's placement V₁₀ (the share of negatives it
 * outscores) and each negative's V₀₁ (the share of positives that outscore it) give
 * SE² = s²(V₁₀)/m + s²(V₀₁)/n. Pseudo-values (file order): A + (N/m)(V₁₀ − A) for a positive, A + (N/n)(V₀₁ − A)
 * for a negative (N = m + n); their mean is A, and the paired SE of two models' difference follows from them.
 * NaN when either class is empty.
 */
export function auc(scores: readonly number[], positive: readonly boolean[]): Estimate {
  const N = scores.length;
  const pos: number[] = [];
  const neg: number[] = [];
  scores.forEach((s, i) => (positive[i] ? pos : neg).push(s));
  const m = pos.length;
  const n = neg.length;
  if (m === 0 || n === 0) return { value: Number.NaN, se: Number.NaN, n: N };
  // Placements by sorting: for a value v, #negatives below v + ½ #negatives equal to v (and likewise).
  const sortedNeg = [...neg].sort((a, b) => a - b);
  const sortedPos = [...pos].sort((a, b) => a - b);
  const below = (sorted: number[], v: number): number =>
    lowerBound(sorted, v) + (upperBound(sorted, v) - lowerBound(sorted, v)) / 2;
  const v10 = pos.map((v) => below(sortedNeg, v) / n);
  const v01 = neg.map((v) => (m - below(sortedPos, v)) / m);
  const A = v10.reduce((a, b) => a + b, 0) / m;
  const variance = (xs: number[]) => {
    if (xs.length < 2) return 0;
    const mu = xs.reduce((a, b) => a + b, 0) / xs.length;
    return xs.reduce((a, x) => a + (x - mu) ** 2, 0) / (xs.length - 1);
  };
  const se = m < 2 && n < 2 ? Number.NaN : Math.sqrt(variance(v10) / m + variance(v01) / n);
  let ip = 0;
  let ineg = 0;
  const pseudo = scores.map((_, i) =>
    positive[i] ? A + (N / m) * (v10[ip++]! - A) : A + (N / n) * (v01[ineg++]! - A),
  );
  return { value: A, se, n: N, pseudo };
}

function lowerBound(sorted: readonly number[], v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBound(sorted: readonly number[], v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
