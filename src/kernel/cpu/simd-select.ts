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
} from '../select-kth.ts';
import type { SimdRuntime } from './simd-kernels.ts';
import type { CutRequest } from './sparsify.ts';

const CHUNK = 4096;
const SLOT = CHUNK * 4;

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
      if (plan !== null) cuts[i] = finishBracket(plan, counts[i].above, counts[i].count);
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
): { above: number; count: number }[] {
  const n = base.length;
  const bOff = 64;
  const xOff = bOff + SLOT;
  const cOff = xOff + SLOT;
  rt.ensure(cOff + SLOT + 32); // the branch-free append may store up to 7 lanes past the last candidate
  const { f32, u32, fn } = rt;
  const counts = requests.map(() => ({ above: 0, count: 0 }));
  const byX = xs.map((x) => plans.map((p, i) => (p !== null && requests[i].x === x ? i : -1)).filter((i) => i >= 0));
  const one = new Float32Array(1);
  const oneBits = new Uint32Array(one.buffer);
  const c0 = cOff >> 2;
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
        const cand = plan.cand;
        if (acc.count > cand.length) continue; // overflowed: finishBracket will refuse it
        const c = fn.bracket(xOff, bOff, vec * 4, plan.lo, Math.min(plan.hi, 0x7fffffff), cOff);
        acc.above += u32[0];
        if (acc.count + c <= cand.length) cand.set(u32.subarray(c0, c0 + c), acc.count);
        acc.count += c;
        // The last chunk's 1–7 trailing elements, in order after the vector part.
        for (let j = vec; j < len; j++) {
          one[0] = x[start + j] - base[start + j];
          const v = (oneBits[0] & 0x7fffffff) >>> 0;
          if (v > plan.hi) acc.above++;
          else if (v >= plan.lo) {
            if (acc.count < cand.length) cand[acc.count] = v;
            acc.count++;
          }
        }
      }
    }
  }
  return counts;
}
