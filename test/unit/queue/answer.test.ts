// What the coordinator accepts from a worker (src/queue/answer.ts), without a queue: an lm-eval task's answer
// obeys the same rules as a native task's — its n is the docs the job scores (the split's docs, at most the
// campaign's eval_limit), and its value lies in its metric's range (lm-eval's `acc,none` is a proportion).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSuiteFile } from '../../../src/eval/suite.ts';
import { checkAnswer, lmEvalDocCounts, suiteItemCount } from '../../../src/queue/answer.ts';
import type { CandidateJob } from '../../../src/queue/job.ts';

const repo = path.resolve(import.meta.dirname, '../../..');
const suite = parseSuiteFile(path.join(repo, 'evals/micro-lm-eval.yaml'));

type Job = Pick<CandidateJob, 'split' | 'measures' | 'items'>;

function answer(job: Job, n: number, value = 0.5): unknown {
  return {
    ok: true,
    worker: 'w1',
    startedAt: Date.now(),
    result: {
      mergeMs: 1,
      evalMs: 1,
      value: job.measures.map((m) => ({ ...m, split: job.split, value, se: 0.01, n })),
    },
  };
}

const wrong = (r: ReturnType<typeof checkAnswer>): string | undefined => ('wrong' in r ? r.wrong : undefined);

describe('answers of lm-eval tasks', () => {
  it('reads the docs each lm-eval task scores on fit and test', async () => {
    const counts = await lmEvalDocCounts(suite);
    expect(counts.get('lm_spam/fit')).toBe(200);
    expect(counts.get('lm_spam/test')).toBe(200);
    expect(counts.get('lm_math_words/test')).toBe(150);
    // native tasks are counted from their own files
    expect(counts.has('spam_choice/fit')).toBe(false);
  });

  it('refuses an answer whose n is not the docs the job scores, as for a native task', async () => {
    const itemCount = suiteItemCount(suite, 8, await lmEvalDocCounts(suite));
    const job: Job = { split: 'fit', measures: [{ task: 'lm_spam', metric: 'acc,none' }] };
    expect(wrong(checkAnswer(answer(job, 8), job, itemCount))).toBeUndefined();
    expect(wrong(checkAnswer(answer(job, 3), job, itemCount))).toBe(
      'score 0 (lm_spam/acc,none): n = 3, but the job scores 8 item(s)',
    );
    expect(wrong(checkAnswer(answer(job, 200), job, itemCount))).toMatch(/n = 200, but the job scores 8 item/);
    // without eval_limit: every doc of the split
    const all = suiteItemCount(suite, undefined, await lmEvalDocCounts(suite));
    const test: Job = { split: 'test', measures: [{ task: 'lm_math_words', metric: 'exact_match,strip' }] };
    expect(wrong(checkAnswer(answer(test, 150), test, all))).toBeUndefined();
    expect(wrong(checkAnswer(answer(test, 1), test, all))).toMatch(/n = 1, but the job scores 150 item/);
    // the native twin, for comparison: the same rule
    const native: Job = { split: 'fit', measures: [{ task: 'spam_choice', metric: 'accuracy' }] };
    expect(wrong(checkAnswer(answer(native, 3), native, itemCount))).toMatch(/n = 3, but the job scores 8 item/);
  });

  it("refuses an lm-eval proportion outside [0, 1] (a forged 'acc,none': 99)", async () => {
    const itemCount = suiteItemCount(suite, 8, await lmEvalDocCounts(suite));
    const job: Job = { split: 'fit', measures: [{ task: 'lm_spam', metric: 'acc,none' }] };
    expect(wrong(checkAnswer(answer(job, 8, 99), job, itemCount))).toBe(
      'score 0 (lm_spam/acc,none): value 99 is outside [0, 1]',
    );
    const gen: Job = { split: 'fit', measures: [{ task: 'lm_math_words', metric: 'exact_match,strip' }] };
    expect(wrong(checkAnswer(answer(gen, 8, -1), gen, itemCount))).toMatch(/value -1 is outside \[0, 1\]/);
  });
});

describe('answers past the size bound', () => {
  it('an answer heavier than 16 MiB is a bad answer, read no further (a forged failure with a huge message)', () => {
    const itemCount = suiteItemCount(suite, 8);
    const job: Job = { split: 'fit', measures: [{ task: 'lang', metric: 'loglik' }] };
    const huge = { ok: false, worker: 'w1', error: { code: 'search.candidate_failed', message: 'x'.repeat(17 << 20) } };
    expect(wrong(checkAnswer(huge, job, itemCount))).toBe('the answer weighs more than 16 MiB');
    // the same failure with a message of a usual length is a failure the campaign records
    const usual = { ...huge, error: { ...huge.error, message: 'cannot merge: tensor x: shapes differ' } };
    expect(wrong(checkAnswer(usual, job, itemCount))).toBeUndefined();
  });
});
