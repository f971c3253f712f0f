// Sparsification of one task vector τ = fround(x − base) (mergekit sparsify.py): magnitude top-k, breadcrumbs
// outliers, DARE Bernoulli, DELLA magprune, then the rescale. Produces a compact Trim that the combine pass
// (task-arithmetic.ts) applies element by element; τ itself is never materialised except for DELLA.

import { EvomergeError } from '../../errors.ts';
import type { Rescale, Sparsification } from '../kernel.ts';
import type { RngKey } from '../rng.ts';
import { differenceSource, KEEP_NONE, selectTopK, type MagnitudeCut } from '../select-kth.ts';
import { bernoulliMask } from './bernoulli-mask.ts';
import { dellaMagprune } from './della-magprune.ts';
import { l1Ratio } from './l1-rescale.ts';

/**
 * How to obtain trim(τ)[e] from τ[e]. After the keep test, a kept value is multiplied by `mul` (the L1 ratio)
 * or divided by `div` (1/density); both are float32 numbers and at most one differs from 1.
 */
export type Trim =
  /** Every element kept (density ≥ 1, or no sparsification). */
  | { readonly kind: 'all' }
  /** Every element dropped (breadcrumbs n_top == 0 quirk, DARE density ≤ 0). */
  | { readonly kind: 'zero' }
  /** Kept iff in the top `keep` and not in the top `drop` magnitudes (magnitude: drop = KEEP_NONE). */
  | { readonly kind: 'cut'; readonly keep: MagnitudeCut; readonly drop: MagnitudeCut; readonly mul: number; readonly div: number }
  /** Kept iff the bit is set (DARE). */
  | { readonly kind: 'mask'; readonly mask: Uint32Array; readonly mul: number; readonly div: number }
  /** trim(τ) already computed (DELLA: per-element keep probabilities and rescale). */
  | { readonly kind: 'values'; readonly values: Float32Array };

/** One model's sparsification request. */
export interface SparsifyInput {
  readonly x: Float32Array;
  readonly base: Float32Array;
  readonly shape: readonly number[];
  readonly method: Sparsification;
  readonly density: number;
  readonly gamma: number;
  readonly epsilon: number;
  readonly rescale: Rescale;
  readonly rng: RngKey;
  readonly modelIndex: number;
  /** For error messages: the output tensor and the model. */
  readonly tensorName: string;
  readonly modelName: string;
}

const ALL: Trim = { kind: 'all' };
const ZERO: Trim = { kind: 'zero' };

/** Decides trim(τᵢ) for one model (mergekit sparsify.py `sparsify`). */
export function sparsify(input: SparsifyInput): Trim {
  const { method, density } = input;
  // Every mergekit sparsifier returns τ unchanged, unscaled, when density ≥ 1.
  if (method === 'none' || density >= 1) return ALL;
  switch (method) {
    case 'magnitude':
      return magnitude(input);
    case 'magnitude_outliers':
      return magnitudeOutliers(input);
    case 'random':
      return random(input);
    case 'della_magprune':
      return dellaMagprune(input);
  }
}

/** mergekit sparsify.py `magnitude`: keep exactly k = int(density·numel) largest |τ| over the whole tensor. */
function magnitude(input: SparsifyInput): Trim {
  const n = input.x.length;
  const k = Math.trunc(input.density * n); // Python int() of the float64 product
  if (!(k > 0)) {
    throw new EvomergeError(
      'merge.density_zero',
      `density ${input.density} keeps int(${input.density}·${n}) = ${k} elements of model ${input.modelName}; ` +
        `mergekit refuses this (assert k > 0): raise density for this tensor`,
      { field: `tensor "${input.tensorName}"` },
    );
  }
  const keep = selectTopK(differenceSource(input.x, input.base), k);
  return withCutRescale(input, keep, KEEP_NONE);
}

/**
 * mergekit sparsify.py `magnitude_outliers` (breadcrumbs): drop the n_top largest and the n_bot smallest |τ|.
 * Kept = top (n − n_bot) minus top n_top, in the total order (|τ| descending, index ascending).
 */
function magnitudeOutliers(input: SparsifyInput): Trim {
  const n = input.x.length;
  const target = Math.trunc(input.density * n);
  let nTop = Math.trunc(input.gamma * n);
  let nBot = n - target - nTop;
  if (nBot < 0) {
    nTop += nBot;
    nBot = 0;
  }
  // Quirk reproduced on purpose: mergekit keeps `indices[n_bot:-n_top]`; with n_top == 0 that slice is
  // `[n_bot:0]`, empty, so the whole task vector of this tensor is dropped (tensors with gamma·n < 1).
  if (nTop === 0) return ZERO;
  if (n - nBot <= nTop) return ZERO;
  const src = differenceSource(input.x, input.base);
  const keep = selectTopK(src, n - nBot);
  const drop = selectTopK(src, nTop);
  return withCutRescale(input, keep, drop);
}

function withCutRescale(input: SparsifyInput, keep: MagnitudeCut, drop: MagnitudeCut): Trim {
  if (input.rescale === 'density') return { kind: 'cut', keep, drop, mul: 1, div: Math.fround(input.density) };
  if (input.rescale === 'none') return { kind: 'cut', keep, drop, mul: 1, div: 1 };
  // 'l1': mergekit sparsify.py rescaled_masked_tensor with RescaleNorm.l1.
  const { x, base } = input;
  const n = x.length;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let before = 0;
  let after = 0;
  let keepEq = 0;
  let dropEq = 0;
  const kb = keep.bits;
  const db = drop.bits;
  for (let e = 0; e < n; e++) {
    f[0] = x[e] - base[e];
    const a = Math.abs(f[0]);
    before += a;
    const v = u[0] & 0x7fffffff;
    let kept = false;
    if (v > kb) kept = true;
    else if (v === kb) kept = keepEq++ < keep.keepEqual;
    if (v > db) kept = false;
    else if (v === db && dropEq++ < drop.keepEqual) kept = false;
    if (kept) after += a;
  }
  return { kind: 'cut', keep, drop, mul: l1Ratio(before, after), div: 1 };
}

/** mergekit sparsify.py `bernoulli`: i.i.d. keep with probability density, from the counter-based RNG. */
function random(input: SparsifyInput): Trim {
  const { x, base, density } = input;
  if (!(density > 0)) return ZERO;
  const n = x.length;
  const mask = bernoulliMask(input.rng, input.modelIndex, n, density);
  if (input.rescale === 'none') return { kind: 'mask', mask, mul: 1, div: 1 };
  // DARE paper (Yu et al. 2024, eq. 2) and mergekit < 0.1.0: divide the kept entries by density.
  if (input.rescale === 'density') return { kind: 'mask', mask, mul: 1, div: Math.fround(density) };
  let before = 0;
  let after = 0;
  for (let e = 0; e < n; e++) {
    const a = Math.abs(Math.fround(x[e] - base[e]));
    before += a;
    if ((mask[e >>> 5] >>> (e & 31)) & 1) after += a;
  }
  return { kind: 'mask', mask, mul: l1Ratio(before, after), div: 1 };
}
