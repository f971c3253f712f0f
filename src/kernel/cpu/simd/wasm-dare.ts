// DARE's passes as WebAssembly SIMD: the Bernoulli keep mask from the counter-based generator and the L1 norms
// of its rescale (simd-dare.ts drives them).

import { FunctionBuilder } from './wasm-asm.ts';
import { vectorLoop, load } from './wasm-loops.ts';

/**
 * The DARE keep mask of `words`·32 elements from element e0 (a multiple of 32): pcg4d (rng.ts) on four
 * element counters at once, keep iff (hash >>> 8) < threshold, packed by i32x4.bitmask into bitset words.
 * x0, y0, z0 are pcg4d's first-step words for (seedLo ^ tensorHash, seedHi, model).
 */
export function bernoulliMaskWords(): FunctionBuilder {
  const f = new FunctionBuilder('bernoulli_mask', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32'], []);
  const [out, words, e0, x0, y0, z0, threshold] = [0, 1, 2, 3, 4, 5, 6];
  const wi = f.local('i32');
  const v = f.local('i32');
  const word = f.local('i32');
  const e = f.local('v128');
  const x = f.local('v128');
  const y = f.local('v128');
  const z = f.local('v128');
  const w = f.local('v128');
  const xv = f.local('v128');
  const yv = f.local('v128');
  const zv = f.local('v128');
  const thr = f.local('v128');
  const mulC = f.local('v128');
  const addC = f.local('v128');
  f.get(x0).op('i32x4.splat').set(xv);
  f.get(y0).op('i32x4.splat').set(yv);
  f.get(z0).op('i32x4.splat').set(zv);
  f.get(threshold).op('i32x4.splat').set(thr);
  f.v128i32(1664525, 1664525, 1664525, 1664525).set(mulC);
  f.v128i32(1013904223, 1013904223, 1013904223, 1013904223).set(addC);
  // e = e0 + [0, 1, 2, 3], advanced by 4 per vector
  f.get(e0).op('i32x4.splat').v128i32(0, 1, 2, 3).op('i32x4.add').set(e);
  f.i32(0).set(wi);
  f.block().loop();
  f.get(wi).get(words).op('i32.ge_u').brIf(1);
  f.i32(0).set(word);
  f.i32(0).set(v);
  f.block().loop();
  f.get(v).i32(8).op('i32.ge_u').brIf(1);
  // pcg4d round 1 (x, y, z from the constant words; w from the element index)
  f.get(e).get(mulC).op('i32x4.mul').get(addC).op('i32x4.add').set(w);
  f.get(xv).get(yv).get(w).op('i32x4.mul', 'i32x4.add').set(x);
  f.get(yv).get(zv).get(x).op('i32x4.mul', 'i32x4.add').set(y);
  f.get(zv).get(x).get(y).op('i32x4.mul', 'i32x4.add').set(z);
  f.get(w).get(y).get(z).op('i32x4.mul', 'i32x4.add').set(w);
  // xor-shift, then the first output word x + y·w
  f.get(x).get(x).i32(16).op('i32x4.shr_u', 'v128.xor').set(x);
  f.get(y).get(y).i32(16).op('i32x4.shr_u', 'v128.xor').set(y);
  f.get(w).get(w).i32(16).op('i32x4.shr_u', 'v128.xor').set(w);
  f.get(word);
  f.get(x)
    .get(y)
    .get(w)
    .op('i32x4.mul', 'i32x4.add')
    .i32(8)
    .op('i32x4.shr_u')
    .get(thr)
    .op('i32x4.lt_u', 'i32x4.bitmask');
  f.get(v).i32(2).op('i32.shl', 'i32.shl', 'i32.or').set(word);
  f.get(e).v128i32(4, 4, 4, 4).op('i32x4.add').set(e);
  f.get(v).i32(1).op('i32.add').set(v).br(0);
  f.end().end();
  f.get(out).get(wi).i32(2).op('i32.shl', 'i32.add').get(word).i32Store();
  f.get(wi).i32(1).op('i32.add').set(wi).br(0);
  f.end().end();
  return f;
}

/**
 * L1 norms for DARE's rescale: adds |x − b| and |x − b|·mask into four float64 lane accumulators each
 * (lane j of every vector into accumulator j), kept at acc (4 f64 for all, then 4 for kept).
 */
export function maskedL1(): FunctionBuilder {
  const f = new FunctionBuilder('masked_l1', ['i32', 'i32', 'i32', 'i32', 'i32'], []);
  const [x, b, bytes, mask, acc] = [0, 1, 2, 3, 4];
  const i = f.local('i32');
  const t = f.local('v128');
  const k = f.local('v128');
  const allLo = f.local('v128');
  const allHi = f.local('v128');
  const keptLo = f.local('v128');
  const keptHi = f.local('v128');
  const laneBits = f.local('v128');
  const zero = f.local('v128');
  const high = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
  f.v128i32(1, 2, 4, 8).set(laneBits);
  f.get(acc).v128Load(0).set(allLo);
  f.get(acc).v128Load(16).set(allHi);
  f.get(acc).v128Load(32).set(keptLo);
  f.get(acc).v128Load(48).set(keptHi);
  vectorLoop(f, i, bytes, () => {
    load(f, x, i);
    load(f, b, i);
    f.op('f32x4.sub', 'f32x4.abs').set(t);
    f.get(t);
    f.get(mask).get(i).i32(7).op('i32.shr_u').i32(2).op('i32.shl', 'i32.add').i32Load();
    f.get(i).i32(4).op('i32.shr_u').i32(7).op('i32.and').i32(2).op('i32.shl', 'i32.shr_u').i32(15).op('i32.and');
    f.op('i32x4.splat').get(laneBits).op('v128.and').get(zero).op('i32x4.ne', 'v128.and').set(k);
    f.get(allLo).get(t).op('f64x2.promote_low_f32x4', 'f64x2.add').set(allLo);
    f.get(allHi).get(t).get(t).shuffle(high).op('f64x2.promote_low_f32x4', 'f64x2.add').set(allHi);
    f.get(keptLo).get(k).op('f64x2.promote_low_f32x4', 'f64x2.add').set(keptLo);
    f.get(keptHi).get(k).get(k).shuffle(high).op('f64x2.promote_low_f32x4', 'f64x2.add').set(keptHi);
  });
  f.get(acc).get(allLo).v128Store(0);
  f.get(acc).get(allHi).v128Store(16);
  f.get(acc).get(keptLo).v128Store(32);
  f.get(acc).get(keptHi).v128Store(48);
  return f;
}
