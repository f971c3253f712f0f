// What a sparsifier is asked (one model's task vector and its parameters) and what it answers (a Trim the
// combine pass applies element by element): the types shared by sparsify.ts, della-magprune.ts and
// task-arithmetic.ts, kept apart so that none of them imports another in a circle.
import type { Rescale, Sparsification } from '../kernel.ts';
import type { MagnitudeCut } from '../select-kth.ts';
import type { RngKey } from '../rng.ts';

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
  | {
      readonly kind: 'cut';
      readonly keep: MagnitudeCut;
      readonly drop: MagnitudeCut;
      readonly mul: number;
      readonly div: number;
    }
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
