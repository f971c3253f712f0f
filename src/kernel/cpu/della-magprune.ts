// DELLA's MagPrune (Deep et al. 2024; mergekit sparsify.py `della_magprune`): keep probabilities rise linearly
// with the magnitude rank within each row, from density − ε to density + ε; Bernoulli draws from kernel/rng.ts.

import { EvomergeError } from '../../errors.ts';
import { drawU32, keepThreshold } from '../rng.ts';
import { l1Ratio } from './l1-rescale.ts';
import type { SparsifyInput, Trim } from './trim.ts';

/**
 * mergekit della_magprune, float32 like torch:
 * - rows are along dim 1 (a 1-D tensor is one row: `unsqueeze(0)`); rank = 1 + position in the ascending
 *   |τ| order of the row (torch argsort; ties, which torch leaves unspecified, go to the lower index first);
 * - rank_norm = (rank − 1) / (d1 − 1); p = (density − ε) + rank_norm·2·ε;
 * - keep iff (drawU32(key, model, e) >>> 8) < keepThreshold(p), e the flat element index;
 * - rescale 'l1': mergekit's ‖τ‖₁/‖trim τ‖₁; 'density': the DELLA paper's per-element 1/p (eq. 3); 'none'.
 */
export function dellaMagprune(input: SparsifyInput): Trim {
  const { x, base, density, epsilon, shape } = input;
  const n = x.length;
  if (!(density > 0)) return { kind: 'zero' };
  if (density + epsilon >= 1 || density - epsilon <= 0) {
    throw new EvomergeError(
      'merge.della_epsilon',
      `density ${density} ± epsilon ${epsilon} leaves (0, 1) for model ${input.modelName}; ` +
        `choose epsilon < min(density, 1 − density)`,
      { field: `tensor "${input.tensorName}"` },
    );
  }
  // Rows along dim 1: element (i0, j, r) of a [d0, d1, R] view, with R the product of the trailing dims.
  const d1 = shape.length < 2 ? n : shape[1];
  const d0 = shape.length < 2 ? 1 : shape[0];
  const inner = shape.length < 2 ? 1 : n / (d0 * d1);
  if (d1 < 2) {
    // torch: (ranks − min) / (max − min) is 0/0 = NaN and torch.bernoulli rejects NaN probabilities.
    throw new EvomergeError(
      'merge.della_single_column',
      `della ranks magnitudes along dim 1, which has size ${d1} for shape [${shape.join(', ')}]; mergekit fails here too`,
      { field: `tensor "${input.tensorName}"` },
    );
  }
  const tau = new Float32Array(n);
  for (let e = 0; e < n; e++) tau[e] = x[e] - base[e];
  const tauBits = new Uint32Array(tau.buffer);
  const out = new Float32Array(n);
  const keys = new Uint32Array(d1);
  const order = new Uint32Array(d1);
  const scratch = new Uint32Array(d1);
  const hist = new Uint32Array(2048);
  const low = Math.fround(density - epsilon);
  const eps32 = Math.fround(epsilon);
  const span = Math.fround(d1 - 1);
  const perElement = input.rescale === 'density';
  let before = 0;
  let after = 0;
  for (let i0 = 0; i0 < d0; i0++) {
    for (let r = 0; r < inner; r++) {
      const rowStart = i0 * d1 * inner + r;
      for (let j = 0; j < d1; j++) keys[j] = tauBits[rowStart + j * inner] & 0x7fffffff;
      stableArgsortU32(keys, order, scratch, hist);
      for (let pos = 0; pos < d1; pos++) {
        const j = order[pos];
        const e = rowStart + j * inner;
        const t = tau[e];
        const rankNorm = Math.fround(pos / span); // (rank − min_rank)/(max_rank − min_rank), rank = pos + 1
        const p = Math.fround(Math.fround(Math.fround(rankNorm * 2) * eps32) + low);
        before += Math.abs(t);
        if (drawU32(input.rng, input.modelIndex, e) >>> 8 < keepThreshold(p)) {
          after += Math.abs(t);
          out[e] = perElement ? t / p : t;
        }
      }
    }
  }
  if (input.rescale === 'l1') {
    const mul = l1Ratio(before, after);
    if (mul !== 1) for (let e = 0; e < n; e++) out[e] = out[e] * mul;
  }
  return { kind: 'values', values: out };
}

/**
 * Stable ascending argsort of 31-bit keys by LSD radix (11 + 11 + 9 bits): order[pos] = index. O(n) per row,
 * no comparator calls.
 */
export function stableArgsortU32(keys: Uint32Array, order: Uint32Array, scratch: Uint32Array, hist: Uint32Array): void {
  const n = keys.length;
  for (let i = 0; i < n; i++) order[i] = i;
  let src = order;
  let dst = scratch;
  for (let shift = 0; shift < 32; shift += 11) {
    hist.fill(0);
    for (let i = 0; i < n; i++) hist[(keys[src[i]] >>> shift) & 2047]++;
    let sum = 0;
    for (let b = 0; b < 2048; b++) {
      const c = hist[b];
      hist[b] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const idx = src[i];
      dst[hist[(keys[idx] >>> shift) & 2047]++] = idx;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  // Three passes: the sorted order ended in `scratch`.
  if (src !== order) order.set(src);
}
