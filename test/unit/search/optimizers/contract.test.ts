// The contract every optimiser keeps (STYLE §8.6): same seed → same asks; state → restore → ask equals an
// uninterrupted ask; tell leaves its input unchanged; results may be told in any order; bounds hold.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createOptimizer, restoreOptimizer } from '../../../../src/search/optimizers/factory.ts';
import {
  optimizerKinds,
  type Optimizer,
  type OptimizerKind,
  type SearchDomain,
  type Solution,
} from '../../../../src/search/optimizers/optimizer.ts';

const domain: SearchDomain = {
  continuous: [
    { name: 'weight_0', lower: 0, upper: 1 },
    { name: 'weight_1', lower: -2, upper: 0.5 },
    { name: 'density', lower: 0.1, upper: 1 },
  ],
  categorical: [
    { name: 'method', choices: ['task_arithmetic', 'ties', 'dare_ties'] },
    { name: 'normalize', choices: ['true'] },
  ],
};

/** A deterministic toy objective with an optimum on a bound, plus some failures (NaN) to exercise ranking. */
function objective(s: Solution): number {
  if (s.x[0] > 0.95) return NaN;
  return -((s.x[0] - 0.3) ** 2) - (s.x[1] - 0.5) ** 2 - s.x[2] + (s.c[0] === 2 ? 0.2 : 0);
}

function askAll(opt: Optimizer): Solution[] {
  return Array.from({ length: opt.remainingAsks }, () => opt.ask());
}

function run(opt: Optimizer, generations: number): Solution[] {
  const all: Solution[] = [];
  for (let g = 0; g < generations; g++) {
    const batch = askAll(opt);
    all.push(...batch);
    opt.tell(batch.map((solution) => ({ solution, value: objective(solution) })));
  }
  return all;
}

function roundTrip(opt: Optimizer): Optimizer {
  return restoreOptimizer(JSON.parse(JSON.stringify(opt.state())));
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

describe.each(optimizerKinds.map((k) => [k]))('%s optimizer contract', (kind: OptimizerKind) => {
  const make = (seed = 11) => createOptimizer(kind, domain, { seed, populationSize: 6, gridPoints: 4 });

  it('gives the same asks for the same seed, different ones for another seed', () => {
    const a = run(make(), 4);
    expect(run(make(), 4)).toEqual(a);
    expect(run(make(12), 4)).not.toEqual(a);
  });

  it('state() → JSON → restoreOptimizer continues exactly, at a generation boundary and mid-generation', () => {
    const straight = make();
    const reference = run(straight, 5);

    const a = make();
    const firstTwo = run(a, 2);
    const b = roundTrip(a); // boundary
    const half = [b.ask(), b.ask(), b.ask()];
    b.tell([{ solution: half[1], value: objective(half[1]) }]);
    const c = roundTrip(b); // mid-generation: 3 asked, 1 told
    expect(c.generation).toBe(2);
    expect(c.remainingAsks).toBe(3);
    expect(c.pendingTells).toBe(2);
    const rest = askAll(c);
    c.tell([half[0], half[2], ...rest].map((solution) => ({ solution, value: objective(solution) })));
    const after = run(c, 2);
    expect([...firstTwo, ...half, ...rest, ...after]).toEqual(reference);
    expect(c.state()).toEqual(straight.state());
    expect(JSON.parse(JSON.stringify(c.state()))).toEqual(c.state()); // plain JSON, nothing lost
  });

  it('tell does not mutate its input and the update ignores the order of results', () => {
    const a = make();
    const b = make();
    run(a, 1);
    run(b, 1);
    const batchA = askAll(a);
    const batchB = askAll(b);
    expect(batchB).toEqual(batchA);
    const results = deepFreeze(batchA.map((solution, i) => ({ solution, value: i === 2 ? NaN : objective(solution) })));
    const snapshot = JSON.parse(JSON.stringify(results));
    a.tell(results); // frozen input: any write would throw
    expect(JSON.parse(JSON.stringify(results))).toEqual(snapshot);
    const reversed = batchB.map((solution, i) => ({ solution, value: i === 2 ? NaN : objective(solution) })).reverse();
    b.tell(reversed.slice(0, 2));
    b.tell(reversed.slice(2));
    expect(b.state()).toEqual(a.state());
    expect(run(b, 2)).toEqual(run(a, 2));
  });

  it('returns solutions within bounds and valid choice indices', () => {
    const opt = make(5);
    const all = run(opt, kind === 'grid' ? 8 : 30);
    for (const s of all) {
      expect(s.x).toHaveLength(3);
      s.x.forEach((v, i) => {
        expect(v).toBeGreaterThanOrEqual(domain.continuous[i].lower);
        expect(v).toBeLessThanOrEqual(domain.continuous[i].upper);
      });
      expect(s.c).toHaveLength(2);
      s.c.forEach((v, i) =>
        expect(Number.isInteger(v) && v >= 0 && v < domain.categorical[i].choices.length).toBe(true),
      );
    }
  });

  it('refuses a solution that was not asked, one told twice, and asks beyond the generation', () => {
    const opt = make();
    const batch = askAll(opt);
    expect(() => opt.ask()).toThrow(expect.objectContaining({ code: 'optimizer.generation_full' }));
    expect(() => opt.tell([{ solution: { x: [0.5, 0, 0.5], c: [0, 0] }, value: 1 }])).toThrow(
      expect.objectContaining({ code: 'optimizer.unknown_solution' }),
    );
    opt.tell([{ solution: batch[0], value: 1 }]);
    const before = opt.state();
    expect(() =>
      opt.tell([
        { solution: batch[1], value: 1 },
        { solution: batch[0], value: 2 },
      ]),
    ).toThrow(/results\[1\]\.solution: not an untold solution of generation 0/);
    expect(opt.state()).toEqual(before); // a refused tell changes nothing
    expect(() => opt.tell([{ solution: batch[1], value: '1' as unknown as number }])).toThrow(
      expect.objectContaining({ code: 'optimizer.bad_tell' }),
    );
  });

  it('survives a generation where every candidate failed, and keeps its state plain JSON', () => {
    const opt = make();
    const batch = askAll(opt);
    opt.tell(batch.map((solution, i) => ({ solution, value: i % 2 ? NaN : -Infinity })));
    expect(opt.generation).toBe(1);
    const text = JSON.stringify(opt.state());
    expect(text).not.toMatch(/null|NaN|Infinity/);
    const next = askAll(roundTrip(opt));
    expect(next).toEqual(askAll(opt));
  });

  it('restores at any point of any ask/tell schedule (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 30 }), fc.nat(29), (ops, cut) => {
        // ops: 0 = ask, 1 = tell one pending, 2 = tell all pending. Run twice; the second time, restore at `cut`.
        const runOps = (restoreAt: number) => {
          let opt = make(3);
          const pending: Solution[] = [];
          const asked: Solution[] = [];
          ops.forEach((op, i) => {
            if (i === restoreAt) opt = roundTrip(opt);
            if (op === 0 && opt.remainingAsks > 0) {
              const s = opt.ask();
              asked.push(s);
              pending.push(s);
            } else if (op >= 1 && pending.length > 0) {
              const told = op === 1 ? pending.splice(0, 1) : pending.splice(0);
              opt.tell(told.map((solution) => ({ solution, value: objective(solution) })));
            }
          });
          return { asked, state: opt.state() };
        };
        expect(runOps(cut)).toEqual(runOps(-1));
      }),
      { numRuns: 40, seed: 1 },
    );
  });
});

describe('createOptimizer validation', () => {
  it.each([
    [
      { continuous: [{ name: 'w', lower: 1, upper: 0 }], categorical: [] },
      /domain\.continuous\[0\] \(w\): needs finite lower < upper/,
    ],
    [{ continuous: [{ name: 'w', lower: 0, upper: Infinity }], categorical: [] }, /needs finite lower < upper/],
    [
      { continuous: [], categorical: [{ name: 'method', choices: [] }] },
      /domain\.categorical\[0\] \(method\): needs at least one choice/,
    ],
    [{ continuous: [], categorical: [] }, /no genes/],
  ])('refuses a bad domain %#', (bad, message) => {
    for (const kind of optimizerKinds) {
      expect(() => createOptimizer(kind, bad as SearchDomain, { seed: 1 })).toThrow(message);
    }
  });

  it('refuses bad options with the option named', () => {
    expect(() => createOptimizer('cmaes', domain, { seed: 1, populationSize: 1 })).toThrow(
      /populationSize: must be an integer ≥ 2/,
    );
    expect(() => createOptimizer('cmaes', domain, { seed: 1, sigma0Fraction: 0 })).toThrow(/sigma0Fraction/);
    expect(() => createOptimizer('cmaes', domain, { seed: 1, x0: [0.5, 1, 0.5] })).toThrow(
      /x0\[1\] \(weight_1\): 1 is outside \[-2, 0.5\]/,
    );
    expect(() => createOptimizer('grid', domain, { seed: 1, gridPoints: 0 })).toThrow(/gridPoints/);
    expect(() => createOptimizer('random', domain, { seed: 0.5 })).toThrow(/seed/);
    expect(() => createOptimizer('nelder_mead' as OptimizerKind, domain, { seed: 1 })).toThrow(
      /unknown optimizer "nelder_mead"; expected one of: cmaes, random, grid/,
    );
  });

  it('uses λ = 4 + ⌊3 ln n⌋ over all genes by default', () => {
    expect(createOptimizer('cmaes', domain, { seed: 1 }).populationSize).toBe(4 + Math.floor(3 * Math.log(5)));
    expect(
      createOptimizer('random', { continuous: [{ name: 'w', lower: 0, upper: 1 }], categorical: [] }, { seed: 1 })
        .populationSize,
    ).toBe(4);
  });

  it('refuses a state of another kind or a damaged one', () => {
    const s = createOptimizer('cmaes', domain, { seed: 1 }).state();
    expect(() => restoreOptimizer({ ...s, version: 2 as 1 })).toThrow(
      expect.objectContaining({ code: 'optimizer.bad_state' }),
    );
    expect(() => restoreOptimizer({ ...s, algorithm: { ...s.algorithm, sigma: 'x' } })).toThrow(/algorithm\.sigma/);
    expect(() => restoreOptimizer({ ...s, algorithm: { ...s.algorithm, mean: [0.5] } })).toThrow(
      /algorithm\.mean: expected 3 finite numbers/,
    );
  });
});

describe.each(optimizerKinds.map((k) => [k]))('%s optimizer resume helpers', (kind: OptimizerKind) => {
  it('pending() lists asked-but-untold solutions; askCount and tellCount survive a restore', () => {
    const opt = createOptimizer(kind, domain, { seed: 4, populationSize: 5, gridPoints: 3 });
    expect([opt.askCount, opt.tellCount, opt.pending()]).toEqual([0, 0, []]);
    const batch = Array.from({ length: 5 }, () => opt.ask());
    opt.tell([{ solution: batch[3], value: 1 }]);
    expect(opt.pending()).toEqual([batch[0], batch[1], batch[2], batch[4]]);
    const restored = restoreOptimizer(JSON.parse(JSON.stringify(opt.state())));
    expect(restored.pending()).toEqual(opt.pending());
    expect([restored.askCount, restored.tellCount]).toEqual([5, 1]);
    restored.pending()[0].x[0] = 99; // a copy: the optimiser is not affected
    restored.tell(restored.pending().map((solution) => ({ solution, value: 0 })));
    expect([restored.generation, restored.askCount, restored.tellCount, restored.pending()]).toEqual([1, 5, 5, []]);
  });
});
