// Gate verdicts for a campaign (issue 7 §1): the threshold of each gate from the sources' scores on the same
// split, then pass = value ≥ threshold. floor: the given value; no_regression: the named source's value minus
// the tolerance; min_gain: the best of the named sources (default: every source and the base) plus delta.
import type { GateSpec, SearchSpace } from './space.ts';
import type { Suite } from '../eval/suite.ts';
import { ownMetric, type Score } from './measures.ts';

/** Source name → its scores on one split. */
export type SourceScores = ReadonlyMap<string, readonly Score[]>;

export function sourceBaselines(scores: Map<string, Score[]>): SourceScores {
  return scores;
}

export interface Verdict {
  gate: string;
  kind: string;
  task: string;
  metric: string;
  split: string;
  value: number;
  threshold: number;
  pass: boolean;
}

/** The threshold a gate sets on one split, from the sources' scores on that split. */
export function gateThreshold(gate: GateSpec, metric: string, sources: SourceScores, split: string): number {
  const valueOf = (name: string) => sources.get(name)?.find((s) => s.task === gate.task && s.metric === metric && s.split === split)?.value ?? NaN;
  switch (gate.kind) {
    case 'floor':
      return gate.value!;
    case 'no_regression':
      return valueOf(gate.source!) - (gate.tolerance ?? 0);
    case 'min_gain': {
      const names = gate.sources ?? [...sources.keys()];
      return Math.max(...names.map(valueOf)) + (gate.delta ?? 0);
    }
  }
}

/** Every gate of the space judged on `split` (a missing or non-finite value fails). */
export function judgeGates(space: SearchSpace, suite: Suite, scores: readonly Score[], sources: SourceScores, split: 'fit' | 'test'): Verdict[] {
  return space.gates.map((gate) => {
    const metric = gate.metric ?? ownMetric(suite, gate.task);
    const value = scores.find((s) => s.task === gate.task && s.metric === metric && s.split === split)?.value ?? NaN;
    const threshold = gateThreshold(gate, metric, sources, split);
    return { gate: gate.name, kind: gate.kind, task: gate.task, metric, split, value, threshold, pass: Number.isFinite(value) && Number.isFinite(threshold) && value >= threshold };
  });
}
