// The CPU kernel's hot loops as WebAssembly 128-bit SIMD (f32x4: IEEE float32 add/sub/mul/div, the same
// rounding as torch float32 and as the Math.fround reference loops), assembled at run time by wasm-asm.ts.
// Each function works on one chunk held in the module's memory; the drivers copy chunks in and out.

import { buildModule, FunctionBuilder } from './wasm-asm.ts';

/** Loops `i` over [0, bytes) in steps of 16 bytes (one v128). */
function vectorLoop(f: FunctionBuilder, i: number, bytes: number, body: () => void): void {
  f.i32(0).set(i);
  f.block().loop();
  f.get(i).get(bytes).op('i32.ge_u').brIf(1);
  body();
  f.get(i).i32(16).op('i32.add').set(i).br(0);
  f.end().end();
}

/** Pushes v128.load(ptr + i). */
function load(f: FunctionBuilder, ptr: number, i: number): void {
  f.get(ptr).get(i).op('i32.add').v128Load();
}

/** Sums the four i32 lanes of a v128 local onto the stack. */
function sumLanes(f: FunctionBuilder, v: number): void {
  f.get(v).extractLaneI32(0).get(v).extractLaneI32(1).op('i32.add');
  f.get(v).extractLaneI32(2).op('i32.add').get(v).extractLaneI32(3).op('i32.add');
}

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
  const f = new FunctionBuilder('combine_sum', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32', 'f32', 'i32'], []);
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
  const f = new FunctionBuilder('combine_consensus', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32'], []);
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
      f.get(divisor).get(agree).get(wp).get(m).i32(4).op('i32.shl', 'i32.add').v128Load().op('v128.and', 'f32x4.add').set(divisor);
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
  const f = new FunctionBuilder('combine_dense', ['i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'i32', 'f32', 'i32'], []);
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
   * The caller already knows which chunks hold an element at a cut (simd-select-kth.ts LocatedCut) and sends them
   * to the exact loops: no lanes-at-a-cut count (unrolled forms only).
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
  const [xs, models, slot, prm, ds, b, out, bytes, div, useDiv, lambda, useLambda] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
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
      f.v128i32(0x80000000 | 0, 0x80000000 | 0, 0x80000000 | 0, 0x80000000 | 0).get(acc).get(zero).op('f32x4.ge', 'v128.andnot').set(positive);
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
      f.get(mixed).get(one).get(divisor).get(divisor).get(zero).op('f32x4.eq', 'v128.bitselect', 'f32x4.div').set(mixed);
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
      f.get(prm).v128Load(16 * m).set(wv[m]);
      continue;
    }
    const q = 80 * m;
    f.get(prm).v128Load(q).set(keepAbove[m]);
    f.get(prm).i32Load(q).set(maskPtr[m]);
    f.get(prm).v128Load(q + 16).set(keepAt[m]);
    f.get(prm).v128Load(q + 32).set(dropAt[m]);
    f.get(prm).v128Load(q + 48).set(mulv[m]);
    f.get(prm).v128Load(q + 64).set(wv[m]);
  }
  vectorLoop(f, i, bytes, () => {
    load(f, b, i);
    f.set(bv);
    if (cv.mask) {
      f.get(i).i32(7).op('i32.shr_u').i32(2).op('i32.shl').set(wordAt);
      f.get(i).i32(4).op('i32.shr_u').i32(7).op('i32.and').i32(2).op('i32.shl').set(shift);
    }
    for (let m = 0; m < models; m++) {
      f.get(xs).get(i).op('i32.add').v128Load(m * slotBytes).get(bv).op('f32x4.sub');
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
      if (cv.consensus) f.get(m === 0 ? zero : acc).get(d[m]).op('f32x4.add').set(acc);
      else if (m === 0) f.get(d[m]).set(acc);
      else f.get(acc).get(d[m]).op('f32x4.add').set(acc);
    }
    if (cv.consensus) {
      f.v128i32(0x80000000 | 0, 0x80000000 | 0, 0x80000000 | 0, 0x80000000 | 0).get(acc).get(zero).op('f32x4.ge', 'v128.andnot').set(flip);
      markNonFinite(f, acc, zero, nonFinite);
      for (let m = 0; m < models; m++) {
        f.get(d[m]).get(flip).op('v128.xor').get(zero).op('f32x4.gt').set(agree);
        f.get(m === 0 ? zero : mixed).get(d[m]).get(agree).op('v128.and', 'f32x4.add').set(mixed);
        f.get(m === 0 ? zero : divisor).get(agree).get(wv[m]).op('v128.and', 'f32x4.add').set(divisor);
      }
      f.get(useDiv).if();
      f.get(mixed).get(one).get(divisor).get(divisor).get(zero).op('f32x4.eq', 'v128.bitselect', 'f32x4.div').set(mixed);
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

/**
 * Selection bracket over |x − b|bits: counts lanes above `hi` (stored as i32 at address 0) and appends the
 * lanes within [lo, hi] to `cand` in index order; returns how many were appended. lo, hi ≤ 0x7fffffff;
 * bytes a multiple of 32.
 */
function bracket(): FunctionBuilder {
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
    f.get(x).get(i).op('i32.add').v128Load(16 * h);
    f.get(b).get(i).op('i32.add').v128Load(16 * h);
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

/**
 * The DARE keep mask of `words`·32 elements from element e0 (a multiple of 32): pcg4d (rng.ts) on four
 * element counters at once, keep iff (hash >>> 8) < threshold, packed by i32x4.bitmask into bitset words.
 * x0, y0, z0 are pcg4d's first-step words for (seedLo ^ tensorHash, seedHi, model).
 */
function bernoulliMaskWords(): FunctionBuilder {
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
  f.get(x).get(y).get(w).op('i32x4.mul', 'i32x4.add').i32(8).op('i32x4.shr_u').get(thr).op('i32x4.lt_u', 'i32x4.bitmask');
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
function maskedL1(): FunctionBuilder {
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

export interface SimdExports {
  bernoulli_mask(out: number, words: number, e0: number, x0: number, y0: number, z0: number, threshold: number): void;
  masked_l1(x: number, b: number, bytes: number, mask: number, acc: number): void;
  delta_all(x: number, b: number, d: number, bytes: number, w: number): void;
  delta_cut(x: number, b: number, d: number, bytes: number, kb: number, db: number, mul: number, w: number): number;
  delta_mask(x: number, b: number, d: number, bytes: number, mask: number, mul: number, w: number): void;
  combine_sum(d: number, models: number, slot: number, b: number, out: number, bytes: number, div: number, useDiv: number, lambda: number, useLambda: number): void;
  combine_consensus(d: number, models: number, slot: number, wp: number, b: number, out: number, bytes: number, normalize: number, lambda: number, useLambda: number): void;
  bracket(x: number, b: number, bytes: number, lo: number, hi: number, cand: number): number;
  combine_dense(xs: number, models: number, slot: number, wp: number, b: number, out: number, bytes: number, div: number, useDiv: number, lambda: number, useLambda: number): void;
  /** combine_cut variants by cutVariantName, and their unrolled forms by unrolledName. */
  [variant: `combine_cut_${string}`]: (xs: number, models: number, slot: number, prm: number, ds: number, b: number, out: number, bytes: number, div: number, useDiv: number, lambda: number, useLambda: number) => number;
}

/** Elements per chunk in the SIMD drivers (selection and combine use the same chunks). */
export const SIMD_CHUNK = 4096;
/** Bytes per chunk slot in the drivers' memory layout: the unrolled combines bake it in. */
export const SLOT_BYTES = SIMD_CHUNK * 4;

let compiled: WebAssembly.Module | null | undefined;

function compile(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  const bytes = buildModule([deltaAll(), deltaCut(), deltaMask(), combineSum(), combineConsensus(), bracket(), bernoulliMaskWords(), maskedL1(), combineDense(), ...CUT_VARIANTS.map(combineCut),
    ...[1, 2, 3, 4].flatMap((models) => [
      combineUnrolled('dense', models, SLOT_BYTES),
      ...CUT_VARIANTS.map((v) => combineUnrolled(v, models, SLOT_BYTES)),
      ...CUT_VARIANTS.filter((v) => !v.mask).map((v) => combineUnrolled({ ...v, located: true }, models, SLOT_BYTES)),
    ]),
  ]);
  compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  return compiled;
}

/** One instance with its own memory; views are refreshed when the memory grows. */
export class SimdRuntime {
  readonly fn: SimdExports;
  private readonly memory: WebAssembly.Memory;
  f32: Float32Array;
  u32: Uint32Array;
  f64: Float64Array;

  private constructor(module: WebAssembly.Module) {
    this.memory = new WebAssembly.Memory({ initial: 16 });
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.fn = instance.exports as unknown as SimdExports;
    this.f32 = new Float32Array(this.memory.buffer);
    this.u32 = new Uint32Array(this.memory.buffer);
    this.f64 = new Float64Array(this.memory.buffer);
  }

  /** A runtime, or null where WebAssembly SIMD is unavailable (the kernel then uses the plain loops). */
  static create(): SimdRuntime | null {
    const module = compile();
    return module === null ? null : new SimdRuntime(module);
  }

  private readonly scratch: Uint32Array[] = [];

  /**
   * A reusable JS-side buffer of `length` u32 (numbered slot, grown on demand): selection candidates, so
   * that large merges do not fault in fresh pages for every tensor. Valid until the slot is asked for again.
   */
  scratchU32(slot: number, length: number): Uint32Array {
    let buf = this.scratch[slot];
    if (buf === undefined || buf.length < length) {
      buf = new Uint32Array(Math.max(length, Math.ceil((buf?.length ?? 0) * 1.25)));
      this.scratch[slot] = buf;
    }
    return buf.subarray(0, length);
  }

  /** Makes at least `bytes` of memory addressable. */
  ensure(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return;
    this.memory.grow(Math.ceil((bytes - have) / 65536));
    this.f32 = new Float32Array(this.memory.buffer);
    this.u32 = new Uint32Array(this.memory.buffer);
    this.f64 = new Float64Array(this.memory.buffer);
  }
}
