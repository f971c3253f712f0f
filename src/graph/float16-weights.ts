// float32 → float16 bytes for a float16 graph's weights: what the session builds in and what a weight file holds.
// No runtime here; the rounding itself is checkpoint/dtype.ts's.
import { encodeFromF32 } from '../checkpoint/dtype.ts';

/** The largest finite float16, ±65504. */
const F16_MAX_BITS = 0x7bff;

/**
 * float32 → float16 bytes for a float16 graph: round to nearest even, and a finite value beyond the float16
 * range (|x| ≥ 65520, bfloat16 reaches 3.4e38) saturates to ±65504 instead of becoming ±Inf, which would turn
 * every logit it touches into NaN; magnitudes below 2^-25 become ±0 (float16's subnormals end at 2^-24).
 */
export function toFloat16Saturated(data: Float32Array): Uint8Array {
  const out = encodeFromF32('F16', data);
  const halves = new Uint16Array(out.buffer, out.byteOffset, data.length);
  for (let i = 0; i < halves.length; i++) {
    if ((halves[i]! & 0x7fff) === 0x7c00 && Number.isFinite(data[i]!)) halves[i] = (halves[i]! & 0x8000) | F16_MAX_BITS;
  }
  return out;
}
