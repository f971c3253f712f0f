// The splits of an eval set: `fit` is what a search may select on; `test` is never used for selection.
export type Split = 'fit' | 'test';
