// NearSwap (mergekit nearswap.py): take the other model's value where it is near the base, interpolate
// elsewhere. w = clamp(t / max(|base − other|, 1e-6), 0, 1); out = w·other + (1 − w)·base, float32 throughout.

const MIN_DIFF = Math.fround(1e-6);

/**
 * mergekit writes `t / absdiff.clamp(min=1e-6)`: a Python float divided by a tensor, which torch evaluates as
 * `absdiff.reciprocal() * t` (Tensor.__rtruediv__), two float32 roundings; we round the same way.
 */
export function nearswap(
  t: number,
  base: Float32Array,
  other: Float32Array,
  out: Float32Array = new Float32Array(base.length),
): Float32Array {
  const tf = Math.fround(t);
  for (let e = 0; e < base.length; e++) {
    const a = base[e]!;
    const b = other[e]!;
    const d = Math.abs(Math.fround(a - b));
    let w = Math.fround(Math.fround(1 / (d < MIN_DIFF ? MIN_DIFF : d)) * tf);
    w = w < 0 ? 0 : w > 1 ? 1 : w; // torch.clamp(min=0, max=1); a NaN stays NaN
    out[e] = Math.fround(w * b) + Math.fround(Math.fround(1 - w) * a);
  }
  return out;
}
