import { describe, expect, it } from 'vitest';
import { drawU32, fnv1a32, keepThreshold, rngKey } from '../../src/kernel/rng.ts';

describe('counter-based rng', () => {
  it('hashes tensor names with FNV-1a (reference values)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
  });
  it('is a pure function of its key and counters', () => {
    const k = rngKey(42, 'model.layers.0.mlp.up_proj.weight');
    const a = [0, 1, 2, 1000].map((i) => drawU32(k, 1, i));
    const b = [0, 1, 2, 1000].map((i) => drawU32(rngKey(42, 'model.layers.0.mlp.up_proj.weight'), 1, i));
    expect(a).toEqual(b);
    expect(new Set(a).size).toBe(4);
    expect(drawU32(k, 2, 0)).not.toBe(drawU32(k, 1, 0));
    expect(drawU32(rngKey(43, 'model.layers.0.mlp.up_proj.weight'), 1, 0)).not.toBe(a[0]);
  });
  it('keeps a fraction close to p', () => {
    const k = rngKey(7, 't');
    const thr = keepThreshold(0.3);
    let kept = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) if (drawU32(k, 0, i) >>> 8 < thr) kept++;
    const sigma = Math.sqrt(n * 0.3 * 0.7);
    expect(Math.abs(kept - 0.3 * n)).toBeLessThan(5 * sigma);
  });
  it('maps densities to integer thresholds', () => {
    expect(keepThreshold(0)).toBe(0);
    expect(keepThreshold(1)).toBe(1 << 24);
    expect(keepThreshold(0.5)).toBe(1 << 23);
  });
});
