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

/**
 * ‖τ‖₁ and ‖τ ⊙ mask‖₁ of τ = fround(x − base) for a bitset mask, in float64 with a fixed order that the SIMD
 * loop (wasm-dare.ts masked_l1) reproduces exactly: element e goes to lane accumulator e & 3, and the lanes
 * are combined as (a₀ + a₁) + (a₂ + a₃).
 */
export function maskedL1(x: Float32Array, base: Float32Array, mask: Uint32Array): { before: number; after: number } {
  const all = new Float64Array(4);
  const kept = new Float64Array(4);
  for (let e = 0; e < x.length; e++) {
    const a = Math.abs(Math.fround(x[e] - base[e]));
    all[e & 3] += a;
    if ((mask[e >>> 5] >>> (e & 31)) & 1) kept[e & 3] += a;
  }
  return { before: all[0] + all[1] + (all[2] + all[3]), after: kept[0] + kept[1] + (kept[2] + kept[3]) };
}
