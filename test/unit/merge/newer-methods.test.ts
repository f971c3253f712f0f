// The methods added to mergekit since 2024 (merge/newer-methods.ts): their parameters and defaults as mergekit
// v0.1.4 declares them, and the small worked cases that pin the rules the goldens exercise only in bulk.
import { describe, expect, it } from 'vitest';
import { karcher } from '../../../src/kernel/cpu/karcher.ts';
import { nearswap } from '../../../src/kernel/cpu/nearswap.ts';
import { nuslerp, nuslerpVectors } from '../../../src/kernel/cpu/nuslerp.ts';
import { sce, sceKeep } from '../../../src/kernel/cpu/sce.ts';
import { findMethod, methodParameter } from '../../../src/merge/registry.ts';

describe('newer methods in the registry', () => {
  it.each([
    ['sce', 'select_topk', 'global', 1.0],
    ['sce', 'int8_mask', 'global', false],
    ['nuslerp', 'nuslerp_flatten', 'global', true],
    ['nuslerp', 'nuslerp_row_wise', 'global', false],
    ['multislerp', 'normalize_weights', 'global', true],
    ['multislerp', 'eps', 'global', 1e-8],
    ['karcher', 'max_iter', 'global', 10],
    ['karcher', 'tol', 'global', 1e-5],
  ] as const)('%s.%s is %s with default %s', (method, name, scope, def) => {
    const p = methodParameter(findMethod(method, 'x.yaml'), name)!;
    expect(p.scope).toBe(scope);
    expect(p.default).toBe(def);
    expect(p.required).toBe(false);
  });

  it('weight is required per model for nuslerp and multislerp; nearswap t is required; arcee_fusion takes none', () => {
    for (const m of ['nuslerp', 'multislerp']) {
      const w = methodParameter(findMethod(m, 'x.yaml'), 'weight')!;
      expect([w.scope, w.required]).toEqual(['per_model', true]);
    }
    const t = methodParameter(findMethod('nearswap', 'x.yaml'), 't')!;
    expect([t.scope, t.required]).toEqual(['global', true]);
    expect(findMethod('arcee_fusion', 'x.yaml').parameters).toEqual([]);
  });

  it('needs a base for sce, arcee_fusion and nearswap only', () => {
    const needs = ['sce', 'nuslerp', 'multislerp', 'karcher', 'arcee_fusion', 'nearswap'].filter(
      (m) => findMethod(m, 'x.yaml').needsBase,
    );
    expect(needs).toEqual(['sce', 'arcee_fusion', 'nearswap']);
  });
});

describe('newer methods on the CPU kernel', () => {
  it('nearswap: t / |Δ| through the reciprocal, clamped to [0, 1]', () => {
    const base = new Float32Array([0, 0, 1, 5]);
    const other = new Float32Array([0.0005, 0.01, 1, 4]);
    const out = nearswap(0.001, base, other);
    expect(out[0]).toBe(Math.fround(0.0005)); // |Δ| < t: fully swapped
    // w = fround(fround(1 / 0.01) · fround(0.001)) ≈ 0.1
    const w = Math.fround(Math.fround(1 / Math.fround(0.01)) * Math.fround(0.001));
    expect(out[1]).toBe(Math.fround(Math.fround(w * Math.fround(0.01)) + 0));
    expect(out[2]).toBe(1); // equal entries: w = 1, the other's value
    expect(out[3]).toBeCloseTo(5 - 0.001, 6);
  });

  it('nuslerp splits a [2, 3] tensor into rows, columns (row_wise) or one vector (flatten)', () => {
    expect(nuslerpVectors([2, 3], true, false)).toEqual({ count: 1, length: 6, stride: 1, step: 0 });
    expect(nuslerpVectors([2, 3], false, false)).toEqual({ count: 2, length: 3, stride: 1, step: 3 });
    expect(nuslerpVectors([2, 3], false, true)).toEqual({ count: 3, length: 2, stride: 3, step: 1 });
    expect(nuslerpVectors([4], false, true)).toEqual({ count: 1, length: 4, stride: 1, step: 0 });
  });

  it('nuslerp of orthogonal unit rows at t = 0.5 is their normalised bisector; colinear rows interpolate', () => {
    const a = new Float32Array([1, 0, 2, 0]);
    const b = new Float32Array([0, 1, 4, 0]);
    const out = nuslerp(0.5, a, b, undefined, [2, 2], false, false);
    expect(out[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(out[1]).toBeCloseTo(Math.SQRT1_2, 6);
    expect([out[2], out[3]]).toEqual([3, 0]);
  });

  it('sce: the variance cut keeps int(nonzero · select_topk) entries; weights are normalised mean squares', () => {
    const tvs = [new Float32Array([1, 0, 3, 0]), new Float32Array([1, 2, -3, 0])];
    // variances: 0, 1, 9, 0 → 2 nonzero, k = int(2 · 0.5) = 1: only entry 2.
    expect([...sceKeep(tvs, 0.5)!]).toEqual([0, 0, 1, 0]);
    const base = new Float32Array(4);
    const out = sce(base, tvs, 1.0, new Float32Array(4));
    // Sums 2, 2, 0, 0: entry 2 elects + (0 ≥ 0), so only model 0 (τ = 3) agrees there.
    expect(out[0]).toBeCloseTo(1, 6);
    expect(out[1]).toBeCloseTo(2, 6);
    expect(out[2]).toBeCloseTo(3, 6);
    expect(out[3]).toBe(0);
  });

  it('karcher of two orthogonal equal-norm vectors is their bisector with the mean norm', () => {
    const out = karcher([new Float32Array([2, 0]), new Float32Array([0, 2])], 10, 1e-5, new Float32Array(2));
    expect(out[0]).toBeCloseTo(Math.SQRT2, 5);
    expect(out[1]).toBeCloseTo(Math.SQRT2, 5);
  });
});
