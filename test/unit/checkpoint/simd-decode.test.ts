// The WebAssembly SIMD decode (checkpoint/simd-decode.ts) against the plain loops of dtype.ts, bit for bit: every
// half of both dtypes, lengths around the vector and block edges, every byte offset, and in place.
import { describe, expect, it } from 'vitest';
import { decodeHalvesLoop, decodeToF32 } from '../../../src/checkpoint/dtype.ts';
import { decodeHalvesSimd } from '../../../src/checkpoint/simd-decode.ts';

const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
/** Every half, then every half again scrambled, so runs cross vector and block edges with all values. */
const every = Uint16Array.from({ length: 2 * 65536 }, (_, i) => (i < 65536 ? i : (i * 40503) & 0xffff));

function reference(dtype: 'F16' | 'BF16', halves: Uint16Array): Uint32Array {
  const bytes = new Uint8Array(halves.byteLength);
  bytes.set(new Uint8Array(halves.buffer, halves.byteOffset, halves.byteLength));
  return bitsOf(decodeHalvesLoop(dtype, bytes, new Float32Array(halves.length)));
}

describe.each(['BF16', 'F16'] as const)('%s SIMD decode', (dtype) => {
  it('is available on this Node (so the tests below exercise it)', () => {
    expect(decodeHalvesSimd(dtype, new Uint8Array(16), new Float32Array(8))).toBe(true);
  });

  it('gives the loop’s bits for all 65,536 halves (NaN, ±Inf, subnormals and ±0 included)', () => {
    const halves = every.subarray(0, 65536);
    const out = new Float32Array(65536);
    decodeHalvesSimd(dtype, new Uint8Array(halves.buffer, 0, 2 * 65536), out);
    const want = reference(dtype, halves);
    expect(equalBits(bitsOf(out), want)).toBe(true);
    expect(equalBits(bitsOf(decodeToF32(dtype, new Uint8Array(halves.buffer, 0, 2 * 65536))), want)).toBe(true);
  });

  it('gives the loop’s bits at odd lengths, every byte offset, and in place from the upper half', () => {
    const lengths = [1, 7, 8, 9, 63, 64, 65, 1001, 4095, 4096, 4097, 8191, 8193, 12289, 65537, 2 * 65536 - 3];
    for (const n of lengths) {
      for (const from of [0, 3, 65531]) {
        if (from + n > every.length) continue;
        const halves = every.subarray(from, from + n);
        const want = reference(dtype, halves);
        const raw = new Uint8Array(halves.buffer, halves.byteOffset, 2 * n);
        for (const shift of [0, 1, 2, 3]) {
          const buf = new Uint8Array(2 * n + 4);
          buf.set(raw, shift);
          const out = new Float32Array(n);
          expect(decodeHalvesSimd(dtype, buf.subarray(shift, shift + 2 * n), out)).toBe(true);
          if (!equalBits(bitsOf(out), want)) expect.fail(`n ${n} from ${from} shift ${shift}`);
        }
        for (const lead of [0, 1, 3]) {
          const out = new Float32Array(lead + n).subarray(lead);
          new Uint8Array(out.buffer, out.byteOffset + 2 * n, 2 * n).set(raw);
          decodeToF32(dtype, new Uint8Array(out.buffer, out.byteOffset + 2 * n, 2 * n), out);
          if (!equalBits(bitsOf(out), want)) expect.fail(`in place: n ${n} from ${from} lead ${lead}`);
        }
      }
    }
  });
});

function equalBits(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
