// The optimisers' sequential random stream: xoshiro128** seeded by splitmix64, with a serialisable state
// (four u32 words), so a restored optimiser continues the exact stream. Integer ops only, except `normal`.

import { EvomergeError } from '../../errors.ts';

/** Serialised RNG state: the four 32-bit words of xoshiro128**. */
export type RngState = [number, number, number, number];

const TWO_POW_32 = 4294967296;

/**
 * A seedable PRNG (xoshiro128**, Blackman & Vigna 2018, "Scrambled linear pseudorandom number generators").
 * Same seed → same stream on every machine: `nextU32` and `uniform` use only 32-bit integer arithmetic;
 * `normal` uses Math.log and Math.sqrt (V8's fdlibm port: identical on every platform Node runs on).
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  private constructor(words: readonly number[]) {
    this.s0 = words[0] >>> 0;
    this.s1 = words[1] >>> 0;
    this.s2 = words[2] >>> 0;
    this.s3 = words[3] >>> 0;
  }

  /** A stream keyed by an integer seed (any safe integer; negative ones are taken modulo 2^64). */
  static fromSeed(seed: number): Rng {
    if (!Number.isSafeInteger(seed)) {
      throw new EvomergeError('optimizer.bad_seed', `seed must be a safe integer, got ${seed}`, { field: 'seed' });
    }
    // splitmix64 (Steele, Lea & Flood 2014) expands the seed into the 128-bit state, as Vigna recommends.
    let x = BigInt.asUintN(64, BigInt(seed));
    const words: number[] = [];
    for (let i = 0; i < 2; i++) {
      x = BigInt.asUintN(64, x + 0x9e3779b97f4a7c15n);
      let z = x;
      z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
      z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
      z = z ^ (z >> 31n);
      words.push(Number(z & 0xffffffffn), Number(z >> 32n));
    }
    if (!words.some((w) => w !== 0)) words[0] = 1; // the all-zero state is a fixed point
    return new Rng(words);
  }

  /** Continue a stream from `state()` output. */
  static fromState(state: readonly number[]): Rng {
    if (
      !Array.isArray(state) ||
      state.length !== 4 ||
      !state.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_POW_32) ||
      state.every((w) => w === 0)
    ) {
      throw new EvomergeError('optimizer.bad_state', 'rng: expected four u32 words, not all zero', { field: 'rng' });
    }
    return new Rng(state);
  }

  state(): RngState {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  /** The next 32-bit word (xoshiro128** `next`). */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits (two draws). */
  uniform(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), n ≥ 1 (bias below 2^-40 for n < 2^13, irrelevant at optimiser scale). */
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.uniform() * n));
  }

  /** Standard normal by Marsaglia's polar method (Marsaglia & Bray 1964); the second variate is dropped so the
   *  state stays four words. */
  normal(): number {
    for (;;) {
      const u = 2 * this.uniform() - 1;
      const v = 2 * this.uniform() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) return u * Math.sqrt((-2 * Math.log(s)) / s);
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
