// Builds an optimiser of a named kind, or restores one from its saved state: the one place that knows every
// optimiser class (the contract in optimizer.ts knows none of them).

import { EvomergeError } from '../../errors.ts';
import { CmaOptimizer } from './cma.ts';
import { GridOptimizer } from './grid.ts';
import { M2n2Optimizer } from './natural-niches.ts';
import { Nsga2Optimizer } from './nsga-ii.ts';
import {
  defaultPopulationSize,
  optimizerKinds,
  validateDomain,
  type Optimizer,
  type OptimizerKind,
  type OptimizerOptions,
  type OptimizerState,
  type SearchDomain,
} from './optimizer.ts';
import { RandomOptimizer } from './random.ts';

/** Build an optimiser of the named kind over `domain`. Bad domains or options throw `optimizer.*` errors. */
export function createOptimizer(kind: OptimizerKind, domain: SearchDomain, opts: OptimizerOptions): Optimizer {
  validateDomain(domain);
  const populationSize = opts.populationSize ?? defaultPopulationSize(domain);
  if (!Number.isInteger(populationSize) || populationSize < (kind === 'cmaes' ? 2 : 1)) {
    throw new EvomergeError(
      'optimizer.bad_option',
      `must be an integer ≥ ${kind === 'cmaes' ? 2 : 1}, got ${populationSize}`,
      { field: 'populationSize' },
    );
  }
  switch (kind) {
    case 'cmaes':
      return CmaOptimizer.create(domain, populationSize, opts);
    case 'random':
      return RandomOptimizer.create(domain, populationSize, opts);
    case 'grid':
      return GridOptimizer.create(domain, populationSize, opts);
    case 'm2n2':
      return M2n2Optimizer.create(domain, populationSize, opts);
    case 'nsga2':
      return Nsga2Optimizer.create(domain, populationSize, opts);
    default:
      throw new EvomergeError(
        'optimizer.unknown_kind',
        `unknown optimizer "${String(kind)}"; expected one of: ${optimizerKinds.join(', ')}`,
        { field: 'optimizer' },
      );
  }
}

/** Rebuild an optimiser from `state()` output (e.g. parsed from the store's optimizer_states.state_json). */
export function restoreOptimizer(state: OptimizerState): Optimizer {
  if (state === null || typeof state !== 'object' || state.version !== 1) {
    throw new EvomergeError('optimizer.bad_state', 'unsupported optimizer state (expected version 1)', {
      field: 'version',
    });
  }
  validateDomain(state.domain);
  switch (state.kind) {
    case 'cmaes':
      return CmaOptimizer.restore(state);
    case 'random':
      return RandomOptimizer.restore(state);
    case 'grid':
      return GridOptimizer.restore(state);
    case 'm2n2':
      return M2n2Optimizer.restore(state);
    case 'nsga2':
      return Nsga2Optimizer.restore(state);
    default:
      throw new EvomergeError(
        'optimizer.bad_state',
        `unknown optimizer "${String(state.kind)}"; expected one of: ${optimizerKinds.join(', ')}`,
        { field: 'kind' },
      );
  }
}
