// The non-finite guard's WebAssembly SIMD loop: whether a block of float32 holds a NaN or ±Inf (exponent bits all
// ones), four vectors per iteration. The driver (kernel/non-finite.ts) finds the element itself.
import { FunctionBuilder } from './wasm-asm.ts';

/** Bytes one iteration of any_nonfinite reads: the driver pads a block to a multiple of it. */
export const NON_FINITE_STEP_BYTES = 64;

/** any_nonfinite(ptr, bytes) → 1 when some float32 in [ptr, ptr + bytes) is NaN or ±Inf, else 0. */
export function anyNonFinite(): FunctionBuilder {
  const f = new FunctionBuilder('any_nonfinite', ['i32', 'i32'], ['i32']);
  const [p, bytes] = [0, 1];
  const i = f.local('i32');
  const acc = f.local('v128');
  const exp = f.local('v128');
  f.v128i32(0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000).set(exp);
  f.i32(0).set(i);
  f.block().loop();
  f.get(i).get(bytes).op('i32.ge_u').brIf(1);
  for (let u = 0; u < NON_FINITE_STEP_BYTES / 16; u++) {
    // (bits & exponent) == exponent: NaN and ±Inf, exactly what `v - v !== 0` finds.
    f.get(acc);
    f.get(p)
      .get(i)
      .op('i32.add')
      .v128Load(u * 16)
      .get(exp)
      .op('v128.and')
      .get(exp)
      .op('i32x4.eq');
    f.op('v128.or').set(acc);
  }
  f.get(i).i32(NON_FINITE_STEP_BYTES).op('i32.add').set(i).br(0);
  f.end().end();
  f.get(acc).op('v128.any_true');
  return f;
}
