// Stored BF16 / F16 halves → float32 inside the kernel's memory (8 halves per 128-bit load), so that a chunk of a
// source read as stored is decoded straight into the combine's input slot. The same arithmetic as the checkpoint
// room's decoder (checkpoint/simd-decode.ts, which cannot share this assembler) and as dtype.ts's scalar f16ToF32.
import { FunctionBuilder } from './wasm-asm.ts';

/** fn(src, dst, bytes): for i in [0, bytes) step 16, the 8 halves at src + i become 8 float32 at dst + 2i. */
function halvesLoop(
  name: string,
  lanes: (f: FunctionBuilder, h: number, o: number, e: number) => void,
): FunctionBuilder {
  const f = new FunctionBuilder(name, ['i32', 'i32', 'i32'], []);
  const [src, dst, bytes] = [0, 1, 2];
  const i = f.local('i32');
  const v = f.local('v128');
  const h = f.local('v128');
  const o = f.local('v128');
  const e = f.local('v128');
  f.i32(0).set(i);
  f.block().loop();
  f.get(i).get(bytes).op('i32.ge_u').brIf(1);
  f.get(src).get(i).op('i32.add').v128Load(0).set(v);
  for (const [extend, offset] of [
    ['i32x4.extend_low_i16x8_u', 0],
    ['i32x4.extend_high_i16x8_u', 16],
  ] as const) {
    f.get(dst).get(i).i32(1).op('i32.shl').op('i32.add');
    f.get(v).op(extend).set(h);
    lanes(f, h, o, e);
    f.v128Store(offset);
  }
  f.get(i).i32(16).op('i32.add').set(i).br(0);
  f.end().end();
  return f;
}

const splat = (f: FunctionBuilder, x: number): FunctionBuilder => f.v128i32(x, x, x, x);

/** decode_bf16: a half's bits are the float32's high 16 bits. */
export function decodeBf16(): FunctionBuilder {
  return halvesLoop('decode_bf16', (f, h) => void f.get(h).i32(16).op('i32x4.shl'));
}

/**
 * decode_f16 (f16ToF32 bit for bit): exponent and mantissa moved up 13 bits and re-biased by 112; a zero or
 * subnormal half is 2^-14 × (1 + m/1024) − 2^-14 = m × 2^-24, exact in float32; ±Inf gets the all-ones exponent;
 * every NaN is the canonical 0x7fc00000.
 */
export function decodeF16(): FunctionBuilder {
  return halvesLoop('decode_f16', (f, h, o, e) => {
    const isMax = () => splat(f.get(e), 0x0f800000).op('i32x4.eq');
    splat(f.get(h), 0x7fff).op('v128.and').i32(13).op('i32x4.shl').tee(o); // (h & 0x7fff) << 13
    splat(f, 0x0f800000).op('v128.and').set(e); // the exponent field, moved up
    splat(f.get(o), 0x38000000).op('i32x4.add').set(o); // re-biased
    splat(f, 0x7fc00000);
    splat(splat(f.get(o), 0x00800000).op('i32x4.add'), 0x38800000).op('f32x4.sub'); // subnormal or zero
    splat(f.get(o).get(e), 0).op('i32x4.eq', 'v128.bitselect'); // exponent 0 ? that : re-biased
    splat(isMax(), 0x38000000).op('v128.and', 'i32x4.add'); // Inf/NaN: exponent 0xff
    splat(f.get(h), 0x8000).op('v128.and').i32(16).op('i32x4.shl', 'v128.or'); // the sign
    splat(splat(isMax().get(h), 0x3ff).op('v128.and'), 0).op('i32x4.ne', 'v128.and'); // NaN
    f.op('v128.bitselect'); // NaN ? 0x7fc00000 : the value
  });
}
