// Eigen-decomposition of a small symmetric matrix (CMA-ES covariance, n ≲ 100) by the cyclic Jacobi method.
// Pure and deterministic: the same matrix gives the same bits, so a restored optimiser samples identically.

/** Eigenvalues and eigenvectors of a symmetric matrix: A = V diag(values) Vᵀ. */
export interface SymmetricEigen {
  values: number[];
  /** Row-major; column k (`vectors[i][k]` over i) is the unit eigenvector of `values[k]`. */
  vectors: number[][];
}

const MAX_SWEEPS = 100;

/**
 * Cyclic-by-row Jacobi (Golub & Van Loan, "Matrix Computations" 4th ed., Alg. 8.5.2 sym.schur2 and
 * Alg. 8.5.3): rotate away each off-diagonal entry in turn until the off-diagonal norm is below
 * 1e-15 · ‖A‖_F. Reads only the upper triangle's mirror image consistently by symmetrising first.
 * O(n³) per sweep, typically 6–10 sweeps: fine once per generation for n ≤ 100; no LAPACK in Node.
 */
export function symmetricEigen(matrix: readonly (readonly number[])[]): SymmetricEigen {
  const n = matrix.length;
  const a = matrix.map((row, i) => row.map((_, j) => (matrix[i][j] + matrix[j][i]) / 2));
  const v: number[][] = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));

  let frob = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) frob += a[i][j] * a[i][j];
  const tol = 1e-15 * Math.sqrt(frob);

  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += 2 * a[p][q] * a[p][q];
    if (Math.sqrt(off) <= tol) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p][q];
        if (apq === 0) continue;
        // sym.schur2: c, s such that [c s; -s c]ᵀ [app apq; apq aqq] [c s; -s c] is diagonal.
        const tau = (a[q][q] - a[p][p]) / (2 * apq);
        const t = tau >= 0 ? 1 / (tau + Math.sqrt(1 + tau * tau)) : -1 / (-tau + Math.sqrt(1 + tau * tau));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = t * c;
        // A ← A J (columns p, q), then A ← Jᵀ A (rows p, q), V ← V J.
        for (let k = 0; k < n; k++) {
          const akp = a[k][p];
          const akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p][k];
          const aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        a[p][q] = 0;
        a[q][p] = 0;
        for (let k = 0; k < n; k++) {
          const vkp = v[k][p];
          const vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: a.map((row, i) => row[i]), vectors: v };
}
