// Multi-fidelity over fit items (successive halving): every candidate of a generation is first scored on a
// small seeded subset of each task's fit items; the best 1/eta of them (by rank value at that rung) are scored
// again on eta times as many items, and so on up to the whole fit set. A fixed budget of items scored then buys
// more candidates; the optimiser is told each candidate's score at the largest subset it reached, with its SE.
// Subsets are nested prefixes of one seeded permutation per task, the same for every candidate, so candidates
// at one rung are compared on the same items.

/** Subset sizes of the rungs for a task with `n` fit items: minItems, minItems·eta, …, n (ascending, distinct). */
export function rungSizes(n: number, minItems: number, eta: number): number[] {
  const out: number[] = [];
  for (let size = minItems; size < n; size = Math.ceil(size * eta)) out.push(size);
  out.push(n);
  return out;
}

/** The number of rungs of a campaign: the most any of its tasks needs. */
export function rungCount(counts: readonly number[], minItems: number, eta: number): number {
  return Math.max(1, ...counts.map((n) => rungSizes(n, minItems, eta).length));
}

/** Rung r's subset of a task's fit items (indices into its eval file, ascending): the first sizes[r] of `order`. */
export function rungItems(order: readonly number[], minItems: number, eta: number, rung: number): number[] {
  const sizes = rungSizes(order.length, minItems, eta);
  return order.slice(0, sizes[Math.min(rung, sizes.length - 1)]).sort((a, b) => a - b);
}

/** How many of `count` candidates at a rung go on to the next: ⌈count / eta⌉. */
export function promotedCount(count: number, eta: number): number {
  return Math.ceil(count / eta);
}

/** The split label under which a rung's scores are recorded (the reached rung's scores are also copied to 'fit'). */
export function rungSplit(rung: number): string {
  return `fit@${rung}`;
}

/** A seeded permutation of 0..n−1 (Fisher–Yates over mulberry32 seeded by seed and a salt such as a task name). */
export function seededPermutation(n: number, seed: number, salt: string): number[] {
  let h = seed >>> 0;
  for (let i = 0; i < salt.length; i++) h = Math.imul(h ^ salt.charCodeAt(i), 0x9e3779b1) >>> 0;
  let state = h || 1;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/**
 * Each task's fit items split into the items the optimiser sees and the held-out val items: a seeded
 * permutation, the last ⌈fraction·n⌉ of it to val (at least one item on each side). Both lists ascending.
 */
export function partitionFit(
  n: number,
  fraction: number,
  seed: number,
  task: string,
): { fit: number[]; val: number[] } {
  const p = seededPermutation(n, seed, `val:${task}`);
  const nVal = Math.min(n - 1, Math.max(1, Math.ceil(fraction * n)));
  const asc = (xs: number[]) => xs.sort((a, b) => a - b);
  return { fit: asc(p.slice(0, n - nVal)), val: asc(p.slice(n - nVal)) };
}
