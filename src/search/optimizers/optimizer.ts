// The optimiser contract (ask / tell / state), what every optimiser checks of its domain, and the default λ.
// Optimisers never see the objective, merge or eval: the caller evaluates, persists and handles failures.
// factory.ts builds or restores one by name.

import { EvomergeError } from '../../errors.ts';

/** A number as JSON can hold it: finite numbers as themselves, NaN and ±Infinity as strings. */
export type EncodedNumber = number | 'nan' | 'inf' | '-inf';

/** One point of the search domain. */
export interface Solution {
  /** Continuous genes, in domain order, each within [lower, upper]. */
  x: number[];
  /** Categorical genes, in domain order: the index of the chosen entry of `choices`. */
  c: number[];
}

/** One objective term's result on the fit split: its score, SE and (optionally) per-item pseudo-values. */
export interface TaskResult {
  value: number;
  /** NaN when unknown. */
  se: number;
  /** Per-item pseudo-values (their mean is `value`) on the items scored, in one seeded order shared by every
   *  candidate of the campaign, so two candidates' vectors compare item by item. */
  items?: Float64Array | readonly number[];
  /** The objective term's weight (a negative weight: lower is better). */
  weight?: number;
}

/**
 * One evaluated solution. `value` is MAXIMISED; NaN or -Infinity marks a failed candidate (ranked last).
 * The other fields are optional and only for optimisers that read them (docs/design/optimiser-feedback.md);
 * CMA-ES, random and grid read `value` alone.
 */
export interface TellResult {
  solution: Solution;
  value: number;
  /** Fit split only: val and test never reach an optimiser. Keyed `task/metric` as the objective's terms name
   *  them (the metric defaults to the task's own). Absent for a failed candidate. */
  perTask?: Record<string, TaskResult>;
  /** Successive halving: the items (summed over the terms' tasks) the candidate reached, of the whole fit set. */
  fidelity?: { items: number; of: number };
  /** A failed candidate's error code (value is −∞). */
  failure?: { code: string };
}

/** The genes the optimiser searches over. Names are carried for messages and state only. */
export interface SearchDomain {
  continuous: { name: string; lower: number; upper: number }[];
  categorical: { name: string; choices: string[] }[];
}

/** Every optimiser kind: the one list that the factory and the search-space parser read. */
export const optimizerKinds = ['cmaes', 'random', 'grid', 'm2n2', 'nsga2'] as const;
export type OptimizerKind = (typeof optimizerKinds)[number];

export function isOptimizerKind(name: string): name is OptimizerKind {
  return (optimizerKinds as readonly string[]).includes(name);
}

/**
 * Generation-based ask/tell optimiser.
 *
 * Protocol: each generation, `ask()` up to `remainingAsks` times (= `populationSize` at the start of a
 * generation), then `tell` the values of those solutions, in any order and in as many calls as you like
 * (one per finished candidate is fine). When every asked solution of the generation has been told, the
 * distribution is updated and `generation` increases by one. The update depends only on the set of
 * (solution, value) pairs, never on the order they were told in, so a pipelined loop stays deterministic.
 * A solution told twice in one generation must have been asked twice (identical asks are matched in turn).
 *
 * Resume: save `JSON.stringify(state())` after every tell, in the same transaction as the candidate that
 * was told; on restart `restoreOptimizer(JSON.parse(saved))`, evaluate `pending()` (asked before the save,
 * not yet told) and go on asking: asks after the save are re-asked identically (the RNG is in the state).
 *
 * @example
 * const opt = createOptimizer('cmaes', domain, { seed: 1 });
 * while (!opt.exhausted && opt.tellCount < budget) {
 *   const batch = Array.from({ length: opt.remainingAsks }, () => opt.ask());
 *   for (const solution of batch) {
 *     opt.tell([{ solution, value: evaluate(solution) }]); // NaN or -Infinity for a failed candidate
 *     saveState(opt.generation, opt.tellCount, JSON.stringify(opt.state()));
 *   }
 * }
 */
export interface Optimizer {
  readonly name: OptimizerKind;
  /** Sample the next solution of the current generation. Throws `optimizer.generation_full` when
   *  `remainingAsks` is 0 and `optimizer.exhausted` when the grid is used up. Returns a fresh object. */
  ask(): Solution;
  /** Report values for solutions asked in the current generation. The input is not mutated. Throws
   *  `optimizer.unknown_solution` for a solution that was not asked (or was already told) this generation. */
  tell(results: readonly TellResult[]): void;
  /** Number of completed updates (0 before the first full tell). */
  readonly generation: number;
  /** Solutions per generation (λ). */
  readonly populationSize: number;
  /** How many more `ask()` calls the current generation accepts (0 once full or exhausted). */
  readonly remainingAsks: number;
  /** Solutions asked but not yet told in the current generation. */
  readonly pendingTells: number;
  /** Copies of the solutions asked but not yet told, in ask order (after a restore: what to evaluate). */
  pending(): Solution[];
  /** Solutions asked since creation (restores included): the next ask's 0-based ordinal. */
  readonly askCount: number;
  /** Results told since creation (restores included). */
  readonly tellCount: number;
  /** True only for a grid whose every point has been asked; `ask()` then throws. */
  readonly exhausted: boolean;
  /** JSON-serialisable snapshot, RNG included: `restoreOptimizer(state())` continues bit-identically. */
  state(): OptimizerState;
  /** True when `tell` reads `perTask[…].items`: the caller then keeps the per-item fit values, so that a resumed
   *  campaign tells the same items as an uninterrupted one. Absent: the optimiser reads `value` alone. */
  readonly readsItems?: boolean;
}

/** Serialised optimiser: plain JSON (no NaN/Infinity numbers: those are encoded as strings). */
export interface OptimizerState {
  kind: OptimizerKind;
  version: 1;
  domain: SearchDomain;
  populationSize: number;
  generation: number;
  askCount: number;
  tellCount: number;
  /** xoshiro128** words. */
  rng: number[];
  /** The open generation: what was asked, and the values told so far (null = not yet told). */
  open: {
    asked: Solution[];
    values: (EncodedNumber | null)[];
    /** What was told beside each value (TellResult's optional fields); present only when something was. */
    details?: (EncodedTellDetail | null)[];
  };
  /** Kind-specific distribution state (CMA-ES mean/σ/C/paths and categorical θ; grid permutation; …). */
  algorithm: Record<string, unknown>;
}

/** TellResult's optional fields as plain JSON (NaN and ±Infinity encoded as strings). */
export interface EncodedTellDetail {
  perTask?: Record<string, { value: EncodedNumber; se: EncodedNumber; items?: EncodedNumber[]; weight?: number }>;
  fidelity?: { items: number; of: number };
  failure?: { code: string };
}

export interface OptimizerOptions {
  /** Seeds the optimiser's RNG. Same seed and domain → same asks. */
  seed: number;
  /** λ; default 4 + ⌊3 ln n⌋ with n the number of genes, continuous plus categorical (Hansen 2016 eq. 48). */
  populationSize?: number;
  /** CMA-ES σ0 as a fraction of each range; default 1/6 (Sakana's evolutionary model merge, mergekit-evolve). */
  sigma0Fraction?: number;
  /** CMA-ES initial mean in domain units; default the centre of each range. */
  x0?: number[];
  /** Grid: points per continuous gene, endpoints included; default 5. */
  gridPoints?: number;
  /** M2N2: points to evaluate first (the sources and reference merges as genomes); others ignore them. */
  seeds?: readonly Solution[];
  /** M2N2: genomes kept in the archive; default 20 (Sakana's natural_niches pop_size). */
  archiveSize?: number;
  /** M2N2: the competition exponent of shared fitness, share = score / total^alpha; default 1. */
  alpha?: number;
  /** M2N2: Gaussian mutation SD as a fraction of each gene's range (and the chance to redraw a categorical gene);
   *  default 0.01. */
  mutation?: number;
  /** nsga2: the `perTask` keys that are objectives (maximised, each ranked by value − lcbZ·se) and those that are
   *  constraints (value ≥ floor); without it, `value` is the one objective. */
  multiObjective?: MultiObjective;
}

/** What a multi-objective optimiser reads of a tell's `perTask` (nsga-ii.ts). */
export interface MultiObjective {
  readonly objectives: readonly string[];
  readonly constraints?: readonly { readonly key: string; readonly floor: number }[];
  readonly lcbZ?: number;
}

/** Default λ = 4 + ⌊3 ln n⌋ (Hansen 2016, eq. 48), n = number of genes (at least 1). */
export function defaultPopulationSize(domain: SearchDomain): number {
  const n = Math.max(1, domain.continuous.length + domain.categorical.length);
  return 4 + Math.floor(3 * Math.log(n));
}

/** Checks the domain's shape: finite lower < upper, at least one choice per categorical gene, ≥ 1 gene. */
export function validateDomain(domain: SearchDomain): void {
  if (!domain || !Array.isArray(domain.continuous) || !Array.isArray(domain.categorical)) {
    throw new EvomergeError('optimizer.bad_domain', 'expected {continuous: [...], categorical: [...]}', {
      field: 'domain',
    });
  }
  if (domain.continuous.length + domain.categorical.length === 0) {
    throw new EvomergeError('optimizer.bad_domain', 'the search domain has no genes', { field: 'domain' });
  }
  domain.continuous.forEach((g, i) => {
    const field = `domain.continuous[${i}]${g && g.name ? ` (${g.name})` : ''}`;
    if (!g || !Number.isFinite(g.lower) || !Number.isFinite(g.upper) || !(g.lower < g.upper)) {
      throw new EvomergeError('optimizer.bad_domain', `needs finite lower < upper, got [${g?.lower}, ${g?.upper}]`, {
        field,
      });
    }
  });
  domain.categorical.forEach((g, i) => {
    const field = `domain.categorical[${i}]${g && g.name ? ` (${g.name})` : ''}`;
    if (!g || !Array.isArray(g.choices) || g.choices.length === 0) {
      throw new EvomergeError('optimizer.bad_domain', 'needs at least one choice', { field });
    }
  });
}
