// NSGA-II (Deb, Pratap, Agarwal & Meyarivan, "A Fast and Elitist Multiobjective Genetic Algorithm: NSGA-II",
// IEEE TEC 6(2), 2002) with Deb's constrained domination (same paper, §VI-A): the optimiser of a Pareto campaign.
// Objectives are maximised; each is read from a tell's `perTask` (value − lcbZ·se). A constraint is "perTask[key]
// ≥ floor"; a candidate's violation is the sum of its shortfalls. A feasible candidate dominates every infeasible
// one, infeasible ones are ordered by violation, feasible ones by Pareto dominance; failed ones (value NaN/−∞, or
// an objective missing) have violation +∞ and rank last, tied with each other.
//
// Generation 0 samples uniformly. Then each generation's children come from the parents by binary tournament on
// (front, crowding distance) (§III-C's crowded-comparison operator), simulated binary crossover (SBX, Deb &
// Agrawal 1995, bounded form of Deb's NSGA-II C code `realcross`) with probability PC and polynomial mutation (Deb
// & Goyal 1996, bounded form of `real_mutate_ind`) for continuous genes; uniform crossover and uniform mutation
// for categorical ones (the merge method); a child equal to a parent or to a solution already asked this generation
// is mutated again (pymoo's eliminate_duplicates). Parents ∪ children are sorted into fronts (fast non-dominated sort,
// §III-A); the next parents fill up front by front, the last front cut by crowding distance (§III-B). Every tie
// falls to the lower index (parents first, then children in ask order), so the update depends on the set of told
// results only. The parents, the queue of children not yet asked, the open generation's told vectors and the
// RNG are in `state()`: a restore continues bit-identically.

import { EvomergeError } from '../../errors.ts';
import { decodeNumber, encodeNumber, GenerationalOptimizer, readScalar } from './generation.ts';
import type {
  EncodedNumber,
  MultiObjective,
  OptimizerOptions,
  OptimizerState,
  SearchDomain,
  Solution,
  TellResult,
} from './optimizer.ts';
import { Rng } from './rng.ts';

/** Crossover probability and distribution indices (Deb et al. 2002, §V: pc = 0.9, ηc = ηm = 20). */
const PC = 0.9;
const ETA_C = 20;
const ETA_M = 20;
/** Shortfalls within float rounding of the floor are no violation (gates.ts counts them as a pass). */
const ROUNDING = 1e-12;
/** A child equal to a known solution gets at most this many extra mutations. */
const MAX_REDRAWS = 20;

/** One evaluated point: objectives (maximised) and total constraint violation (0 = feasible, +∞ = failed). */
export interface MoPoint {
  readonly f: readonly number[];
  readonly violation: number;
}

interface Member extends MoPoint {
  readonly solution: Solution;
}

/** Deb's constrained domination: does a dominate b? */
export function constrainedDominates(a: MoPoint, b: MoPoint): boolean {
  if (a.violation === 0 && b.violation > 0) return true;
  if (a.violation > 0 || b.violation > 0) return a.violation < b.violation;
  let better = false;
  for (let m = 0; m < a.f.length; m++) {
    if (a.f[m]! < b.f[m]!) return false;
    if (a.f[m]! > b.f[m]!) better = true;
  }
  return better;
}

/** Fast non-dominated sort (Deb et al. 2002, §III-A): fronts of indices, best first, each in index order. */
export function nondominatedFronts(points: readonly MoPoint[]): number[][] {
  const n = points.length;
  const dominated: number[][] = points.map(() => []);
  const count = new Array<number>(n).fill(0);
  for (let p = 0; p < n; p++)
    for (let q = 0; q < n; q++) {
      if (p === q) continue;
      if (constrainedDominates(points[p]!, points[q]!)) dominated[p]!.push(q);
      else if (constrainedDominates(points[q]!, points[p]!)) count[p]!++;
    }
  const fronts: number[][] = [];
  let current = points.map((_, i) => i).filter((i) => count[i] === 0);
  while (current.length > 0) {
    fronts.push(current);
    const next: number[] = [];
    for (const p of current) for (const q of dominated[p]!) if (--count[q]! === 0) next.push(q);
    current = next.sort((a, b) => a - b);
  }
  return fronts;
}

/** Crowding distance of each member of one front (§III-B), in the front's order; boundary members get +∞. */
export function crowdingDistances(points: readonly MoPoint[], front: readonly number[]): number[] {
  const d = new Array<number>(front.length).fill(0);
  const m = points[front[0]!]?.f.length ?? 0;
  for (let k = 0; k < m; k++) {
    const order = front.map((_, i) => i).sort((a, b) => points[front[a]!]!.f[k]! - points[front[b]!]!.f[k]! || a - b);
    const lo = points[front[order[0]!]!]!.f[k]!;
    const hi = points[front[order[order.length - 1]!]!]!.f[k]!;
    d[order[0]!] = Infinity;
    d[order[order.length - 1]!] = Infinity;
    const range = hi - lo;
    if (!(range > 0) || !Number.isFinite(range)) continue;
    for (let i = 1; i < order.length - 1; i++)
      d[order[i]!]! += (points[front[order[i + 1]!]!]!.f[k]! - points[front[order[i - 1]!]!]!.f[k]!) / range;
  }
  return d;
}

/** The objective vector and violation of one told result under a multi-objective spec. */
export function moPoint(r: TellResult, spec: MultiObjective): MoPoint {
  const failed = {
    f: spec.objectives.length ? spec.objectives.map(() => -Infinity) : [-Infinity],
    violation: Infinity,
  };
  if (Number.isNaN(r.value) || r.value === -Infinity) return failed;
  if (spec.objectives.length === 0) return { f: [r.value], violation: 0 };
  const z = spec.lcbZ ?? 0;
  const f = spec.objectives.map((key) => {
    const e = r.perTask?.[key];
    if (!e || !Number.isFinite(e.value)) return NaN;
    return z > 0 && Number.isFinite(e.se) ? e.value - z * e.se : e.value;
  });
  if (f.some((v) => Number.isNaN(v))) return failed;
  let violation = 0;
  for (const c of spec.constraints ?? []) {
    const v = r.perTask?.[c.key]?.value;
    if (v === undefined || Number.isNaN(v)) return { f, violation: Infinity };
    const shortfall = c.floor - v;
    if (shortfall > ROUNDING * Math.max(1, Math.abs(c.floor))) violation += shortfall;
  }
  return { f, violation };
}

function sameSolution(a: Solution, b: Solution): boolean {
  return (
    a.x.length === b.x.length &&
    a.c.length === b.c.length &&
    a.x.every((v, i) => v === b.x[i]) &&
    a.c.every((v, i) => v === b.c[i])
  );
}

const copy = (s: Solution): Solution => ({ x: s.x.slice(), c: s.c.slice() });

interface Told extends MoPoint {
  /** Index of the told solution among the open generation's asks. */
  readonly index: number;
}

export class Nsga2Optimizer extends GenerationalOptimizer {
  readonly name = 'nsga2' as const;
  private readonly spec: MultiObjective;
  private parents: Member[];
  /** Children made but not yet asked (SBX makes them in pairs). */
  private queue: Solution[];
  /** The open generation's asks and what has been told of them. */
  private openAsked: Solution[];
  private told: Told[];
  private incoming: Told[] = [];

  private constructor(
    domain: SearchDomain,
    populationSize: number,
    rng: Rng,
    spec: MultiObjective,
    restored?: OptimizerState,
  ) {
    super(domain, populationSize, rng, restored);
    this.spec = spec;
    this.parents = [];
    this.queue = [];
    this.openAsked = [];
    this.told = [];
  }

  static create(domain: SearchDomain, populationSize: number, opts: OptimizerOptions): Nsga2Optimizer {
    const spec = opts.multiObjective ?? { objectives: [] };
    const keys = [...spec.objectives, ...(spec.constraints ?? []).map((c) => c.key)];
    if (keys.some((k) => typeof k !== 'string') || (spec.constraints ?? []).some((c) => !Number.isFinite(c.floor)))
      throw new EvomergeError('optimizer.bad_option', 'expected objective keys and finite constraint floors', {
        field: 'multiObjective',
      });
    const z = spec.lcbZ ?? 0;
    if (!(z >= 0)) throw new EvomergeError('optimizer.bad_option', `must be ≥ 0, got ${z}`, { field: 'lcbZ' });
    const clean: MultiObjective = {
      objectives: [...spec.objectives],
      constraints: (spec.constraints ?? []).map((c) => ({ key: c.key, floor: c.floor })),
      lcbZ: z,
    };
    return new Nsga2Optimizer(domain, populationSize, Rng.fromSeed(opts.seed), clean);
  }

  static restore(state: OptimizerState): Nsga2Optimizer {
    GenerationalOptimizer.checkState(state, 'nsga2');
    const a = state.algorithm;
    const bad = (field: string, what: string): never => {
      throw new EvomergeError('optimizer.bad_state', what, { field: `algorithm.${field}` });
    };
    const objectives = Array.isArray(a.objectives) ? (a.objectives as string[]) : bad('objectives', 'expected a list');
    const constraints = Array.isArray(a.constraints)
      ? (a.constraints as { key: string; floor: number }[])
      : bad('constraints', 'expected a list');
    const spec: MultiObjective = { objectives, constraints, lcbZ: readScalar(a, 'lcbZ') };
    const opt = new Nsga2Optimizer(state.domain, state.populationSize, Rng.fromState(state.rng), spec, state);
    const point = (p: { f: EncodedNumber[]; violation: EncodedNumber }, field: string) => {
      if (!p || !Array.isArray(p.f)) bad(field, 'expected {f, violation}');
      return { f: p.f.map(decodeNumber), violation: decodeNumber(p.violation) };
    };
    const solutions = (v: unknown, field: string): Solution[] =>
      Array.isArray(v) ? (v as Solution[]).map(copy) : bad(field, 'expected a list of solutions');
    if (!Array.isArray(a.parents)) bad('parents', 'expected a list');
    opt.parents = (a.parents as { solution: Solution; f: EncodedNumber[]; violation: EncodedNumber }[]).map((p, i) => ({
      solution: copy(p.solution),
      ...point(p, `parents[${i}]`),
    }));
    opt.queue = solutions(a.queue, 'queue');
    opt.openAsked = solutions(a.openAsked, 'openAsked');
    if (!Array.isArray(a.told)) bad('told', 'expected a list');
    opt.told = (a.told as { index: number; f: EncodedNumber[]; violation: EncodedNumber }[]).map((t, i) => ({
      index: t.index,
      ...point(t, `told[${i}]`),
    }));
    return opt;
  }

  /** The current parents (the last environmental selection): solutions with their objective vectors. */
  population(): { solution: Solution; f: number[]; violation: number }[] {
    return this.parents.map((p) => ({ solution: copy(p.solution), f: [...p.f], violation: p.violation }));
  }

  override tell(results: readonly TellResult[]): void {
    // match each result to an untold ask as the base class does (first identical ask not yet told), then let the
    // base class validate and, when the generation is complete, call update() with the vectors
    const taken = new Set(this.told.map((t) => t.index));
    const incoming: Told[] = [];
    for (const r of results) {
      if (!r || !r.solution) break;
      const index = this.openAsked.findIndex((s, i) => !taken.has(i) && sameSolution(s, r.solution));
      if (index < 0) break;
      taken.add(index);
      if (Number.isFinite(r.value) && this.spec.objectives.some((k) => r.perTask?.[k] === undefined))
        throw new EvomergeError(
          'optimizer.bad_tell',
          `nsga2 needs perTask values for ${this.spec.objectives.filter((k) => r.perTask?.[k] === undefined).join(', ')}`,
          { field: 'perTask' },
        );
      incoming.push({ index, ...moPoint(r, this.spec) });
    }
    const g = this.generation;
    this.incoming = incoming;
    try {
      super.tell(results);
    } finally {
      this.incoming = [];
    }
    if (this.generation === g) this.told.push(...incoming);
  }

  protected sample(): Solution {
    let s: Solution;
    if (this.parents.length === 0) s = this.uniform();
    else {
      if (this.queue.length === 0) this.children();
      s = this.queue.shift()!;
    }
    this.openAsked.push(copy(s));
    return s;
  }

  protected update(): void {
    const told = [...this.told, ...this.incoming].sort((a, b) => a.index - b.index);
    const pool: Member[] = [
      ...this.parents,
      ...told.map((t) => ({ solution: this.openAsked[t.index]!, f: t.f, violation: t.violation })),
    ];
    const next: Member[] = [];
    for (const front of nondominatedFronts(pool)) {
      if (next.length + front.length <= this.populationSize) {
        next.push(...front.map((i) => pool[i]!));
        if (next.length === this.populationSize) break;
        continue;
      }
      const d = crowdingDistances(pool, front);
      const order = front.map((_, i) => i).sort((a, b) => d[b]! - d[a]! || a - b);
      next.push(...order.slice(0, this.populationSize - next.length).map((i) => pool[front[i]!]!));
      break;
    }
    this.parents = next;
    this.queue = [];
    this.openAsked = [];
    this.told = [];
  }

  protected algorithmState(): Record<string, unknown> {
    const point = (p: MoPoint) => ({ f: p.f.map(encodeNumber), violation: encodeNumber(p.violation) });
    return {
      objectives: [...this.spec.objectives],
      constraints: (this.spec.constraints ?? []).map((c) => ({ key: c.key, floor: c.floor })),
      lcbZ: this.spec.lcbZ ?? 0,
      parents: this.parents.map((p) => ({ solution: copy(p.solution), ...point(p) })),
      queue: this.queue.map(copy),
      openAsked: this.openAsked.map(copy),
      told: this.told.map((t) => ({ index: t.index, ...point(t) })),
    };
  }

  private uniform(): Solution {
    const x = this.domain.continuous.map((g) => Math.min(g.upper, g.lower + this.rng.uniform() * (g.upper - g.lower)));
    const c = this.domain.categorical.map((g) => this.rng.int(g.choices.length));
    return { x, c };
  }

  /** Rank (front index) and crowding distance of every parent, for the tournament. */
  private ranks(): { front: number[]; crowding: number[] } {
    const front = new Array<number>(this.parents.length).fill(0);
    const crowding = new Array<number>(this.parents.length).fill(0);
    nondominatedFronts(this.parents).forEach((members, r) => {
      const d = crowdingDistances(this.parents, members);
      members.forEach((i, k) => {
        front[i] = r;
        crowding[i] = d[k]!;
      });
    });
    return { front, crowding };
  }

  /** Queues two children of two tournament winners: SBX + polynomial mutation, uniform crossover + mutation. */
  private children(): void {
    const { front, crowding } = this.ranks();
    const n = this.parents.length;
    const tournament = (): Solution => {
      const i = this.rng.int(n);
      const j = this.rng.int(n);
      const better = front[i]! < front[j]! || (front[i] === front[j] && crowding[i]! >= crowding[j]!) ? i : j;
      return this.parents[better]!.solution;
    };
    const p1 = tournament();
    const p2 = tournament();
    const a = copy(p1);
    const b = copy(p2);
    if (this.rng.uniform() < PC) {
      this.domain.continuous.forEach((g, k) => {
        const [c1, c2] = this.sbx(a.x[k]!, b.x[k]!, g.lower, g.upper);
        a.x[k] = c1;
        b.x[k] = c2;
      });
      this.domain.categorical.forEach((_, k) => {
        if (this.rng.uniform() < 0.5) [a.c[k], b.c[k]] = [b.c[k]!, a.c[k]!];
      });
    }
    const genes = this.domain.continuous.length + this.domain.categorical.length;
    const pm = 1 / genes;
    for (const child of [a, b]) {
      this.domain.continuous.forEach((g, k) => {
        if (this.rng.uniform() < pm) child.x[k] = this.mutate(child.x[k]!, g.lower, g.upper);
      });
      this.domain.categorical.forEach((g, k) => {
        if (this.rng.uniform() < pm) this.mutateChoice(child, k);
      });
      // a copy of a parent or of a solution already asked or queued would only be told a known result again
      // (pymoo's eliminate_duplicates): one more gene is mutated, a bounded number of times
      for (let tries = 0; tries < MAX_REDRAWS && this.known(child); tries++) {
        const k = this.rng.int(genes);
        if (k < this.domain.continuous.length) {
          const g = this.domain.continuous[k]!;
          child.x[k] = this.mutate(child.x[k]!, g.lower, g.upper);
        } else this.mutateChoice(child, k - this.domain.continuous.length);
      }
      this.queue.push(child);
    }
  }

  /** Another choice of categorical gene k, uniform among the others (none when the gene has one choice). */
  private mutateChoice(child: Solution, k: number): void {
    const n = this.domain.categorical[k]!.choices.length;
    if (n < 2) return;
    const other = this.rng.int(n - 1);
    child.c[k] = other >= child.c[k]! ? other + 1 : other;
  }

  /** Is s a current parent, or asked or queued in the open generation? */
  private known(s: Solution): boolean {
    return [...this.parents.map((p) => p.solution), ...this.openAsked, ...this.queue].some((o) => sameSolution(o, s));
  }

  /** Bounded SBX of one gene (Deb's `realcross`): with probability 1/2 the pair is recombined. */
  private sbx(x1: number, x2: number, lo: number, hi: number): [number, number] {
    if (this.rng.uniform() >= 0.5 || Math.abs(x1 - x2) <= 1e-14) return [x1, x2];
    const y1 = Math.min(x1, x2);
    const y2 = Math.max(x1, x2);
    const u = this.rng.uniform();
    const betaq = (beta: number) => {
      const alpha = 2 - Math.pow(beta, -(ETA_C + 1));
      return u <= 1 / alpha ? Math.pow(u * alpha, 1 / (ETA_C + 1)) : Math.pow(1 / (2 - u * alpha), 1 / (ETA_C + 1));
    };
    const c1 = 0.5 * (y1 + y2 - betaq(1 + (2 * (y1 - lo)) / (y2 - y1)) * (y2 - y1));
    const c2 = 0.5 * (y1 + y2 + betaq(1 + (2 * (hi - y2)) / (y2 - y1)) * (y2 - y1));
    const clip = (v: number) => Math.min(hi, Math.max(lo, v));
    return this.rng.uniform() < 0.5 ? [clip(c2), clip(c1)] : [clip(c1), clip(c2)];
  }

  /** Bounded polynomial mutation of one gene (Deb's `real_mutate_ind`). */
  private mutate(y: number, lo: number, hi: number): number {
    const d1 = (y - lo) / (hi - lo);
    const d2 = (hi - y) / (hi - lo);
    const r = this.rng.uniform();
    const pow = 1 / (ETA_M + 1);
    let dq: number;
    if (r < 0.5) {
      const v = 2 * r + (1 - 2 * r) * Math.pow(1 - d1, ETA_M + 1);
      dq = Math.pow(v, pow) - 1;
    } else {
      const v = 2 * (1 - r) + 2 * (r - 0.5) * Math.pow(1 - d2, ETA_M + 1);
      dq = 1 - Math.pow(v, pow);
    }
    return Math.min(hi, Math.max(lo, y + dq * (hi - lo)));
  }
}
