// One generation evaluated by successive halving (fidelity.ts): every new recipe of the generation is merged
// and scored on rung 0's fit subset; the best 1/eta by rank value go on to the next rung, and so on. Each rung's
// scores are recorded as they come (split `fit@r`, the candidate 'evaluated' until the generation closes), so an
// interrupted generation resumes without scoring anything twice; promotions are recomputed from the records and
// come out the same. When every rung is done, each candidate's scores at the rung it reached become its `fit`
// scores, its objective, verdicts and status are recorded, and the optimiser is told (the last transaction
// holds its state), as in the one-fidelity loop.
import YAML from 'yaml';
import { EvomergeError } from '../../errors.ts';
import type { Store } from '../../store/db.ts';
import type { NewScore } from '../../store/records.ts';
import type { Ask, NewTell, RunContext } from '../campaign/run-context.ts';
import { promotedCount, rungCount, rungItems, rungSplit } from './fidelity.ts';
import { objectiveValue, type Score } from '../space/measures.ts';
import type { ItemSubset } from './scorer.ts';
import { judgeGates, type SourceScores } from '../campaign/verdicts.ts';
import { fromRecord } from '../campaign/score-records.ts';
import { fitItemValues, withItemValues } from '../campaign/tell-details.ts';

/** Items scored by a campaign's search candidates, summed over their scores: every rung and the val split, or
 *  the fit split of candidates scored at one fidelity. What budget.items counts. */
export function itemsScored(store: Store, campaignId: number): number {
  return store.countSearchItemsScored(campaignId);
}

interface Entry {
  readonly ask: Ask;
  readonly ordinal: number;
  /** Scores at the highest rung reached so far. */
  scores?: Score[];
  rung: number;
  error?: { code: string; message: string };
  mergeMs: number;
  evalMs: number;
}

/**
 * Evaluates a generation's new recipes (with their ordinals) by successive halving and records them.
 * `told` gives the optimiser's value of a candidate from its fit scores. Returns the number of merges made.
 */
export async function evaluateByHalving(
  ctx: RunContext,
  generation: readonly { ask: Ask; ordinal: number }[],
  g: number,
  baselines: SourceScores,
  finish: (hash: string, value: number, scores?: readonly Score[]) => NewTell | undefined,
  told: (a: Ask, fitScores: Score[]) => number,
  onScored?: () => void,
): Promise<number> {
  const { setup, store, campaignId } = ctx;
  const halving = setup.space.selection!.halving!;
  const order = setup.items!.order;
  const rungs = rungCount(
    Object.values(order).map((o) => o.length),
    halving.minItems,
    halving.eta,
  );
  const entries: Entry[] = generation.map((x) => ({ ask: x.ask, ordinal: x.ordinal, rung: -1, mergeMs: 0, evalMs: 0 }));
  let merges = 0;
  let alive = entries;
  for (let r = 0; r < rungs && alive.length > 0; r++) {
    const items: ItemSubset = Object.fromEntries(
      Object.entries(order).map(([task, o]) => [task, rungItems(o, halving.minItems, halving.eta, r)]),
    );
    await Promise.all(
      alive.map((e) =>
        ctx.limit(async () => {
          const prior = store.findCandidateByHash(campaignId, e.ask.hash);
          if (prior?.status === 'failed') {
            e.error = { code: prior.errorCode ?? 'search.candidate_failed', message: prior.errorMessage ?? '' };
            return;
          }
          const recorded = prior ? store.listScores(prior.candidateId, rungSplit(r)) : [];
          if (recorded.length) {
            // a rung's scores stand for the candidate's fit scores (with their kept per-item values)
            const scores = recorded.map((s) => ({ ...fromRecord(s), split: 'fit' as const }));
            e.scores = ctx.keepFitItems ? withItemValues(store, prior!.candidateId, scores, rungSplit(r)) : scores;
            e.rung = r;
            return;
          }
          if (ctx.signal?.aborted) return;
          try {
            const res = await ctx.scorer.scoreRecipe(e.ask.recipe, 'fit', setup.measures, items);
            merges++;
            e.mergeMs += res.mergeMs;
            e.evalMs += res.evalMs;
            const bad = res.value.find((s) => !Number.isFinite(s.value));
            if (bad)
              e.error = { code: 'search.non_finite_score', message: `${bad.task}/${bad.metric} is ${bad.value}` };
            else {
              e.scores = res.value;
              e.rung = r;
            }
          } catch (err) {
            if (err instanceof EvomergeError && err.code === 'internal') throw err;
            e.error = {
              code: err instanceof EvomergeError ? err.code : 'search.candidate_failed',
              message: (err as Error).message ?? String(err),
            };
          }
          store.transaction(() => {
            const c = store.findCandidateByHash(campaignId, e.ask.hash) ?? insert(store, campaignId, e, g);
            if (e.error) {
              store.recordOutcome(c.candidateId, {
                outcome: {
                  status: 'failed',
                  objective: -Infinity,
                  errorCode: e.error.code,
                  errorMessage: e.error.message,
                  mergeMs: e.mergeMs,
                  evalMs: e.evalMs,
                },
              });
              const state = finish(e.ask.hash, -Infinity);
              if (state) store.saveOptimizerState(campaignId, state);
            } else {
              store.addScores(
                c.candidateId,
                e.scores!.map((s) => toRungScore(s, r)),
              );
              if (ctx.keepFitItems) store.addItemValues(fitItemValues(setup, c.candidateId, e.scores!, rungSplit(r)));
            }
          });
          onScored?.();
        }),
      ),
    );
    if (ctx.signal?.aborted && alive.some((e) => e.rung < r && !e.error)) return merges;
    const ranked = alive.filter((e) => !e.error && e.rung === r);
    if (r === rungs - 1) break;
    const value = new Map(ranked.map((e) => [e, told(e.ask, e.scores!)]));
    alive = ranked
      .sort((a, b) => value.get(b)! - value.get(a)! || a.ordinal - b.ordinal)
      .slice(0, promotedCount(ranked.length, halving.eta));
  }
  // Close the generation: each candidate's scores at its reached rung are its fit scores.
  for (const e of entries) {
    const c = store.findCandidateByHash(campaignId, e.ask.hash);
    if (!c || c.status !== 'evaluated' || e.error || !e.scores) continue;
    const objective = objectiveValue(setup.space, setup.suite, e.scores, baselines);
    const verdicts = judgeGates(setup.space, setup.suite, e.scores, baselines, 'fit');
    const status = verdicts.every((v) => v.pass) ? 'kept' : 'rejected';
    store.transaction(() => {
      store.recordOutcome(c.candidateId, {
        outcome: { status, objective, mergeMs: e.mergeMs || null, evalMs: e.evalMs || null },
        scores: e.scores!.map((s) => toRungScore(s, -1)),
        verdicts,
      });
      if (ctx.keepFitItems) store.addItemValues(fitItemValues(setup, c.candidateId, e.scores!, 'fit'));
      // told once the candidate is recorded: the tell reads what the store holds (tell-details.ts)
      const state = finish(e.ask.hash, told(e.ask, e.scores!), e.scores);
      if (state) store.saveOptimizerState(campaignId, state);
    });
  }
  return merges;
}

function insert(store: Store, campaignId: number, e: Entry, g: number) {
  return store.insertCandidate({
    campaignId,
    kind: 'search',
    ordinal: e.ordinal,
    generation: g,
    genomeJson: JSON.stringify(e.ask.genome),
    recipeYaml: YAML.stringify(e.ask.recipe),
    contentHash: e.ask.hash,
    status: 'evaluated',
  });
}

/** A fit score as recorded: under its rung's split, or (rung −1) under `fit`. */
function toRungScore(s: Score, rung: number): NewScore {
  return {
    task: s.task,
    metric: s.metric,
    split: rung < 0 ? 'fit' : rungSplit(rung),
    value: s.value,
    se: s.se,
    n: s.n,
  };
}
