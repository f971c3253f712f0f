// DARE's Bernoulli keep mask as a bitset, drawn from the counter-based RNG (kernel/rng.ts): element e of model
// m is kept iff (drawU32(key, m, e) >>> 8) < keepThreshold(p). Replaces mergekit sparsify.py `bernoulli`'s
// torch.bernoulli(full(density)) with a draw that is a pure function of (seed, tensor, model, element).

import { keepThreshold, type RngKey } from '../rng.ts';

/** A bitset over n elements: bit (e & 31) of word (e >>> 5). */
export function newBitset(n: number): Uint32Array {
  return new Uint32Array(Math.ceil(n / 32));
}

/**
 * The keep mask of one model's tensor at a constant keep probability `density`. The loop is pcg4d
 * (rng.ts) with the three constant key words hoisted out; a unit test checks it against drawU32.
 */
export function bernoulliMask(key: RngKey, modelIndex: number, n: number, density: number): Uint32Array {
  const mask = newBitset(n);
  const threshold = keepThreshold(density);
  if (threshold === 0) return mask;
  // pcg4d's first step for the words that do not depend on the element index.
  const x0 = (Math.imul(key.seedLo ^ key.tensorHash, 1664525) + 1013904223) >>> 0;
  const y0 = (Math.imul(key.seedHi, 1664525) + 1013904223) >>> 0;
  const z0 = (Math.imul(modelIndex >>> 0, 1664525) + 1013904223) >>> 0;
  for (let wordIndex = 0, e = 0; e < n; wordIndex++) {
    let word = 0;
    const end = Math.min(n, e + 32);
    for (let bit = 0; e < end; e++, bit++) {
      let x = x0;
      let y = y0;
      let z = z0;
      let w = (Math.imul(e, 1664525) + 1013904223) >>> 0;
      x = (x + Math.imul(y, w)) >>> 0;
      y = (y + Math.imul(z, x)) >>> 0;
      z = (z + Math.imul(x, y)) >>> 0;
      w = (w + Math.imul(y, z)) >>> 0;
      x ^= x >>> 16;
      y ^= y >>> 16;
      z ^= z >>> 16;
      w ^= w >>> 16;
      x = (x + Math.imul(y, w)) >>> 0;
      if (x >>> 8 < threshold) word |= 1 << bit;
    }
    mask[wordIndex] = word;
  }
  return mask;
}
