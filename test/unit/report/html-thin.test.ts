// Thinning the report's long series: a long campaign keeps the extremes of each bin (so the best candidate
// is always drawn) within the point budget; a short one keeps everything.
import { describe, expect, it } from 'vitest';
import { evenlySpaced, thinByBins } from '../../../src/report/html/thin.ts';
import { mulberry32 } from '../../fixtures/seeded-random.ts';

const opts = (maxPoints: number) => ({
  maxPoints,
  x: (p: { x: number }) => p.x,
  y: (p: { y: number }) => p.y,
  series: (p: { s: string }) => p.s,
});

describe('thinByBins', () => {
  it('keeps every point of a short series', () => {
    const pts = [
      { x: 0, y: 1, s: 'a' },
      { x: 1, y: 0, s: 'b' },
    ];
    expect(thinByBins(pts, opts(10))).toEqual(pts);
  });

  it('keeps 100,000 points within budget, with the best and the worst of each series and bin', () => {
    const rand = mulberry32(3);
    const pts = Array.from({ length: 100_000 }, (_, x) => ({
      x,
      y: rand() + x * 1e-6,
      s: rand() < 0.2 ? 'kept' : rand() < 0.05 ? 'failed' : 'rejected',
    }));
    const out = thinByBins(pts, opts(3000));
    expect(out.length).toBeLessThanOrEqual(3000);
    expect(out.length).toBeGreaterThan(2000);
    for (const s of ['kept', 'rejected', 'failed']) {
      const of = pts.filter((p) => p.s === s);
      const best = of.reduce((a, p) => (p.y > a.y ? p : a));
      const worst = of.reduce((a, p) => (p.y < a.y ? p : a));
      expect(out).toContain(best);
      expect(out).toContain(worst);
    }
    // drawn in x order
    expect(out.map((p) => p.x)).toEqual([...out.map((p) => p.x)].sort((a, b) => a - b));
  });
});

describe('evenlySpaced', () => {
  it('keeps the first and the last and at most max values', () => {
    const v = Array.from({ length: 7143 }, (_, i) => i);
    const out = evenlySpaced(v, 200);
    expect(out.length).toBe(200);
    expect(out[0]).toBe(0);
    expect(out[out.length - 1]).toBe(7142);
    expect(evenlySpaced([1, 2, 3], 200)).toEqual([1, 2, 3]);
  });
});
