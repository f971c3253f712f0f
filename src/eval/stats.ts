// Scores and their uncertainty: the TaskScore record every task returns, and the standard errors used.
// Binomial SE for accuracies; sample SE of per-item means; the delta-method SE of a ratio estimator for pooled
// per-byte log-likelihoods (Cochran 1977, Sampling Techniques, eq. 6.13).

import type { Estimate } from '../estimate.ts';

/** What `Evaluator.evaluate` returns per task: the task's selected metric plus the others computed alongside. */
export interface TaskScore extends Estimate {
  readonly task: string;
  readonly metric: string;
  readonly seconds: number;
  /** Other metrics computed in the same pass (e.g. bits_per_byte next to loglik). */
  readonly extra: Readonly<Record<string, Estimate>>;
}

/** Fraction of successes with the binomial SE sqrt(p(1-p)/n). */
export function proportion(successes: number, n: number): Estimate {
  if (n === 0) return { value: Number.NaN, se: Number.NaN, n };
  const p = successes / n;
  return { value: p, se: Math.sqrt((p * (1 - p)) / n), n };
}

/** Mean of per-item values with the sample SE s/sqrt(n) (s with Bessel's correction). */
export function mean(values: readonly number[]): Estimate {
  const n = values.length;
  if (n === 0) return { value: Number.NaN, se: Number.NaN, n };
  let sum = 0;
  for (const v of values) sum += v;
  const m = sum / n;
  if (n === 1) return { value: m, se: Number.NaN, n };
  let ss = 0;
  for (const v of values) ss += (v - m) * (v - m);
  return { value: m, se: Math.sqrt(ss / (n - 1) / n), n, pseudo: [...values] };
}

/**
 * Ratio estimator r = Σyᵢ / Σxᵢ over items (e.g. summed log-probability over predicted bytes), with the
 * delta-method SE sqrt(Σ(yᵢ − r·xᵢ)² / (n(n−1))) / x̄ (Cochran 1977, eq. 6.13). With equal xᵢ it is the
 * sample SE of the per-item means.
 */
export function ratio(ys: readonly number[], xs: readonly number[]): Estimate {
  const n = ys.length;
  let sy = 0;
  let sx = 0;
  for (let i = 0; i < n; i++) {
    sy += ys[i]!;
    sx += xs[i]!;
  }
  if (n === 0 || sx === 0) return { value: Number.NaN, se: Number.NaN, n };
  const r = sy / sx;
  if (n === 1) return { value: r, se: Number.NaN, n };
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = ys[i]! - r * xs[i]!;
    ss += d * d;
  }
  // Linearised per-item terms r + (yᵢ − r·xᵢ)/x̄: their mean is r and their sample SE the delta-method SE.
  const xbar = sx / n;
  const pseudo = ys.map((y, i) => r + (y - r * xs[i]!) / xbar);
  return { value: r, se: Math.sqrt(ss / (n * (n - 1))) / xbar, n, pseudo };
}

/** Multiplies a value and its SE by a constant (unit changes such as nats → bits). */
export function scaled(m: Estimate, factor: number): Estimate {
  return {
    value: m.value * factor,
    se: m.se * Math.abs(factor),
    n: m.n,
    ...(m.pseudo ? { pseudo: m.pseudo.map((v) => v * factor) } : {}),
  };
}

/** A fraction of successes from per-item outcomes: `proportion` with the 0/1 outcomes as pseudo-values. */
export function proportionOf(hits: readonly boolean[]): Estimate {
  const k = hits.filter(Boolean).length;
  return { ...proportion(k, hits.length), pseudo: hits.map((h) => (h ? 1 : 0)) };
}

/**
 * The mean of a − b over paired items (two models on the same items, as pseudo-values) and its paired SE,
 * sd(aᵢ − bᵢ)/√n: the items' own difficulty cancels, so it is far smaller than √(se_a² + se_b²) when the
 * two models agree on which items are hard.
 */
export function pairedDifference(a: readonly number[], b: readonly number[]): Estimate {
  if (a.length !== b.length) throw new RangeError(`paired values of different lengths (${a.length} vs ${b.length})`);
  return mean(a.map((x, i) => x - b[i]!));
}
