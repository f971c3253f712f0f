// Grid search: gridPoints evenly spaced values per continuous gene (endpoints included) × every choice of
// every categorical gene, visited once each in a seeded scrambled order; then the optimiser is exhausted.

import { EvomergeError } from '../../errors.ts';
import { GenerationalOptimizer, readScalar } from './generation.ts';
import type { OptimizerOptions, OptimizerState, SearchDomain, Solution } from './optimizer.ts';
import { Rng } from './rng.ts';

/** Grids larger than this are refused: grid search is for small domains (use random or cmaes beyond). */
export const MAX_GRID_POINTS = 2 ** 24;
const DEFAULT_GRID_POINTS = 5;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Order: point k (k = 0, 1, …, N−1) is grid index (a·k + b) mod N with gcd(a, N) = 1 — an affine bijection
 * of [0, N), so every point comes exactly once, and a budget smaller than N samples the whole grid rather
 * than the first few values of the last gene (which lexicographic order would). a, b come from the seed.
 * After N asks `exhausted` is true and `ask()` throws `optimizer.exhausted`; the last generation may then
 * hold fewer than λ solutions and closes when all of them are told.
 */
export class GridOptimizer extends GenerationalOptimizer {
  readonly name = 'grid' as const;
  private readonly points: number;
  private readonly size: number;
  private readonly a: number;
  private readonly b: number;
  private next: number;

  private constructor(
    domain: SearchDomain,
    lambda: number,
    rng: Rng,
    g: { points: number; a: number; b: number; next: number },
    restored?: OptimizerState,
  ) {
    super(domain, lambda, rng, restored);
    this.points = g.points;
    this.size = gridSize(domain, g.points);
    this.a = g.a;
    this.b = g.b;
    this.next = g.next;
    if (!(
      gcd(this.a, this.size) === 1 &&
      this.b >= 0 &&
      this.b < this.size &&
      this.next >= 0 &&
      this.next <= this.size
    )) {
      throw new EvomergeError('optimizer.bad_state', 'grid permutation does not fit the domain', {
        field: 'algorithm',
      });
    }
  }

  static create(domain: SearchDomain, lambda: number, opts: OptimizerOptions): GridOptimizer {
    const points = opts.gridPoints ?? DEFAULT_GRID_POINTS;
    if (!Number.isInteger(points) || points < 1) {
      throw new EvomergeError('optimizer.bad_option', `must be an integer ≥ 1, got ${points}`, { field: 'gridPoints' });
    }
    const size = gridSize(domain, points);
    const rng = Rng.fromSeed(opts.seed);
    let a = size === 1 ? 1 : 1 + rng.int(size - 1);
    while (gcd(a, size) !== 1) a = (a % (size - 1)) + 1;
    const b = rng.int(size);
    return new GridOptimizer(domain, lambda, rng, { points, a, b, next: 0 });
  }

  static restore(state: OptimizerState): GridOptimizer {
    GenerationalOptimizer.checkState(state, 'grid');
    const al = state.algorithm ?? {};
    const g = {
      points: readScalar(al, 'gridPoints'),
      a: readScalar(al, 'multiplier'),
      b: readScalar(al, 'offset'),
      next: readScalar(al, 'next'),
    };
    return new GridOptimizer(state.domain, state.populationSize, Rng.fromState(state.rng), g, state);
  }

  /** Number of grid points N. */
  get gridSize(): number {
    return this.size;
  }

  protected override pointsLeft(): number {
    return this.size - this.next;
  }

  protected sample(): Solution {
    let idx = (this.a * this.next + this.b) % this.size; // a, next < 2^24: the product is exact
    this.next += 1;
    // Mixed-radix digits: continuous genes first (radix gridPoints), then categoricals (radix K_i).
    const x = this.domain.continuous.map((g) => {
      const digit = idx % this.points;
      idx = Math.floor(idx / this.points);
      if (this.points === 1) return (g.lower + g.upper) / 2;
      return digit === this.points - 1 ? g.upper : g.lower + (digit * (g.upper - g.lower)) / (this.points - 1);
    });
    const c = this.domain.categorical.map((g) => {
      const digit = idx % g.choices.length;
      idx = Math.floor(idx / g.choices.length);
      return digit;
    });
    return { x, c };
  }

  protected update(): void {
    // The grid is fixed in advance.
  }

  protected algorithmState(): Record<string, unknown> {
    return { gridPoints: this.points, multiplier: this.a, offset: this.b, next: this.next };
  }
}

function gridSize(domain: SearchDomain, points: number): number {
  let size = points ** domain.continuous.length;
  for (const g of domain.categorical) size *= g.choices.length;
  if (!(size <= MAX_GRID_POINTS)) {
    throw new EvomergeError(
      'optimizer.grid_too_large',
      `${points}^${domain.continuous.length} continuous × categorical choices = ${size} points exceeds ${MAX_GRID_POINTS}; ` +
        'lower gridPoints or use the random or cmaes optimizer',
      { field: 'gridPoints' },
    );
  }
  return size;
}
