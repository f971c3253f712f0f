// DARE's keep mask and L1 norms through the WebAssembly SIMD loops: the same bits as bernoulli-mask.ts and
// l1-rescale.ts maskedL1 (tests compare them), four elements per step.

import { keepThreshold, type RngKey } from '../../rng.ts';
import { newBitset } from '../bernoulli-mask.ts';
import type { SimdRuntime } from './simd-runtime.ts';

const WORDS = 4096;
const CHUNK = 4096;

/** bernoulliMask(key, modelIndex, n, density), four draws per SIMD step. */
export function bernoulliMaskSimd(
  rt: SimdRuntime,
  key: RngKey,
  modelIndex: number,
  n: number,
  density: number,
): Uint32Array {
  const mask = newBitset(n);
  const threshold = keepThreshold(density);
  if (threshold === 0) return mask;
  const x0 = (Math.imul(key.seedLo ^ key.tensorHash, 1664525) + 1013904223) | 0;
  const y0 = (Math.imul(key.seedHi, 1664525) + 1013904223) | 0;
  const z0 = (Math.imul(modelIndex >>> 0, 1664525) + 1013904223) | 0;
  const outOff = 64;
  rt.ensure(outOff + WORDS * 4);
  const { u32, fn } = rt;
  for (let w = 0; w < mask.length; w += WORDS) {
    const words = Math.min(WORDS, mask.length - w);
    fn.bernoulli_mask(outOff, words, w * 32, x0, y0, z0, threshold);
    mask.set(u32.subarray(outOff >> 2, (outOff >> 2) + words), w);
  }
  // Bits past n stay clear, as in the plain loop.
  if (n % 32 !== 0) mask[mask.length - 1] &= (1 << (n % 32)) - 1;
  return mask;
}

/** maskedL1(x, base, mask) of each item, with the same float64 lane order: base is copied in once per chunk. */
export function maskedL1ManySimd(
  rt: SimdRuntime,
  base: Float32Array,
  items: readonly { x: Float32Array; mask: Uint32Array }[],
): { before: number; after: number }[] {
  const n = base.length;
  const accOff = 64; // 8 float64 per item
  const bOff = accOff + 64 * items.length;
  const xOff = bOff + CHUNK * 4;
  const mOff = xOff + CHUNK * 4;
  rt.ensure(mOff + CHUNK / 8);
  const { f32, u32, f64, fn } = rt;
  f64.fill(0, accOff >> 3, bOff >> 3);
  const lanes = items.map((_, j) => ({
    all: f64.subarray((accOff >> 3) + 8 * j, (accOff >> 3) + 8 * j + 4),
    kept: f64.subarray((accOff >> 3) + 8 * j + 4, (accOff >> 3) + 8 * j + 8),
  }));
  for (let start = 0; start < n; start += CHUNK) {
    const len = Math.min(CHUNK, n - start);
    const vec = len & ~3;
    f32.set(base.subarray(start, start + len), bOff >> 2);
    for (let j = 0; j < items.length; j++) {
      const { x, mask } = items[j];
      f32.set(x.subarray(start, start + len), xOff >> 2);
      u32.set(mask.subarray(start >>> 5, (start + len + 31) >>> 5), mOff >> 2);
      fn.masked_l1(xOff, bOff, vec * 4, mOff, accOff + 64 * j);
      const { all, kept } = lanes[j];
      for (let e = start + vec; e < start + len; e++) {
        const a = Math.abs(Math.fround(x[e] - base[e]));
        all[e & 3] += a;
        if ((mask[e >>> 5] >>> (e & 31)) & 1) kept[e & 3] += a;
      }
    }
  }
  return lanes.map(({ all, kept }) => ({
    before: all[0] + all[1] + (all[2] + all[3]),
    after: kept[0] + kept[1] + (kept[2] + kept[3]),
  }));
}

/** maskedL1(x, base, mask) with the same float64 lane order. */
export function maskedL1Simd(
  rt: SimdRuntime,
  x: Float32Array,
  base: Float32Array,
  mask: Uint32Array,
): { before: number; after: number } {
  return maskedL1ManySimd(rt, base, [{ x, mask }])[0];
}
