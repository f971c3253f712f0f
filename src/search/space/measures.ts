// What a campaign measures: the (task, metric) pairs the objective and the gates read, checked against the
// eval suite, and the objective itself (a weighted sum of fit-split metrics).
import type { Estimate } from '../../estimate.ts';
import { EvomergeError } from '../../errors.ts';
import { taskMetrics, type Suite } from '../../eval/suite.ts';
import type { Split } from '../../eval/split.ts';
import type { SearchSpace } from './space.ts';
import { objectiveEstimate, type SourceScoreLists } from '../../gates/objective.ts';

/** One measured quantity: a task scored with one of its kind's metrics. */
export interface Measure {
  readonly task: string;
  readonly metric: string;
}

/** A score of one measure on one split. */
export interface Score extends Measure, Estimate {
  readonly split: Split;
}

export function measureKey(m: Measure): string {
  return `${m.task}/${m.metric}`;
}

/**
 * Checks every task and metric the space names against the suite and returns the measures to score, in a
 * stable order: the objective's terms, then each gate's (task, metric), then the own metric of every task
 * named anywhere (so the report can always show a task's own metric).
 */
export function campaignMeasures(space: SearchSpace, suite: Suite): Measure[] {
  const tasks = suite.tasks.map((t) => t.name);
  const lookup = (task: string, metric: string | undefined, field: string): Measure => {
    const spec = suite.tasks.find((t) => t.name === task);
    if (!spec)
      throw new EvomergeError(
        'space.unknown_task',
        `the suite ${suite.file} has no task "${task}"; it has: ${tasks.join(', ')}`,
        { file: space.file, field: `${field}.task` },
      );
    const m = metric ?? spec.metric;
    if (!taskMetrics(spec).includes(m)) {
      throw new EvomergeError(
        'space.unknown_metric',
        `task "${task}" (${spec.kind}) has no metric "${m}"; expected one of: ${taskMetrics(spec).join(', ')}`,
        { file: space.file, field: `${field}.metric` },
      );
    }
    return { task, metric: m };
  };
  const out: Measure[] = [];
  const add = (m: Measure) => {
    if (!out.some((o) => o.task === m.task && o.metric === m.metric)) out.push(m);
  };
  space.objective.forEach((t, i) => add(lookup(t.task, t.metric, `objective[${i}]`)));
  space.gates.forEach((g, i) => add(lookup(g.task, g.metric, `gates[${i}]`)));
  for (const m of [...out]) add({ task: m.task, metric: suite.tasks.find((t) => t.name === m.task)!.metric });
  return out;
}

/** The metric a gate or report uses for a task: the gate's own, else the task's. */
export function ownMetric(suite: Suite, task: string): string {
  return suite.tasks.find((t) => t.name === task)!.metric;
}

/** Weighted sum of the objective terms over the scores of a split (share terms normalised against the sources'
 *  scores on it, objective.ts); −∞ if one is missing or not finite. */
export function objectiveValue(
  space: SearchSpace,
  suite: Suite,
  scores: readonly Score[],
  sources?: SourceScoreLists,
  split: Score['split'] = 'fit',
): number {
  return objectiveEstimate(space.objective, (t) => ownMetric(suite, t), scores, sources, split).value;
}

/** Splits measures into evaluator rounds: each round scores every task at most once (one metric per task). */
export function evaluationRounds(measures: readonly Measure[]): Measure[][] {
  const rounds: Measure[][] = [];
  for (const m of measures) {
    let r = rounds.find((round) => !round.some((x) => x.task === m.task));
    if (!r) rounds.push((r = []));
    r.push(m);
  }
  return rounds;
}
