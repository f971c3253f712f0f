// Sparsification of one task vector τ = fround(x − base) (mergekit sparsify.py): magnitude top-k, breadcrumbs
// outliers, DARE Bernoulli, DELLA magprune, then the rescale. Produces a compact Trim that the combine pass
// (task-arithmetic.ts) applies element by element; τ itself is never materialised except for DELLA.

import { EvomergeError } from '../../errors.ts';
import { differenceSource, KEEP_NONE, selectTopK, type MagnitudeCut } from '../select-kth.ts';
import { bernoulliMask } from './bernoulli-mask.ts';
import { dellaMagprune } from './della-magprune.ts';
import { l1Ratio, maskedL1 } from './l1-rescale.ts';
import type { SparsifyInput, Trim } from './trim.ts';

export type { SparsifyInput, Trim } from './trim.ts';

/** One magnitude selection: the cut keeping the k largest |x − base|. */
export interface CutRequest {
  readonly x: Float32Array;
  readonly k: number;
}

/** Computes the cuts of several requests over one base (plainly, or fused in one SIMD pass). */
export type CutSelector = (base: Float32Array, requests: readonly CutRequest[]) => MagnitudeCut[];

/** The passes a sparsifier may hand to a faster implementation (SIMD); each must give the same bits. */
export interface SparsifyPasses {
  readonly selectCuts: CutSelector;
  readonly bernoulliMask: typeof bernoulliMask;
  /** ‖τ‖₁ and ‖τ ⊙ mask‖₁ (l1-rescale.ts maskedL1) of several models over one base. */
  readonly maskedL1Many: (
    base: Float32Array,
    items: readonly { x: Float32Array; mask: Uint32Array }[],
  ) => { before: number; after: number }[];
}

/** The plain typed-array loops. */
export const plainPasses: SparsifyPasses = {
  selectCuts: (base, requests) => requests.map((r) => selectTopK(differenceSource(r.x, base), r.k)),
  bernoulliMask,
  maskedL1Many: (base, items) => items.map((item) => maskedL1(item.x, base, item.mask)),
};

const ALL: Trim = { kind: 'all' };
const ZERO: Trim = { kind: 'zero' };

/**
 * Decides trim(τᵢ) for every model of one tensor (mergekit sparsify.py `sparsify`, per model). The magnitude
 * selections of all models are made together by `selectCuts`, so a fused pass reads base only once.
 */
export function sparsifyAll(inputs: readonly SparsifyInput[], passes: SparsifyPasses = plainPasses): Trim[] {
  const needs = inputs.map(cutsNeeded);
  const requests: CutRequest[] = [];
  needs.forEach((ks, m) => {
    for (const k of ks) requests.push({ x: inputs[m].x, k });
  });
  const cuts = requests.length === 0 ? [] : passes.selectCuts(inputs[0].base, requests);
  let next = 0;
  const trims = inputs.map((input, m) => {
    const mine = cuts.slice(next, next + needs[m].length);
    next += needs[m].length;
    return sparsifyWithCuts(input, mine, passes);
  });
  // DARE with the L1 rescale: the norms of every such model in one pass over base.
  const pending = trims.flatMap((t, m) => (t.kind === 'mask' && Number.isNaN(t.mul) ? [m] : []));
  if (pending.length > 0) {
    const items = pending.map((m) => ({ x: inputs[m].x, mask: (trims[m] as { mask: Uint32Array }).mask }));
    const norms = passes.maskedL1Many(inputs[0].base, items);
    pending.forEach((m, j) => {
      trims[m] = { kind: 'mask', mask: items[j].mask, mul: l1Ratio(norms[j].before, norms[j].after), div: 1 };
    });
  }
  return trims;
}

/** Every mergekit sparsifier returns τ unchanged, unscaled, when density ≥ 1. */
function isDense(input: SparsifyInput): boolean {
  return input.method === 'none' || input.density >= 1;
}

/**
 * The top-k selections a model needs: magnitude → [k]; magnitude_outliers → [n − n_bot, n_top] (kept = top
 * (n − n_bot) minus top n_top), or none when the quirk below empties it.
 */
function cutsNeeded(input: SparsifyInput): number[] {
  if (isDense(input)) return [];
  const n = input.x.length;
  if (input.method === 'magnitude') return [magnitudeK(input)];
  if (input.method === 'magnitude_outliers') {
    const o = outlierCounts(input.density, input.gamma, n);
    return o === null ? [] : [n - o.nBot, o.nTop];
  }
  return [];
}

function sparsifyWithCuts(input: SparsifyInput, cuts: MagnitudeCut[], passes: SparsifyPasses): Trim {
  if (isDense(input)) return ALL;
  switch (input.method) {
    case 'magnitude':
      // mergekit sparsify.py `magnitude`: exactly k largest |τ| over the whole flattened tensor.
      return withCutRescale(input, cuts[0], KEEP_NONE);
    case 'magnitude_outliers':
      return cuts.length === 0 ? ZERO : withCutRescale(input, cuts[0], cuts[1]);
    case 'random':
      return random(input, passes);
    case 'della_magprune':
      return dellaMagprune(input);
    case 'none':
      return ALL;
  }
}

/** k = int(density·numel) (Python int() of the float64 product); k == 0 is refused as mergekit asserts k > 0. */
function magnitudeK(input: SparsifyInput): number {
  const n = input.x.length;
  const k = Math.trunc(input.density * n);
  if (!(k > 0)) {
    throw new EvomergeError(
      'merge.density_zero',
      `density ${input.density} keeps int(${input.density}·${n}) = ${k} elements of model ${input.modelName}; ` +
        `mergekit refuses this (assert k > 0): raise density for this tensor`,
      { field: `tensor "${input.tensorName}"` },
    );
  }
  return k;
}

/**
 * mergekit sparsify.py `magnitude_outliers` (breadcrumbs) counts: target = int(density·n), n_top = int(gamma·n),
 * n_bot = n − target − n_top (if negative, n_top absorbs it). Null when nothing is kept.
 */
export function outlierCounts(density: number, gamma: number, n: number): { nTop: number; nBot: number } | null {
  const target = Math.trunc(density * n);
  let nTop = Math.trunc(gamma * n);
  let nBot = n - target - nTop;
  if (nBot < 0) {
    nTop += nBot;
    nBot = 0;
  }
  // Quirk reproduced on purpose: mergekit keeps `indices[n_bot:-n_top]`; with n_top == 0 that slice is
  // `[n_bot:0]`, empty, so the whole task vector of this tensor is dropped (tensors with gamma·n < 1).
  if (nTop === 0) return null;
  if (n - nBot <= nTop) return null;
  return { nTop, nBot };
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
function random(input: SparsifyInput, passes: SparsifyPasses): Trim {
  const { x, base, density } = input;
  if (!(density > 0)) return ZERO;
  const mask = passes.bernoulliMask(input.rng, input.modelIndex, x.length, density);
  if (input.rescale === 'none') return { kind: 'mask', mask, mul: 1, div: 1 };
  // DARE paper (Yu et al. 2024, eq. 2) and mergekit < 0.1.0: divide the kept entries by density.
  if (input.rescale === 'density') return { kind: 'mask', mask, mul: 1, div: Math.fround(density) };
  // 'l1': the factor is filled in by sparsifyAll, which takes the norms of all models in one pass.
  void base;
  return { kind: 'mask', mask, mul: NaN, div: 1 };
}
