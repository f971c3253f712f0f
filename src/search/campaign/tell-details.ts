// What the optimiser is told beside each value (docs/design/optimiser-feedback.md): per objective term, the fit
// score, its SE, its weight and — for an optimiser that reads them (M2N2) — its per-item pseudo-values; the
// fidelity reached under successive halving; a failure's code. Built from the store's records alone, so an
// uninterrupted campaign and one resumed after kill -9 tell exactly the same; the per-item fit values are kept
// (table item_values, split `fit` and each rung's `fit@r`) only when the optimiser reads them.
import type { Store } from '../../store/db.ts';
import type { ItemValuesRecord } from '../../store/records.ts';
import type { TaskResult, TellResult } from '../optimizers/optimizer.ts';
import { ownMetric, type Score } from '../space/measures.ts';
import type { CampaignSetup } from './campaign-setup.ts';

export type TellDetails = Omit<TellResult, 'solution' | 'value'>;

/** The objective's terms as `task/metric` keys with their summed weights, in the objective's order. */
function termKeys(setup: CampaignSetup): Map<string, { task: string; metric: string; weight: number }> {
  const out = new Map<string, { task: string; metric: string; weight: number }>();
  for (const t of setup.space.objective) {
    const metric = t.metric ?? ownMetric(setup.suite, t.task);
    const key = `${t.task}/${metric}`;
    const prior = out.get(key);
    out.set(key, { task: t.task, metric, weight: (prior?.weight ?? 0) + t.weight });
  }
  return out;
}

/** The per-item fit values to keep for the objective's measures (none without pseudo-values). */
export function fitItemValues(
  setup: CampaignSetup,
  candidateId: number,
  scores: readonly Score[],
  split: string,
): ItemValuesRecord[] {
  const keys = termKeys(setup);
  return scores
    .filter((s) => keys.has(`${s.task}/${s.metric}`) && s.pseudo && s.pseudo.length > 0)
    .map((s) => ({ candidateId, task: s.task, metric: s.metric, split, values: s.pseudo! }));
}

/** Scores read back from the store with their kept per-item values attached (as the scorer returned them). */
export function withItemValues(store: Store, candidateId: number, scores: readonly Score[], split: string): Score[] {
  const items = store.listItemValues(candidateId, split);
  return scores.map((s) => {
    const iv = items.find((r) => r.task === s.task && r.metric === s.metric);
    return iv ? { ...s, pseudo: iv.values } : s;
  });
}

/** What a recorded search candidate is told beside its value (by content hash; nothing for an unknown hash). */
export function recordedTellDetails(
  setup: CampaignSetup,
  store: Store,
  campaignId: number,
  hash: string,
  withItems: boolean,
): TellDetails {
  const c = store.findCandidateByHash(campaignId, hash);
  if (!c) return {};
  if (c.status === 'failed') return { failure: { code: c.errorCode ?? 'search.candidate_failed' } };
  const fit = store.listScores(c.candidateId, 'fit');
  const items = withItems ? store.listItemValues(c.candidateId, 'fit') : [];
  const perTask: Record<string, TaskResult> = {};
  let reached = 0;
  let of = 0;
  for (const [key, t] of termKeys(setup)) {
    const s = fit.find((x) => x.task === t.task && x.metric === t.metric);
    if (!s) continue;
    const iv = items.find((r) => r.task === t.task && r.metric === t.metric);
    perTask[key] = {
      value: s.value,
      se: s.se,
      weight: t.weight,
      ...(iv ? { items: iv.values } : {}),
    };
    reached += s.n;
    of += setup.items?.fit[t.task]?.length ?? s.n;
  }
  if (Object.keys(perTask).length === 0) return {};
  return { perTask, ...(setup.space.selection?.halving ? { fidelity: { items: reached, of } } : {}) };
}
