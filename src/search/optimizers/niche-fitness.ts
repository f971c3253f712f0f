// The arithmetic of M2N2's natural niches (Abrantes, Lange & Tang, "Competition and Attraction Improve Model
// Fusion", GECCO 2025, arXiv 2508.16204; reference code SakanaAI/natural_niches, natural_niches_fn.py): per-item
// resources, shared fitness, the match score of attraction-based mating, and the split-point crossover. Pure
// functions over plain arrays, no RNG of their own (the caller draws the split point and the ratio).

/**
 * Per-item scores made non-negative and comparable across tasks: on each item, a member's score is the number of
 * pool members it strictly beats there (its rank from the bottom, ties sharing the lower rank). For 0/1 items
 * (exact match) this gives each of the k solvers N − k and every other member 0, so each solver's share is 1/k,
 * the paper's; for continuous pseudo-values (log-likelihoods, AUC placements) it needs no scale or shift, so a
 * task measured in nats and one measured in AUC compete on equal terms. NaN counts as −∞ (beats nobody).
 *
 * @param values members × items, oriented so that higher is better.
 */
export function beatCounts(values: readonly (readonly number[])[]): number[][] {
  const m = values.length;
  const out = values.map((row) => row.map(() => 0));
  if (m === 0) return out;
  const n = values[0]!.length;
  const key = (v: number) => (Number.isNaN(v) ? -Infinity : v);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < m; i++) {
      const vi = key(values[i]![j]!);
      let beats = 0;
      for (let k = 0; k < m; k++) if (key(values[k]![j]!) < vi) beats++;
      out[i]![j] = beats;
    }
  }
  return out;
}

/** Shared fitness: the matrix of shares and each member's total. */
export interface SharedFitness {
  /** members × items: mass_j · s_ij / Z_j^alpha, with Z_j = Σ_i s_ij (Z_j = 0 counts as 1, as in the paper). */
  readonly matrix: number[][];
  /** Σ_j of each member's row: what the archive keeps the highest of and what picks the first parent. */
  readonly total: number[];
}

/**
 * Fitness shared over items (natural_niches_fn.py `update_archive`, `sample_parents`): each item is a resource
 * split among the members in proportion to their scores, the total raised to alpha (alpha = 0: no sharing, plain
 * summed scores; alpha = 1: a member alone on an item takes all of it). `mass` weighs items (a task's items share
 * its objective weight, so a task with more items does not count for more).
 */
export function sharedFitness(
  scores: readonly (readonly number[])[],
  mass: readonly number[],
  alpha: number,
): SharedFitness {
  const n = mass.length;
  const z = new Array<number>(n).fill(0);
  for (const row of scores) for (let j = 0; j < n; j++) z[j]! += row[j]!;
  const denom = z.map((t) => (t === 0 ? 1 : t ** alpha));
  const matrix = scores.map((row) => row.map((s, j) => (mass[j]! * s) / denom[j]!));
  const total = matrix.map((row) => row.reduce((a, b) => a + b, 0));
  return { matrix, total };
}

/**
 * Attraction (natural_niches_fn.py `sample_parents`, use_matchmaker): how much each member gains over the first
 * parent where the first parent is weak, Σ_j max(0, f_kj − f_pj). The first parent's own score is 0.
 */
export function matchScores(matrix: readonly (readonly number[])[], first: number): number[] {
  const p = matrix[first]!;
  return matrix.map((row) => row.reduce((acc, f, j) => acc + Math.max(0, f - p[j]!), 0));
}

/** Index of the smallest value, the first on ties (jnp.argmin). */
export function argmin(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! < xs[best]!) best = i;
  return best;
}

/**
 * The split-point crossover (helper_fn.py `slerp_w_splitpoint`, its linear branch): genes before `split` take
 * (1 − r)·a + r·b, genes from `split` on take r·a + (1 − r)·b. Genes are the continuous ones then the categorical
 * ones, in domain order; a categorical gene cannot be mixed, so it comes from the parent with the larger share on
 * its side of the split (b when its share exceeds 1/2, else a). A convex combination of two in-bound values stays
 * in bounds.
 */
export function splitCrossover(
  a: { x: readonly number[]; c: readonly number[] },
  b: { x: readonly number[]; c: readonly number[] },
  split: number,
  r: number,
): { x: number[]; c: number[] } {
  const share = (i: number) => (i < split ? r : 1 - r);
  const x = a.x.map((xa, i) => (1 - share(i)) * xa + share(i) * b.x[i]!);
  const c = a.c.map((ca, k) => (share(a.x.length + k) > 0.5 ? b.c[k]! : ca));
  return { x, c };
}
