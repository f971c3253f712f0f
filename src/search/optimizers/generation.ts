// Ask/tell bookkeeping shared by every optimiser: the open generation (asked solutions, told values),
// matching told solutions to asked ones, ranking (ties in ask order), and the JSON encoding of NaN/±Inf.

import { EvomergeError, invariant } from '../../errors.ts';
import type {
  EncodedNumber,
  EncodedTellDetail,
  TaskResult,
  Optimizer,
  OptimizerKind,
  OptimizerState,
  SearchDomain,
  Solution,
  TellResult,
} from './optimizer.ts';
import { Rng } from './rng.ts';

export function encodeNumber(v: number): EncodedNumber {
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  return v;
}

export function decodeNumber(v: EncodedNumber): number {
  if (v === 'nan') return NaN;
  if (v === 'inf') return Infinity;
  if (v === '-inf') return -Infinity;
  return v;
}

/** TellResult's optional fields, as an optimiser keeps them (items copied into plain arrays). */
export interface TellDetail {
  perTask?: Record<string, TaskResult & { items?: readonly number[] }>;
  fidelity?: { items: number; of: number };
  failure?: { code: string };
}

/** A generation's results ordered best first; equal values (all failures alike) keep ask order. */
export interface RankedGeneration {
  solutions: Solution[];
  values: number[];
  /** What was told beside each value (undefined: the value alone), in the same order. */
  details: (TellDetail | undefined)[];
  /** Each entry's position in ask order (the order of `ask()` calls in the generation). */
  askOrder: number[];
}

/** The optional fields of a told result, copied (the caller's arrays are neither kept nor changed). */
export function copyDetail(r: TellResult | TellDetail): TellDetail | undefined {
  if (!r.perTask && !r.fidelity && !r.failure) return undefined;
  const out: TellDetail = {};
  if (r.perTask) {
    out.perTask = {};
    for (const key of Object.keys(r.perTask).sort()) {
      const t = r.perTask[key]!;
      out.perTask[key] = {
        value: t.value,
        se: t.se,
        ...(t.items ? { items: Array.from(t.items) } : {}),
        ...(t.weight !== undefined ? { weight: t.weight } : {}),
      };
    }
  }
  if (r.fidelity) out.fidelity = { items: r.fidelity.items, of: r.fidelity.of };
  if (r.failure) out.failure = { code: r.failure.code };
  return out;
}

export function encodeDetail(d: TellDetail): EncodedTellDetail {
  const out: EncodedTellDetail = {};
  if (d.perTask)
    out.perTask = Object.fromEntries(
      Object.entries(d.perTask).map(([k, t]) => [
        k,
        {
          value: encodeNumber(t.value),
          se: encodeNumber(t.se),
          ...(t.items ? { items: Array.from(t.items, encodeNumber) } : {}),
          ...(t.weight !== undefined ? { weight: t.weight } : {}),
        },
      ]),
    );
  if (d.fidelity) out.fidelity = { ...d.fidelity };
  if (d.failure) out.failure = { ...d.failure };
  return out;
}

export function decodeDetail(e: EncodedTellDetail, field: string): TellDetail {
  if (e === null || typeof e !== 'object')
    throw new EvomergeError('optimizer.bad_state', 'expected an object', { field });
  const out: TellDetail = {};
  if (e.perTask) {
    out.perTask = {};
    for (const [k, t] of Object.entries(e.perTask)) {
      if (!t || (t.items !== undefined && !Array.isArray(t.items)))
        throw new EvomergeError('optimizer.bad_state', 'expected {value, se, items?}', {
          field: `${field}.perTask.${k}`,
        });
      out.perTask[k] = {
        value: decodeNumber(t.value),
        se: decodeNumber(t.se),
        ...(t.items ? { items: t.items.map(decodeNumber) } : {}),
        ...(t.weight !== undefined ? { weight: t.weight } : {}),
      };
    }
  }
  if (e.fidelity) out.fidelity = { items: e.fidelity.items, of: e.fidelity.of };
  if (e.failure) out.failure = { code: e.failure.code };
  return out;
}

/** Failed values (NaN, -Inf) all count as -Infinity: worse than any success, tied with each other. */
function rankKey(v: number): number {
  return Number.isNaN(v) ? -Infinity : v;
}

function copySolution(s: Solution): Solution {
  return { x: s.x.slice(), c: s.c.slice() };
}

function sameSolution(a: Solution, b: Solution): boolean {
  if (a.x.length !== b.x.length || a.c.length !== b.c.length) return false;
  for (let i = 0; i < a.x.length; i++) if (a.x[i] !== b.x[i]) return false;
  for (let i = 0; i < a.c.length; i++) if (a.c[i] !== b.c[i]) return false;
  return true;
}

/**
 * Base class: owns the domain, λ, RNG, generation counter and open generation; subclasses implement
 * `sample` (one new solution from the current distribution) and `update` (learn from a ranked generation).
 */
export abstract class GenerationalOptimizer implements Optimizer {
  abstract readonly name: OptimizerKind;
  protected readonly domain: SearchDomain;
  readonly populationSize: number;
  protected readonly rng: Rng;
  private g: number;
  private asks: number;
  private tells: number;
  private asked: Solution[];
  private values: (number | undefined)[];
  private details: (TellDetail | undefined)[];

  protected constructor(domain: SearchDomain, populationSize: number, rng: Rng, restored?: OptimizerState) {
    this.domain = domain;
    this.populationSize = populationSize;
    this.rng = rng;
    this.g = 0;
    this.asks = 0;
    this.tells = 0;
    this.asked = [];
    this.values = [];
    this.details = [];
    if (restored) {
      if (!Number.isInteger(restored.generation) || restored.generation < 0) {
        throw new EvomergeError('optimizer.bad_state', 'must be a non-negative integer', { field: 'generation' });
      }
      const open = restored.open;
      if (
        !open ||
        !Array.isArray(open.asked) ||
        !Array.isArray(open.values) ||
        open.asked.length !== open.values.length
      ) {
        throw new EvomergeError('optimizer.bad_state', 'asked and values must be arrays of equal length', {
          field: 'open',
        });
      }
      this.g = restored.generation;
      for (const key of ['askCount', 'tellCount'] as const) {
        const v = restored[key];
        if (!Number.isInteger(v) || v < 0) {
          throw new EvomergeError('optimizer.bad_state', 'must be a non-negative integer', { field: key });
        }
      }
      this.asks = restored.askCount;
      this.tells = restored.tellCount;
      this.asked = open.asked.map(copySolution);
      this.values = open.values.map((v) => (v === null ? undefined : decodeNumber(v)));
      if (open.details !== undefined && (!Array.isArray(open.details) || open.details.length !== open.asked.length))
        throw new EvomergeError('optimizer.bad_state', 'details must be an array as long as asked', {
          field: 'open.details',
        });
      this.details = (open.details ?? open.asked.map(() => null)).map((d, i) =>
        d === null ? undefined : decodeDetail(d, `open.details[${i}]`),
      );
    }
  }

  /** Restores the base fields shared by all kinds; subclasses validate `algorithm`. */
  protected static checkState(state: OptimizerState, kind: OptimizerKind): void {
    if (state.kind !== kind) {
      throw new EvomergeError('optimizer.bad_state', `expected "${kind}", got "${state.kind}"`, { field: 'kind' });
    }
    if (!Number.isInteger(state.populationSize) || state.populationSize < 1) {
      throw new EvomergeError('optimizer.bad_state', 'must be a positive integer', { field: 'populationSize' });
    }
  }

  get generation(): number {
    return this.g;
  }

  get exhausted(): boolean {
    return this.pointsLeft() <= 0;
  }

  get remainingAsks(): number {
    return Math.min(this.populationSize - this.asked.length, this.pointsLeft());
  }

  /** How many distinct solutions are left to ask over the whole run (a grid's unvisited points). */
  protected pointsLeft(): number {
    return Infinity;
  }

  get pendingTells(): number {
    return this.values.filter((v) => v === undefined).length;
  }

  get askCount(): number {
    return this.asks;
  }

  get tellCount(): number {
    return this.tells;
  }

  pending(): Solution[] {
    return this.asked.filter((_, i) => this.values[i] === undefined).map(copySolution);
  }

  ask(): Solution {
    if (this.exhausted) {
      throw new EvomergeError('optimizer.exhausted', `every point of the ${this.name} has been asked`, {
        field: 'ask',
      });
    }
    if (this.asked.length >= this.populationSize) {
      throw new EvomergeError(
        'optimizer.generation_full',
        `all ${this.populationSize} solutions of generation ${this.g} are asked; tell their values first`,
        { field: 'ask' },
      );
    }
    const s = this.sample();
    this.asked.push(copySolution(s));
    this.values.push(undefined);
    this.details.push(undefined);
    this.asks += 1;
    return s;
  }

  tell(results: readonly TellResult[]): void {
    // Validate everything before changing anything, so a bad call leaves the optimiser as it was.
    const assigned = new Map<number, number>();
    const told = new Map<number, TellResult>();
    results.forEach((r, k) => {
      if (!r || !r.solution || typeof r.value !== 'number') {
        throw new EvomergeError('optimizer.bad_tell', 'expected {solution, value: number}', {
          field: `results[${k}]`,
        });
      }
      let found = -1;
      for (let i = 0; i < this.asked.length; i++) {
        if (this.values[i] === undefined && !assigned.has(i) && sameSolution(this.asked[i], r.solution)) {
          found = i;
          break;
        }
      }
      if (found < 0) {
        throw new EvomergeError(
          'optimizer.unknown_solution',
          `not an untold solution of generation ${this.g} (asked ${this.asked.length}, pending ${this.pendingTells})`,
          { field: `results[${k}].solution` },
        );
      }
      assigned.set(found, r.value);
      told.set(found, r);
    });
    for (const [i, v] of assigned) {
      this.values[i] = v;
      this.details[i] = copyDetail(told.get(i)!);
    }
    this.tells += assigned.size;

    const complete =
      this.asked.length > 0 &&
      this.values.every((v) => v !== undefined) &&
      (this.asked.length === this.populationSize || this.exhausted);
    if (!complete) return;

    // Rank best first; ties (including all failures) keep ask order.
    const order = this.asked.map((_, i) => i);
    order.sort((a, b) => {
      const va = rankKey(this.values[a]!);
      const vb = rankKey(this.values[b]!);
      return va === vb ? a - b : vb - va;
    });
    const solutions = order.map((i) => this.asked[i]);
    const values = order.map((i) => this.values[i]!);
    const details = order.map((i) => this.details[i]);
    this.update({ solutions, values, details, askOrder: order });
    this.g += 1;
    this.asked = [];
    this.values = [];
    this.details = [];
  }

  state(): OptimizerState {
    invariant(this.asked.length === this.values.length, 'open generation out of step');
    return {
      kind: this.name,
      version: 1,
      domain: JSON.parse(JSON.stringify(this.domain)) as SearchDomain,
      populationSize: this.populationSize,
      generation: this.g,
      askCount: this.asks,
      tellCount: this.tells,
      rng: this.rng.state(),
      open: {
        asked: this.asked.map(copySolution),
        values: this.values.map((v) => (v === undefined ? null : encodeNumber(v))),
        // only when something beside a value was told: the state of a value-only optimiser is as it always was
        ...(this.details.some((d) => d !== undefined)
          ? { details: this.details.map((d) => (d === undefined ? null : encodeDetail(d))) }
          : {}),
      },
      algorithm: this.algorithmState(),
    };
  }

  /** Draw one solution from the current distribution (x within bounds, c valid indices). */
  protected abstract sample(): Solution;
  /** Learn from one complete generation. Called with at least one solution. */
  protected abstract update(ranked: RankedGeneration): void;
  /** Kind-specific JSON state (finite numbers only). */
  protected abstract algorithmState(): Record<string, unknown>;
}

/** Reads a finite number array of a given length from restored state, or throws `optimizer.bad_state`. */
export function readVector(algorithm: Record<string, unknown>, key: string, length: number): number[] {
  const v = algorithm[key];
  if (!Array.isArray(v) || v.length !== length || !v.every((e) => typeof e === 'number' && Number.isFinite(e))) {
    throw new EvomergeError('optimizer.bad_state', `expected ${length} finite numbers`, { field: `algorithm.${key}` });
  }
  return v.slice() as number[];
}

/** Reads a finite number from restored state, or throws `optimizer.bad_state`. */
export function readScalar(algorithm: Record<string, unknown>, key: string): number {
  const v = algorithm[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new EvomergeError('optimizer.bad_state', 'expected a finite number', { field: `algorithm.${key}` });
  }
  return v;
}
