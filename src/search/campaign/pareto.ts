// What a Pareto campaign (`objective_mode: pareto`) tells its multi-objective optimiser: each objective term's fit
// value as an objective (share terms as the share kept, keyed `task/metric`, gates/pareto.ts), and each gate that
// is judged on fit as a constraint "value ≥ threshold" (floor: its value; no_regression: the named source's fit
// score − tolerance; min_gain: the best source's fit score + delta; a share floor on the share kept). The real gates
// still decide kept/rejected on fit and are re-checked on test by export, as in a weighted campaign.
import type { Store } from '../../store/db.ts';
import type { MultiObjective, TellResult } from '../optimizers/optimizer.ts';
import { termKey, termValues } from '../../gates/objective.ts';
import { ownMetric, type Score } from '../space/measures.ts';
import type { CampaignSetup } from './campaign-setup.ts';
import { fromRecord } from './score-records.ts';
import { judgeGates, type SourceScores } from './verdicts.ts';

/** The optimiser's objectives (the terms' keys) and constraint floors (the gates' thresholds on fit). */
export function paretoObjectives(setup: CampaignSetup, baselines: SourceScores): MultiObjective {
  const own = (t: string) => ownMetric(setup.suite, t);
  const objectives = [...new Set(setup.space.objective.map((t) => termKey(t, own)))];
  // a gate's threshold does not depend on the candidate: judged on no scores, every gate reports it
  const constraints = judgeGates(setup.space, setup.suite, [], baselines, 'fit')
    .filter((v) => Number.isFinite(v.threshold))
    .map((v) => ({ key: `${v.task}/${v.metric}`, floor: v.threshold }));
  return { objectives, constraints, lcbZ: setup.space.selection?.lcbZ ?? 0 };
}

/** A candidate's per-task values on fit: its objective terms and the values its gates judge. */
export function paretoPerTask(
  setup: CampaignSetup,
  scores: readonly Score[],
  baselines: SourceScores,
): NonNullable<TellResult['perTask']> {
  const own = (t: string) => ownMetric(setup.suite, t);
  const out: NonNullable<TellResult['perTask']> = {};
  for (const v of judgeGates(setup.space, setup.suite, scores, baselines, 'fit'))
    out[`${v.task}/${v.metric}`] = { value: v.value, se: Number.NaN };
  for (const t of termValues(setup.space.objective, own, scores, baselines, 'fit'))
    out[t.key] = { value: t.value, se: t.se };
  return out;
}

/**
 * For a Pareto campaign, the `perTask` part of a tell: from the scores in hand (the candidate just evaluated), else
 * from the recorded fit scores of the candidate with that hash (reused or resumed); nothing for a failed one.
 */
export function paretoTeller(
  setup: CampaignSetup,
  store: Store,
  campaignId: number,
  baselines: SourceScores,
): (hash: string, scores?: readonly Score[]) => Pick<TellResult, 'perTask'> {
  return (hash, scores) => {
    if (scores) return { perTask: paretoPerTask(setup, scores, baselines) };
    const c = store.findCandidateByHash(campaignId, hash);
    if (!c || c.status === 'failed') return {};
    const recorded = store.listScores(c.candidateId, 'fit').map(fromRecord);
    return recorded.length ? { perTask: paretoPerTask(setup, recorded, baselines) } : {};
  };
}
