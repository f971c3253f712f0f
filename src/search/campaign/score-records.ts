// Scores between the campaign and its store: the store keeps rows (any split string, the candidate's id), the
// search reads them back as Scores of the fit or test split. Every read of recorded scores goes through here.
import type { Store } from '../../store/db.ts';
import type { ScoreRecord } from '../../store/records.ts';
import { recordedScore } from '../../store/recorded-score.ts';
import type { Score } from '../space/measures.ts';

/** A stored score row as the search uses it (a Score is a NewScore); the search records only its own splits. */
export function fromRecord(s: ScoreRecord): Score {
  return recordedScore(s) as Score;
}

/** The recorded scores of one candidate on one split. */
export function recordedScores(store: Store, candidateId: number, split: Score['split']): Score[] {
  return store.listScores(candidateId, split).map(fromRecord);
}

/** Source name → its recorded scores on one split: the gates' baselines. */
export function recordedSourceScores(store: Store, campaignId: number, split: Score['split']): Map<string, Score[]> {
  const out = new Map<string, Score[]>();
  for (const c of store.listCandidates(campaignId, { kind: 'source' }))
    out.set(c.label!, recordedScores(store, c.candidateId, split));
  return out;
}
