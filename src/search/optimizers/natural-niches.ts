// M2N2 (`optimizer: m2n2`), Model Merging with Natural Niches (Abrantes, Lange & Tang, "Competition and Attraction Improve Model
// Fusion", GECCO 2025, arXiv 2508.16204; reference code SakanaAI/natural_niches): an archive of genomes that
// compete for per-item resources (niche-fitness.ts), children of two archive members mixed with a moving split point,
// the second parent chosen for its strength where the first is weak. Batched into generations: every child of a
// generation is bred from the archive as it stood when the generation began, and the generation's results enter
// the archive one by one in ask order, so the result does not depend on the order they were told in.
import { EvomergeError } from '../../errors.ts';
import {
  decodeNumber,
  encodeNumber,
  GenerationalOptimizer,
  type RankedGeneration,
  type TellDetail,
} from './generation.ts';
import { argmin, beatCounts, matchScores, sharedFitness, splitCrossover } from './niche-fitness.ts';
import type { EncodedNumber, OptimizerOptions, OptimizerState, SearchDomain, Solution } from './optimizer.ts';
import { Rng } from './rng.ts';

/** Defaults: natural_niches' pop_size (20) and alpha (1); a small mutation, as the paper's 0.01. */
export const M2N2_DEFAULTS = { archiveSize: 20, alpha: 1, mutation: 0.01 } as const;

interface Member {
  solution: Solution;
  value: number;
  /** Per-item values, higher is better, in the archive's layout. */
  items: number[];
}

/** What a told result competes with: its per-item values, their masses, and a layout string that must match. */
export interface Resources {
  layout: string;
  items: number[];
  mass: number[];
}

/**
 * A told result as resources, or undefined when it may not enter the archive: a failure (non-finite value), or a
 * partial-fidelity result (successive halving stopped it before the whole fit set). With per-item values, each
 * objective term's items share the term's |weight| (a negative weight flips them: higher is better); with per-term
 * values only, each term is one item; with the value alone, the value is the one item.
 */
export function resourcesOf(value: number, detail: TellDetail | undefined): Resources | undefined {
  if (!Number.isFinite(value)) return undefined;
  if (detail?.fidelity && detail.fidelity.items < detail.fidelity.of) return undefined;
  const perTask = detail?.perTask;
  if (!perTask || Object.keys(perTask).length === 0) return { layout: 'value', items: [value], mass: [1] };
  const layout: string[] = [];
  const items: number[] = [];
  const mass: number[] = [];
  for (const key of Object.keys(perTask).sort()) {
    const t = perTask[key]!;
    const w = t.weight ?? 1;
    const sign = w < 0 ? -1 : 1;
    const xs = t.items && t.items.length > 0 ? Array.from(t.items) : [t.value];
    layout.push(`${key}:${xs.length}:${w}`);
    for (const x of xs) {
      items.push(sign * x);
      mass.push(Math.abs(w) / xs.length);
    }
  }
  return { layout: layout.join('|'), items, mass };
}

export class M2n2Optimizer extends GenerationalOptimizer {
  readonly name = 'm2n2' as const;
  readonly readsItems = true;
  private readonly archiveSize: number;
  private readonly alpha: number;
  private readonly mutation: number;
  private readonly seeds: Solution[];
  private seedsAsked: number;
  private archive: Member[];
  private layout: string;
  private mass: number[];

  static create(domain: SearchDomain, populationSize: number, opts: OptimizerOptions): M2n2Optimizer {
    const archiveSize = opts.archiveSize ?? M2N2_DEFAULTS.archiveSize;
    const alpha = opts.alpha ?? M2N2_DEFAULTS.alpha;
    const mutation = opts.mutation ?? M2N2_DEFAULTS.mutation;
    if (!Number.isInteger(archiveSize) || archiveSize < 2)
      throw new EvomergeError('optimizer.bad_option', `must be an integer ≥ 2, got ${archiveSize}`, {
        field: 'archiveSize',
      });
    if (!Number.isFinite(alpha) || alpha < 0)
      throw new EvomergeError('optimizer.bad_option', `must be a number ≥ 0, got ${alpha}`, { field: 'alpha' });
    if (!Number.isFinite(mutation) || mutation < 0 || mutation > 1)
      throw new EvomergeError('optimizer.bad_option', `must be a number in [0, 1], got ${mutation}`, {
        field: 'mutation',
      });
    const seeds = (opts.seeds ?? []).map((s, i) => checkedSeed(domain, s, i));
    return new M2n2Optimizer(domain, populationSize, Rng.fromSeed(opts.seed), {
      archiveSize,
      alpha,
      mutation,
      seeds,
      seedsAsked: 0,
      archive: [],
      layout: '',
      mass: [],
    });
  }

  static restore(state: OptimizerState): M2n2Optimizer {
    GenerationalOptimizer.checkState(state, 'm2n2');
    const a = state.algorithm;
    const bad = (field: string, what: string): never => {
      throw new EvomergeError('optimizer.bad_state', what, { field: `algorithm.${field}` });
    };
    const num = (k: string) =>
      typeof a[k] === 'number' && Number.isFinite(a[k]) ? (a[k] as number) : bad(k, 'expected a number');
    const arr = (k: string) => (Array.isArray(a[k]) ? (a[k] as unknown[]) : bad(k, 'expected an array'));
    const seeds = arr('seeds').map((s, i) => checkedSeed(state.domain, s as Solution, i));
    const archive = arr('archive').map((m, i) => {
      const e = m as { x: number[]; c: number[]; value: EncodedNumber; items: EncodedNumber[] };
      if (!e || !Array.isArray(e.items)) bad(`archive[${i}]`, 'expected {x, c, value, items}');
      return {
        solution: checkedSeed(state.domain, { x: e.x, c: e.c }, i),
        value: decodeNumber(e.value),
        items: e.items.map(decodeNumber),
      };
    });
    const layout = typeof a.layout === 'string' ? a.layout : bad('layout', 'expected a string');
    const mass = arr('mass') as number[];
    return new M2n2Optimizer(
      state.domain,
      state.populationSize,
      Rng.fromState(state.rng),
      {
        archiveSize: num('archiveSize'),
        alpha: num('alpha'),
        mutation: num('mutation'),
        seeds,
        seedsAsked: num('seedsAsked'),
        archive,
        layout,
        mass,
      },
      state,
    );
  }

  private constructor(
    domain: SearchDomain,
    populationSize: number,
    rng: Rng,
    a: {
      archiveSize: number;
      alpha: number;
      mutation: number;
      seeds: Solution[];
      seedsAsked: number;
      archive: Member[];
      layout: string;
      mass: number[];
    },
    restored?: OptimizerState,
  ) {
    super(domain, populationSize, rng, restored);
    this.archiveSize = a.archiveSize;
    this.alpha = a.alpha;
    this.mutation = a.mutation;
    this.seeds = a.seeds;
    this.seedsAsked = a.seedsAsked;
    this.archive = a.archive;
    this.layout = a.layout;
    this.mass = a.mass;
  }

  /** The archive's members (copies), in archive order: what the unit tests and a curious reader look at. */
  members(): { solution: Solution; value: number; items: number[] }[] {
    return this.archive.map((m) => ({ solution: copy(m.solution), value: m.value, items: m.items.slice() }));
  }

  /** The first parent's probabilities and, given it, the second's: shared fitness and the match score. */
  mating(first?: number): { first: number[]; second?: number[] } {
    const { matrix, total } = sharedFitness(beatCounts(this.archive.map((m) => m.items)), this.mass, this.alpha);
    const out: { first: number[]; second?: number[] } = { first: normalise(total) };
    if (first !== undefined) {
      const match = matchScores(matrix, first);
      match[first] = 0;
      out.second = normalise(match, first);
    }
    return out;
  }

  protected sample(): Solution {
    // the seeds first (sources and reference merges as genomes), in order
    if (this.seedsAsked < this.seeds.length) return copy(this.seeds[this.seedsAsked++]!);
    let a: Solution;
    let b: Solution;
    if (this.archive.length >= 2) {
      const p1 = this.draw(this.mating().first);
      const p2 = this.draw(this.mating(p1).second!);
      a = this.archive[p1]!.solution;
      b = this.archive[p2]!.solution;
    } else if (this.seeds.length >= 2) {
      // the seeds' generation is not told yet: children of two seeds drawn uniformly
      const i = this.rng.int(this.seeds.length);
      const j = (i + 1 + this.rng.int(this.seeds.length - 1)) % this.seeds.length;
      a = this.seeds[i]!;
      b = this.seeds[j]!;
    } else {
      // nothing to breed from: uniform in the domain, as random search
      return {
        x: this.domain.continuous.map((g) => clip(g.lower + this.rng.uniform() * (g.upper - g.lower), g)),
        c: this.domain.categorical.map((g) => this.rng.int(g.choices.length)),
      };
    }
    const genes = this.domain.continuous.length + this.domain.categorical.length;
    const split = this.rng.int(genes);
    const r = this.rng.uniform();
    const child = splitCrossover(a, b, split, r);
    if (this.mutation > 0) {
      this.domain.continuous.forEach((g, i) => {
        child.x[i] = child.x[i]! + this.mutation * (g.upper - g.lower) * this.rng.normal();
      });
      this.domain.categorical.forEach((g, k) => {
        if (g.choices.length > 1 && this.rng.uniform() < this.mutation) child.c[k] = this.rng.int(g.choices.length);
      });
    }
    child.x = child.x.map((v, i) => clip(v, this.domain.continuous[i]!));
    return child;
  }

  /** The generation's results enter the archive one by one, in ask order (not rank order). */
  protected update(ranked: RankedGeneration): void {
    const byAsk = ranked.askOrder.map((ask, k) => ({ ask, k })).sort((p, q) => p.ask - q.ask);
    for (const { k } of byAsk) this.admit(ranked.solutions[k]!, ranked.values[k]!, ranked.details[k]);
  }

  /**
   * natural_niches_fn.py `update_archive`: while the archive has room, a new result joins it; then the member
   * (candidate included) with the lowest shared fitness over archive + candidate is dropped, the first on ties.
   * Failures, partial-fidelity results, results of another layout and exact copies of a member never enter.
   */
  private admit(solution: Solution, value: number, detail: TellDetail | undefined): void {
    const res = resourcesOf(value, detail);
    if (!res) return;
    // the first result admitted sets the layout ('' until then)
    if (this.layout === '') {
      this.layout = res.layout;
      this.mass = res.mass;
    } else if (res.layout !== this.layout) return;
    if (this.archive.some((m) => m.items.every((v, j) => v === res.items[j]))) return;
    const member: Member = { solution: copy(solution), value, items: res.items };
    if (this.archive.length < this.archiveSize) {
      this.archive.push(member);
      return;
    }
    const pool = [...this.archive.map((m) => m.items), res.items];
    const { total } = sharedFitness(beatCounts(pool), this.mass, this.alpha);
    const worst = argmin(total);
    if (worst < this.archive.length) this.archive[worst] = member;
  }

  private draw(p: readonly number[]): number {
    let u = this.rng.uniform();
    for (let i = 0; i < p.length; i++) {
      u -= p[i]!;
      if (u < 0) return i;
    }
    // rounding left u ≥ 0: the last index with positive probability
    for (let i = p.length - 1; i >= 0; i--) if (p[i]! > 0) return i;
    return p.length - 1;
  }

  protected algorithmState(): Record<string, unknown> {
    return {
      archiveSize: this.archiveSize,
      alpha: this.alpha,
      mutation: this.mutation,
      seeds: this.seeds.map(copy),
      seedsAsked: this.seedsAsked,
      layout: this.layout,
      mass: this.mass.slice(),
      archive: this.archive.map((m) => ({
        x: m.solution.x.slice(),
        c: m.solution.c.slice(),
        value: encodeNumber(m.value),
        items: m.items.map(encodeNumber),
      })),
    };
  }
}

/** Weights → probabilities; all zero (or none positive): uniform over every index but `except`. */
function normalise(w: readonly number[], except?: number): number[] {
  const sum = w.reduce((a, b) => a + b, 0);
  if (sum > 0 && Number.isFinite(sum)) return w.map((x) => x / sum);
  const n = w.length - (except === undefined ? 0 : 1);
  return w.map((_, i) => (i === except ? 0 : 1 / n));
}

function clip(v: number, g: { lower: number; upper: number }): number {
  return Math.min(g.upper, Math.max(g.lower, v));
}

function copy(s: Solution): Solution {
  return { x: s.x.slice(), c: s.c.slice() };
}

/** A seed (or archived genome) of the right shape, continuous genes clipped to their bounds. */
function checkedSeed(domain: SearchDomain, s: Solution, i: number): Solution {
  const ok =
    s &&
    Array.isArray(s.x) &&
    Array.isArray(s.c) &&
    s.x.length === domain.continuous.length &&
    s.c.length === domain.categorical.length &&
    s.x.every((v) => typeof v === 'number' && Number.isFinite(v)) &&
    s.c.every((v, k) => Number.isInteger(v) && v >= 0 && v < domain.categorical[k]!.choices.length);
  if (!ok)
    throw new EvomergeError(
      'optimizer.bad_option',
      `expected ${domain.continuous.length} finite continuous and ${domain.categorical.length} valid categorical genes`,
      { field: `seeds[${i}]` },
    );
  return { x: s.x.map((v, k) => clip(v, domain.continuous[k]!)), c: s.c.slice() };
}
