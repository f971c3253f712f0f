import { describe, expect, it } from 'vitest';
import { GridOptimizer, MAX_GRID_POINTS } from '../../../../src/search/optimizers/grid.ts';
import { createOptimizer } from '../../../../src/search/optimizers/factory.ts';
import type { SearchDomain, Solution } from '../../../../src/search/optimizers/optimizer.ts';

const domain: SearchDomain = {
  continuous: [
    { name: 'weight', lower: 0, upper: 1 },
    { name: 'density', lower: 0.2, upper: 0.8 },
  ],
  categorical: [{ name: 'method', choices: ['ties', 'dare_ties'] }],
};

function drain(kind: 'grid' | 'random', limit: number, opts = {}): { all: Solution[]; generations: number } {
  const opt = createOptimizer(kind, domain, { seed: 9, populationSize: 7, ...opts });
  const all: Solution[] = [];
  while (!opt.exhausted && all.length < limit) {
    const batch = Array.from({ length: opt.remainingAsks }, () => opt.ask());
    all.push(...batch);
    opt.tell(batch.map((solution) => ({ solution, value: 0 })));
  }
  return { all, generations: opt.generation };
}

describe('grid optimizer', () => {
  it('visits every grid point exactly once, then is exhausted', () => {
    const { all, generations } = drain('grid', 1000, { gridPoints: 3 });
    expect(all).toHaveLength(3 * 3 * 2);
    expect(generations).toBe(Math.ceil(18 / 7)); // the last generation holds 4 and closes when told
    const keys = new Set(all.map((s) => JSON.stringify(s)));
    expect(keys.size).toBe(18);
    for (const w of [0, 0.5, 1])
      for (const d of [0.2, 0.5, 0.8])
        for (const c of [0, 1]) {
          expect(keys.has(JSON.stringify({ x: [w, d], c: [c] }))).toBe(true);
        }
    const opt = createOptimizer('grid', domain, { seed: 9, gridPoints: 1, populationSize: 4 }) as GridOptimizer;
    expect(opt.gridSize).toBe(2);
    expect([opt.ask(), opt.ask()].map((s) => s.x)).toEqual([
      [0.5, 0.5],
      [0.5, 0.5],
    ]);
    expect(opt.exhausted).toBe(true);
    expect(opt.remainingAsks).toBe(0);
    expect(() => opt.ask()).toThrow(expect.objectContaining({ code: 'optimizer.exhausted' }));
  });

  it('scrambles the order so a short budget spreads over the grid', () => {
    const { all } = drain('grid', 14, { gridPoints: 5 }); // 50 points, 14 asked
    expect(new Set(all.map((s) => s.x[1])).size).toBeGreaterThanOrEqual(4); // lexicographic order would vary only x[0]
    expect(new Set(all.map((s) => s.c[0])).size).toBe(2);
    const other = createOptimizer('grid', domain, { seed: 10, populationSize: 7, gridPoints: 5 }).ask();
    expect(other).not.toEqual(all[0]);
  });

  it('refuses grids beyond the size limit, naming gridPoints', () => {
    const big: SearchDomain = {
      continuous: Array.from({ length: 12 }, (_, i) => ({ name: `w${i}`, lower: 0, upper: 1 })),
      categorical: [],
    };
    expect(() => createOptimizer('grid', big, { seed: 1, gridPoints: 5 })).toThrow(
      new RegExp(`gridPoints: 5\\^12 continuous × categorical choices = 244140625 points exceeds ${MAX_GRID_POINTS}`),
    );
  });
});

describe('random optimizer', () => {
  it('samples uniformly in bounds and over choices, independently of results', () => {
    const { all } = drain('random', 7 * 300);
    const mean = (k: number) => all.reduce((a, s) => a + s.x[k], 0) / all.length;
    const n = all.length;
    expect(Math.abs(mean(0) - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(mean(1) - 0.5)).toBeLessThan(5 * 0.6 * Math.sqrt(1 / 12 / n));
    const ones = all.filter((s) => s.c[0] === 1).length;
    expect(Math.abs(ones - n / 2)).toBeLessThan(5 * Math.sqrt(n / 4));
    for (const s of all) expect(s.x[1] >= 0.2 && s.x[1] <= 0.8).toBe(true);
  });
});
