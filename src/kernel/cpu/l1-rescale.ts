// The L1-norm rescale of a sparsified task vector (mergekit sparsify.py rescaled_masked_tensor, RescaleNorm.l1).

/**
 * The L1 rescale factor ‖τ‖₁ / ‖trim τ‖₁ as float32 (mergekit sparsify.py rescaled_masked_tensor: skipped,
 * i.e. 1, when either norm is below 1e-7). Sums are accumulated in float64 and rounded once (torch sums
 * float32 with cascaded accumulators; the difference is below 1e-7 relative).
 */
export function l1Ratio(before: number, after: number): number {
  const b32 = Math.fround(before);
  const a32 = Math.fround(after);
  if (b32 < 1e-7 || a32 < 1e-7) return 1;
  return Math.fround(b32 / a32);
}
