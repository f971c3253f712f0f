// Scoring on the test split, after the search: the one routine the campaign (its best kept candidates) and
// export (the candidate it releases and the sources its gates compare with) share. The test split is held
// out: nothing scored here is told to the optimiser or judged by the fit-split gates.
import pLimit from 'p-limit';
import YAML from 'yaml';
import type { Store } from '../../store/db.ts';
import type { CandidateRecord, ItemValuesRecord } from '../../store/records.ts';
import type { RecipeDoc } from '../space/recipe-doc.ts';
import type { Measure, Score } from '../space/measures.ts';
import type { CandidateScorer } from '../scoring/scorer.ts';

/** Per-item pseudo-values of test scores, as the store keeps them. */
export function testItemValues(candidateId: number, scores: readonly Score[]): ItemValuesRecord[] {
  return scores
    .filter((s) => s.split === 'test' && s.pseudo && s.pseudo.length > 0)
    .map((s) => ({ candidateId, task: s.task, metric: s.metric, split: s.split, values: s.pseudo! }));
}

/** A recorded candidate to score: a source model from its folder, a merge from its recorded recipe. */
export interface TestSplitJob {
  readonly candidate: CandidateRecord;
  /** The model folder of a source; absent for a merge. */
  readonly dir?: string;
}

/** The jobs whose candidate has no test-split score yet. */
export function missingOnTestSplit(store: Store, jobs: readonly TestSplitJob[]): TestSplitJob[] {
  return jobs.filter((j) => store.listScores(j.candidate.candidateId, 'test').length === 0);
}

/**
 * Scores each job on the test split (up to `concurrency` at once) and records the scores as each finishes.
 * Callers pass only jobs without test scores (`missingOnTestSplit`): the store refuses a score twice.
 */
export async function scoreOnTestSplit(
  store: Store,
  scorer: CandidateScorer,
  measures: readonly Measure[],
  jobs: readonly TestSplitJob[],
  concurrency: number,
): Promise<void> {
  const limit = pLimit(concurrency);
  await Promise.all(
    jobs.map((j) =>
      limit(async () => {
        const r = j.dir
          ? await scorer.scoreModelDir(j.dir, 'test', measures)
          : await scorer.scoreRecipe(YAML.parse(j.candidate.recipeYaml!) as RecipeDoc, 'test', measures);
        store.transaction(() => {
          store.addScores(j.candidate.candidateId, r.value);
          store.addItemValues(testItemValues(j.candidate.candidateId, r.value));
        });
      }),
    ),
  );
}
