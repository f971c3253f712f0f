import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import type { Rescale, Sparsification } from '../../../src/kernel/kernel.ts';
import { bernoulliMask } from '../../../src/kernel/cpu/bernoulli-mask.ts';
import { maskedL1 } from '../../../src/kernel/cpu/l1-rescale.ts';
import { bernoulliMaskSimd, maskedL1Simd } from '../../../src/kernel/cpu/simd/simd-dare.ts';
import { SimdRuntime } from '../../../src/kernel/cpu/simd/simd-runtime.ts';
import { rngKey } from '../../../src/kernel/rng.ts';
import { readerOf, taJob } from './job-fixtures.ts';

const simd = new CpuKernel();
const plain = new CpuKernel({ simd: false });

/** Bit equality, except that any NaN equals any NaN (payloads are not part of the contract). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++)
    if (!(Object.is(a[i], b[i]) || (Number.isNaN(a[i]) && Number.isNaN(b[i])))) return false;
  return true;
}

const value = fc.oneof(
  { arbitrary: fc.constantFrom(0, -0, 0.5, -0.5, 1, -1), weight: 4 },
  { arbitrary: fc.float({ noNaN: true, min: -100, max: 100 }), weight: 4 },
  { arbitrary: fc.integer({ min: -3, max: 3 }).map((i) => i / 8), weight: 4 },
  // rare non-finite inputs: the consensus fast path must hand these chunks to the exact loops
  { arbitrary: fc.constantFrom(Infinity, -Infinity, NaN, 3e38, -3e38), weight: 1 },
);

describe('WebAssembly SIMD loops equal the plain loops bit for bit', () => {
  it('has SIMD here (Node ≥ 20)', () => {
    expect(simd.device).toBe('cpu (wasm simd)');
    expect(plain.device).toBe('cpu');
  });

  it('task-arithmetic family: every sparsification, consensus, normalize, lambda, rescale', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 9000 }),
        fc.integer({ min: 1, max: 6 }), // ≤ 4 models: unrolled combines; more: the looped ones
        fc.constantFrom<Sparsification>('none', 'magnitude', 'magnitude_outliers', 'random'),
        fc.constantFrom<'none' | 'sum'>('none', 'sum'),
        fc.boolean(),
        fc.constantFrom(1, 0.7),
        fc.constantFrom<Rescale>('none', 'l1', 'density'),
        fc.array(fc.constantFrom(1, 0.5, -0.3, 0, 2), { minLength: 6, maxLength: 6 }),
        fc.constantFrom(0.3, 0.5, 0.9),
        fc.integer({ min: 0, max: 1000 }),
        async (n, models, sparsification, consensus, normalize, lambda, rescale, weights, density, seed) => {
          const gen = (salt: number) =>
            fc.sample(fc.array(value, { minLength: n, maxLength: n }), { seed: seed * 31 + salt, numRuns: 1 })[0];
          const tensors: Record<string, number[]> = { base: gen(0) };
          for (let m = 0; m < models; m++) tensors[`m${m}`] = gen(m + 1);
          const job = taJob(weights.slice(0, models), [n], {
            sparsification,
            consensus,
            normalize,
            lambda,
            rescale,
            density,
            gamma: 0.05,
            seed,
          });
          const run = (k: CpuKernel) => k.mergeTensor(job, readerOf(tensors)).catch((e: Error) => e.message);
          const a = await run(simd);
          const b = await run(plain);
          if (typeof a === 'string' || typeof b === 'string') expect(a).toEqual(b);
          else expect(sameBits(a, b)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('fused selection pass on a tensor large enough for the sampled bracket (ties, breadcrumbs_ties)', async () => {
    const n = 300_003;
    let s = 99;
    const rand = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 4294967296 - 0.5;
    };
    const base = new Float32Array(n).map(() => rand() * 0.04);
    const tensors: Record<string, Float32Array> = { base };
    // τ on a coarse grid (multiples of 2⁻¹²): many equal magnitudes, so cuts fall inside runs of ties.
    for (let m = 0; m < 3; m++)
      tensors[`m${m}`] = base.map((b) => b + (rand() < -0.45 ? 0 : Math.round(rand() * 400) / 4096));
    // A heavily tied expert (most |τ| exactly equal): its bracket holds whole runs of equal magnitudes.
    const tied = base.map((b, i) => b + (i % 5 === 0 ? 0.25 : rand() < 0.7 ? 0.125 : 0));
    // An expert whose strided sample (every 32nd element) sees only its outliers: the bracket misses the cut
    // and the exact histogram fallback runs.
    const strided = base.map((b, i) => b + (i % 32 === 0 ? 0.5 : 0));
    for (const third of [null, tied, strided]) {
      if (third !== null) tensors.m2 = third;
      for (const sparsification of ['magnitude', 'magnitude_outliers'] as const) {
        for (const consensus of ['sum', 'none'] as const) {
          const job = taJob([0.5, 0.3, -0.2], [n], {
            sparsification,
            consensus,
            normalize: true,
            density: [0.5, 0.2, 0.9],
            gamma: 0.01,
          });
          const a = await simd.mergeTensor(job, readerOf(tensors));
          const b = await plain.mergeTensor(job, readerOf(tensors));
          expect(sameBits(a, b)).toBe(true);
        }
      }
    }
  });

  it('bf16 task vectors (thousands of elements at each cut): SIMD equals the plain loops, every density', async () => {
    // As between bf16 checkpoints: few distinct |τ|, so elements at a cut fill nearly every chunk and the located
    // combine settles whole chunks of ties by threshold, leaving only the chunk where the kept ones end.
    const bf16 = (v: number) => {
      const f = new Float32Array([v]);
      const u = new Uint32Array(f.buffer);
      u[0] = (u[0] + 0x7fff + ((u[0] >>> 16) & 1)) & 0xffff0000;
      return f[0];
    };
    let s = 2024;
    const rand = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 4294967296 - 0.5;
    };
    for (const n of [262_145, 300_007]) {
      const base = new Float32Array(n).map(() => bf16(rand() * 0.1));
      const tensors: Record<string, Float32Array> = { base };
      for (let m = 0; m < 3; m++) tensors[`m${m}`] = base.map((b) => bf16(b * (1 + 0.2 * rand())));
      tensors.m2 = tensors.m2.map((v, i) => (i % 7 === 0 ? base[i] : v)); // and a run of exact zeros
      const cases: [number[], number[]][] = [
        [
          [1, 1],
          [0.5, 0.5],
        ],
        [
          [1, 1],
          [1, 0.3],
        ],
        [
          [0.7, 0.4, -0.3],
          [0.0001, 0.9, 0.999],
        ],
        [
          [1, 1, 1],
          [0.1, 0.5, 1],
        ],
      ];
      for (const [weights, density] of cases) {
        for (const sparsification of ['magnitude', 'magnitude_outliers'] as const) {
          for (const consensus of ['sum', 'none'] as const) {
            for (const rescale of ['none', 'l1'] as const) {
              const job = taJob(weights, [n], { sparsification, consensus, normalize: true, density, rescale });
              const a = await simd.mergeTensor(job, readerOf(tensors));
              const b = await plain.mergeTensor(job, readerOf(tensors));
              expect(sameBits(a, b)).toBe(true);
            }
          }
        }
      }
      // density 0: refused alike (mergekit asserts k > 0)
      const zero = taJob([1, 1], [n], { sparsification: 'magnitude', consensus: 'sum', density: [0, 0.5] });
      await expect(simd.mergeTensor(zero, readerOf(tensors))).rejects.toThrow(/density 0/);
      await expect(plain.mergeTensor(zero, readerOf(tensors))).rejects.toThrow(/density 0/);
    }
  });

  it('DARE mask and L1 norms: SIMD equals the plain loops (several blocks, n not a multiple of 32)', () => {
    const rt = SimdRuntime.create()!;
    for (const [n, p, seed, model] of [
      [200_001, 0.3, 5, 2],
      [77, 0.9, 2 ** 40 + 3, 0],
      [4096 * 33 + 5, 1, 1, 1],
    ] as const) {
      const key = rngKey(seed, 'model.layers.1.self_attn.q_proj.weight');
      const a = bernoulliMaskSimd(rt, key, model, n, p);
      const b = bernoulliMask(key, model, n, p);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
      const x = new Float32Array(n).map((_, i) => Math.sin(i) * 3);
      const base = new Float32Array(n).map((_, i) => Math.cos(i * 0.7));
      expect(maskedL1Simd(rt, x, base, a)).toEqual(maskedL1(x, base, b));
    }
  });
});
