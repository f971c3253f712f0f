// The task-arithmetic family's hot loops as WebAssembly 128-bit SIMD (f32x4: IEEE float32 add/sub/mul/div, the
// same rounding as torch float32 and as the Math.fround reference loops): the per-model deltas and the combines
// (sum, sign consensus, magnitude cuts, unrolled forms). Each works on one chunk held in the module's memory;
// simd-task-arithmetic.ts drives them, simd-runtime.ts assembles the module.

import { FunctionBuilder } from './wasm-asm.ts';
import { vectorLoop, load, sumLanes } from './wasm-loops.ts';

/** d = (x − b)·w. */
function deltaAll(): FunctionBuilder {
  const f = new FunctionBuilder('delta_all', ['i32', 'i32', 'i32', 'i32', 'f32'], []);
  const [x, b, d, bytes, w] = [0, 1, 2, 3, 4];
  const i = f.local('i32');
  const wv = f.local('v128');
  f.get(w).op('f32x4.splat').set(wv);
  vectorLoop(f, i, bytes, () => {
    f.get(d).get(i).op('i32.add');
    load(f, x, i);
    load(f, b, i);
    f.op('f32x4.sub').get(wv).op('f32x4.mul').v128Store();
  });
  return f;
}

/**
 * d = keep ? fround(τ·mul)·w : 0 with τ = x − b and keep = kb < |τ|bits < db (strictly); returns how many
 * lanes have |τ|bits equal to kb or db: those are decided by the caller in index order (ties at a cut).
 */
function deltaCut(): FunctionBuilder {
  const f = new FunctionBuilder('delta_cut', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32'], ['i32']);
  const [x, b, d, bytes, kb, db, mul, w] = [0, 1, 2, 3, 4, 5, 6, 7];
  const i = f.local('i32');
  const wv = f.local('v128');
  const mv = f.local('v128');
  const kbv = f.local('v128');
  const dbv = f.local('v128');
  const absMask = f.local('v128');
  const t = f.local('v128');
  const bits = f.local('v128');
  const equal = f.local('v128');
  f.get(w).op('f32x4.splat').set(wv);
  f.get(mul).op('f32x4.splat').set(mv);
  f.get(kb).op('i32x4.splat').set(kbv);
  f.get(db).op('i32x4.splat').set(dbv);
  f.v128i32(0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff).set(absMask);
  vectorLoop(f, i, bytes, () => {
    load(f, x, i);
    load(f, b, i);
    f.op('f32x4.sub').tee(t).get(absMask).op('v128.and').set(bits);
    f.get(equal).get(bits).get(kbv).op('i32x4.eq').get(bits).get(dbv).op('i32x4.eq', 'v128.or', 'i32x4.sub').set(equal);
    f.get(d).get(i).op('i32.add');
    f.get(t).get(mv).op('f32x4.mul').get(wv).op('f32x4.mul');
    f.get(bits).get(kbv).op('i32x4.gt_u').get(bits).get(dbv).op('i32x4.lt_u', 'v128.and', 'v128.and');
    f.v128Store();
  });
  sumLanes(f, equal);
  return f;
}

/** d = bit(e) ? fround(τ·mul)·w : 0, the bitset chunk at `mask` (bit j & 31 of word j >>> 5). */
function deltaMask(): FunctionBuilder {
  const f = new FunctionBuilder('delta_mask', ['i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32'], []);
  const [x, b, d, bytes, mask, mul, w] = [0, 1, 2, 3, 4, 5, 6];
  const i = f.local('i32');
  const wv = f.local('v128');
  const mv = f.local('v128');
  const laneBits = f.local('v128');
  const zero = f.local('v128');
  f.get(w).op('f32x4.splat').set(wv);
  f.get(mul).op('f32x4.splat').set(mv);
  f.v128i32(1, 2, 4, 8).set(laneBits);
  vectorLoop(f, i, bytes, () => {
    f.get(d).get(i).op('i32.add');
    load(f, x, i);
    load(f, b, i);
    f.op('f32x4.sub').get(mv).op('f32x4.mul').get(wv).op('f32x4.mul');
    // nibble = (word[i >> 7] >>> (((i >> 4) & 7) << 2)) & 15: the 4 mask bits of these 4 elements
    f.get(mask).get(i).i32(7).op('i32.shr_u').i32(2).op('i32.shl', 'i32.add').i32Load();
    f.get(i).i32(4).op('i32.shr_u').i32(7).op('i32.and').i32(2).op('i32.shl', 'i32.shr_u').i32(15).op('i32.and');
    f.op('i32x4.splat').get(laneBits).op('v128.and').get(zero).op('i32x4.ne', 'v128.and');
    f.v128Store();
  });
  return f;
}

/** out = b + λ·((Σₘ dₘ) / div), models summed in order; div and λ applied only when their flags are set. */
function combineSum(): FunctionBuilder {
  const f = new FunctionBuilder(
    'combine_sum',
    ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32', 'f32', 'i32'],
    [],
  );
  const [d, models, slot, b, out, bytes, div, useDiv, lambda, useLambda] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const i = f.local('i32');
  const m = f.local('i32');
  const p = f.local('i32');
  const acc = f.local('v128');
  const divv = f.local('v128');
  const lamv = f.local('v128');
  f.get(div).op('f32x4.splat').set(divv);
  f.get(lambda).op('f32x4.splat').set(lamv);
  vectorLoop(f, i, bytes, () => {
    load(f, d, i);
    f.set(acc);
    f.i32(1).set(m);
    f.get(d).get(slot).op('i32.add').get(i).op('i32.add').set(p);
    f.block().loop();
    f.get(m).get(models).op('i32.ge_u').brIf(1);
    f.get(acc).get(p).v128Load().op('f32x4.add').set(acc);
    f.get(p).get(slot).op('i32.add').set(p);
    f.get(m).i32(1).op('i32.add').set(m).br(0);
    f.end().end();
    f.get(useDiv).if().get(acc).get(divv).op('f32x4.div').set(acc).end();
    f.get(useLambda).if().get(acc).get(lamv).op('f32x4.mul').set(acc).end();
    f.get(out).get(i).op('i32.add');
    load(f, b, i);
    f.get(acc).op('f32x4.add').v128Store();
  });
  return f;
}

/**
 * TIES sign consensus 'sum' (mergekit get_mask): vote = Σ dₘ; elected + iff vote ≥ 0; agreeₘ = sign(dₘ) ==
 * elected; mixed = Σ (agree ? dₘ : dₘ·0); div = Σ agree·wₘ (wₘ as splatted v128 at wp + 16m), 0 → 1.
 */
function combineConsensus(): FunctionBuilder {
  const f = new FunctionBuilder(
    'combine_consensus',
    ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32'],
    [],
  );
  const [d, models, slot, wp, b, out, bytes, normalize, lambda, useLambda] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const i = f.local('i32');
  const m = f.local('i32');
  const p = f.local('i32');
  const vote = f.local('v128');
  const positive = f.local('v128');
  const mixed = f.local('v128');
  const divisor = f.local('v128');
  const dv = f.local('v128');
  const agree = f.local('v128');
  const zero = f.local('v128');
  const one = f.local('v128');
  const lamv = f.local('v128');
  f.v128i32(0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000).set(one);
  f.get(lambda).op('f32x4.splat').set(lamv);
  const overModels = (body: () => void) => {
    f.i32(0).set(m);
    f.get(d).get(i).op('i32.add').set(p);
    f.block().loop();
    f.get(m).get(models).op('i32.ge_u').brIf(1);
    body();
    f.get(p).get(slot).op('i32.add').set(p);
    f.get(m).i32(1).op('i32.add').set(m).br(0);
    f.end().end();
  };
  vectorLoop(f, i, bytes, () => {
    f.get(zero).set(vote);
    overModels(() => {
      f.get(vote).get(p).v128Load().op('f32x4.add').set(vote);
    });
    f.get(vote).get(zero).op('f32x4.ge').set(positive);
    f.get(zero).set(mixed);
    f.get(zero).set(divisor);
    overModels(() => {
      f.get(p).v128Load().set(dv);
      f.get(dv).get(zero).op('f32x4.gt').get(dv).get(zero).op('f32x4.lt').get(positive).op('v128.bitselect').set(agree);
      f.get(mixed).get(dv).get(dv).get(zero).op('f32x4.mul').get(agree).op('v128.bitselect', 'f32x4.add').set(mixed);
      f.get(divisor)
        .get(agree)
        .get(wp)
        .get(m)
        .i32(4)
        .op('i32.shl', 'i32.add')
        .v128Load()
        .op('v128.and', 'f32x4.add')
        .set(divisor);
    });
    f.get(normalize).if();
    f.get(mixed).get(one).get(divisor).get(divisor).get(zero).op('f32x4.eq', 'v128.bitselect', 'f32x4.div').set(mixed);
    f.end();
    f.get(useLambda).if().get(mixed).get(lamv).op('f32x4.mul').set(mixed).end();
    f.get(out).get(i).op('i32.add');
    load(f, b, i);
    f.get(mixed).op('f32x4.add').v128Store();
  });
  return f;
}

/** out = b + λ·((Σₘ (xₘ − b)·wₘ) / div): task_arithmetic in one pass over the chunk (wₘ splatted at wp + 16m). */
function combineDense(): FunctionBuilder {
  const f = new FunctionBuilder(
    'combine_dense',
    ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32', 'f32', 'i32'],
    [],
  );
  const [xs, models, slot, wp, b, out, bytes, div, useDiv, lambda, useLambda] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const i = f.local('i32');
  const m = f.local('i32');
  const p = f.local('i32');
  const q = f.local('i32');
  const bv = f.local('v128');
  const acc = f.local('v128');
  const divv = f.local('v128');
  const lamv = f.local('v128');
  f.get(div).op('f32x4.splat').set(divv);
  f.get(lambda).op('f32x4.splat').set(lamv);
  vectorLoop(f, i, bytes, () => {
    load(f, b, i);
    f.set(bv);
    load(f, xs, i);
    f.get(bv).op('f32x4.sub').get(wp).v128Load().op('f32x4.mul').set(acc);
    f.i32(1).set(m);
    f.get(xs).get(slot).op('i32.add').get(i).op('i32.add').set(p);
    f.get(wp).i32(16).op('i32.add').set(q);
    f.block().loop();
    f.get(m).get(models).op('i32.ge_u').brIf(1);
    f.get(acc).get(p).v128Load().get(bv).op('f32x4.sub').get(q).v128Load().op('f32x4.mul', 'f32x4.add').set(acc);
    f.get(p).get(slot).op('i32.add').set(p);
    f.get(q).i32(16).op('i32.add').set(q);
    f.get(m).i32(1).op('i32.add').set(m).br(0);
    f.end().end();
    f.get(useDiv).if().get(acc).get(divv).op('f32x4.div').set(acc).end();
    f.get(useLambda).if().get(acc).get(lamv).op('f32x4.mul').set(acc).end();
    f.get(out).get(i).op('i32.add').get(bv).get(acc).op('f32x4.add').v128Store();
  });
  return f;
}

/**
 * The magnitude-trimmed combine (ties, breadcrumbs*, task_arithmetic with some models dropped) in one pass.
 * Per model m a parameter block at prm + 80m, each splatted: keepAbove (kept iff |τ|bits > keepAbove, signed:
 * −1 keeps all, 0x7fffffff none), keepAt (the keep cut's bits), dropAt (kept only if |τ|bits < dropAt), mul, w.
 * δₘ = kept ? fround(τ·mul)·w : 0.
 * Without consensus: out = b + λ·(Σ δₘ / div); with it: as combine_consensus (δₘ kept in the d slots at
 * ds + m·slot). Variants leave out the drop cut (magnitude: nothing dropped) and the rescale (mul = 1).
 * Returns how many lanes sit exactly at a cut (keepAt or dropAt): the caller redoes such a chunk in index order.
 */
/**
 * Consensus fast path: the agreement sums add `δ ∧ agree` where mergekit adds δ·0 for a disagreeing δ, which
 * differs only for a non-finite δ (NaN instead of 0). Those lanes make the vote non-finite (an overflowing
 * vote too, conservatively): flag them, and the caller redoes the chunk with the exact loops.
 */
function markNonFinite(f: FunctionBuilder, vote: number, zero: number, nonFinite: number): void {
  f.get(nonFinite).get(vote).get(zero).op('f32x4.mul').get(zero).op('f32x4.ne', 'v128.or').set(nonFinite);
}

/** Returns the lanes at a cut plus 2³⁰ when a lane was flagged non-finite: any non-zero result means redo. */
function returnAtCut(f: FunctionBuilder, equal: number, nonFinite: number): void {
  sumLanes(f, equal);
  f.get(nonFinite).op('v128.any_true').i32(30).op('i32.shl', 'i32.add');
}

/** Which parts of combine_cut a variant contains (specialised so the hot loop carries no unused work). */
export interface CutVariant {
  readonly consensus: boolean;
  readonly drop: boolean;
  readonly mul: boolean;
  /** Keep lanes from a bitset (DARE) instead of magnitude cuts: the block's first word is the mask slot address. */
  readonly mask?: boolean;
  /**
   * The caller knows how many elements of each chunk sit at a cut (simd-select-kth.ts LocatedCut): it sets the
   * chunk's thresholds so they keep or drop those whole, or sends the chunk to the exact loops; no lanes-at-a-cut
   * count (unrolled forms only).
   */
  readonly located?: boolean;
}

export function cutVariantName(v: CutVariant): string {
  return `combine_cut_${v.consensus ? 's' : 'n'}${v.drop ? 'd' : '_'}${v.mul ? 'm' : '_'}${v.mask ? 'k' : '_'}${v.located ? 'l' : '_'}`;
}

function combineCut(v: CutVariant): FunctionBuilder {
  const f = new FunctionBuilder(
    cutVariantName(v),
    ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32', 'f32', 'i32'],
    ['i32'],
  );
  const [xs, models, slot, prm, ds, b, out, bytes, div, useDiv, lambda, useLambda] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
  ];
  const i = f.local('i32');
  const m = f.local('i32');
  const p = f.local('i32');
  const q = f.local('i32');
  const dp = f.local('i32');
  const bv = f.local('v128');
  const t = f.local('v128');
  const bits = f.local('v128');
  const d = f.local('v128');
  const acc = f.local('v128');
  const equal = f.local('v128');
  const positive = f.local('v128');
  const mixed = f.local('v128');
  const divisor = f.local('v128');
  const agree = f.local('v128');
  const zero = f.local('v128');
  const one = f.local('v128');
  const absMask = f.local('v128');
  const divv = f.local('v128');
  const lamv = f.local('v128');
  const nonFinite = f.local('v128');
  f.get(div).op('f32x4.splat').set(divv);
  f.get(lambda).op('f32x4.splat').set(lamv);
  f.v128i32(0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000).set(one);
  f.v128i32(0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff).set(absMask);
  vectorLoop(f, i, bytes, () => {
    load(f, b, i);
    f.set(bv);
    f.get(zero).set(acc);
    f.i32(0).set(m);
    f.get(xs).get(i).op('i32.add').set(p);
    f.get(prm).set(q);
    f.get(ds).get(i).op('i32.add').set(dp);
    f.block().loop();
    f.get(m).get(models).op('i32.ge_u').brIf(1);
    if (v.mask) {
      // lanes of the 4 mask bits of these elements: (word[i >> 7] >>> (((i >> 4) & 7) << 2)) & 15
      f.get(p).v128Load().get(bv).op('f32x4.sub');
      if (v.mul) f.get(q).v128Load(48).op('f32x4.mul');
      f.get(q).v128Load(64).op('f32x4.mul');
      f.get(q).i32Load().get(i).i32(7).op('i32.shr_u').i32(2).op('i32.shl', 'i32.add').i32Load();
      f.get(i).i32(4).op('i32.shr_u').i32(7).op('i32.and').i32(2).op('i32.shl', 'i32.shr_u').i32(15).op('i32.and');
      f.op('i32x4.splat').v128i32(1, 2, 4, 8).op('v128.and').get(zero).op('i32x4.ne', 'v128.and').set(d);
    } else {
      f.get(p).v128Load().get(bv).op('f32x4.sub').tee(t).get(absMask).op('v128.and').set(bits);
      f.get(equal).get(bits).get(q).v128Load(16).op('i32x4.eq');
      if (v.drop) f.get(bits).get(q).v128Load(32).op('i32x4.eq', 'v128.or');
      f.op('i32x4.sub').set(equal);
      f.get(t);
      if (v.mul) f.get(q).v128Load(48).op('f32x4.mul');
      f.get(q).v128Load(64).op('f32x4.mul');
      f.get(bits).get(q).v128Load(0).op('i32x4.gt_s');
      if (v.drop) f.get(q).v128Load(32).get(bits).op('i32x4.gt_s', 'v128.and');
      f.op('v128.and').set(d);
    }
    if (v.consensus) {
      // keep δ for the agreement pass; acc is the vote Σ δₘ
      f.get(dp).get(d).v128Store();
      f.get(acc).get(d).op('f32x4.add').set(acc);
    } else {
      f.get(m).op('i32.eqz').if().get(d).set(acc).else().get(acc).get(d).op('f32x4.add').set(acc).end();
    }
    f.get(p).get(slot).op('i32.add').set(p);
    f.get(dp).get(slot).op('i32.add').set(dp);
    f.get(q).i32(80).op('i32.add').set(q);
    f.get(m).i32(1).op('i32.add').set(m).br(0);
    f.end().end();
    if (v.consensus) {
      // flip = sign bit where the elected sign is −; then agree ⇔ (δ ⊕ flip) > 0 (false for 0 and NaN).
      f.v128i32(0x80000000 | 0, 0x80000000 | 0, 0x80000000 | 0, 0x80000000 | 0)
        .get(acc)
        .get(zero)
        .op('f32x4.ge', 'v128.andnot')
        .set(positive);
      markNonFinite(f, acc, zero, nonFinite);
      f.get(zero).set(mixed);
      f.get(zero).set(divisor);
      f.i32(0).set(m);
      f.get(ds).get(i).op('i32.add').set(dp);
      f.get(prm).set(q);
      f.block().loop();
      f.get(m).get(models).op('i32.ge_u').brIf(1);
      f.get(dp).v128Load().set(d);
      f.get(d).get(positive).op('v128.xor').get(zero).op('f32x4.gt').set(agree);
      f.get(mixed).get(d).get(agree).op('v128.and', 'f32x4.add').set(mixed);
      f.get(divisor).get(agree).get(q).v128Load(64).op('v128.and', 'f32x4.add').set(divisor);
      f.get(dp).get(slot).op('i32.add').set(dp);
      f.get(q).i32(80).op('i32.add').set(q);
      f.get(m).i32(1).op('i32.add').set(m).br(0);
      f.end().end();
      // useDiv is `normalize` here: element-wise by the agreeing weights, 0 → 1
      f.get(useDiv).if();
      f.get(mixed)
        .get(one)
        .get(divisor)
        .get(divisor)
        .get(zero)
        .op('f32x4.eq', 'v128.bitselect', 'f32x4.div')
        .set(mixed);
      f.end();
      f.get(mixed).set(acc);
    } else {
      f.get(useDiv).if().get(acc).get(divv).op('f32x4.div').set(acc).end();
    }
    f.get(useLambda).if().get(acc).get(lamv).op('f32x4.mul').set(acc).end();
    f.get(out).get(i).op('i32.add').get(bv).get(acc).op('f32x4.add').v128Store();
  });
  returnAtCut(f, equal, nonFinite);
  return f;
}

/** Every combine_cut variant. */
const CUT_VARIANTS: CutVariant[] = [false, true].flatMap((consensus) => [
  ...[false, true].flatMap((drop) => [false, true].map((mul) => ({ consensus, drop, mul }))),
  ...[false, true].map((mul) => ({ consensus, drop: false, mul, mask: true })),
]);

/** Model counts that get an unrolled combine (parameters and δₘ held in registers, constant slot offsets). */
export const UNROLLED_MODELS = 4;

/** Name of the unrolled combine for a variant and a model count (1 … UNROLLED_MODELS). */
export function unrolledName(v: CutVariant | 'dense', models: number): string {
  return `${v === 'dense' ? 'combine_dense' : cutVariantName(v)}_x${models}`;
}

/**
 * combine_dense / combine_cut for exactly `models` models with the model loop unrolled: the same operations in
 * the same order (so the same bits), without per-model loads of parameters or stores of δₘ. x slot m is at
 * xs + m·slot, where `slot` must equal `slotBytes`.
 */
function combineUnrolled(v: CutVariant | 'dense', models: number, slotBytes: number): FunctionBuilder {
  const dense = v === 'dense';
  const cv: CutVariant = dense ? { consensus: false, drop: false, mul: false } : v;
  const f = new FunctionBuilder(
    unrolledName(v, models),
    ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32', 'f32', 'i32'],
    ['i32'],
  );
  // Same signature as combine_cut (for dense, prm is the splatted-weights table wp).
  const [xs, , , prm, , b, out, bytes, div, useDiv, lambda, useLambda] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const i = f.local('i32');
  const wordAt = f.local('i32');
  const shift = f.local('i32');
  const maskPtr: number[] = [];
  for (let m = 0; m < models; m++) maskPtr.push(f.local('i32'));
  const bv = f.local('v128');
  const t = f.local('v128');
  const bits = f.local('v128');
  const acc = f.local('v128');
  const equal = f.local('v128');
  const flip = f.local('v128');
  const mixed = f.local('v128');
  const divisor = f.local('v128');
  const agree = f.local('v128');
  const zero = f.local('v128');
  const one = f.local('v128');
  const absMask = f.local('v128');
  const laneBits = f.local('v128');
  const divv = f.local('v128');
  const lamv = f.local('v128');
  const nonFinite = f.local('v128');
  const keepAbove: number[] = [];
  const keepAt: number[] = [];
  const dropAt: number[] = [];
  const mulv: number[] = [];
  const wv: number[] = [];
  const d: number[] = [];
  for (let m = 0; m < models; m++) {
    keepAbove.push(f.local('v128'));
    keepAt.push(f.local('v128'));
    dropAt.push(f.local('v128'));
    mulv.push(f.local('v128'));
    wv.push(f.local('v128'));
    d.push(f.local('v128'));
  }
  f.get(div).op('f32x4.splat').set(divv);
  f.get(lambda).op('f32x4.splat').set(lamv);
  f.v128i32(0x3f800000, 0x3f800000, 0x3f800000, 0x3f800000).set(one);
  f.v128i32(0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff).set(absMask);
  f.v128i32(1, 2, 4, 8).set(laneBits);
  for (let m = 0; m < models; m++) {
    if (dense) {
      f.get(prm)
        .v128Load(16 * m)
        .set(wv[m]);
      continue;
    }
    const q = 80 * m;
    f.get(prm).v128Load(q).set(keepAbove[m]);
    f.get(prm).i32Load(q).set(maskPtr[m]);
    f.get(prm)
      .v128Load(q + 16)
      .set(keepAt[m]);
    f.get(prm)
      .v128Load(q + 32)
      .set(dropAt[m]);
    f.get(prm)
      .v128Load(q + 48)
      .set(mulv[m]);
    f.get(prm)
      .v128Load(q + 64)
      .set(wv[m]);
  }
  vectorLoop(f, i, bytes, () => {
    load(f, b, i);
    f.set(bv);
    if (cv.mask) {
      f.get(i).i32(7).op('i32.shr_u').i32(2).op('i32.shl').set(wordAt);
      f.get(i).i32(4).op('i32.shr_u').i32(7).op('i32.and').i32(2).op('i32.shl').set(shift);
    }
    for (let m = 0; m < models; m++) {
      f.get(xs)
        .get(i)
        .op('i32.add')
        .v128Load(m * slotBytes)
        .get(bv)
        .op('f32x4.sub');
      if (dense) {
        f.get(wv[m]).op('f32x4.mul');
        if (m === 0) f.set(acc);
        else f.get(acc).op('f32x4.add').set(acc);
        continue;
      }
      if (cv.mask) {
        if (cv.mul) f.get(mulv[m]).op('f32x4.mul');
        f.get(wv[m]).op('f32x4.mul');
        f.get(maskPtr[m]).get(wordAt).op('i32.add').i32Load().get(shift).op('i32.shr_u').i32(15).op('i32.and');
        f.op('i32x4.splat').get(laneBits).op('v128.and').get(zero).op('i32x4.ne', 'v128.and').set(d[m]);
      } else {
        f.tee(t).get(absMask).op('v128.and').set(bits);
        if (!cv.located) {
          f.get(equal).get(bits).get(keepAt[m]).op('i32x4.eq');
          if (cv.drop) f.get(bits).get(dropAt[m]).op('i32x4.eq', 'v128.or');
          f.op('i32x4.sub').set(equal);
        }
        f.get(t);
        if (cv.mul) f.get(mulv[m]).op('f32x4.mul');
        f.get(wv[m]).op('f32x4.mul');
        f.get(bits).get(keepAbove[m]).op('i32x4.gt_s');
        if (cv.drop) f.get(dropAt[m]).get(bits).op('i32x4.gt_s', 'v128.and');
        f.op('v128.and').set(d[m]);
      }
      // vote Σ δₘ from 0 (consensus), or the plain sum starting with δ₀ itself
      if (cv.consensus)
        f.get(m === 0 ? zero : acc)
          .get(d[m])
          .op('f32x4.add')
          .set(acc);
      else if (m === 0) f.get(d[m]).set(acc);
      else f.get(acc).get(d[m]).op('f32x4.add').set(acc);
    }
    if (cv.consensus) {
      f.v128i32(0x80000000 | 0, 0x80000000 | 0, 0x80000000 | 0, 0x80000000 | 0)
        .get(acc)
        .get(zero)
        .op('f32x4.ge', 'v128.andnot')
        .set(flip);
      markNonFinite(f, acc, zero, nonFinite);
      for (let m = 0; m < models; m++) {
        f.get(d[m]).get(flip).op('v128.xor').get(zero).op('f32x4.gt').set(agree);
        f.get(m === 0 ? zero : mixed)
          .get(d[m])
          .get(agree)
          .op('v128.and', 'f32x4.add')
          .set(mixed);
        f.get(m === 0 ? zero : divisor)
          .get(agree)
          .get(wv[m])
          .op('v128.and', 'f32x4.add')
          .set(divisor);
      }
      f.get(useDiv).if();
      f.get(mixed)
        .get(one)
        .get(divisor)
        .get(divisor)
        .get(zero)
        .op('f32x4.eq', 'v128.bitselect', 'f32x4.div')
        .set(mixed);
      f.end();
      f.get(mixed).set(acc);
    } else {
      f.get(useDiv).if().get(acc).get(divv).op('f32x4.div').set(acc).end();
    }
    f.get(useLambda).if().get(acc).get(lamv).op('f32x4.mul').set(acc).end();
    f.get(out).get(i).op('i32.add').get(bv).get(acc).op('f32x4.add').v128Store();
  });
  returnAtCut(f, equal, nonFinite);
  return f;
}

/** Every task-arithmetic function of the module: deltas, combines, every combine_cut variant and the unrolled forms. */
export function taskArithmeticFunctions(slotBytes: number): FunctionBuilder[] {
  return [
    deltaAll(),
    deltaCut(),
    deltaMask(),
    combineSum(),
    combineConsensus(),
    combineDense(),
    ...CUT_VARIANTS.map(combineCut),
    ...[1, 2, 3, 4].flatMap((models) => [
      combineUnrolled('dense', models, slotBytes),
      ...CUT_VARIANTS.map((v) => combineUnrolled(v, models, slotBytes)),
      ...CUT_VARIANTS.filter((v) => !v.mask).map((v) => combineUnrolled({ ...v, located: true }, models, slotBytes)),
    ]),
  ];
}
