// Gate verdicts for a campaign: the space's gates and the sources' scores on one split handed to
// the pure verdicts of gates/gates.ts (floor: value; no_regression: source − tolerance; min_gain: best source
// + delta; pass = value ≥ threshold), in the shape the store records. A gate naming no metric reads the
// task's own.
import { evaluateGates } from '../gates/gates.ts';
import type { NewGateVerdict } from '../store/records.ts';
import type { SearchSpace } from './space.ts';
import type { Suite } from '../eval/suite.ts';
import { ownMetric, type Score } from './measures.ts';

/** Source name → its scores on one split. */
export type SourceScores = ReadonlyMap<string, readonly Score[]>;

/** Every gate of the space judged on `split` by gates/gates.ts (a missing or non-finite value fails). */
export function judgeGates(space: SearchSpace, suite: Suite, scores: readonly Score[], sources: SourceScores, split: 'fit' | 'test'): NewGateVerdict[] {
  const onSplit = (xs: readonly Score[]) => xs.filter((x) => x.split === split);
  const ctx = {
    sources: Object.fromEntries([...sources].map(([name, xs]) => [name, onSplit(xs)])),
    base: 'base',
    defaultMetrics: Object.fromEntries(space.gates.map((g) => [g.task, ownMetric(suite, g.task)])),
  };
  return evaluateGates(onSplit(scores), space.gates, ctx).map((v) => ({ gate: v.gate, kind: v.kind, task: v.task, metric: v.metric, split, value: v.value, threshold: v.threshold, pass: v.pass }));
}
