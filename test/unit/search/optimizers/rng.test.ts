import { describe, expect, it } from 'vitest';
import { Rng } from '../../../../src/search/optimizers/rng.ts';

describe('optimizer Rng (xoshiro128**)', () => {
  it('matches the reference C implementation from state {1,2,3,4}', () => {
    // Values printed by Blackman & Vigna's xoshiro128starstar.c `next()` with s = {1, 2, 3, 4}.
    const rng = Rng.fromState([1, 2, 3, 4]);
    expect([1, 2, 3, 4, 5].map(() => rng.nextU32())).toEqual([11520, 0, 5927040, 70819200, 2031721883]);
  });

  it('is a pure function of the seed, and different seeds give different streams', () => {
    const a = Rng.fromSeed(42);
    const b = Rng.fromSeed(42);
    const c = Rng.fromSeed(43);
    const sa = Array.from({ length: 8 }, () => a.nextU32());
    expect(Array.from({ length: 8 }, () => b.nextU32())).toEqual(sa);
    expect(Array.from({ length: 8 }, () => c.nextU32())).not.toEqual(sa);
    expect(Rng.fromSeed(-1).state()).not.toEqual(Rng.fromSeed(1).state());
    expect(Rng.fromSeed(2 ** 40).state()).not.toEqual(Rng.fromSeed(0).state());
  });

  it('continues the same stream after state() → fromState()', () => {
    const a = Rng.fromSeed(7);
    for (let i = 0; i < 13; i++) a.normal();
    const b = Rng.fromState(JSON.parse(JSON.stringify(a.state())));
    expect(Array.from({ length: 20 }, () => b.normal())).toEqual(Array.from({ length: 20 }, () => a.normal()));
  });

  it('draws uniforms in [0, 1) and normals with mean 0, variance 1', () => {
    const rng = Rng.fromSeed(3);
    const n = 20000;
    let mean = 0;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const u = rng.uniform();
      expect(u >= 0 && u < 1).toBe(true);
      const z = rng.normal();
      mean += z / n;
      sq += (z * z) / n;
    }
    expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(sq - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[rng.int(3)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(5 * Math.sqrt(3000 * (1 / 3) * (2 / 3)));
  });

  it('refuses bad seeds and bad states', () => {
    expect(() => Rng.fromSeed(1.5)).toThrow(expect.objectContaining({ code: 'optimizer.bad_seed' }));
    expect(() => Rng.fromSeed(2 ** 60)).toThrow(expect.objectContaining({ code: 'optimizer.bad_seed' }));
    expect(() => Rng.fromState([0, 0, 0, 0])).toThrow(expect.objectContaining({ code: 'optimizer.bad_state' }));
    expect(() => Rng.fromState([1, 2, 3])).toThrow(expect.objectContaining({ code: 'optimizer.bad_state' }));
    expect(() => Rng.fromState([1, 2, 3, 2 ** 32])).toThrow(expect.objectContaining({ code: 'optimizer.bad_state' }));
  });
});
