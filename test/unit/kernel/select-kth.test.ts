import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CutCursor,
  differenceSource,
  finishBracket,
  kthLargestInRange,
  kthLargestU32,
  planBracket,
  runBracket,
  selectTopK,
  valuesSource,
  type MagnitudeCut,
} from '../../../src/kernel/select-kth.ts';

/** Sort-based reference: the indices of the k largest |v|, ties to the lower index (torch.sort leaves them open). */
function referenceTopK(values: Float32Array, k: number): Set<number> {
  const idx = Array.from(values, (_, i) => i);
  const mag = (i: number) => (Number.isNaN(values[i]) ? Infinity * 2 : Math.abs(values[i]));
  idx.sort((a, b) => {
    const ma = Number.isNaN(values[a]) ? 1 : 0;
    const mb = Number.isNaN(values[b]) ? 1 : 0;
    if (ma !== mb) return mb - ma;
    const d = mag(b) - mag(a);
    return d !== 0 && !Number.isNaN(d) ? d : a - b;
  });
  return new Set(idx.slice(0, k));
}

function kept(values: Float32Array, cut: MagnitudeCut): Set<number> {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const cursor = new CutCursor(cut);
  const s = new Set<number>();
  for (let i = 0; i < values.length; i++) {
    f[0] = values[i];
    if (cursor.next(u[0] & 0x7fffffff)) s.add(i);
  }
  return s;
}

/** Arrays with many exact ties, zeros (both signs) and a few NaN/Inf. */
const tiedValue = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 0.5, -0.5, 2, Infinity, -Infinity),
  fc.float({ noNaN: true }),
  fc.integer({ min: -4, max: 4 }).map((i) => i / 4),
);

describe('selectTopK (k-th magnitude without sorting)', () => {
  it('keeps exactly the sort-based top k, ties to the lowest index (direct and histogram paths)', () => {
    fc.assert(
      fc.property(fc.array(tiedValue, { minLength: 1, maxLength: 300 }), fc.nat(), (arr, kSeed) => {
        const values = Float32Array.from(arr);
        const k = 1 + (kSeed % values.length);
        const expected = referenceTopK(values, k);
        for (const strategy of ['auto', 'histogram'] as const) {
          const got = kept(values, selectTopK(valuesSource(values), k, { strategy }));
          expect(got.size).toBe(k);
          expect([...got].sort((a, b) => a - b)).toEqual([...expected].sort((a, b) => a - b));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('treats NaN as the largest magnitude, as torch.sort does', () => {
    const values = Float32Array.from([1, NaN, Infinity, -3]);
    expect(kept(values, selectTopK(valuesSource(values), 1))).toEqual(new Set([1]));
    expect(kept(values, selectTopK(valuesSource(values), 2))).toEqual(new Set([1, 2]));
  });

  it('uses the sampled bracket on large arrays and agrees with the reference (continuous and heavily tied)', () => {
    const n = 300_000; // above the direct-copy size, so the sampled path and its fallback run
    let s = 12345;
    const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
    const continuous = new Float32Array(n);
    for (let i = 0; i < n; i++) continuous[i] = (rand() - 0.5) * Math.exp(rand() * 4);
    const tied = new Float32Array(n);
    for (let i = 0; i < n; i++) tied[i] = rand() < 0.6 ? 0 : Math.floor(rand() * 8) / 8;
    for (const values of [continuous, tied]) {
      for (const k of [1, 1000, n >> 1, n - 7, n]) {
        const cut = selectTopK(valuesSource(values), k);
        const hist = selectTopK(valuesSource(values), k, { strategy: 'histogram' });
        expect(cut).toEqual(hist);
        // Check the count and the boundary against a sorted copy of magnitudes (reference, test only).
        const mags = Float32Array.from(values, Math.abs).sort().reverse();
        const f = new Float32Array([mags[k - 1]]);
        expect(cut.bits).toBe(new Uint32Array(f.buffer)[0]);
        expect(kept(values, cut).size).toBe(k);
      }
    }
  });

  it('holds the cut of a bf16 task vector (few distinct magnitudes) in its bracket, without the fallback', () => {
    // As between two bf16 checkpoints: τ = x − base takes a few dozen values per exponent, so each magnitude
    // near the cut is shared by thousands of elements; the bracket's capacity must count them.
    const n = 300_001;
    let s = 7;
    const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
    const bf16 = (v: number) => {
      const f = new Float32Array([v]);
      const u = new Uint32Array(f.buffer);
      u[0] = (u[0] + 0x7fff + ((u[0] >>> 16) & 1)) & 0xffff0000; // round to nearest even
      return f[0];
    };
    const base = new Float32Array(n).map(() => bf16((rand() - 0.5) * 0.1));
    const x = base.map((b) => bf16(b * (1 + 0.2 * (rand() - 0.5))));
    const src = differenceSource(x, base);
    for (const density of [0.01, 0.3, 0.5, 0.9, 0.999]) {
      const k = Math.trunc(density * n);
      const plan = planBracket(src, k);
      const { above, count } = runBracket(src, plan);
      expect(count).toBeLessThanOrEqual(plan.cand.length);
      const cut = finishBracket(plan, above, count);
      expect(cut).toEqual(selectTopK(src, k, { strategy: 'histogram' }));
      expect(selectTopK(src, k)).toEqual(cut);
    }
  });

  it('returns the cut that keeps nothing for k = 0', () => {
    const values = Float32Array.from([1, 2, 3]);
    expect(kept(values, selectTopK(valuesSource(values), 0)).size).toBe(0);
  });

  it('kthLargestU32 matches a sort on random keys', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 0x7fffffff }), { minLength: 1, maxLength: 200 }),
        fc.nat(),
        (arr, kSeed) => {
          const a = Uint32Array.from(arr);
          const kk = 1 + (kSeed % a.length);
          const sorted = [...arr].sort((x, y) => y - x);
          const { value, greater } = kthLargestU32(a, a.length, kk);
          expect(value).toBe(sorted[kk - 1]);
          expect(greater).toBe(sorted.filter((v) => v > value).length);
        },
      ),
    );
  });
});

describe('kthLargestInRange', () => {
  it('matches a sort for keys within [lo, hi], narrow and wide ranges', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0x7fff0000 }),
        fc.integer({ min: 0, max: 0x7fffffff }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 300 }),
        fc.nat(),
        (lo, spanSeed, fractions, kSeed) => {
          const span = spanSeed % (0x7fffffff - lo + 1);
          const keys = fractions.map((q) => lo + Math.floor(q * span));
          const a = Uint32Array.from(keys);
          const kk = 1 + (kSeed % a.length);
          const sorted = [...keys].sort((x, y) => y - x);
          const { value, greater } = kthLargestInRange(a, a.length, kk, lo, lo + span);
          expect(value).toBe(sorted[kk - 1]);
          expect(greater).toBe(sorted.filter((v) => v > value).length);
        },
      ),
      { numRuns: 300 },
    );
  });
});
