// The task-arithmetic combine (task-arithmetic.ts) driven through the WebAssembly SIMD loops: chunks of base
// and inputs are copied into the module's memory, combined there, and copied out. Bit-identical to the
// reference loops (tests compare them); ties at a magnitude cut are settled here in index order.

import { invariant } from '../../../errors.ts';
import { SIMD_CHUNK, SLOT_BYTES, type SimdRuntime } from './simd-runtime.ts';
import { cutVariantName, UNROLLED_MODELS, unrolledName, type CutVariant } from './wasm-task-arithmetic.ts';
import { isLocated, type LocatedCut } from './simd-select-kth.ts';
import type { MagnitudeCut } from '../../select-kth.ts';
import { scalarWeightSum, type CombineInput } from '../task-arithmetic.ts';

const CHUNK = SIMD_CHUNK;
const SLOT = CHUNK * 4;
const MASK_SLOT = CHUNK / 8;

/** out = the same bits as combineTaskVectors(input). */
export function combineTaskVectorsSimd(
  rt: SimdRuntime,
  input: CombineInput,
  out: Float32Array = new Float32Array(input.base.length),
): Float32Array {
  const { base, xs, trims, consensus, normalize } = input;
  const n = base.length;
  const models = xs.length;
  if (models === 0) {
    out.set(base);
    return out;
  }
  const w32 = Float64Array.from(input.weights, (w) => Math.fround(w));
  const lambda32 = Math.fround(input.lambda);
  const useLambda = input.lambda !== 1 ? 1 : 0;
  const scalarDivisor = normalize && consensus === 'none' ? scalarWeightSum(w32) : 1;

  // Memory layout (bytes): [0, 64) scratch | base | x₀..x₍ₘ₋₁₎ | d₀..d₍ₘ₋₁₎ | out | masks | splatted weights |
  // combine_cut parameter blocks (80 bytes per model)
  const bOff = 64;
  const xOff = (m: number) => bOff + (1 + m) * SLOT;
  const dOff = (m: number) => bOff + (1 + models + m) * SLOT;
  const outOff = bOff + (1 + 2 * models) * SLOT;
  const maskOff = (m: number) => outOff + SLOT + m * MASK_SLOT;
  const wOff = maskOff(models);
  const prmOff = wOff + 16 * models;
  rt.ensure(prmOff + 80 * models);
  const { f32, u32, fn } = rt;
  for (let m = 0; m < models; m++) f32.fill(w32[m], (wOff >> 2) + 4 * m, (wOff >> 2) + 4 * m + 4);

  // One-pass paths: dense task arithmetic, and magnitude cuts (chunks with a lane at a cut are redone below).
  const dense = consensus === 'none' && trims.every((t) => t.kind === 'all');
  const anyMask = trims.some((t) => t.kind === 'mask');
  const fusable = anyMask
    ? trims.every((t) => t.kind === 'all' || t.kind === 'zero' || (t.kind === 'mask' && t.div === 1))
    : trims.every((t) => t.kind === 'all' || t.kind === 'zero' || (t.kind === 'cut' && t.div === 1));
  for (let m = 0; m < models; m++) {
    const t = trims[m];
    const q = (prmOff >> 2) + 20 * m;
    // Signed compares on |τ| bits (0 … 0x7fffffff): keepAbove −1 keeps all, 0x7fffffff keeps none; a model
    // without a drop cut gets dropAt 0x7fffffff (only a NaN pattern equals it, and that chunk is redone).
    const [keepAbove, keepAt, dropAt, mul] =
      t.kind === 'cut'
        ? [t.keep.bits, t.keep.bits, t.drop.bits === 0xffffffff ? 0x7fffffff : t.drop.bits, t.mul]
        : t.kind === 'zero'
          ? [0x7fffffff, 0xffffffff, 0x7fffffff, 1]
          : [0xffffffff, 0xffffffff, 0x7fffffff, 1];
    u32.fill(keepAbove >>> 0, q, q + 4);
    u32.fill(keepAt >>> 0, q + 4, q + 8);
    u32.fill(dropAt >>> 0, q + 8, q + 12);
    f32.fill(mul, q + 12, q + 16);
    f32.fill(w32[m], q + 16, q + 20);
    if (anyMask) {
      // The mask variant reads the model's bitset chunk at the address in the block's first word; models
      // without a mask get all-ones ('all') or all-zeros ('zero') words.
      u32[q] = maskOff(m);
      if (t.kind !== 'mask')
        u32.fill(t.kind === 'zero' ? 0 : 0xffffffff, maskOff(m) >> 2, (maskOff(m) + MASK_SLOT) >> 2);
      f32.fill(t.kind === 'mask' ? t.mul : 1, q + 12, q + 16);
    }
  }
  const useScalarDiv = scalarDivisor !== 1 ? 1 : 0;
  // Up to UNROLLED_MODELS models: the unrolled forms (same operations, parameters held in registers). When
  // the selection located its cuts, the one-pass combine does not count lanes at a cut: each chunk's thresholds
  // are set from the counts (locatedThresholds), and only a chunk where the kept ties end goes to the exact loops.
  invariant(SLOT === SLOT_BYTES, 'simd chunk slot size');
  const unrolled = models <= UNROLLED_MODELS;
  const cuts = trims.flatMap((t) => (t.kind === 'cut' ? [t.keep, t.drop] : []));
  const located = unrolled && !anyMask && cuts.length > 0 && cuts.every(isLocated);
  // Elements at each model's keep and drop cut in the chunks before the current one (located cuts only).
  const keepSeenBefore = new Float64Array(models);
  const dropSeenBefore = new Float64Array(models);
  const variant: CutVariant = {
    consensus: consensus === 'sum',
    drop: trims.some((t) => t.kind === 'cut' && t.drop.bits !== 0xffffffff),
    mul: trims.some((t) => (t.kind === 'cut' || t.kind === 'mask') && t.mul !== 1),
    mask: anyMask,
    located,
  };
  const combineCut =
    fn[(unrolled ? unrolledName(variant, models) : cutVariantName(variant)) as `combine_cut_${string}`];
  const combineDense = unrolled ? fn[unrolledName('dense', models) as `combine_cut_${string}`] : null;

  const keepEqualSeen = new Float64Array(models);
  const dropEqualSeen = new Float64Array(models);
  const one = new Float32Array(1);
  const oneBits = new Uint32Array(one.buffer);
  const b0 = bOff >> 2;

  /**
   * Located cuts, chunk c: the keep rule at a cut is "the first keepEqual elements at it, in index order", so a
   * chunk whose elements at the cut are all kept (the count before it plus its own ≤ keepEqual) keeps them with
   * the threshold one below the cut (|τ|bits > bits − 1), and a chunk after the last kept one drops them with
   * the cut itself; likewise the drop cut (kept iff |τ|bits < dropAt: the cut, or the cut + 1). Writes those
   * thresholds into the parameter blocks and the counts before c into keep/dropEqualSeen (for the exact
   * loops), and returns true when c is a chunk where the kept ties end, to be settled element by element.
   */
  const locatedThresholds = (c: number): boolean => {
    let exact = false;
    for (let m = 0; m < models; m++) {
      const t = trims[m];
      if (t.kind !== 'cut') continue;
      const q = (prmOff >> 2) + 20 * m;
      const keep = t.keep as MagnitudeCut & Partial<LocatedCut>;
      if (keep.equalInChunk !== undefined) {
        const e = keep.equalInChunk[c];
        const before = keepSeenBefore[m];
        let above = keep.bits;
        if (e > 0) {
          if (before + e <= keep.keepEqual) above = keep.bits - 1;
          else if (before < keep.keepEqual) exact = true;
        }
        u32.fill(above >>> 0, q, q + 4);
        keepEqualSeen[m] = before;
        keepSeenBefore[m] = before + e;
      }
      const drop = t.drop as MagnitudeCut & Partial<LocatedCut>;
      if (drop.equalInChunk !== undefined) {
        const e = drop.equalInChunk[c];
        const before = dropSeenBefore[m];
        let at = drop.bits;
        if (e > 0 && before + e > drop.keepEqual) {
          if (before >= drop.keepEqual && drop.bits < 0x7fffffff) at = drop.bits + 1;
          else exact = true;
        }
        u32.fill(at >>> 0, q + 8, q + 12);
        dropEqualSeen[m] = before;
        dropSeenBefore[m] = before + e;
      }
    }
    return exact;
  };

  for (let start = 0; start < n; start += CHUNK) {
    const count = Math.min(CHUNK, n - start);
    // Whole vectors: lanes past `count` compute on stale data and are never copied out.
    const bytes = ((count + 3) & ~3) * 4;
    f32.set(base.subarray(start, start + count), b0);
    const exactTies = located && locatedThresholds(start / CHUNK);
    if (dense || (fusable && !exactTies)) {
      for (let m = 0; m < models; m++) {
        const t = trims[m];
        if (t.kind !== 'zero') f32.set(xs[m].subarray(start, start + count), xOff(m) >> 2);
        if (t.kind === 'mask') u32.set(t.mask.subarray(start >>> 5, (start + count + 31) >>> 5), maskOff(m) >> 2);
      }
      if (dense) {
        if (combineDense !== null)
          combineDense(
            xOff(0),
            models,
            SLOT,
            wOff,
            dOff(0),
            bOff,
            outOff,
            bytes,
            scalarDivisor,
            useScalarDiv,
            lambda32,
            useLambda,
          );
        else
          fn.combine_dense(
            xOff(0),
            models,
            SLOT,
            wOff,
            bOff,
            outOff,
            bytes,
            scalarDivisor,
            useScalarDiv,
            lambda32,
            useLambda,
          );
        out.set(f32.subarray(outOff >> 2, (outOff >> 2) + count), start);
        continue;
      }
      const atCut =
        consensus === 'none'
          ? combineCut(
              xOff(0),
              models,
              SLOT,
              prmOff,
              dOff(0),
              bOff,
              outOff,
              bytes,
              scalarDivisor,
              useScalarDiv,
              lambda32,
              useLambda,
            )
          : combineCut(
              xOff(0),
              models,
              SLOT,
              prmOff,
              dOff(0),
              bOff,
              outOff,
              bytes,
              1,
              normalize ? 1 : 0,
              lambda32,
              useLambda,
            );
      if (atCut === 0) {
        out.set(f32.subarray(outOff >> 2, (outOff >> 2) + count), start);
        continue;
      }
    }
    // The general path: one δ slot per model, ties at a cut settled in index order, then the combine.
    for (let m = 0; m < models; m++) {
      const x = xs[m];
      const w = w32[m];
      const trim = trims[m];
      const x0 = xOff(m) >> 2;
      const d0 = dOff(m) >> 2;
      switch (trim.kind) {
        case 'all':
          f32.set(x.subarray(start, start + count), x0);
          fn.delta_all(xOff(m), bOff, dOff(m), bytes, w);
          break;
        case 'zero':
          f32.fill(0, d0, d0 + count);
          break;
        case 'values': {
          const v = trim.values;
          for (let j = 0; j < count; j++) f32[d0 + j] = v[start + j] * w;
          break;
        }
        case 'mask': {
          if (trim.div !== 1) {
            const mask = trim.mask;
            for (let j = 0; j < count; j++) {
              const e = start + j;
              f32[d0 + j] =
                (mask[e >>> 5] >>> (e & 31)) & 1 ? Math.fround(Math.fround(x[e] - base[e]) / trim.div) * w : 0;
            }
            break;
          }
          f32.set(x.subarray(start, start + count), x0);
          u32.set(trim.mask.subarray(start >>> 5, (start + count + 31) >>> 5), maskOff(m) >> 2);
          fn.delta_mask(xOff(m), bOff, dOff(m), bytes, maskOff(m), trim.mul, w);
          break;
        }
        case 'cut': {
          const kb = trim.keep.bits;
          const db = trim.drop.bits;
          const kq = trim.keep.keepEqual;
          const dq = trim.drop.keepEqual;
          const div = trim.div;
          const mul = trim.mul;
          f32.set(x.subarray(start, start + count), x0);
          const equal = div === 1 ? fn.delta_cut(xOff(m), bOff, dOff(m), bytes, kb, db, mul, w) : count;
          if (equal === 0) break;
          // Elements at a cut (and every element when dividing): decided in index order, as the reference does.
          let ke = keepEqualSeen[m];
          let de = dropEqualSeen[m];
          for (let j = 0; j < count; j++) {
            one[0] = f32[x0 + j] - f32[b0 + j];
            const v = oneBits[0] & 0x7fffffff;
            if (div === 1 && v !== kb && v !== db) continue;
            let kept = v > kb;
            if (v === kb) kept = ke++ < kq;
            if (v > db) kept = false;
            else if (v === db && de++ < dq) kept = false;
            f32[d0 + j] = kept ? (div === 1 ? Math.fround(one[0] * mul) : Math.fround(one[0] / div)) * w : 0;
          }
          keepEqualSeen[m] = ke;
          dropEqualSeen[m] = de;
          break;
        }
      }
    }
    if (consensus === 'none') {
      fn.combine_sum(
        dOff(0),
        models,
        SLOT,
        bOff,
        outOff,
        bytes,
        scalarDivisor,
        scalarDivisor !== 1 ? 1 : 0,
        lambda32,
        useLambda,
      );
    } else {
      fn.combine_consensus(dOff(0), models, SLOT, wOff, bOff, outOff, bytes, normalize ? 1 : 0, lambda32, useLambda);
    }
    out.set(f32.subarray(outOff >> 2, (outOff >> 2) + count), start);
  }
  return out;
}
