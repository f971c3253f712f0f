// A stored score row read back: the one conversion from the store's ScoreRecord to the score its readers use,
// shared by the search (a campaign Score) and the report (a bare value ± SE), which may import only the store.
import type { Estimate } from '../estimate.ts';
import type { NewScore, ScoreRecord } from './records.ts';

/** The estimate a row records, value ± SE over n, without its candidate, measure or split (the report's cell). */
export function recordedEstimate(r: ScoreRecord): Estimate {
  return { value: r.value, se: r.se, n: r.n };
}

/** A row without its candidate: what was measured, on which split, and the estimate (the search's Score). */
export function recordedScore(r: ScoreRecord): NewScore {
  return { task: r.task, metric: r.metric, split: r.split, ...recordedEstimate(r) };
}
