// Random search: every continuous gene uniform in [lower, upper], every categorical gene uniform over its
// choices, independent of past results. The baseline every CMA-ES claim is measured against.

import { GenerationalOptimizer } from './generation.ts';
import type { OptimizerOptions, OptimizerState, SearchDomain, Solution } from './optimizer.ts';
import { Rng } from './rng.ts';

export class RandomOptimizer extends GenerationalOptimizer {
  readonly name = 'random' as const;

  static create(domain: SearchDomain, populationSize: number, opts: OptimizerOptions): RandomOptimizer {
    return new RandomOptimizer(domain, populationSize, Rng.fromSeed(opts.seed));
  }

  static restore(state: OptimizerState): RandomOptimizer {
    GenerationalOptimizer.checkState(state, 'random');
    return new RandomOptimizer(state.domain, state.populationSize, Rng.fromState(state.rng), state);
  }

  protected sample(): Solution {
    const x = this.domain.continuous.map((g) => {
      const v = g.lower + this.rng.uniform() * (g.upper - g.lower);
      return Math.min(g.upper, Math.max(g.lower, v));
    });
    const c = this.domain.categorical.map((g) => this.rng.int(g.choices.length));
    return { x, c };
  }

  protected update(): void {
    // Random search learns nothing.
  }

  protected algorithmState(): Record<string, unknown> {
    return {};
  }
}
