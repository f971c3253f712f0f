// M2N2's starting points: the sources and the reference merges written as genomes of the space's own domain, so
// the archive starts from what a person would try first (the paper starts from the models being merged). A seed
// is a Solution like any other: it decodes, merges, records and exports like any candidate. Where the domain
// cannot express a source or reference exactly, the seed is the nearest point it can (see seedSolutions).
import type { OptimizerOptions, Solution } from '../optimizers/optimizer.ts';
import type { GenomeLayout } from './genome.ts';
import type { SearchSpace } from './space.ts';

/** What one seed sets: the method, and a value per (model or none, parameter). */
interface SeedSpec {
  readonly method: string;
  /** Per-model weight (by model name); models not named get 0. */
  readonly weights: (model: string) => number;
  readonly density?: number;
}

/**
 * The seeds of a parameter genome, in order: the base (every weight 0), each model alone (weight 1, others 0,
 * density 1), then each reference merge (its method, weight and density for every model). Nearest expressible
 * point, when the domain lacks it:
 * - a value outside a gene's range is clipped to the range (a weight range of [0.2, 1] makes the base 0.2 · Σ);
 * - a method the genome does not search becomes the genome's first method (a TIES reference in a task-arithmetic
 *   space is seeded as task arithmetic with the same weights: TIES's trimming and sign election are not genes);
 * - a gene with no natural value for a source (a method-wide gene such as slerp's t, a per-model gene other than
 *   weight and density, a reference's density when it names none) takes the middle of its range.
 * Each gene set is one value for every cell (layer group), as the sources and references have no per-layer
 * values. Duplicate seeds (after clipping) are asked once. A data-flow genome has no seeds (its own x0 serves).
 */
export function seedSolutions(layout: GenomeLayout): Solution[] {
  const { space, domain } = layout;
  if (space.dataFlow || layout.cells.length === 0) return [];
  const specs: SeedSpec[] = [];
  const first = space.genome.methods.includes('task_arithmetic') ? 'task_arithmetic' : space.genome.methods[0]!;
  specs.push({ method: first, weights: () => 0, density: 1 });
  for (const m of space.models) specs.push({ method: first, weights: (name) => (name === m.name ? 1 : 0), density: 1 });
  for (const r of space.references)
    specs.push({
      method: space.genome.methods.includes(r.method) ? r.method : space.genome.methods[0]!,
      weights: () => r.weight,
      ...(r.density !== undefined ? { density: r.density } : {}),
    });
  const out: Solution[] = [];
  for (const spec of specs) {
    const x = domain.continuous.map((g) => {
      const mid = (g.lower + g.upper) / 2;
      const model = space.models.find(
        (m) => g.name.endsWith(`.${m.name}.weight`) || g.name.endsWith(`.${m.name}.density`),
      );
      let v = mid;
      if (model && g.name.endsWith('.weight')) v = spec.weights(model.name);
      else if (model && g.name.endsWith('.density')) v = spec.density ?? mid;
      return Math.min(g.upper, Math.max(g.lower, v));
    });
    const c = domain.categorical.map((g) => Math.max(0, g.choices.indexOf(spec.method)));
    if (!out.some((s) => s.x.every((v, i) => v === x[i]) && s.c.every((v, i) => v === c[i]))) out.push({ x, c });
  }
  return out;
}

/** The options an optimiser kind takes from the space beyond the seed and λ: M2N2's seeds and settings. */
export function spaceOptimizerOptions(space: SearchSpace, layout: GenomeLayout): Partial<OptimizerOptions> {
  if (space.optimizer !== 'm2n2') return {};
  return { seeds: seedSolutions(layout), ...(space.m2n2 ?? {}) };
}
