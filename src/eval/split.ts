// The splits of an eval set: `fit` is what a search optimises on; `val` picks among its best (held out from the
// optimiser: the task's own val file, else items of fit chosen by the campaign); `test` is never used for selection.
export type Split = 'fit' | 'val' | 'test';
