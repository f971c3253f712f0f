// linear's weighted sum (weighted-sum.ts) as a WebAssembly SIMD loop over one chunk: the same float32 operations in
// the same order (x₀·w₀, then + xₘ·wₘ for m = 1 … in model order, then ÷ Σw when normalizing), so the same bits.
import { FunctionBuilder } from './wasm-asm.ts';

/**
 * weighted_sum(xs, models, slot, wp, out, bytes, div, useDiv): for i in [0, bytes) step 16, model m's 4 float32 at
 * xs + m·slot + i, its weight splatted at wp + 16m; the sum (÷ div when useDiv) to out + i.
 */
export function weightedSumChunk(): FunctionBuilder {
  const f = new FunctionBuilder('weighted_sum', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32'], []);
  const [xs, models, slot, wp, out, bytes, div, useDiv] = [0, 1, 2, 3, 4, 5, 6, 7];
  const i = f.local('i32');
  const m = f.local('i32');
  const acc = f.local('v128');
  const dv = f.local('v128');
  f.get(div).op('f32x4.splat').set(dv);
  f.i32(0).set(i);
  f.block().loop();
  f.get(i).get(bytes).op('i32.ge_u').brIf(1);
  f.get(xs).get(i).op('i32.add').v128Load(0).get(wp).v128Load(0).op('f32x4.mul').set(acc);
  f.i32(1).set(m);
  f.block().loop();
  f.get(m).get(models).op('i32.ge_u').brIf(1);
  f.get(acc);
  f.get(xs).get(m).get(slot).op('i32.mul', 'i32.add').get(i).op('i32.add').v128Load(0);
  f.get(wp).get(m).i32(4).op('i32.shl', 'i32.add').v128Load(0);
  f.op('f32x4.mul', 'f32x4.add').set(acc);
  f.get(m).i32(1).op('i32.add').set(m).br(0);
  f.end().end();
  f.get(useDiv).if();
  f.get(acc).get(dv).op('f32x4.div').set(acc);
  f.end();
  f.get(out).get(i).op('i32.add').get(acc).v128Store(0);
  f.get(i).i32(16).op('i32.add').set(i).br(0);
  f.end().end();
  return f;
}
