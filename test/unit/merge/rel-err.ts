// The goldens' comparison measure, shared by the parity tests (shared/mergekit-goldens/check.py).

/** max|a−b| / max|b| over one tensor; a tensor of zeros compares by max|a−b|. */
export function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}
