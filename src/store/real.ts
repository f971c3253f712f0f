// Non-finite numbers in SQLite: NaN would silently become NULL, so a REAL column is paired with a type
// column ('finite' | 'inf' | '-inf' | 'nan'), as optuna's trial_values.value_type.

export type RealType = 'finite' | 'inf' | '-inf' | 'nan';

/** number → [REAL column, type column]. */
export function encodeReal(v: number): [number | null, RealType] {
  if (Number.isNaN(v)) return [null, 'nan'];
  if (v === Infinity) return [null, 'inf'];
  if (v === -Infinity) return [null, '-inf'];
  return [v, 'finite'];
}

/** [REAL column, type column] → number. */
export function decodeReal(value: number | null, type: RealType): number {
  switch (type) {
    case 'nan':
      return NaN;
    case 'inf':
      return Infinity;
    case '-inf':
      return -Infinity;
    default:
      return value as number;
  }
}
