// A value with its standard error over n items: the one shape of an uncertain number, from the task that
// measures it through the store that records it to the gates and the report that read it. Open to every module.

/** `value ± se` over `n` independent items. `se` is NaN when unknown (fewer than two items, or not recorded). */
export interface Estimate {
  readonly value: number;
  /** Standard error of `value`; NaN when unknown. */
  readonly se: number;
  /** Number of independent items the value averages over. */
  readonly n: number;
}
