// Counter-based randomness for DARE / DELLA masks: every draw is a pure function of
// (seed, tensor name, model index, element index), so a recipe + seed gives the same mask on any machine,
// in any order, on the CPU or in a WGSL shader. Only 32-bit integer multiply, xor and shift are used, which
// WGSL has; no 64-bit state, no sequential stream.

/** FNV-1a 32-bit hash of the UTF-8 bytes of a string (tensor names → a 32-bit key word). */
export function fnv1a32(text: string): number {
  const bytes = new TextEncoder().encode(text);
  let h = 0x811c9dc5;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The per-tensor key: three u32 words that, with (model, element), address one draw. */
export interface RngKey {
  readonly seedLo: number;
  readonly seedHi: number;
  readonly tensorHash: number;
}

export function rngKey(seed: number, tensorName: string): RngKey {
  // Seeds are non-negative integers up to 2^53; split them into two u32 words.
  const seedLo = seed >>> 0;
  const seedHi = Math.floor(seed / 4294967296) >>> 0;
  return { seedLo, seedHi, tensorHash: fnv1a32(tensorName) };
}

/**
 * pcg4d (Jarzynski & Olano, "Hash Functions for GPU Rendering", JCGT 2020): a 4×u32 → 4×u32 hash.
 * Returns the first output word. Mirrored exactly by `pcg4d` in the WGSL shaders.
 */
export function pcg4d(a: number, b: number, c: number, d: number): number {
  let x = (Math.imul(a, 1664525) + 1013904223) >>> 0;
  let y = (Math.imul(b, 1664525) + 1013904223) >>> 0;
  let z = (Math.imul(c, 1664525) + 1013904223) >>> 0;
  let w = (Math.imul(d, 1664525) + 1013904223) >>> 0;
  x = (x + Math.imul(y, w)) >>> 0;
  y = (y + Math.imul(z, x)) >>> 0;
  z = (z + Math.imul(x, y)) >>> 0;
  w = (w + Math.imul(y, z)) >>> 0;
  x ^= x >>> 16;
  y ^= y >>> 16;
  z ^= z >>> 16;
  w ^= w >>> 16;
  x = (x + Math.imul(y, w)) >>> 0;
  y = (y + Math.imul(z, x)) >>> 0;
  z = (z + Math.imul(x, y)) >>> 0;
  w = (w + Math.imul(y, z)) >>> 0;
  return x >>> 0;
}

/** The raw u32 draw for one element of one model's tensor. */
export function drawU32(key: RngKey, modelIndex: number, elementIndex: number): number {
  return pcg4d(key.seedLo ^ key.tensorHash, key.seedHi, modelIndex >>> 0, elementIndex >>> 0);
}

/**
 * Integer threshold for a keep probability p: an element is kept iff `(draw >>> 8) < keepThreshold(p)`.
 * Comparing 24-bit integers (not floats) keeps CPU and GPU masks identical bit for bit.
 */
export function keepThreshold(p: number): number {
  if (!(p > 0)) return 0;
  if (p >= 1) return 1 << 24;
  return Math.floor(p * 16777216);
}

/** Uniform draw in [0, 1) with 24 bits, exactly representable in float32. */
export function drawUniform(key: RngKey, modelIndex: number, elementIndex: number): number {
  return (drawU32(key, modelIndex, elementIndex) >>> 8) / 16777216;
}
