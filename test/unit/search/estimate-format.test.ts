// The estimate's text: one line per part, the val pick's line only with selection.top_k, spans in s / min / h.
import { describe, expect, it } from 'vitest';
import { formatEstimate, type CampaignEstimate } from '../../../src/search/campaign/estimate.ts';

const estimate: CampaignEstimate = {
  space: 'space.yaml',
  processS: 2,
  startupS: 1.5,
  mergeS: 0.5,
  weightsS: 0.01,
  tasks: [{ task: 'math', metric: 'exact_match', items: 105, seconds: 20 }],
  candidateS: 20.51,
  workers: 2,
  sideBySide: 2,
  cores: 2,
  populationSize: 14,
  perGenerationS: 143.57,
  candidatesPerHour: 351,
  baselines: { sources: 4, references: 7, seconds: 120 },
  budget: { candidates: 150, generations: 11, seconds: 1579.27 },
  valPick: { topK: 10, seconds: 90 },
  testS: 150,
  totalS: 7300,
};

describe('formatEstimate', () => {
  it('prints one line per part, the val pick when there is one, and when the budget finishes', () => {
    const text = formatEstimate(estimate, new Date('2026-12-07T22:00:00Z'));
    expect(text.split('\n').filter((l) => l !== '')).toEqual([
      'estimate for space.yaml (one candidate measured; no database opened, nothing recorded)',
      'process start-up: 2.00 s',
      'start-up: 1.50 s per worker (evaluator and session, once per run)',
      'merge: 0.50 s',
      'weights to session: 0.01 s',
      'task math (exact_match, 105 fit items): 20.00 s',
      'per candidate: 20.51 s on one worker',
      'per generation: 2.4 min (14 candidates on 2 worker(s), 2 core(s))',
      'candidates per hour: 351 with 2 worker(s)',
      'baselines: 2.0 min (4 source(s), 7 reference merge(s), scored once)',
      'search: 26.3 min (150 candidates in 11 generation(s))',
      'val pick: 90.00 s (the top 10 by fit, the sources and the references, scored on val)',
      'test split at the end: 2.5 min (sized as fit)',
      'budget finishes: in 2.0 h, about 2026-12-08 00:01 UTC',
    ]);
    const { valPick: _, ...noVal } = estimate;
    expect(formatEstimate(noVal)).not.toMatch(/val pick/);
    expect(formatEstimate({ ...estimate, sideBySide: 1 })).toMatch(
      /^per generation: .*, 2 core\(s\); one at a time: a GPU kernel scores in this thread\)$/m,
    );
  });
});
