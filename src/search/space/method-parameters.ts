// Which genes a merge method reads, taken from the merge registry (merge/registry.ts), and the check that a
// space's methods and parameter ranges make sense for it. genome.ts decodes with this; campaign.ts validates.
import { EvomergeError } from '../../errors.ts';
import { MERGE_METHODS } from '../../merge/registry.ts';
import type { MethodParameters } from './genome.ts';
import type { SearchSpace } from './space.ts';

/** Per-model parameters become per-model genes; global ones are method-wide (one value per cell). */
export const registryMethodParameters: MethodParameters = (method) => {
  const def = MERGE_METHODS.find((m) => m.name === method);
  if (!def) return { perModel: [], methodWide: [] };
  return {
    perModel: def.parameters.filter((p) => p.scope === 'per_model').map((p) => p.name),
    methodWide: def.parameters.filter((p) => p.scope === 'global').map((p) => p.name),
  };
};

/** Methods a search may choose among: every registered method except passthrough (it merges nothing). */
const NOT_SEARCHABLE = new Set(['passthrough']);

/**
 * Refuses unknown or unsearchable methods, parameter ranges no chosen method reads (a typo such as
 * `densty`), ranges outside a parameter's bounds, and fixed parameters no method reads.
 */
export function checkSpaceMethods(space: SearchSpace): void {
  const file = space.file;
  const known = MERGE_METHODS.map((m) => m.name).filter((n) => !NOT_SEARCHABLE.has(n));
  const check = (name: string, field: string) => {
    if (NOT_SEARCHABLE.has(name))
      throw new EvomergeError(
        'space.unsearchable_method',
        `"${name}" copies tensors and has nothing to search; expected one of: ${known.join(', ')}`,
        { file, field },
      );
    if (!MERGE_METHODS.some((m) => m.name === name))
      throw new EvomergeError(
        'space.unknown_method',
        `unknown merge method "${name}"; expected one of: ${known.join(', ')}`,
        { file, field },
      );
  };
  space.genome.methods.forEach((m, i) => check(m, `genome.methods[${i}]`));
  space.references.forEach((r, i) => check(r.method, `references[${i}].method`));
  const defs = space.genome.methods.map((m) => MERGE_METHODS.find((d) => d.name === m)!);
  for (const [param, range] of Object.entries(space.genome.ranges)) {
    const readers = defs.map((d) => d.parameters.find((p) => p.name === param)).filter((p) => p !== undefined);
    const field = `genome.parameters.${param}`;
    if (readers.length === 0) {
      throw new EvomergeError(
        'space.unused_parameter',
        `no method of genome.methods (${space.genome.methods.join(', ')}) reads "${param}"`,
        { file, field },
      );
    }
    for (const p of readers) {
      if (p.type !== 'number')
        throw new EvomergeError('space.bad_value', `"${param}" is not numeric; put it under genome.fixed`, {
          file,
          field,
        });
      if (p.min !== undefined && range.min < p.min)
        throw new EvomergeError(
          'space.bad_value',
          `min ${range.min} is below the smallest allowed ${param}, ${p.min}`,
          { file, field },
        );
      if (p.max !== undefined && range.max > p.max)
        throw new EvomergeError('space.bad_value', `max ${range.max} is above the largest allowed ${param}, ${p.max}`, {
          file,
          field,
        });
    }
  }
  for (const key of Object.keys(space.genome.fixed)) {
    if (!defs.some((d) => d.parameters.some((p) => p.name === key && p.scope === 'global'))) {
      throw new EvomergeError(
        'space.unused_parameter',
        `no method of genome.methods (${space.genome.methods.join(', ')}) takes a method-wide "${key}"`,
        { file, field: `genome.fixed.${key}` },
      );
    }
  }
}
