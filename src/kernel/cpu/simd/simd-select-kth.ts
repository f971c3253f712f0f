// Magnitude cuts of several task vectors x − base in one fused streaming pass (select-kth.ts's sampled
// bracket, phase 2, in WebAssembly SIMD): each chunk of base is copied in once and every x once, τ never stored.

import {
  differenceSource,
  finishBracket,
  planBracket,
  selectTopK,
  usesBracket,
  type BracketPlan,
  type MagnitudeCut,
} from '../../select-kth.ts';
import { SIMD_CHUNK, type SimdRuntime } from './simd-runtime.ts';
import type { CutRequest } from '../sparsify.ts';

const CHUNK = SIMD_CHUNK;
const SLOT = CHUNK * 4;

/**
 * A cut found by the fused pass, with how many elements of each SIMD_CHUNK-element chunk sit exactly at it.
 * Only those need the in-order tie rule, and only in the chunk where the kept ones end: before it every element
 * at the cut is kept, after it none (simd-task-arithmetic.ts settles the others with a shifted threshold).
 */
export interface LocatedCut extends MagnitudeCut {
  readonly equalInChunk: Uint32Array;
}

/** Whether a cut carries its chunks (or keeps nothing, so no element can sit at it). */
export function isLocated(cut: MagnitudeCut): boolean {
  return cut.bits === 0xffffffff || 'equalInChunk' in cut;
}

/** The same cuts as selectTopK(differenceSource(x, base), k) for each request. */
export function selectCutsSimd(rt: SimdRuntime, base: Float32Array, requests: readonly CutRequest[]): MagnitudeCut[] {
  const n = base.length;
  const cuts: (MagnitudeCut | null)[] = requests.map(() => null);
  const plans: (BracketPlan | null)[] = requests.map((r, i) =>
    usesBracket(n, r.k) ? planBracket(differenceSource(r.x, base), r.k, (length) => rt.scratchU32(i, length)) : null,
  );
  const xsInPass = [...new Set(requests.filter((_, i) => plans[i] !== null).map((r) => r.x))];
  if (xsInPass.length > 0) {
    const counts = runFusedBrackets(rt, base, requests, plans, xsInPass);
    plans.forEach((plan, i) => {
      if (plan === null) return;
      const cut = finishBracket(plan, counts[i].above, counts[i].count);
      cuts[i] = cut === null ? null : locate(cut, plan.cand, counts[i].ends);
    });
  }
  // Small tensors (direct selection) and missed or overflowed brackets (exact histogram).
  return requests.map((r, i) => {
    const cut = cuts[i];
    if (cut !== null) return cut;
    return selectTopK(differenceSource(r.x, base), r.k, plans[i] === null ? {} : { strategy: 'histogram' });
  });
}

function runFusedBrackets(
  rt: SimdRuntime,
  base: Float32Array,
  requests: readonly CutRequest[],
  plans: readonly (BracketPlan | null)[],
  xs: readonly Float32Array[],
): { above: number; count: number; ends: Uint32Array }[] {
  const n = base.length;
  const chunks = Math.ceil(n / CHUNK);
  const bOff = 64;
  const xOff = bOff + SLOT;
  // Each request's candidates are appended in place in module memory (capacity, plus one chunk and the up to
  // 7 lanes the branch-free append may store past the last one), and copied out once after the pass.
  const regionOff: number[] = [];
  let end = xOff + SLOT;
  for (const plan of plans) {
    regionOff.push(end);
    end += plan === null ? 0 : (plan.cand.length + CHUNK + 8) * 4;
  }
  rt.ensure(end);
  const { f32, u32, fn } = rt;
  // ends[c]: how many candidates had been collected after chunk c (they are in index order).
  const counts = requests.map(() => ({ above: 0, count: 0, ends: new Uint32Array(chunks) }));
  const byX = xs.map((x) => plans.map((p, i) => (p !== null && requests[i].x === x ? i : -1)).filter((i) => i >= 0));
  const one = new Float32Array(1);
  const oneBits = new Uint32Array(one.buffer);
  for (let start = 0; start < n; start += CHUNK) {
    const len = Math.min(CHUNK, n - start);
    const vec = len & ~7; // the bracket takes 8 elements a step
    f32.set(base.subarray(start, start + len), bOff >> 2);
    for (let xi = 0; xi < xs.length; xi++) {
      const x = xs[xi];
      f32.set(x.subarray(start, start + len), xOff >> 2);
      for (const r of byX[xi]) {
        const plan = plans[r]!;
        const acc = counts[r];
        const capacity = plan.cand.length;
        if (acc.count > capacity) continue; // overflowed: finishBracket will refuse it
        const region = regionOff[r];
        acc.count += fn.bracket(xOff, bOff, vec * 4, plan.lo, Math.min(plan.hi, 0x7fffffff), region + acc.count * 4);
        acc.above += u32[0];
        // The last chunk's 1–7 trailing elements, in order after the vector part.
        for (let j = vec; j < len; j++) {
          one[0] = x[start + j] - base[start + j];
          const v = (oneBits[0] & 0x7fffffff) >>> 0;
          if (v > plan.hi) acc.above++;
          else if (v >= plan.lo) u32[(region >> 2) + acc.count++] = v;
        }
        acc.ends[start / CHUNK] = acc.count;
      }
    }
  }
  plans.forEach((plan, r) => {
    if (plan !== null)
      plan.cand.set(u32.subarray(regionOff[r] >> 2, (regionOff[r] >> 2) + Math.min(counts[r].count, plan.cand.length)));
  });
  return counts;
}

/** How many of each chunk's candidates equal the cut's value (every element at the cut is a candidate). */
function locate(cut: MagnitudeCut, cand: Uint32Array, ends: Uint32Array): LocatedCut {
  const equalInChunk = new Uint32Array(ends.length);
  let chunk = 0;
  const bits = cut.bits;
  const total = ends[ends.length - 1];
  for (let i = 0; i < total; i++) {
    if (cand[i] !== bits) continue;
    while (ends[chunk] <= i) chunk++;
    equalInChunk[chunk]++;
  }
  return { bits, keepEqual: cut.keepEqual, equalInChunk };
}
