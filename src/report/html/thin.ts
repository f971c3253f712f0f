// Thinning long series for the HTML report: a campaign of 100,000 candidates cannot put 100,000 marks in a
// page that should stay under a few megabytes, yet the extremes are what a reader looks for. So a long series
// is cut into equal bins along x and each bin keeps its highest and lowest point per series: the best
// candidate always survives (it is the highest of its bin), and so does the shape of the cloud.

/** Keep every point of series with at most `maxPoints` points; otherwise per bin and series the max and min. */
export function thinByBins<T>(
  points: readonly T[],
  opts: { maxPoints: number; x: (p: T) => number; y: (p: T) => number; series: (p: T) => string },
): T[] {
  if (points.length <= opts.maxPoints) return [...points];
  const seriesCount = new Set(points.map(opts.series)).size;
  // each bin keeps at most 2 points per series
  const bins = Math.max(1, Math.floor(opts.maxPoints / (2 * seriesCount)));
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of points) {
    const x = opts.x(p);
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  const width = (hi - lo) / bins || 1;
  const keep = new Map<string, { max: T; min: T }>();
  for (const p of points) {
    const b = Math.min(bins - 1, Math.floor((opts.x(p) - lo) / width));
    const key = `${b}\u0000${opts.series(p)}`;
    const cur = keep.get(key);
    if (!cur) keep.set(key, { max: p, min: p });
    else {
      // ties keep the earliest point (the one a reader would cite)
      if (opts.y(p) > opts.y(cur.max)) cur.max = p;
      if (opts.y(p) < opts.y(cur.min)) cur.min = p;
    }
  }
  const out = new Set<T>();
  for (const { max, min } of keep.values()) {
    out.add(max);
    out.add(min);
  }
  return [...out].sort((a, b) => opts.x(a) - opts.x(b));
}

/** At most `max` values of a sorted list, evenly spaced, always with the first and the last. */
export function evenlySpaced<T>(values: readonly T[], max: number): T[] {
  if (values.length <= max) return [...values];
  const out: T[] = [];
  let last = -1;
  for (let i = 0; i < max; i++) {
    const at = Math.round((i * (values.length - 1)) / (max - 1));
    if (at !== last) out.push(values[at]!);
    last = at;
  }
  return out;
}
