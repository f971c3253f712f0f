import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bernoulliMask } from '../../../src/kernel/cpu/bernoulli-mask.ts';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { stableArgsortU32 } from '../../../src/kernel/cpu/della-magprune.ts';
import { drawU32, keepThreshold, rngKey } from '../../../src/kernel/rng.ts';
import { readerOf, taJob } from './job-fixtures.ts';

const kernel = new CpuKernel();

describe('bernoulliMask', () => {
  it('is the keep rule (drawU32 >>> 8) < keepThreshold(p) of kernel/rng.ts, bit for bit', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.string(),
        fc.nat(10),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (seed, name, model, p) => {
          const key = rngKey(seed, name);
          const n = 100;
          const mask = bernoulliMask(key, model, n, p);
          for (let e = 0; e < n; e++) {
            const bit = (mask[e >>> 5] >>> (e & 31)) & 1;
            expect(bit).toBe(drawU32(key, model, e) >>> 8 < keepThreshold(p) ? 1 : 0);
          }
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('stableArgsortU32', () => {
  it('sorts ascending with ties in index order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 0x7fffffff })), {
          minLength: 1,
          maxLength: 100,
        }),
        (arr) => {
          const keys = Uint32Array.from(arr);
          const order = new Uint32Array(keys.length);
          stableArgsortU32(keys, order, new Uint32Array(keys.length), new Uint32Array(2048));
          const expected = [...keys.keys()].sort((a, b) => keys[a] - keys[b] || a - b);
          expect(Array.from(order)).toEqual(expected);
        },
      ),
    );
  });
});

describe('della (della_magprune)', () => {
  const rows = 40;
  const cols = 500;
  const n = rows * cols;
  const tau = new Float32Array(n);
  for (let i = 0; i < n; i++)
    tau[i] = Math.sin(i * 12.9898) * 43758.5453 - Math.floor(Math.sin(i * 12.9898) * 43758.5453) - 0.5;
  const base = new Float32Array(n);
  const density = 0.5;
  const epsilon = 0.2;

  it('keeps with probability rising from density − ε to density + ε with the rank in each row', async () => {
    const out = await kernel.mergeTensor(
      taJob([1], [rows, cols], { sparsification: 'della_magprune', density, epsilon, rescale: 'none', seed: 9 }),
      readerOf({ base, m0: tau }),
    );
    // bottom and top fifth of each row by |τ|
    let lowKept = 0;
    let highKept = 0;
    let count = 0;
    for (let r = 0; r < rows; r++) {
      const idx = [...Array(cols).keys()].map((j) => r * cols + j).sort((a, b) => Math.abs(tau[a]) - Math.abs(tau[b]));
      for (const e of idx.slice(0, cols / 5)) lowKept += out[e] !== 0 ? 1 : 0;
      for (const e of idx.slice(-cols / 5)) highKept += out[e] !== 0 ? 1 : 0;
      count += cols / 5;
      for (let j = 0; j < cols; j++) if (out[r * cols + j] !== 0) expect(out[r * cols + j]).toBe(tau[r * cols + j]);
    }
    // expected keep rates: mean p over the bottom fifth ≈ 0.3 + 0.4·0.1 = 0.34, top fifth ≈ 0.66
    const sd = Math.sqrt(count * 0.25);
    expect(Math.abs(lowKept - 0.34 * count)).toBeLessThan(5 * sd);
    expect(Math.abs(highKept - 0.66 * count)).toBeLessThan(5 * sd);
  });

  it('rescale density divides each kept entry by its own keep probability (DELLA eq.)', async () => {
    const out = await kernel.mergeTensor(
      taJob([1], [1, 5], { sparsification: 'della_magprune', density, epsilon, rescale: 'density', seed: 2 }),
      readerOf({ base: new Float32Array(5), m0: [0.1, -0.5, 0.3, 0.2, -0.4] }),
    );
    // ranks ascending: 0.1→1, 0.2→2, 0.3→3, 0.4→4, 0.5→5; p = 0.3 + (rank−1)/4·0.4
    const p = [0.3, 0.7, 0.5, 0.4, 0.6].map(Math.fround);
    const v = [0.1, -0.5, 0.3, 0.2, -0.4].map(Math.fround);
    for (let e = 0; e < 5; e++) if (out[e] !== 0) expect(out[e]).toBeCloseTo(v[e] / p[e], 6);
  });

  it('refuses an epsilon that takes density ± ε out of (0, 1)', async () => {
    const job = taJob([1], [2, 4], { sparsification: 'della_magprune', density: 0.9, epsilon: 0.15 });
    await expect(
      kernel.mergeTensor(job, readerOf({ base: new Float32Array(8), m0: new Float32Array(8).fill(1) })),
    ).rejects.toMatchObject({
      code: 'merge.della_epsilon',
    });
  });
});
