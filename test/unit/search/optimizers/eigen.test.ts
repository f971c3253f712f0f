import { describe, expect, it } from 'vitest';
import { symmetricEigen } from '../../../../src/search/optimizers/eigen.ts';
import { Rng } from '../../../../src/search/optimizers/rng.ts';

function randomSymmetric(n: number, seed: number): number[][] {
  const rng = Rng.fromSeed(seed);
  const a = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i][j] = a[j][i] = rng.normal();
  return a;
}

describe('symmetricEigen (cyclic Jacobi)', () => {
  it('diagonalises known matrices', () => {
    const { values } = symmetricEigen([
      [2, 1],
      [1, 2],
    ]);
    expect(values.slice().sort()).toEqual([1, 3].map((v) => expect.closeTo(v, 14)));
    const diag = symmetricEigen([
      [5, 0, 0],
      [0, -1, 0],
      [0, 0, 2],
    ]);
    expect(diag.values).toEqual([5, -1, 2]);
    expect(symmetricEigen([]).values).toEqual([]);
  });

  it.each([1, 3, 10, 40])('reconstructs A = V Λ Vᵀ with orthonormal V (n = %i)', (n) => {
    const a = randomSymmetric(n, n);
    const { values, vectors: v } = symmetricEigen(a);
    let scale = 0;
    for (const row of a) for (const e of row) scale = Math.max(scale, Math.abs(e));
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let rec = 0;
        let dot = 0;
        for (let k = 0; k < n; k++) {
          rec += v[i][k] * values[k] * v[j][k];
          dot += v[k][i] * v[k][j];
        }
        expect(Math.abs(rec - a[i][j])).toBeLessThan(1e-12 * n * scale);
        expect(Math.abs(dot - (i === j ? 1 : 0))).toBeLessThan(1e-12 * n);
      }
    }
  });

  it('is deterministic and leaves its input unchanged', () => {
    const a = randomSymmetric(6, 99);
    const copy = a.map((r) => r.slice());
    expect(symmetricEigen(a)).toEqual(symmetricEigen(copy));
    expect(a).toEqual(copy);
  });
});
