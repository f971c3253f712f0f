import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  bf16ToF32,
  decodeToF32,
  encodeFromF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  parseDType,
} from '../../../src/checkpoint/dtype.ts';
import { EvomergeError } from '../../../src/errors.ts';

const f32Bits = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0];
const fromBits = (b: number): number => new Float32Array(new Uint32Array([b >>> 0]).buffer)[0];
const isNaN16 = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const isNaNBf = (h: number): boolean => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;

describe('float16', () => {
  it('decodes reference bit patterns', () => {
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16ToF32(0x0400)).toBe(2 ** -14);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(f16ToF32(0x7e00)).toBeNaN();
  });

  it('round-trips every one of the 65536 halves exactly (NaN stays NaN)', () => {
    for (let h = 0; h < 65536; h++) {
      const back = f32ToF16(f16ToF32(h));
      if (isNaN16(h)) expect(isNaN16(back)).toBe(true);
      else if (back !== h) expect.fail(`half 0x${h.toString(16)} came back as 0x${back.toString(16)}`);
    }
  });

  it('rounds to nearest, ties to even', () => {
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie between 0x3c00 and 0x3c01 → even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie between 0x3c01 and 0x3c02 → even
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(f32ToF16(65519)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // tie between max half and 2^16 → even = infinity
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(-1e6)).toBe(0xfc00);
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie between 0 and min subnormal → 0
    expect(f32ToF16(-(2 ** -25))).toBe(0x8000);
    expect(f32ToF16(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // 1.5 units: tie → 2
    expect(f32ToF16(1023.5 * 2 ** -24)).toBe(0x0400); // largest subnormal rounds up into the min normal
    expect(f32ToF16(2 ** -30)).toBe(0x0000);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(Infinity)).toBe(0x7c00);
    expect(isNaN16(f32ToF16(NaN))).toBe(true);
    expect(isNaN16(f32ToF16(fromBits(0x7f800001)))).toBe(true); // low-bit NaN must not become infinity
  });

  it('picks the nearest half for any finite float32 (property)', () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true, min: -65500, max: 65500 }), (x) => {
        const h = f32ToF16(x);
        const v = f16ToF32(h);
        const err = Math.abs(x - v);
        // neighbours in magnitude order (same sign)
        for (const n of [h - 1, h + 1]) {
          if ((n & 0x7fff) > 0x7bff || (n & 0x8000) !== (h & 0x8000) || n < 0) continue;
          const e = Math.abs(x - f16ToF32(n));
          expect(err <= e).toBe(true);
          if (err === e && e !== 0) expect(h & 1).toBe(0); // ties go to even
        }
      }),
      { numRuns: 5000 },
    );
  });
});

describe('bfloat16', () => {
  it('converts reference values', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0x7f7f)).toBe(3.3895313892515355e38); // bf16 max
    expect(f32ToBf16(3.3895313892515355e38)).toBe(0x7f7f);
    expect(f32ToBf16(fromBits(0x7f7fffff))).toBe(0x7f80); // f32 max rounds to infinity
    expect(f32ToBf16(-Infinity)).toBe(0xff80);
    expect(f32ToBf16(-0)).toBe(0x8000);
    expect(Object.is(bf16ToF32(0x8000), -0)).toBe(true);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even
    expect(f32ToBf16(fromBits(0x3f808001))).toBe(0x3f81); // above the tie
    expect(f32ToBf16(fromBits(0x00000001))).toBe(0x0000); // f32 subnormal below half a bf16 ulp
    expect(f32ToBf16(fromBits(0x00008000))).toBe(0x0000); // subnormal tie → even
    expect(f32ToBf16(fromBits(0x00018000))).toBe(0x0002); // subnormal tie → even (up)
    expect(bf16ToF32(0x0001)).toBe(2 ** -133); // bf16 subnormal
    expect(isNaNBf(f32ToBf16(NaN))).toBe(true);
    expect(isNaNBf(f32ToBf16(fromBits(0x7f800001)))).toBe(true); // must not truncate to infinity
    expect(isNaNBf(f32ToBf16(fromBits(0xffffffff)))).toBe(true);
  });

  it('round-trips every bf16 value exactly (exhaustive and through fast-check)', () => {
    for (let h = 0; h < 65536; h++) {
      const back = f32ToBf16(bf16ToF32(h));
      if (isNaNBf(h)) expect(isNaNBf(back)).toBe(true);
      else if (back !== h) expect.fail(`bf16 0x${h.toString(16)} came back as 0x${back.toString(16)}`);
    }
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }).filter((h) => !isNaNBf(h)),
        (h) => {
          const data = new Float32Array([bf16ToF32(h)]);
          expect(new Uint16Array(encodeFromF32('BF16', data).buffer)[0]).toBe(h);
        },
      ),
    );
  });

  it('is the nearest bf16 for any float32 (property, ties to even)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (b) => {
        const x = fromBits(b);
        if (Number.isNaN(x) || !Number.isFinite(x)) return;
        const h = f32ToBf16(x);
        if ((h & 0x7fff) === 0x7f80) {
          expect(Math.abs(x)).toBeGreaterThanOrEqual(3.3895313892515355e38 + 2 ** 127 / 2 ** 8); // ≥ max + half ulp
          return;
        }
        const err = Math.abs(x - bf16ToF32(h));
        for (const n of [h - 1, h + 1]) {
          if ((n & 0x7fff) > 0x7f7f || (n & 0x8000) !== (h & 0x8000) || n < 0) continue;
          const e = Math.abs(x - bf16ToF32(n));
          expect(err <= e).toBe(true);
          if (err === e && e !== 0) expect(h & 1).toBe(0);
        }
      }),
      { numRuns: 5000 },
    );
  });
});

describe('array encode / decode', () => {
  const edge = new Float32Array([
    0,
    -0,
    1,
    -1.5,
    NaN,
    Infinity,
    -Infinity,
    2 ** -24,
    2 ** -140,
    65504,
    3.3895313892515355e38,
    0.1,
  ]);

  it('F32 is bit-exact both ways', () => {
    const bytes = encodeFromF32('F32', edge);
    expect(bytes.length).toBe(edge.length * 4);
    const back = decodeToF32('F32', bytes);
    expect([...new Uint32Array(back.buffer)]).toEqual([...new Uint32Array(edge.buffer)]);
  });

  it('F16 and BF16 arrays agree with the scalar conversions, little-endian', () => {
    for (const [dtype, enc, dec] of [
      ['F16', f32ToF16, f16ToF32],
      ['BF16', f32ToBf16, bf16ToF32],
    ] as const) {
      const bytes = encodeFromF32(dtype, edge);
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < edge.length; i++) expect(view.getUint16(2 * i, true)).toBe(enc(edge[i]));
      const back = decodeToF32(dtype, bytes);
      for (let i = 0; i < edge.length; i++) {
        const want = dec(enc(edge[i]));
        if (Number.isNaN(want)) expect(back[i]).toBeNaN();
        else expect(Object.is(back[i], Math.fround(want))).toBe(true);
      }
    }
  });

  it('BF16 decodes to the bits of one 16-bit shift per element: every half, any length, offset and in place', () => {
    const reference = (h: Uint16Array) => Uint32Array.from(h, (x) => (x << 16) >>> 0);
    const every = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
    expect(bitsOf(decodeToF32('BF16', new Uint8Array(every.buffer)))).toEqual(reference(every));
    for (const n of [0, 1, 2, 3, 4, 5, 7, 8, 1001, 1002]) {
      const halves = every.subarray(40000, 40000 + n).map((x, i) => x ^ (i * 7919));
      const bytes = new Uint8Array(halves.buffer, halves.byteOffset, 2 * n);
      // word-aligned, and 2 bytes past a word (the per-element loop)
      for (const shift of [0, 2]) {
        const buf = new Uint8Array(2 * n + 4);
        buf.set(bytes, shift);
        expect(bitsOf(decodeToF32('BF16', buf.subarray(shift, shift + 2 * n)))).toEqual(reference(halves));
      }
      // in place from the upper half of the destination (as readTensorInto does), at both word alignments
      for (const lead of [0, 1]) {
        const out = new Float32Array(lead + n).subarray(lead);
        const upper = new Uint8Array(out.buffer, out.byteOffset + 2 * n, 2 * n);
        upper.set(bytes);
        decodeToF32('BF16', upper, out);
        expect(bitsOf(out)).toEqual(reference(halves));
      }
    }
  });

  it('decodes from an odd byte offset (unaligned view)', () => {
    const bytes = encodeFromF32('BF16', new Float32Array([1, -2, 0.5]));
    const padded = new Uint8Array(bytes.length + 1);
    padded.set(bytes, 1);
    expect([...decodeToF32('BF16', padded.subarray(1))]).toEqual([1, -2, 0.5]);
    const f16 = encodeFromF32('F16', new Float32Array([1, -2, 0.5]));
    padded.set(f16, 1);
    expect([...decodeToF32('F16', padded.subarray(1))]).toEqual([1, -2, 0.5]);
    const f32 = encodeFromF32('F32', new Float32Array([1, -2, 0.5]));
    const p32 = new Uint8Array(f32.length + 3);
    p32.set(f32, 3);
    expect([...decodeToF32('F32', p32.subarray(3))]).toEqual([1, -2, 0.5]);
  });

  it('round-trips arbitrary float32 arrays through F32 and bf16-representable arrays through BF16 (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.integer({ min: 0, max: 0xffff }).filter((h) => !isNaNBf(h)),
          { maxLength: 64 },
        ),
        (hs) => {
          const data = new Float32Array(hs.map(bf16ToF32));
          const back = decodeToF32('BF16', encodeFromF32('BF16', data));
          expect([...new Uint32Array(back.buffer)]).toEqual([...new Uint32Array(data.buffer)]);
        },
      ),
    );
  });
});

describe('parseDType', () => {
  it('accepts the usual spellings', () => {
    expect(parseDType('float32', {})).toBe('F32');
    expect(parseDType('F16', {})).toBe('F16');
    expect(parseDType('bfloat16', {})).toBe('BF16');
    expect(parseDType('BF16', {})).toBe('BF16');
    expect(parseDType('fp16', {})).toBe('F16');
  });
  it('rejects anything else with the file and field', () => {
    try {
      parseDType('int8', { file: 'recipe.yaml', field: 'dtype' });
      expect.fail('no error');
    } catch (err) {
      expect(err).toBeInstanceOf(EvomergeError);
      expect((err as EvomergeError).code).toBe('checkpoint.unsupported_dtype');
      expect((err as EvomergeError).message).toMatch(/^recipe\.yaml: dtype: unsupported dtype "int8"/);
    }
  });
});
