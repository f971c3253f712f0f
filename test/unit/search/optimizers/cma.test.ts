// CMA-ES quality on standard test functions (fixed seeds, modest budgets) and the categorical gene.
import { describe, expect, it } from 'vitest';
import { CmaOptimizer } from '../../../../src/search/optimizers/cma.ts';
import { createOptimizer } from '../../../../src/search/optimizers/factory.ts';
import type { OptimizerKind, SearchDomain, Solution } from '../../../../src/search/optimizers/optimizer.ts';

function box(n: number, lower: number, upper: number): SearchDomain {
  return { continuous: Array.from({ length: n }, (_, i) => ({ name: `x${i}`, lower, upper })), categorical: [] };
}

/** Best value reached within `budget` evaluations (whole generations). */
function bestWithin(
  kind: OptimizerKind,
  domain: SearchDomain,
  f: (s: Solution) => number,
  budget: number,
  seed: number,
) {
  const opt = createOptimizer(kind, domain, { seed });
  let best = -Infinity;
  let used = 0;
  while (used + opt.populationSize <= budget) {
    const batch = Array.from({ length: opt.remainingAsks }, () => opt.ask());
    const results = batch.map((solution) => ({ solution, value: f(solution) }));
    for (const r of results) best = Math.max(best, r.value);
    used += batch.length;
    opt.tell(results);
  }
  return { best, opt };
}

describe('CMA-ES', () => {
  it('finds the optimum of a shifted sphere (n = 8) and beats random search at equal budget', () => {
    const n = 8;
    const shift = Array.from({ length: n }, (_, i) => -1.5 + 0.4 * i); // off-centre, inside [-5, 5]
    const sphere = (s: Solution) => -s.x.reduce((acc, v, i) => acc + (v - shift[i]) ** 2, 0);
    for (const seed of [1, 2, 3]) {
      const cma = bestWithin('cmaes', box(n, -5, 5), sphere, 1500, seed);
      const rnd = bestWithin('random', box(n, -5, 5), sphere, 1500, seed);
      expect(cma.best).toBeGreaterThan(-1e-8);
      expect(rnd.best).toBeLessThan(-1); // random search in 8-D gets nowhere near
      const mean = (cma.opt as CmaOptimizer).mean;
      mean.forEach((m, i) => expect(Math.abs(m - shift[i])).toBeLessThan(1e-3));
    }
  });

  it('solves Rosenbrock (n = 6) to 1e-6 within 4000 evaluations and beats random search', () => {
    const n = 6;
    const rosenbrock = (s: Solution) => {
      let acc = 0;
      for (let i = 0; i < n - 1; i++) acc += 100 * (s.x[i + 1] - s.x[i] ** 2) ** 2 + (1 - s.x[i]) ** 2;
      return -acc;
    };
    let solved = 0;
    for (const seed of [1, 2, 3]) {
      const cma = bestWithin('cmaes', box(n, -2, 3), rosenbrock, 4000, seed);
      const rnd = bestWithin('random', box(n, -2, 3), rosenbrock, 4000, seed);
      if (cma.best > -1e-6) solved++;
      expect(cma.best).toBeGreaterThan(rnd.best);
      expect(cma.best).toBeGreaterThan(-4); // at worst the known local optimum near (−1, 1, …, 1), f ≈ 3.7–4
    }
    expect(solved).toBe(3);
  });

  it('finds an optimum on the bound and never leaves the box', () => {
    // max −Σ (x_i − 1.2)² over [0, 1]^4: the constrained optimum is the corner x = 1.
    const f = (s: Solution) => -s.x.reduce((acc, v) => acc + (v - 1.2) ** 2, 0);
    const { best, opt } = bestWithin('cmaes', box(4, 0, 1), f, 600, 4);
    // Resample-then-clip approaches a bound from inside: close to, not exactly at, the corner value −0.16.
    expect(best).toBeGreaterThan(-4 * 0.2 ** 2 - 5e-3);
    for (const m of (opt as CmaOptimizer).mean) expect(m).toBeGreaterThan(0.99);
    for (let i = 0; i < 5; i++) {
      for (const v of opt.ask().x) expect(v >= 0 && v <= 1).toBe(true);
    }
  });

  it('keeps σ unbiased on a flat objective (ties broken by ask order), away from the bounds', () => {
    // All values equal (exact match stuck at 0): selection is random, so CSA should leave σ on a random
    // walk around σ0 rather than shrink it (averaging tied weights would shrink it ~e^-6 in 60 generations).
    for (const seed of [1, 2, 3]) {
      const opt = createOptimizer('cmaes', box(10, 0, 1), { seed, sigma0Fraction: 0.001 }) as CmaOptimizer;
      for (let g = 0; g < 60; g++) {
        const batch = Array.from({ length: opt.remainingAsks }, () => opt.ask());
        opt.tell(batch.map((solution) => ({ solution, value: 0 })));
      }
      expect(opt.sigma).toBeGreaterThan(0.001 / 4);
      expect(opt.sigma).toBeLessThan(0.001 * 4);
    }
  });

  it('uses σ0 = 1/6 of each range by default and honours x0', () => {
    const domain: SearchDomain = {
      continuous: [
        { name: 'a', lower: 0, upper: 1 },
        { name: 'b', lower: -10, upper: 30 },
      ],
      categorical: [],
    };
    const opt = createOptimizer('cmaes', domain, { seed: 1, x0: [0.25, 0] }) as CmaOptimizer;
    expect(opt.sigma).toBeCloseTo(1 / 6, 15);
    expect(opt.mean).toEqual([0.25, 0]);
    // Sample spread per gene ≈ σ0 · range.
    const big = createOptimizer('cmaes', domain, { seed: 2, populationSize: 2000 });
    const xs = Array.from({ length: 2000 }, () => big.ask().x);
    const sd = (k: number) => {
      const m = xs.reduce((acc, x) => acc + x[k], 0) / xs.length;
      return Math.sqrt(xs.reduce((acc, x) => acc + (x[k] - m) ** 2, 0) / xs.length);
    };
    expect(sd(0) / (1 / 6)).toBeGreaterThan(0.9);
    expect(sd(0) / (1 / 6)).toBeLessThan(1.1);
    expect(sd(1) / (40 / 6)).toBeGreaterThan(0.9);
    expect(sd(1) / (40 / 6)).toBeLessThan(1.1);
  });
});

describe('CMA-ES categorical genes (ASNG update with CatCMA margin)', () => {
  const domain: SearchDomain = {
    continuous: [
      { name: 'w0', lower: 0, upper: 1 },
      { name: 'w1', lower: 0, upper: 1 },
    ],
    categorical: [{ name: 'method', choices: ['linear', 'task_arithmetic', 'ties', 'dare_ties', 'slerp'] }],
  };
  // 'ties' (index 2) is clearly better; the continuous part is a sphere around (0.7, 0.2).
  const f = (s: Solution) => -((s.x[0] - 0.7) ** 2) - (s.x[1] - 0.2) ** 2 + (s.c[0] === 2 ? 0.5 : 0);

  it('concentrates θ on the best choice while keeping every choice above the margin', () => {
    for (const seed of [1, 2, 3]) {
      const opt = createOptimizer('cmaes', domain, { seed }) as CmaOptimizer;
      const late: number[] = [];
      for (let g = 0; g < 60; g++) {
        const batch = Array.from({ length: opt.remainingAsks }, () => opt.ask());
        if (g >= 40) late.push(...batch.map((s) => s.c[0]));
        opt.tell(batch.map((solution) => ({ solution, value: f(solution) })));
      }
      // Choice 2 is sampled at close to its capped probability 0.73 late in the run (random: 0.2).
      expect(late.filter((c) => c === 2).length / late.length).toBeGreaterThan(0.6);
      const theta = opt.probabilities[0];
      const margin = (1 - 0.73) / 4; // (1 − 0.73^{1/N_ca}) / (K − 1), N_ca = 1, K = 5
      expect(theta.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      expect(theta.indexOf(Math.max(...theta))).toBe(2);
      expect(theta[2]).toBeGreaterThan(0.5); // max possible is 1 − 4·margin = 0.73
      for (const t of theta) expect(t).toBeGreaterThanOrEqual(margin - 1e-12);
      const mean = (opt as CmaOptimizer).mean;
      expect(Math.abs(mean[0] - 0.7)).toBeLessThan(0.01);
      expect(Math.abs(mean[1] - 0.2)).toBeLessThan(0.01);
    }
  });

  it('keeps sampling every choice when the choice does not matter, and works with categorical genes only', () => {
    // On a flat categorical landscape ASNG's θ random-walks (large early steps, δ_init = 1 as in ASNG and
    // CatCMA), but the margin keeps every choice alive: each is sampled throughout the run.
    const flat = (s: Solution) => -((s.x[0] - 0.7) ** 2) - (s.x[1] - 0.2) ** 2;
    const opt = createOptimizer('cmaes', domain, { seed: 7 }) as CmaOptimizer;
    const seen = [0, 0, 0, 0, 0];
    for (let g = 0; g < 60; g++) {
      const batch = Array.from({ length: opt.remainingAsks }, () => opt.ask());
      if (g >= 30) for (const s of batch) seen[s.c[0]]++;
      opt.tell(batch.map((solution) => ({ solution, value: flat(solution) })));
      for (const t of opt.probabilities[0]) expect(t).toBeGreaterThanOrEqual(0.27 / 4 - 1e-12);
    }
    for (const n of seen) expect(n).toBeGreaterThan(0);

    const onlyCat: SearchDomain = {
      continuous: [],
      categorical: [
        { name: 'method', choices: ['a', 'b', 'c'] },
        { name: 'normalize', choices: ['true', 'false'] },
        { name: 'fixed', choices: ['only'] },
      ],
    };
    const g = (s: Solution) => (s.c[0] === 1 ? 1 : 0) + (s.c[1] === 1 ? 0.5 : 0);
    const r = bestWithin('cmaes', onlyCat, g, 300, 1);
    const theta = (r.opt as CmaOptimizer).probabilities;
    expect(theta[0].indexOf(Math.max(...theta[0]))).toBe(1);
    expect(theta[1].indexOf(Math.max(...theta[1]))).toBe(1);
    expect(theta[2]).toEqual([1]);
    expect(r.opt.ask().c[2]).toBe(0);
  });
});
