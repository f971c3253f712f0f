// NSGA-II on hand-made points (non-dominated sort, crowding distance, Deb's constrained domination) and as an
// optimiser: per-task tells, determinism with the seed, state round trips in the middle of a generation.
import { describe, expect, it } from 'vitest';
import { createOptimizer, restoreOptimizer } from '../../../../src/search/optimizers/factory.ts';
import {
  constrainedDominates,
  crowdingDistances,
  moPoint,
  nondominatedFronts,
  Nsga2Optimizer,
  type MoPoint,
} from '../../../../src/search/optimizers/nsga-ii.ts';
import type { Optimizer, SearchDomain, Solution, TellResult } from '../../../../src/search/optimizers/optimizer.ts';

const p = (f: number[], violation = 0): MoPoint => ({ f, violation });

describe('constrained domination (Deb 2002, §VI-A)', () => {
  it('feasible points by Pareto dominance', () => {
    expect(constrainedDominates(p([2, 2]), p([1, 2]))).toBe(true);
    expect(constrainedDominates(p([1, 2]), p([2, 2]))).toBe(false);
    expect(constrainedDominates(p([2, 1]), p([1, 2]))).toBe(false);
    expect(constrainedDominates(p([1, 2]), p([1, 2]))).toBe(false);
  });

  it('a feasible point dominates every infeasible one, whatever its objectives', () => {
    expect(constrainedDominates(p([0, 0]), p([9, 9], 0.1))).toBe(true);
    expect(constrainedDominates(p([9, 9], 0.1), p([0, 0]))).toBe(false);
  });

  it('infeasible points by total violation; failed (+∞) last and tied', () => {
    expect(constrainedDominates(p([0, 0], 0.1), p([9, 9], 0.5))).toBe(true);
    expect(constrainedDominates(p([9, 9], 0.5), p([0, 0], 0.1))).toBe(false);
    expect(constrainedDominates(p([0, 0], 0.5), p([9, 9], 0.5))).toBe(false);
    expect(constrainedDominates(p([0, 0], 3), p([-Infinity, -Infinity], Infinity))).toBe(true);
    const failed = p([-Infinity, -Infinity], Infinity);
    expect(constrainedDominates(failed, failed)).toBe(false);
  });
});

describe('fast non-dominated sort and crowding distance', () => {
  const points = [
    p([1, 5]), // 0: front 0
    p([3, 3]), // 1: front 0
    p([5, 1]), // 2: front 0
    p([2, 2]), // 3: front 1 (dominated by 1)
    p([0.5, 4]), // 4: front 1 (dominated by 0)
    p([1, 1]), // 5: front 2
    p([9, 9], 0.2), // 6: infeasible, smaller violation
    p([9, 9], 0.7), // 7: infeasible, larger violation
    p([-Infinity, -Infinity], Infinity), // 8: failed
  ];

  it('sorts hand-made points into fronts, the infeasible ordered by violation, failures last', () => {
    expect(nondominatedFronts(points)).toEqual([[0, 1, 2], [3, 4], [5], [6], [7], [8]]);
  });

  it('gives boundary members +∞ and inner members the normalised side lengths of their cuboid', () => {
    // front 0 sorted on f0: 0 (1), 1 (3), 2 (5); on f1: 2 (1), 1 (3), 0 (5); member 1: (5−1)/4 + (5−1)/4 = 2
    expect(crowdingDistances(points, [0, 1, 2])).toEqual([Infinity, 2, Infinity]);
    const line = [p([0, 4]), p([1, 3]), p([3, 1]), p([4, 0])];
    // member 1: (3−0)/4 + (4−1)/4 = 1.5; member 2: (4−1)/4 + (3−0)/4 = 1.5
    expect(crowdingDistances(line, [0, 1, 2, 3])).toEqual([Infinity, 1.5, 1.5, Infinity]);
  });

  it('reads objectives and constraints from perTask, with the LCB and the rounding of gates', () => {
    const spec = { objectives: ['a/m', 'b/m'], constraints: [{ key: 'c/m', floor: 0.5 }], lcbZ: 1 };
    const sol: Solution = { x: [0], c: [] };
    const tell = (c: number): TellResult => ({
      solution: sol,
      value: 1,
      perTask: { 'a/m': { value: 1, se: 0.1 }, 'b/m': { value: 2, se: 0.5 }, 'c/m': { value: c, se: 0 } },
    });
    expect(moPoint(tell(0.7), spec)).toEqual({ f: [0.9, 1.5], violation: 0 });
    expect(moPoint(tell(0.2), spec).violation).toBeCloseTo(0.3, 12);
    expect(moPoint(tell(0.5 - 1e-14), spec).violation).toBe(0);
    expect(moPoint({ solution: sol, value: -Infinity }, spec)).toEqual({
      f: [-Infinity, -Infinity],
      violation: Infinity,
    });
  });
});

const domain: SearchDomain = {
  continuous: [
    { name: 'w0', lower: 0, upper: 1 },
    { name: 'w1', lower: 0, upper: 1 },
    { name: 'w2', lower: -1, upper: 1 },
  ],
  categorical: [{ name: 'method', choices: ['task_arithmetic', 'ties', 'dare_ties'] }],
};
const spec = { objectives: ['a/m', 'b/m'], constraints: [{ key: 'c/m', floor: -0.5 }], lcbZ: 0 };

/** A bi-objective toy (a trade-off along w0), a constraint on w2, failures where w1 > 0.97. */
function evaluate(s: Solution): TellResult {
  if (s.x[1]! > 0.97) return { solution: s, value: -Infinity };
  const bonus = s.c[0] === 1 ? 0.1 : 0;
  const a = s.x[0]! - 0.3 * s.x[1]! + bonus;
  const b = 1 - s.x[0]! ** 2 - 0.3 * s.x[1]! + bonus;
  return {
    solution: s,
    value: a + b,
    perTask: { 'a/m': { value: a, se: 0.01 }, 'b/m': { value: b, se: 0.01 }, 'c/m': { value: -(s.x[2]! ** 2), se: 0 } },
  };
}

function generations(opt: Optimizer, n: number): Solution[] {
  const all: Solution[] = [];
  for (let g = 0; g < n; g++) {
    const batch = Array.from({ length: opt.remainingAsks }, () => opt.ask());
    all.push(...batch);
    opt.tell(batch.map(evaluate));
  }
  return all;
}

const make = (seed = 5) => createOptimizer('nsga2', domain, { seed, populationSize: 10, multiObjective: spec });

describe('nsga2 optimiser', () => {
  it('is deterministic with the seed, and another seed asks otherwise', () => {
    expect(generations(make(), 6)).toEqual(generations(make(), 6));
    expect(generations(make(6), 2)).not.toEqual(generations(make(), 2));
  });

  it('restored in the middle of a generation (partial tells, children still queued) asks and selects identically', () => {
    const straight = make();
    const all = generations(straight, 8);

    const a = make();
    generations(a, 3);
    const batch = [a.ask(), a.ask(), a.ask()];
    a.tell([evaluate(batch[1]!)]);
    const b = restoreOptimizer(JSON.parse(JSON.stringify(a.state())));
    expect(b.pending()).toEqual([batch[0], batch[2]]);
    const rest = Array.from({ length: b.remainingAsks }, () => b.ask());
    b.tell([...rest, batch[2]!, batch[0]!].map(evaluate)); // any order
    const after = generations(b, 4);
    expect([...batch, ...rest, ...after]).toEqual(all.slice(30));
    expect((b as Nsga2Optimizer).population()).toEqual((straight as Nsga2Optimizer).population());
  });

  it('keeps feasible non-dominated parents: the population moves onto the front and out of violation', () => {
    const opt = make() as Nsga2Optimizer;
    generations(opt, 1);
    const first = opt.population();
    generations(opt, 15);
    const last = opt.population();
    const feasible = (xs: { violation: number }[]) => xs.filter((m) => m.violation === 0).length;
    expect(feasible(last)).toBe(10);
    expect(feasible(last)).toBeGreaterThan(feasible(first));
    // on the toy front w1 = 0 and the method bonus (ties) is taken: the parents' mean w1 falls, ties dominates
    const mean = (xs: { solution: Solution }[]) => xs.reduce((s, m) => s + m.solution.x[1]!, 0) / xs.length;
    expect(mean(last)).toBeLessThan(mean(first) / 2);
    expect(last.filter((m) => m.solution.c[0] === 1).length).toBeGreaterThanOrEqual(8);
    // and every parent is on the first front of the parents
    expect(nondominatedFronts(last)[0]!.length).toBe(10);
  });

  it('asks no copy of a parent nor twice the same solution in a generation (duplicates are mutated away)', () => {
    // one categorical gene of two choices and a narrow continuous one: copies would be common without the redraw
    const small: SearchDomain = {
      continuous: [{ name: 'w', lower: 0, upper: 1 }],
      categorical: [{ name: 'method', choices: ['task_arithmetic', 'ties'] }],
    };
    const opt = createOptimizer('nsga2', small, { seed: 3, populationSize: 8 }) as Nsga2Optimizer;
    const key = (s: Solution) => JSON.stringify(s);
    for (let g = 0; g < 12; g++) {
      const parents = new Set(opt.population().map((m) => key(m.solution)));
      const batch = Array.from({ length: opt.remainingAsks }, () => opt.ask());
      expect(new Set(batch.map(key)).size).toBe(batch.length);
      expect(batch.filter((s) => parents.has(key(s)))).toEqual([]);
      opt.tell(batch.map((s) => ({ solution: s, value: -((s.x[0]! - 0.4) ** 2) + s.c[0]! })));
    }
  });

  it('refuses a tell that lacks an objective, and leaves the optimiser as it was', () => {
    const opt = make();
    const s = opt.ask();
    const before = JSON.stringify(opt.state());
    expect(() => opt.tell([{ solution: s, value: 1, perTask: { 'a/m': { value: 1, se: 0 } } }])).toThrow(
      /nsga2 needs perTask values for b\/m/,
    );
    expect(JSON.stringify(opt.state())).toBe(before);
  });
});
