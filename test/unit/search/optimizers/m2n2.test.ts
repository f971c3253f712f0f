// M2N2 (natural-niches.ts, niche-fitness.ts): shared fitness on a hand-computed example, the archive's
// replacement rule, attraction picking the complementary parent, the split-point crossover's bounds, seeds asked
// first, failures and partial-fidelity results kept out, and determinism and resume with per-item results told.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createOptimizer, restoreOptimizer } from '../../../../src/search/optimizers/factory.ts';
import { M2n2Optimizer } from '../../../../src/search/optimizers/natural-niches.ts';
import {
  beatCounts,
  matchScores,
  sharedFitness,
  splitCrossover,
} from '../../../../src/search/optimizers/niche-fitness.ts';
import type { Optimizer, SearchDomain, Solution, TellResult } from '../../../../src/search/optimizers/optimizer.ts';

const domain: SearchDomain = {
  continuous: [
    { name: 'w0', lower: 0, upper: 1.5 },
    { name: 'w1', lower: 0, upper: 1.5 },
    { name: 'w2', lower: -1, upper: 1 },
  ],
  categorical: [{ name: 'method', choices: ['task_arithmetic', 'ties', 'dare_ties'] }],
};

/** Three 0/1 items of one task: A solves 0 and 1, B solves 0, C solves 2 (the example worked out below). */
const A = [1, 1, 0];
const B = [1, 0, 0];
const C = [0, 0, 1];

function tellItems(solution: Solution, items: number[], value = items.reduce((a, b) => a + b, 0)): TellResult {
  return {
    solution,
    value,
    perTask: { 'math/exact_match': { value: value / items.length, se: 0.1, items: Float64Array.from(items) } },
  };
}

/** A toy per-item objective: two tasks of four items each, one favouring gene 0 and one gene 1. */
function toyTell(s: Solution): TellResult {
  const a = [0, 1, 2, 3].map((k) => -((s.x[0]! - 0.3 * k) ** 2));
  const b = [0, 1, 2, 3].map((k) => -((s.x[1]! - 0.4 * k) ** 2) + (s.c[0] === 1 ? 0.05 : 0));
  const mean = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
  return {
    solution: s,
    value: mean(a) + mean(b),
    perTask: {
      'a/loglik': { value: mean(a), se: 0.01, items: a, weight: 0.5 },
      'b/loglik': { value: mean(b), se: 0.01, items: b, weight: 0.5 },
    },
  };
}

function run(opt: Optimizer, generations: number): Solution[] {
  const all: Solution[] = [];
  for (let g = 0; g < generations; g++) {
    const batch = Array.from({ length: opt.remainingAsks }, () => opt.ask());
    all.push(...batch);
    opt.tell(batch.map(toyTell));
  }
  return all;
}

const seeds: Solution[] = [
  { x: [1, 0, 0], c: [0] },
  { x: [0, 1, 0], c: [0] },
  { x: [0.5, 0.5, 0], c: [1] },
];

describe('shared fitness (hand-computed)', () => {
  it('beat counts give 0/1 items the paper shares: each of k solvers gets 1/k', () => {
    // item 0: A and B beat C; item 1: A beats B and C; item 2: C beats A and B
    expect(beatCounts([A, B, C])).toEqual([
      [1, 2, 0],
      [1, 0, 0],
      [0, 0, 2],
    ]);
    // Z = [2, 2, 2]; A = 1/2 + 2/2, B = 1/2, C = 2/2 — the paper's 0/1 shares: item 0 split by A and B, …
    const f = sharedFitness(beatCounts([A, B, C]), [1, 1, 1], 1);
    expect(f.total).toEqual([1.5, 0.5, 1]);
    // alpha = 2: the totals over Z² = 4
    expect(sharedFitness(beatCounts([A, B, C]), [1, 1, 1], 2).total).toEqual([0.75, 0.25, 0.5]);
    // alpha = 0: no sharing, summed scores
    expect(sharedFitness(beatCounts([A, B, C]), [1, 1, 1], 0).total).toEqual([3, 1, 2]);
    // items nobody wins (Z = 0) count as 1 and give nothing; masses weigh items
    expect(
      sharedFitness(
        [
          [0, 2],
          [0, 0],
        ],
        [1, 0.25],
        1,
      ).total,
    ).toEqual([0.25, 0]);
  });

  it('continuous values: ranks per item, so scale and shift do not matter', () => {
    const loglik = [
      [-2.1, -1.0],
      [-2.0, -3.0],
      [-5.0, -2.0],
    ];
    const scaled = loglik.map((r) => r.map((v) => 100 * v + 7));
    expect(beatCounts(scaled)).toEqual(beatCounts(loglik));
    expect(beatCounts(loglik)).toEqual([
      [1, 2],
      [2, 0],
      [0, 1],
    ]);
    expect(beatCounts([[NaN], [-1e300]])).toEqual([[0], [1]]);
  });

  it('the match score is what a member gains where the first parent is weak', () => {
    const { matrix } = sharedFitness(beatCounts([A, B, C]), [1, 1, 1], 1);
    // A = [.5, 1, 0]; B gains nothing over A, C gains item 2 (1)
    expect(matchScores(matrix, 0)).toEqual([0, 0, 1]);
    // over B = [.5, 0, 0]: A gains item 1, C item 2
    expect(matchScores(matrix, 1)).toEqual([1, 0, 1]);
  });
});

describe('the M2N2 archive', () => {
  const make = (archiveSize = 3, extra: Partial<Parameters<typeof createOptimizer>[2]> = {}) =>
    createOptimizer('m2n2', domain, { seed: 5, populationSize: 3, archiveSize, seeds, ...extra }) as M2n2Optimizer;

  it('asks the seeds first, then breeds; the seeds enter the archive when told', () => {
    const opt = make();
    const first = [opt.ask(), opt.ask(), opt.ask()];
    expect(first).toEqual(seeds);
    opt.tell([tellItems(first[0]!, A), tellItems(first[1]!, B), tellItems(first[2]!, C)]);
    expect(opt.members().map((m) => m.solution)).toEqual(seeds);
    // the mating probabilities are the example's: first ∝ [1.5, .5, 1]; given A, the second is C
    const p = opt.mating(0);
    expect(p.first).toEqual([0.5, 0.5 / 3, 1 / 3]);
    expect(p.second).toEqual([0, 0, 1]);
  });

  it('attraction: the second parent is the complementary one, every time', () => {
    const opt = make();
    const first = [opt.ask(), opt.ask(), opt.ask()];
    opt.tell([tellItems(first[0]!, A), tellItems(first[1]!, B), tellItems(first[2]!, C)]);
    // B's only strength (item 0) is shared with A: whoever is first, B is never a complement of A
    expect(opt.mating(0).second![1]).toBe(0);
    // given B first, A (item 1) and C (item 2) gain the same over it
    expect(opt.mating(1).second).toEqual([0.5, 0, 0.5]);
  });

  it('replaces the member of lowest shared fitness (ties: the first), and keeps out a candidate that is lowest', () => {
    const opt = make();
    const first = [opt.ask(), opt.ask(), opt.ask()];
    opt.tell([tellItems(first[0]!, A), tellItems(first[1]!, B), tellItems(first[2]!, C)]);
    const next = [opt.ask(), opt.ask(), opt.ask()];
    // D = [0, 1, 1]: over A, B, C, D the totals are A 1, B .5, C .5, D 1 → B (first of the lowest) goes.
    // E = [0, 0, 0] afterwards: the lowest of A, D, C, E is E itself → the archive does not change.
    // F fails (−∞, no per-item values): it never enters.
    opt.tell([
      tellItems(next[0]!, [0, 1, 1]),
      tellItems(next[1]!, [0, 0, 0]),
      { solution: next[2]!, value: -Infinity },
    ]);
    expect(opt.members().map((m) => m.items)).toEqual([A, [0, 1, 1], C]);
    expect(opt.members()[1]!.solution).toEqual(next[0]);
  });

  it('keeps out partial-fidelity results, results of another layout and copies of a member', () => {
    const opt = make(5);
    const first = [opt.ask(), opt.ask(), opt.ask()];
    const partial = { ...tellItems(first[1]!, B), fidelity: { items: 3, of: 9 } };
    const other: TellResult = { solution: first[2]!, value: 1 }; // no per-item values: another layout
    opt.tell([tellItems(first[0]!, A), partial, other]);
    expect(opt.members().map((m) => m.items)).toEqual([A]);
    const next = [opt.ask(), opt.ask(), opt.ask()];
    opt.tell([tellItems(next[0]!, A), tellItems(next[1]!, C), tellItems(next[2]!, B)]);
    expect(opt.members().map((m) => m.items)).toEqual([A, C, B]);
  });

  it('the update does not depend on the order results are told in', () => {
    const a = make();
    const b = make();
    const sa = [a.ask(), a.ask(), a.ask()];
    const sb = [b.ask(), b.ask(), b.ask()];
    a.tell([tellItems(sa[0]!, A), tellItems(sa[1]!, B), tellItems(sa[2]!, C)]);
    b.tell([tellItems(sb[2]!, C)]);
    b.tell([tellItems(sb[0]!, A), tellItems(sb[1]!, B)]);
    expect(b.state()).toEqual(a.state());
  });
});

describe('M2N2 determinism and resume with per-item results', () => {
  const make = (seed = 3) => createOptimizer('m2n2', domain, { seed, populationSize: 5, archiveSize: 6, seeds });

  it('the same seed gives the same asks and archive; another seed other asks', () => {
    const a = make();
    const asks = run(a, 6);
    const b = make();
    expect(run(b, 6)).toEqual(asks);
    expect(b.state()).toEqual(a.state());
    expect(run(make(4), 6)).not.toEqual(asks);
    expect((a as M2n2Optimizer).members()).toHaveLength(6);
  });

  it('state → JSON → restore mid-generation (per-item results told) equals the uninterrupted run', () => {
    const straight = make();
    const reference = run(straight, 6);
    const opt = make();
    const firstThree = run(opt, 3);
    const half = [opt.ask(), opt.ask()];
    opt.tell([toyTell(half[1]!)]);
    const restored = restoreOptimizer(JSON.parse(JSON.stringify(opt.state())));
    expect(restored.state()).toEqual(opt.state());
    const rest = Array.from({ length: restored.remainingAsks }, () => restored.ask());
    restored.tell([half[0]!, ...rest].map(toyTell));
    const after = run(restored, 2);
    expect([...firstThree, ...half, ...rest, ...after]).toEqual(reference);
    expect(restored.state()).toEqual(straight.state());
    expect(JSON.stringify(restored.state())).not.toMatch(/null|NaN|Infinity/);
  });

  it('learns: the archive ends better on the toy objective than the seeds', () => {
    const opt = make() as M2n2Optimizer;
    run(opt, 12);
    const best = Math.max(...opt.members().map((m) => m.value));
    expect(best).toBeGreaterThan(Math.max(...seeds.map((s) => toyTell(s).value)));
  });
});

describe('split-point crossover', () => {
  it('mixes genes before the split with r and after it with 1 − r; the method follows the larger share', () => {
    const a = { x: [0, 0, 0, 0], c: [0] };
    const b = { x: [1, 1, 1, 1], c: [2] };
    expect(splitCrossover(a, b, 2, 0.25)).toEqual({ x: [0.25, 0.25, 0.75, 0.75], c: [2] });
    expect(splitCrossover(a, b, 5, 0.25)).toEqual({ x: [0.25, 0.25, 0.25, 0.25], c: [0] });
  });

  it('keeps every child within bounds and its method among the choices (property)', () => {
    const gene = fc.double({ min: 0, max: 1, noNaN: true });
    fc.assert(
      fc.property(fc.tuple(gene, gene, gene), fc.tuple(gene, gene, gene), fc.nat(4), gene, (u, v, split, r) => {
        const toX = (w: number[]) => domain.continuous.map((g, i) => g.lower + w[i]! * (g.upper - g.lower));
        const child = splitCrossover({ x: toX(u), c: [0] }, { x: toX(v), c: [2] }, split, r);
        child.x.forEach((x, i) => {
          const lo = Math.min(toX(u)[i]!, toX(v)[i]!);
          const hi = Math.max(toX(u)[i]!, toX(v)[i]!);
          expect(x).toBeGreaterThanOrEqual(lo - 1e-12);
          expect(x).toBeLessThanOrEqual(hi + 1e-12);
        });
        expect([0, 2]).toContain(child.c[0]);
      }),
      { numRuns: 200, seed: 2 },
    );
    // the optimiser's children, mutation included, stay in the domain
    const opt = createOptimizer('m2n2', domain, { seed: 9, populationSize: 6, seeds, mutation: 0.5 });
    for (const s of run(opt, 8)) {
      s.x.forEach((x, i) => {
        expect(x).toBeGreaterThanOrEqual(domain.continuous[i]!.lower);
        expect(x).toBeLessThanOrEqual(domain.continuous[i]!.upper);
      });
      expect(s.c[0]! >= 0 && s.c[0]! < 3).toBe(true);
    }
  });

  it('refuses bad options with the option named', () => {
    expect(() => createOptimizer('m2n2', domain, { seed: 1, archiveSize: 1 })).toThrow(/archiveSize: must be/);
    expect(() => createOptimizer('m2n2', domain, { seed: 1, alpha: -1 })).toThrow(/alpha/);
    expect(() => createOptimizer('m2n2', domain, { seed: 1, mutation: 2 })).toThrow(/mutation/);
    expect(() => createOptimizer('m2n2', domain, { seed: 1, seeds: [{ x: [1], c: [0] }] })).toThrow(/seeds\[0\]/);
  });
});
