// The k-th selection's streaming pass as WebAssembly SIMD: one chunk's magnitudes |x − b| bracketed against a
// candidate range (simd-select-kth.ts drives it).

import { FunctionBuilder } from './wasm-asm.ts';
import { sumLanes } from './wasm-loops.ts';

/**
 * Selection bracket over |x − b|bits: counts lanes above `hi` (stored as i32 at address 0) and appends the
 * lanes within [lo, hi] to `cand` in index order; returns how many were appended. lo, hi ≤ 0x7fffffff;
 * bytes a multiple of 32.
 */
export function bracket(): FunctionBuilder {
  const f = new FunctionBuilder('bracket', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], ['i32']);
  const [x, b, bytes, lo, hi, cand] = [0, 1, 2, 3, 4, 5];
  const i = f.local('i32');
  const c = f.local('i32');
  const lov = f.local('v128');
  const hiv = f.local('v128');
  const absMask = f.local('v128');
  const bits = [f.local('v128'), f.local('v128')];
  const inside = [f.local('v128'), f.local('v128')];
  const outside = f.local('v128');
  const above = f.local('v128');
  f.get(lo).op('i32x4.splat').set(lov);
  f.get(hi).op('i32x4.splat').set(hiv);
  f.v128i32(0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff).set(absMask);
  // Two vectors (8 elements) a step: `bytes` is a multiple of 32.
  f.i32(0).set(i);
  f.block().loop();
  f.get(i).get(bytes).op('i32.ge_u').brIf(1);
  for (let h = 0; h < 2; h++) {
    f.get(x)
      .get(i)
      .op('i32.add')
      .v128Load(16 * h);
    f.get(b)
      .get(i)
      .op('i32.add')
      .v128Load(16 * h);
    f.op('f32x4.sub').get(absMask).op('v128.and').set(bits[h]);
    // |τ| bits are non-negative as i32, so signed compares (one instruction on x86) order them correctly.
    f.get(bits[h]).get(hiv).op('i32x4.gt_s').tee(outside);
    f.get(above).get(outside).op('i32x4.sub').set(above);
    f.get(lov).get(bits[h]).op('i32x4.gt_s', 'v128.or', 'v128.not').set(inside[h]);
  }
  f.get(inside[0]).get(inside[1]).op('v128.or', 'v128.any_true').if();
  // Branch-free append in index order: always store the lane, advance only when it is inside (lane = −1).
  for (let h = 0; h < 2; h++) {
    for (let lane = 0; lane < 4; lane++) {
      f.get(cand).get(c).i32(2).op('i32.shl', 'i32.add').get(bits[h]).extractLaneI32(lane).i32Store();
      f.get(c).get(inside[h]).extractLaneI32(lane).op('i32.sub').set(c);
    }
  }
  f.end();
  f.get(i).i32(32).op('i32.add').set(i).br(0);
  f.end().end();
  f.i32(0);
  sumLanes(f, above);
  f.i32Store();
  f.get(c);
  return f;
}
