// Gate verdicts for a campaign: the space's gates and the sources' scores on one split handed to
// the pure verdicts of gates/gates.ts (floor: value; no_regression: source − tolerance; min_gain: best source
// + delta; pass = value ≥ threshold), in the shape the store records. A gate naming no metric reads the
// task's own.
import { evaluateGates, type GateSpec } from '../../gates/gates.ts';
import { shareKept, shareMetric } from '../../gates/objective.ts';
import type { NewGateVerdict } from '../../store/records.ts';
import type { SearchSpace } from '../space/space.ts';
import type { Suite } from '../../eval/suite.ts';
import type { Split } from '../../eval/split.ts';
import { ownMetric, type Score } from '../space/measures.ts';

/** Source name → its scores on one split. */
export type SourceScores = ReadonlyMap<string, readonly Score[]>;

/** Every gate of the space judged on `split` by gates/gates.ts (a missing or non-finite value fails). */
export function judgeGates(
  space: SearchSpace,
  suite: Suite,
  scores: readonly Score[],
  sources: SourceScores,
  split: Split,
): NewGateVerdict[] {
  const onSplit = (xs: readonly Score[]) => xs.filter((x) => x.split === split);
  // A floor with share_of judges a derived score: the share of that source's gain over the base kept.
  const derived: Score[] = [];
  const specs: GateSpec[] = space.gates.map(({ shareOf, ...g }) => {
    if (shareOf === undefined) return g;
    const metric = g.metric ?? ownMetric(suite, g.task);
    const find = (xs: readonly Score[] | undefined) =>
      xs?.find((x) => x.split === split && x.task === g.task && x.metric === metric);
    const own = find(scores);
    const base = find(sources.get('base'));
    const src = find(sources.get(shareOf));
    const value = own && base && src ? shareKept(own.value, base.value, src.value) : Number.NaN;
    derived.push({ task: g.task, metric: shareMetric(metric, shareOf), split, value, se: Number.NaN, n: own?.n ?? 0 });
    return { ...g, metric: shareMetric(metric, shareOf) };
  });
  const ctx = {
    sources: Object.fromEntries([...sources].map(([name, xs]) => [name, onSplit(xs)])),
    base: 'base',
    defaultMetrics: Object.fromEntries(space.gates.map((g) => [g.task, ownMetric(suite, g.task)])),
  };
  return evaluateGates([...onSplit(scores), ...derived], specs, ctx).map((v) => ({
    gate: v.gate,
    kind: v.kind,
    task: v.task,
    metric: v.metric,
    split,
    value: v.value,
    threshold: v.threshold,
    pass: v.pass,
  }));
}
