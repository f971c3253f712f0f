import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { readerOf, taJob } from './job-fixtures.ts';

const kernel = new CpuKernel();
const f = Math.fround;

/** Reproducible pseudo-random floats for fixtures. */
function randomArray(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

const finiteArray = (n: number) =>
  fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 });

describe('ties (magnitude + sign consensus sum)', () => {
  it('merges the worked TIES example to [0, 1.1, 0, 0.75]', async () => {
    const job = taJob([1, 1, 1], [4], { sparsification: 'magnitude', consensus: 'sum', normalize: true, density: 1 });
    const out = await kernel.mergeTensor(
      job,
      readerOf({ base: [0, 0, 0, 0], m0: [0, -0.5, 0, 0.8], m1: [0, 1.1, 0, -0.6], m2: [0, -0.4, 0, 0.7] }),
    );
    expect(Array.from(out)).toEqual([0, f(1.1), 0, f(f(f(0.8) + f(0.7)) / 2)]);
    expect(out[3]).toBeCloseTo(0.75, 6);
  });

  it('does not negate with a negative weight under normalize (w = −0.5, τ = [1, −1] → base + [1, −1])', async () => {
    const job = taJob([-0.5], [2], { sparsification: 'magnitude', consensus: 'sum', normalize: true, density: 1 });
    const out = await kernel.mergeTensor(job, readerOf({ base: [10, 20], m0: [11, 19] }));
    expect(Array.from(out)).toEqual([11, 19]);
  });

  it('negates without normalize (task negation)', async () => {
    const job = taJob([-1], [2], { consensus: 'none', normalize: false });
    const out = await kernel.mergeTensor(job, readerOf({ base: [10, 20], m0: [11, 19] }));
    expect(Array.from(out)).toEqual([9, 21]);
  });

  it('divides by the agreeing weights element-wise, not by Σw', async () => {
    const job = taJob([1, 3], [2], { consensus: 'sum', normalize: true, sparsification: 'magnitude', density: 1 });
    const out = await kernel.mergeTensor(job, readerOf({ base: [0, 0], m0: [2, 2], m1: [4, -1] }));
    // element 0: both agree → (2 + 12) / 4; element 1: vote 2 − 3 < 0, only m1 agrees → −3 / 3
    expect(Array.from(out)).toEqual([3.5, -1]);
  });

  it('keeps exactly k = int(density·n) largest |τ| over the whole tensor (0.57 of 100 keeps 56)', async () => {
    const tau = randomArray(100, 7);
    const job = taJob([1], [10, 10], { sparsification: 'magnitude', density: 0.57 });
    const out = await kernel.mergeTensor(job, readerOf({ base: new Float32Array(100), m0: tau }));
    const keptIdx = [...out.keys()].filter((i) => out[i] !== 0);
    expect(keptIdx.length).toBe(56);
    const threshold = [...tau].map(Math.abs).sort((a, b) => b - a)[55];
    for (let i = 0; i < 100; i++) expect(out[i] !== 0).toBe(Math.abs(tau[i]) >= threshold);
    for (const i of keptIdx) expect(out[i]).toBe(tau[i]);
  });

  it('keeps the lowest indices among equal magnitudes at the cut', async () => {
    const job = taJob([1], [6], { sparsification: 'magnitude', density: 0.5 });
    const out = await kernel.mergeTensor(job, readerOf({ base: new Float32Array(6), m0: [1, -2, 2, 1, 2, -2] }));
    expect(Array.from(out)).toEqual([0, -2, 2, 0, 2, 0]);
  });

  it('refuses k == 0 with merge.density_zero naming the tensor', async () => {
    const job = taJob([1], [10], { sparsification: 'magnitude', density: 0.05 }, 'model.norm.weight');
    const err = await kernel
      .mergeTensor(job, readerOf({ base: new Float32Array(10), m0: randomArray(10, 1) }))
      .catch((e) => e);
    expect(err).toBeInstanceOf(EvomergeError);
    expect(err.code).toBe('merge.density_zero');
    expect(err.message).toContain('tensor "model.norm.weight"');
  });

  it('rescales by the L1 ratio ‖τ‖₁/‖trim τ‖₁ when asked', async () => {
    const job = taJob([1], [4], { sparsification: 'magnitude', density: 0.5, rescale: 'l1' });
    const out = await kernel.mergeTensor(job, readerOf({ base: [0, 0, 0, 0], m0: [1, -3, 0.5, 2] }));
    const s = f(6.5 / 5);
    expect(Array.from(out)).toEqual([0, f(-3 * s), 0, f(2 * s)]);
  });
});

describe('breadcrumbs (magnitude_outliers)', () => {
  it('density 0.7, gamma 0.05 on 128 elements keeps 89, drops the 6 largest and the 33 smallest', async () => {
    const tau = randomArray(128, 99);
    const job = taJob([1], [128], { sparsification: 'magnitude_outliers', density: 0.7, gamma: 0.05 });
    const out = await kernel.mergeTensor(job, readerOf({ base: new Float32Array(128), m0: tau }));
    const order = [...tau.keys()].sort((a, b) => Math.abs(tau[a]) - Math.abs(tau[b])); // ascending
    const dropped = new Set([...order.slice(0, 33), ...order.slice(128 - 6)]);
    let kept = 0;
    for (let i = 0; i < 128; i++) {
      if (dropped.has(i)) expect(out[i]).toBe(0);
      else {
        expect(out[i]).toBe(tau[i]);
        kept++;
      }
    }
    expect(kept).toBe(89);
  });

  it('drops the whole task vector when n_top == 0 (mergekit indices[n_bot:-0] quirk)', async () => {
    const tau = randomArray(19, 5); // gamma·n = 0.95 < 1 → n_top = 0
    const base = randomArray(19, 6);
    const x = base.map((b, i) => b + tau[i]);
    const job = taJob([1], [19], { sparsification: 'magnitude_outliers', density: 0.7, gamma: 0.05 });
    const out = await kernel.mergeTensor(job, readerOf({ base, m0: x }));
    expect(Array.from(out)).toEqual(Array.from(base));
  });
});

describe('task arithmetic and linear properties', () => {
  it('zero weights give the base', async () => {
    await fc.assert(
      fc.asyncProperty(finiteArray(8), finiteArray(8), finiteArray(8), fc.boolean(), async (base, a, b, normalize) => {
        const job = taJob([0, 0], [8], { normalize });
        const out = await kernel.mergeTensor(job, readerOf({ base, m0: a, m1: b }));
        for (let i = 0; i < 8; i++) expect(out[i] === base[i]).toBe(true); // === : −0 and +0 are both the base's zero
      }),
    );
  });

  it('linear with weights [1, 0] gives the first model', async () => {
    await fc.assert(
      fc.asyncProperty(finiteArray(8), finiteArray(8), fc.boolean(), async (a, b, normalize) => {
        const job = {
          name: 't',
          shape: [8],
          op: {
            kind: 'weighted_sum' as const,
            inputs: [
              { ref: { model: 'a', tensor: 't' }, weight: 1 },
              { ref: { model: 'b', tensor: 't' }, weight: 0 },
            ],
            normalize,
          },
        };
        const out = await kernel.mergeTensor(job, readerOf({ a, b }));
        for (let i = 0; i < 8; i++) expect(out[i] === a[i] || (out[i] === 0 && a[i] === 0)).toBe(true);
      }),
    );
  });

  it('linear normalizes by the plain Σw (no guard: weights summing to 0 give non-finite values)', async () => {
    const job = (w: number[], normalize: boolean) => ({
      name: 't',
      shape: [2],
      op: {
        kind: 'weighted_sum' as const,
        inputs: w.map((weight, i) => ({ ref: { model: `m${i}`, tensor: 't' }, weight })),
        normalize,
      },
    });
    const r = readerOf({ m0: [1, 2], m1: [3, 4] });
    expect(Array.from(await kernel.mergeTensor(job([1, 3], true), r))).toEqual([2.5, 3.5]);
    expect(Array.from(await kernel.mergeTensor(job([1, 3], false), r))).toEqual([10, 14]);
    const bad = await kernel.mergeTensor(job([1, -1], true), r);
    expect(Number.isFinite(bad[0])).toBe(false);
  });

  it('task_arithmetic: base + λ·Σ wᵢτᵢ (normalize divides by Σw, replaced by 1 when |Σw| < 1e-8)', async () => {
    const r = readerOf({ base: [1, 1], m0: [2, 3], m1: [0, 5] });
    expect(Array.from(await kernel.mergeTensor(taJob([0.5, 0.25], [2]), r))).toEqual([1.25, 3]);
    expect(Array.from(await kernel.mergeTensor(taJob([0.5, 0.25], [2], { lambda: 2 }), r))).toEqual([1.5, 5]);
    expect(Array.from(await kernel.mergeTensor(taJob([0.5, 0.25], [2], { normalize: true }), r))).toEqual([
      f(1 + f(0.25 / 0.75)),
      f(1 + f(2 / 0.75)),
    ]);
    expect(Array.from(await kernel.mergeTensor(taJob([1, -1], [2], { normalize: true }), r))).toEqual([3, -1]); // Σw = 0 → divisor 1
  });
});

describe('DARE (random)', () => {
  const n = 20_000;
  const p = 0.3;
  const base = randomArray(n, 11);
  const tau = randomArray(n, 12);
  const x = base.map((b, i) => b + tau[i]);
  const tauF = x.map((v, i) => f(v - base[i]));
  const sigma = Math.sqrt(n * p * (1 - p));

  it('with density 1 equals task arithmetic, bit for bit', async () => {
    await fc.assert(
      fc.asyncProperty(
        finiteArray(16),
        finiteArray(16),
        finiteArray(16),
        fc.integer({ min: 0, max: 1000 }),
        async (b, a, c, seed) => {
          const r = readerOf({ base: b, m0: a, m1: c });
          const dare = await kernel.mergeTensor(
            taJob([0.7, 0.4], [16], { sparsification: 'random', density: 1, rescale: 'l1', seed }),
            r,
          );
          const ta = await kernel.mergeTensor(taJob([0.7, 0.4], [16]), r);
          expect(Array.from(dare)).toEqual(Array.from(ta));
        },
      ),
      { numRuns: 50 },
    );
  });

  it('keeps a fraction within 5σ of p, independent of magnitude, with one L1 scale per tensor', async () => {
    const out = await kernel.mergeTensor(
      taJob([1], [n], { sparsification: 'random', density: p, rescale: 'l1', seed: 3 }),
      readerOf({ base, m0: x }),
    );
    const keptMask = out.map((v, i) => (v !== base[i] ? 1 : 0));
    const kept = keptMask.reduce((s, v) => s + v, 0);
    expect(Math.abs(kept - p * n)).toBeLessThan(5 * sigma);
    const byMag = [...tauF.keys()].sort((a, b) => Math.abs(tauF[a]) - Math.abs(tauF[b]));
    const half = n / 2;
    const sigmaHalf = Math.sqrt(half * p * (1 - p));
    for (const part of [byMag.slice(0, half), byMag.slice(half)]) {
      const k = part.reduce((s, i) => s + keptMask[i], 0);
      expect(Math.abs(k - p * half)).toBeLessThan(5 * sigmaHalf);
    }
    let l1 = 0;
    let l1Kept = 0;
    for (let i = 0; i < n; i++) {
      l1 += Math.abs(tauF[i]);
      if (keptMask[i]) l1Kept += Math.abs(tauF[i]);
    }
    const s = f(f(l1) / f(l1Kept));
    for (let i = 0; i < n; i++) if (keptMask[i]) expect(out[i]).toBe(f(base[i] + f(tauF[i] * s)));
  });

  it('same seed gives identical bits, another seed a mask disagreement near 2p(1−p)', async () => {
    const run = (seed: number) =>
      kernel.mergeTensor(
        taJob([1], [n], { sparsification: 'random', density: p, rescale: 'none', seed }),
        readerOf({ base, m0: x }),
      );
    const a = await run(1);
    const b = await run(1);
    const c = await run(2);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    let disagree = 0;
    for (let i = 0; i < n; i++) if ((a[i] !== base[i]) !== (c[i] !== base[i])) disagree++;
    expect(Math.abs(disagree / n - 2 * p * (1 - p))).toBeLessThan(0.03);
  });

  it('rescale density divides the kept entries by density (DARE paper)', async () => {
    const out = await kernel.mergeTensor(
      taJob([1], [n], { sparsification: 'random', density: p, rescale: 'density', seed: 4 }),
      readerOf({ base, m0: x }),
    );
    for (let i = 0; i < n; i++) if (out[i] !== base[i]) expect(out[i]).toBe(f(base[i] + f(tauF[i] / f(p))));
  });
});
