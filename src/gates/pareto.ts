// Pareto mode (`objective_mode: pareto`): the objective's terms as separate objectives, the front of a set of
// candidates, and the three rules that pick one member of it. Pure functions, open to the search (the final pick)
// and the report (which recomputes the front from the recorded fit scores). The optimiser's own sort lives in
// search/optimizers/nsga-ii.ts (the optimisers import nothing of ours); each term's value
// on a split is objective.ts's termValues.

/** How the final pick is chosen from the front: the weighted sum (today's objective), the knee, the best worst task. */
export const paretoPicks = ['weighted', 'knee', 'maximin'] as const;
export type ParetoPick = (typeof paretoPicks)[number];

/** value − z·SE (an unknown SE counts as 0), −∞ for a value that is not finite: what fronts and picks compare. */
export function lcb(v: { value: number; se: number }, z: number): number {
  if (!Number.isFinite(v.value)) return -Infinity;
  return z > 0 && Number.isFinite(v.se) ? v.value - z * v.se : v.value;
}

/** Does a Pareto-dominate b (every objective ≥, one >; maximised)? */
export function dominates(a: readonly number[], b: readonly number[]): boolean {
  let better = false;
  for (let k = 0; k < a.length; k++) {
    if (!(a[k]! >= b[k]!)) return false;
    if (a[k]! > b[k]!) better = true;
  }
  return better;
}

/** Indices of the non-dominated points (the first front), in index order. A point with a non-finite objective
 *  is never on it. Equal points are both on it. */
export function paretoFront(points: readonly (readonly number[])[]): number[] {
  const ok = points.map((p) => p.every((v) => Number.isFinite(v)));
  return points
    .map((_, i) => i)
    .filter((i) => ok[i] && !points.some((q, j) => j !== i && ok[j] && dominates(q, points[i]!)));
}

/** Min–max normalisation of each objective over the points (a constant objective normalises to 1). */
export function normalise(points: readonly (readonly number[])[]): number[][] {
  const m = points[0]?.length ?? 0;
  const lo = Array.from({ length: m }, (_, k) => Math.min(...points.map((p) => p[k]!)));
  const hi = Array.from({ length: m }, (_, k) => Math.max(...points.map((p) => p[k]!)));
  return points.map((p) => p.map((v, k) => (hi[k]! > lo[k]! ? (v - lo[k]!) / (hi[k]! - lo[k]!) : 1)));
}

/**
 * Knee scores: after normalisation, each point's signed distance beyond the hyperplane through the front's extremes
 * (for each objective the point best on it; in two objectives the line through the two ends of the front), positive
 * on the side of the ideal point (Das 1999, "On characterizing the knee of the Pareto curve"; Branke et al. 2004).
 * When the extremes do not span a hyperplane with a positive normal (repeated or degenerate extremes), the plane
 * Σ f = const through the extremes' mean stands in.
 */
export function kneeScores(points: readonly (readonly number[])[]): number[] {
  const f = normalise(points);
  const m = f[0]?.length ?? 0;
  const extremes = Array.from({ length: m }, (_, k) =>
    f.reduce((best, p, i) => (p[k]! > f[best]![k]! ? i : best), 0),
  ).map((i) => f[i]!);
  const normal = solve(
    extremes.map((e) => [...e]),
    extremes.map(() => 1),
  );
  if (normal && normal.every((v) => v > 0 && Number.isFinite(v))) {
    const len = Math.hypot(...normal);
    return f.map((p) => (p.reduce((s, v, k) => s + v * normal[k]!, 0) - 1) / len);
  }
  const sum = (p: readonly number[]) => p.reduce((s, v) => s + v, 0);
  const c = extremes.reduce((s, e) => s + sum(e), 0) / Math.max(1, extremes.length);
  return f.map((p) => (sum(p) - c) / Math.sqrt(Math.max(1, m)));
}

/** Maximin scores: each point's worst objective after normalisation (the member that best keeps its worst task). */
export function maximinScores(points: readonly (readonly number[])[]): number[] {
  return normalise(points).map((p) => Math.min(...p));
}

/** A front member as a pick rule sees it: its objectives and its weighted value (rank values on one split). */
export interface FrontMember {
  readonly ordinal: number;
  readonly f: readonly number[];
  readonly weighted: number;
}

/**
 * The members ordered best first by a rule (weighted: the weighted value; knee: the knee score; maximin: the worst
 * normalised objective), ties to the better weighted value, then the lower ordinal. The first is the pick.
 */
export function orderByRule<T extends FrontMember>(members: readonly T[], rule: ParetoPick): T[] {
  const score =
    rule === 'knee'
      ? kneeScores(members.map((m) => m.f))
      : rule === 'maximin'
        ? maximinScores(members.map((m) => m.f))
        : members.map((m) => m.weighted);
  return members
    .map((m, i) => ({ m, s: score[i]! }))
    .sort((a, b) => b.s - a.s || b.m.weighted - a.m.weighted || a.m.ordinal - b.m.ordinal)
    .map(({ m }) => m);
}

/** One sentence naming the rule that picked member #N from the front. */
export function pickRuleSentence(rule: ParetoPick, ordinal: number, split: string, z: number): string {
  const on = `on ${split}${z > 0 ? `, each value − ${z}·SE` : ''}`;
  switch (rule) {
    case 'knee':
      return (
        `#${ordinal} is the front's knee: the member farthest beyond the line (hyperplane) through the front's ` +
        `extremes, objectives min–max normalised (${on}).`
      );
    case 'maximin':
      return `#${ordinal} best keeps its worst task: its lowest min–max normalised objective is the highest of the front (${on}).`;
    default:
      return `#${ordinal} has the front's best weighted objective (${on}).`;
  }
}

/** Solves A x = b by Gaussian elimination with partial pivoting; undefined when A is singular. */
function solve(a: number[][], b: number[]): number[] | undefined {
  const n = b.length;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r]![col]!) > Math.abs(a[pivot]![col]!)) pivot = r;
    if (Math.abs(a[pivot]![col]!) < 1e-12) return undefined;
    [a[col], a[pivot]] = [a[pivot]!, a[col]!];
    [b[col], b[pivot]] = [b[pivot]!, b[col]!];
    for (let r = col + 1; r < n; r++) {
      const k = a[r]![col]! / a[col]![col]!;
      for (let c = col; c < n; c++) a[r]![c]! -= k * a[col]![c]!;
      b[r]! -= k * b[col]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = b[r]!;
    for (let c = r + 1; c < n; c++) s -= a[r]![c]! * x[c]!;
    x[r] = s / a[r]![r]!;
  }
  return x;
}
