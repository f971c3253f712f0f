// The non-finite guard's SIMD scan names the same element as the plain loop it replaced, on every bad value
// (NaN payloads of both signs, ±Inf), at block and vector edges, in views at any offset.
import { describe, expect, it } from 'vitest';
import { firstNonFinite, firstNonFiniteLoop } from '../../../src/kernel/non-finite.ts';

const BLOCK = 16384;

function filled(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296 - 0.5) * 0.04;
  }
  return out;
}

function badValues(): number[] {
  const bits = new Uint32Array([0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0xffffffff]);
  return [Infinity, -Infinity, NaN, ...new Float32Array(bits.buffer)];
}

describe('firstNonFinite', () => {
  it('finds nothing in finite data, extremes included (±0, subnormals, ±max float32)', () => {
    const data = filled(3 * BLOCK + 5, 7);
    const edge = [0, -0, 1e-45, -1e-45, 3.4028234663852886e38, -3.4028234663852886e38, 1.1754943508222875e-38];
    edge.forEach((v, k) => (data[k * 9973] = v));
    expect(firstNonFinite(data)).toBe(-1);
    expect(firstNonFiniteLoop(data)).toBe(-1);
  });

  it('names the same element as the loop for every bad value at block and vector edges', () => {
    const n = 3 * BLOCK + 13;
    const spots = [0, 1, 3, 4, 15, 16, 63, 64, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK - 3, n - 13, n - 2, n - 1];
    for (const bad of badValues()) {
      for (const at of spots) {
        const data = filled(n, at + 1);
        data[at] = bad;
        data[Math.min(n - 1, at + 40000)] = NaN; // a later bad element is not the one named
        expect(firstNonFinite(data)).toBe(at);
        expect(firstNonFiniteLoop(data)).toBe(at);
      }
    }
  });

  it('scans views at any offset and length, short arrays included', () => {
    const whole = filled(2 * BLOCK + 101, 3);
    whole[BLOCK + 50] = -Infinity;
    for (const [from, to] of [
      [1, 2 * BLOCK + 101],
      [3, BLOCK + 51],
      [BLOCK + 50, BLOCK + 51],
      [5, BLOCK + 50],
      [0, 10],
    ]) {
      const view = whole.subarray(from, to);
      expect(firstNonFinite(view)).toBe(firstNonFiniteLoop(view));
    }
    expect(firstNonFinite(new Float32Array(0))).toBe(-1);
  });
});
