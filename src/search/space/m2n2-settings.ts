// The `m2n2:` block of a search space: the settings of the M2N2 optimiser (optimizer: m2n2), parsed at the door.
// Every key is optional; a block under another optimizer is refused (it would be silently ignored).
import { EvomergeError } from '../../errors.ts';
import type { OptimizerKind } from '../optimizers/optimizer.ts';

export interface M2n2Settings {
  /** Genomes kept in the archive (default 20). */
  readonly archiveSize?: number;
  /** Competition exponent of shared fitness: share = score / total^alpha (default 1). */
  readonly alpha?: number;
  /** Gaussian mutation SD as a fraction of each gene's range, and the chance to redraw the method (default 0.01). */
  readonly mutation?: number;
}

const KEYS = ['archive_size', 'alpha', 'mutation'];

/** Parses `m2n2: {archive_size, alpha, mutation}`; every fault names the file and the key. */
export function parseM2n2Settings(raw: unknown, file: string, optimizer: OptimizerKind): M2n2Settings {
  const fail = (field: string, what: string, code = 'space.bad_value'): never => {
    throw new EvomergeError(code, what, { file, field });
  };
  if (optimizer !== 'm2n2') fail('m2n2', `only read by optimizer: m2n2 (this space's optimizer is ${optimizer})`);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('m2n2', 'expected a mapping');
  const doc = raw as Record<string, unknown>;
  for (const k of Object.keys(doc))
    if (!KEYS.includes(k)) fail(`m2n2.${k}`, `unknown key; expected one of: ${KEYS.join(', ')}`, 'space.unknown_key');
  const num = (k: string, ok: (x: number) => boolean, what: string): number | undefined => {
    const v = doc[k];
    if (v === undefined) return undefined;
    return typeof v === 'number' && Number.isFinite(v) && ok(v)
      ? v
      : fail(`m2n2.${k}`, `expected ${what}, got ${JSON.stringify(v)}`);
  };
  const archiveSize = num('archive_size', (x) => Number.isInteger(x) && x >= 2, 'an integer ≥ 2');
  const alpha = num('alpha', (x) => x >= 0, 'a number ≥ 0');
  const mutation = num('mutation', (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
  return {
    ...(archiveSize !== undefined ? { archiveSize } : {}),
    ...(alpha !== undefined ? { alpha } : {}),
    ...(mutation !== undefined ? { mutation } : {}),
  };
}
