// A value with its standard error over n items: the one shape of an uncertain number, from the task that
// measures it through the store that records it to the gates and the report that read it. Open to every module.

/** `value ± se` over `n` independent items. `se` is NaN when unknown (fewer than two items, or not recorded). */
export interface Estimate {
  readonly value: number;
  /** Standard error of `value`; NaN when unknown. */
  readonly se: number;
  /** Number of independent items the value averages over. */
  readonly n: number;
  /**
   * Per-item pseudo-values, one per item in file order: their mean is `value` and their sample SE about `se`
   * (the item values of a mean, the linearised terms of a ratio, DeLong's placements for an AUC). Two models
   * scored on the same items give the paired SE of their difference from these (`pairedDifference` in
   * eval/stats.ts). Absent where the items were not kept.
   */
  readonly pseudo?: readonly number[];
}
