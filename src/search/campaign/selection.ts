// The final pick: which recorded candidate a campaign hands over (what `export best` takes and the report calls
// best). With small fit sets and hundreds of candidates, the best fit score is partly selected noise (the
// winner's curse), so the pick is made on a third split the optimiser never saw: the top-k kept candidates by
// fit are scored on `val`, and the best of them there is the pick. Ranking may use the lower confidence bound
// value − z·SE, which prefers a well-measured score to a lucky one. Test stays untouched until the end.
import { EvomergeError } from '../../errors.ts';
import type { ObjectiveValue } from '../../gates/objective.ts';

export interface Selection {
  /** Share of each task's fit items held out as val, for tasks whose suite entry has no `val` file. */
  readonly valFraction: number;
  /** Kept candidates (best by fit first) scored on val; the pick is the best of them on val. 0: pick by fit. */
  readonly topK: number;
  /** Rank by value − z·SE (the values told to the optimiser, the top-k by fit, the val pick); 0: plain values. */
  readonly lcbZ: number;
  /** Successive halving over fit items within each generation (fidelity.ts). */
  readonly halving?: { readonly minItems: number; readonly eta: number };
}

const KEYS = ['val_fraction', 'top_k', 'lcb_z', 'halving'];

/** Parses a space's `selection:` block; every fault names the file and the key. */
export function parseSelection(raw: unknown, file: string): Selection {
  const fail = (field: string, what: string, code = 'space.bad_value'): never => {
    throw new EvomergeError(code, what, { file, field });
  };
  const obj = (v: unknown, field: string): Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : fail(field, 'expected a mapping');
  const doc = obj(raw, 'selection');
  for (const k of Object.keys(doc))
    if (!KEYS.includes(k))
      fail(`selection.${k}`, `unknown key; expected one of: ${KEYS.join(', ')}`, 'space.unknown_key');
  const num = (v: unknown, field: string, ok: (x: number) => boolean, what: string): number =>
    typeof v === 'number' && Number.isFinite(v) && ok(v)
      ? v
      : fail(field, `expected ${what}, got ${JSON.stringify(v)}`);
  const valFraction =
    doc.val_fraction === undefined
      ? 0.3
      : num(doc.val_fraction, 'selection.val_fraction', (x) => x > 0 && x < 1, 'a number between 0 and 1 (exclusive)');
  const topK =
    doc.top_k === undefined
      ? 8
      : num(doc.top_k, 'selection.top_k', (x) => Number.isInteger(x) && x >= 0, 'an integer ≥ 0');
  const lcbZ = doc.lcb_z === undefined ? 0 : num(doc.lcb_z, 'selection.lcb_z', (x) => x >= 0, 'a number ≥ 0');
  let halving: Selection['halving'];
  if (doc.halving !== undefined) {
    const h = obj(doc.halving, 'selection.halving');
    for (const k of Object.keys(h))
      if (k !== 'min_items' && k !== 'eta')
        fail(`selection.halving.${k}`, 'unknown key; expected one of: min_items, eta', 'space.unknown_key');
    halving = {
      minItems: num(h.min_items, 'selection.halving.min_items', (x) => Number.isInteger(x) && x >= 2, 'an integer ≥ 2'),
      eta: h.eta === undefined ? 3 : num(h.eta, 'selection.halving.eta', (x) => x > 1, 'a number > 1'),
    };
  }
  return { valFraction, topK, lcbZ, ...(halving ? { halving } : {}) };
}

/** What ranking uses: the value, or its lower confidence bound value − z·SE (an unknown SE counts as 0). */
export function rankValue(e: ObjectiveValue, z: number): number {
  if (!Number.isFinite(e.value)) return -Infinity;
  return z > 0 && Number.isFinite(e.se) ? e.value - z * e.se : e.value;
}

/** A candidate as the pick sees it: its number and its estimates on fit and (once scored) val. */
export interface PickEntry {
  readonly ordinal: number;
  readonly fit: ObjectiveValue;
  readonly val?: ObjectiveValue;
}

/** The k best by fit rank value (ties: lower ordinal), the candidates worth scoring on val. */
export function topByFit<T extends PickEntry>(entries: readonly T[], k: number, z: number): T[] {
  return [...entries].sort((a, b) => rankValue(b.fit, z) - rankValue(a.fit, z) || a.ordinal - b.ordinal).slice(0, k);
}

/**
 * The final pick among entries: with val estimates, the best val rank value (ties: the better fit rank value,
 * then the lower ordinal); without, the best fit rank value. Undefined for no entries.
 */
export function finalPick<T extends PickEntry>(entries: readonly T[], z: number): T | undefined {
  const withVal = entries.filter((e) => e.val);
  if (withVal.length === 0) return topByFit(entries, 1, z)[0];
  return [...withVal].sort(
    (a, b) =>
      rankValue(b.val!, z) - rankValue(a.val!, z) || rankValue(b.fit, z) - rankValue(a.fit, z) || a.ordinal - b.ordinal,
  )[0];
}

/** A reference merge (the space's `references:`) as the pick sees it: its name, its estimates on fit and (once
 *  scored) val, and the gates it fails on fit, judged as a search candidate's are. */
export interface ReferenceEntry {
  readonly label: string;
  readonly fit: ObjectiveValue;
  readonly val?: ObjectiveValue;
  readonly failedGates: readonly string[];
}

/** The outcome of `neverWorseThanNaive`: what is handed over, and what was compared. */
export interface NaiveCheck<T extends PickEntry, R extends ReferenceEntry> {
  /** The pick: the searched candidate, or the best reference when no searched candidate beat it. */
  readonly pick: T | R | undefined;
  readonly searched?: T;
  /** The best reference that clears every gate (rank value on the split; ties: better fit, then space order). */
  readonly reference?: R;
  readonly byReference: boolean;
}

/**
 * Never worse than naive: the reference merges take part in the final pick like any kept candidate. On `split`
 * (val when the pick is made on val, else fit), the searched pick is handed over only if its rank value (the
 * lower confidence bound value − z·SE, with the space's lcb_z) is strictly greater than that of the best
 * reference that clears every gate; otherwise (ties included: a one-line recipe needs no search) that reference
 * is the pick. A reference that fails a gate, or has no finite estimate on the split, cannot be picked.
 */
export function neverWorseThanNaive<T extends PickEntry, R extends ReferenceEntry>(
  searched: T | undefined,
  references: readonly R[],
  z: number,
  split: 'fit' | 'val',
): NaiveCheck<T, R> {
  const on = (e: PickEntry | ReferenceEntry) => (split === 'val' ? e.val : e.fit);
  const rank = (e: PickEntry | ReferenceEntry) => {
    const v = on(e);
    return v ? rankValue(v, z) : -Infinity;
  };
  const eligible = references
    .map((r, i) => ({ r, i }))
    .filter(({ r }) => r.failedGates.length === 0 && Number.isFinite(rank(r)));
  const best = eligible.sort(
    (a, b) => rank(b.r) - rank(a.r) || rankValue(b.r.fit, z) - rankValue(a.r.fit, z) || a.i - b.i,
  )[0]?.r;
  const byReference = best !== undefined && (searched === undefined || !(rank(searched) > rank(best)));
  return {
    pick: byReference ? best : searched,
    ...(searched ? { searched } : {}),
    ...(best ? { reference: best } : {}),
    byReference,
  };
}
