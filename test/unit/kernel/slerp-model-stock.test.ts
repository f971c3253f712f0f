import { describe, expect, it } from 'vitest';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { modelStockT } from '../../../src/kernel/cpu/model-stock.ts';
import { DOT_THRESHOLD, slerpBranch } from '../../../src/kernel/cpu/slerp.ts';
import type { TensorJob } from '../../../src/kernel/kernel.ts';
import { readerOf, ref } from './job-fixtures.ts';

const kernel = new CpuKernel();
const f = Math.fround;
const slerpJob = (t: number, n: number): TensorJob => ({
  name: 't',
  shape: [n],
  op: { kind: 'slerp', a: ref('a'), b: ref('b'), t },
});

describe('slerp', () => {
  const a = Float32Array.from([1, 2, 3, 4]);
  const b = Float32Array.from([2, -1, 0.5, 3]); // dot/(‖a‖‖b‖) ≈ 0.52: spherical branch

  it('takes the linear branch for colinear tensors, bit for bit (1−t)·a + t·b', async () => {
    const b2 = a.map((v) => v * 2.5);
    expect(slerpBranch(a, b2).linear).toBe(true);
    const t = 0.3;
    const out = await kernel.mergeTensor(slerpJob(t, 4), readerOf({ a, b: b2 }));
    expect(Array.from(out)).toEqual(Array.from(a, (v, i) => f(f(f(1 - t) * v) + f(f(t) * b2[i]))));
  });

  it('switches branch exactly at |dot| > 0.9995', () => {
    // a = (1, 0), b = (c, s) with c just above / below the threshold
    const above = Float32Array.from([
      Math.cos(Math.acos(DOT_THRESHOLD) * 0.9),
      Math.sin(Math.acos(DOT_THRESHOLD) * 0.9),
    ]);
    const below = Float32Array.from([
      Math.cos(Math.acos(DOT_THRESHOLD) * 1.1),
      Math.sin(Math.acos(DOT_THRESHOLD) * 1.1),
    ]);
    const e = Float32Array.from([1, 0]);
    expect(slerpBranch(e, above).linear).toBe(true);
    expect(slerpBranch(e, below).linear).toBe(false);
    expect(
      slerpBranch(
        e,
        below.map((v) => -v),
      ).linear,
    ).toBe(false);
    expect(
      slerpBranch(
        e,
        above.map((v) => -v),
      ).linear,
    ).toBe(true); // |dot|: anti-parallel is colinear too
  });

  it('t = 0 gives a, t = 1 gives b', async () => {
    expect(Array.from(await kernel.mergeTensor(slerpJob(0, 4), readerOf({ a, b })))).toEqual(Array.from(a));
    expect(Array.from(await kernel.mergeTensor(slerpJob(1, 4), readerOf({ a, b })))).toEqual(Array.from(b));
  });

  it('matches the spherical formula in float64 within 1e-6 of the largest value', async () => {
    const t = 0.37;
    const out = await kernel.mergeTensor(slerpJob(t, 4), readerOf({ a, b }));
    const na = Math.hypot(...a);
    const nb = Math.hypot(...b);
    const dot = a.reduce((s, v, i) => s + v * b[i], 0) / (na * nb);
    const th = Math.acos(dot);
    for (let i = 0; i < 4; i++) {
      const ref64 = (Math.sin((1 - t) * th) / Math.sin(th)) * a[i] + (Math.sin(t * th) / Math.sin(th)) * b[i];
      expect(Math.abs(out[i] - ref64)).toBeLessThan(1e-6 * 4);
    }
  });
});

describe('model_stock', () => {
  it('interpolates by t = N·cos/(1 + (N−1)·cos) between the base and the mean (hand case)', async () => {
    // offsets (1, 0) and (1, 1): cos = 1/√2, N = 2 → t = √2/(1 + 1/√2) = 0.828427...
    const base = Float32Array.from([1, 2]);
    const x1 = Float32Array.from([2, 2]);
    const x2 = Float32Array.from([2, 3]);
    const t = modelStockT(base, [x1, x2]);
    expect(t).toBeCloseTo((2 * Math.SQRT1_2) / (1 + Math.SQRT1_2), 6);
    const job: TensorJob = {
      name: 't',
      shape: [2],
      op: { kind: 'model_stock', base: ref('base'), inputs: [ref('x1'), ref('x2')] },
    };
    const out = await kernel.mergeTensor(job, readerOf({ base, x1, x2 }));
    expect(out[0]).toBeCloseTo(1 + t, 6);
    expect(out[1]).toBeCloseTo(2 + 0.5 * t, 6);
  });

  it('orthogonal offsets give t = 0 (the base); a third model enters the mean of pairwise cosines', async () => {
    expect(modelStockT(Float32Array.from([0, 0]), [Float32Array.from([1, 0]), Float32Array.from([0, 1])])).toBe(0);
    // three identical offsets: cos = 1 → t = 3/(1+2) = 1 → the mean
    const base = Float32Array.from([0, 0, 0]);
    const x = Float32Array.from([1, 2, 3]);
    expect(modelStockT(base, [x, x, x])).toBeCloseTo(1, 6); // float32 norms: cos = 0.99999994, as torch
  });

  it('refuses fewer than 2 fine-tunes', async () => {
    const job: TensorJob = {
      name: 'w',
      shape: [2],
      op: { kind: 'model_stock', base: ref('base'), inputs: [ref('x1')] },
    };
    await expect(kernel.mergeTensor(job, readerOf({ base: [0, 0], x1: [1, 1] }))).rejects.toThrow(/model_stock needs/);
  });
});
