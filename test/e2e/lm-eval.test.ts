// lm-eval task files on the real micro zoo (ONNX Runtime): every runnable file of ../shared/lm-eval-tasks scores
// on local data; the zoo's math_words as generate_until and spam as multiple_choice give the native tasks'
// scores item for item; a campaign whose objective and gates are lm-eval tasks runs, records its fit/test
// protocol and resumes; bad input stops `eval` and `search` with one line and nothing written.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModelDir } from '../../src/checkpoint/model-dir.ts';
import { Evaluator } from '../../src/eval/evaluator.ts';
import { parseSuiteFile } from '../../src/eval/suite.ts';
import { openStore } from '../../src/store/db.ts';
import { sharedTasks, writeSharedSuite } from '../fixtures/lm-eval-data.ts';
import { errorLines, repoRoot, runCli, tinySpace, writeSpace } from './search-fixtures.ts';

const zoo = path.join(repoRoot, 'models/micro');
/** Three small campaigns (4 + 4 resumed, 8 straight): ~35 s on an idle 2-core machine, more when it is shared. */
const CAMPAIGN_TIMEOUT_MS = 400_000;
const microLmEval = path.join(repoRoot, 'evals/micro-lm-eval.yaml');

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-lm-eval-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function withEvaluator<T>(
  suiteFile: string,
  model: string,
  fn: (ev: Evaluator, weights: ReturnType<typeof openModelDir>['tensors']) => Promise<T>,
): Promise<T> {
  const ev = await Evaluator.create({ suite: suiteFile, threads: 1 });
  const m = openModelDir(path.join(zoo, model));
  try {
    return await fn(ev, m.tensors);
  } finally {
    m.close();
    await ev.close();
  }
}

describe('lm-eval task files on the micro zoo', () => {
  it('every runnable file of ../shared/lm-eval-tasks scores on local data', async () => {
    const suite = writeSharedSuite(tmp);
    const results = await withEvaluator(suite, 'expert-math', (ev, w) =>
      ev.evaluate(w, { split: 'fit', limit: 2, withPredictions: true }),
    );
    const byTask = Object.fromEntries(results.map((r) => [r.task, r]));
    expect(Object.keys(byTask)).toEqual(['gsm8k', 'gsm8k_cot', 'arc_easy', 'arc_easy_1shot', 'mgsm_en', 'mgsm_ja']);
    for (const r of results) {
      const keys = [r.metric, ...Object.keys(r.extra)];
      const expected = r.task.startsWith('arc')
        ? ['acc,none', 'acc_norm,none']
        : r.task.startsWith('mgsm')
          ? ['exact_match,remove_whitespace', 'exact_match,flexible-extract']
          : ['exact_match,strict-match', 'exact_match,flexible-extract'];
      expect(keys).toEqual(expected);
      expect(r.n).toBe(r.task.startsWith('mgsm') ? 1 : 2);
      expect(r.value).toBeGreaterThanOrEqual(0);
      expect(r.value).toBeLessThanOrEqual(1);
      expect(r.predictions).toHaveLength(r.n);
    }
    // generations stop at max_gen_toks (8 bytes here) or before a stop string, which is not kept
    for (const p of byTask.gsm8k!.predictions!) {
      expect(Buffer.byteLength(p)).toBeLessThanOrEqual(8);
      expect(p).not.toContain('Question:');
    }
    // multiple choice predicts one of the doc's choices
    expect(['light', 'plastic']).toContain(byTask.arc_easy!.predictions![0]);
  });

  it('math_words as generate_until = the native generate task; spam as multiple_choice = the native choice task', async () => {
    for (const split of ['fit', 'test'] as const) {
      const [math, lmMath] = await withEvaluator(microLmEval, 'expert-math', (ev, w) =>
        ev.evaluate(w, { split, tasks: ['math_words', 'lm_math_words'], withPredictions: true }),
      );
      expect(lmMath!.metric).toBe('exact_match,strip');
      expect(lmMath!.n).toBe(150);
      expect(lmMath!.value).toBe(math!.value);
      expect(lmMath!.predictions).toEqual(math!.predictions);
      expect(math!.value).toBeGreaterThan(0.8); // the expert's own task: a comparison with substance
      const [spam, lmSpam] = await withEvaluator(microLmEval, 'expert-spam', (ev, w) =>
        ev.evaluate(w, { split, tasks: ['spam_choice', 'lm_spam'], withPredictions: true }),
      );
      expect(lmSpam!.metric).toBe('acc,none');
      expect(lmSpam!.n).toBe(200);
      expect(lmSpam!.value).toBe(spam!.value);
      expect(lmSpam!.predictions).toEqual(spam!.predictions);
      expect(Object.keys(lmSpam!.extra)).toEqual(['acc_norm,none']);
    }
    // the zoo README's reference for expert-math's math_words exact match (fit 0.900, test 0.893)
    const [fit] = await withEvaluator(microLmEval, 'expert-math', (ev, w) =>
      ev.evaluate(w, { split: 'fit', tasks: ['lm_math_words'] }),
    );
    expect(fit!.value).toBeCloseTo(0.9, 3);
  });
});

describe('a campaign over lm-eval tasks', () => {
  const space = () =>
    tinySpace({
      name: 'lm-eval-tiny',
      suite: microLmEval,
      objective: [{ task: 'lm_math_words', metric: 'exact_match,strip', weight: 1 }],
      gates: [{ name: 'spam_floor', kind: 'floor', task: 'lm_spam', metric: 'acc,none', value: 0.3 }],
      references: [],
      budget: { candidates: 4 },
      workers: 1,
      eval_limit: 8,
    });

  it(
    'runs, records the fit/test protocol, and resumes to the same records as an uninterrupted run',
    () => {
      const file = writeSpace(tmp, 'lm-space.yaml', space());
      const dbA = path.join(tmp, 'a.sqlite');
      const dbB = path.join(tmp, 'b.sqlite');
      const first = runCli(tmp, 'search', file, '--db', dbA, '--device', 'cpu');
      expect(errorLines(first.stderr).filter((l) => l.startsWith('evomerge:'))).toEqual([]);
      expect(first.status).toBe(0);
      expect(first.stdout).toMatch(/candidates: 4 evaluated/);
      expect(first.stdout).toContain(
        `lm-eval task lm_math_words (${path.join(repoRoot, 'evals/lm-eval/micro_math_words.yaml')}): fit = split ` +
          `"validation"; test = split "test"; few-shot: none; chat template: none`,
      );
      const resumed = runCli(tmp, 'search', file, '--db', dbA, '--device', 'cpu', '--budget', '8');
      expect(resumed.status).toBe(0);
      expect(resumed.stdout).toMatch(/candidates: 8 evaluated/);
      const straight = runCli(tmp, 'search', file, '--db', dbB, '--device', 'cpu', '--budget', '8');
      expect(straight.status).toBe(0);

      const records = (db: string) => {
        const s = openStore(db, { readonly: true });
        try {
          const [c] = s.listCampaigns();
          const cfg = JSON.parse(c!.configJson) as { lmEvalProtocols: Record<string, Record<string, string>> };
          const rows = s.listCandidates(c!.campaignId, { kind: 'search' }).map((x) => ({
            ordinal: x.ordinal,
            hash: x.contentHash,
            status: x.status,
            scores: s.listScores(x.candidateId, 'fit').map((f) => `${f.task}/${f.metric}=${f.value}`),
          }));
          return { cfg, rows };
        } finally {
          s.close();
        }
      };
      const a = records(dbA);
      expect(a.cfg.lmEvalProtocols.lm_math_words).toMatchObject({
        fit: 'split "validation"',
        test: 'split "test"',
        fewshot: 'none',
        chat_template: 'none',
      });
      expect(a.cfg.lmEvalProtocols.lm_spam!.task_file).toBe(path.join(repoRoot, 'evals/lm-eval/micro_spam.yaml'));
      expect(a.rows).toHaveLength(8);
      expect(a.rows[0]!.scores.sort()).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^lm_math_words\/exact_match,strip=/),
          expect.stringMatching(/^lm_spam\/acc,none=/),
        ]),
      );
      expect(a.rows).toEqual(records(dbB).rows);
    },
    CAMPAIGN_TIMEOUT_MS,
  );

  it('bad input: one line, exit ≠ 0, nothing written', () => {
    const suite = writeSharedSuite(
      path.join(tmp, 'bad'),
      `  hellaswag:\n    lm_eval: ${sharedTasks}/hellaswag/hellaswag.yaml\n`,
    );
    const ev = runCli(tmp, 'eval', path.join(zoo, 'base'), '--suite', suite);
    expect(ev.status).toBe(1);
    const lines = errorLines(ev.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      `evomerge: ${sharedTasks}/hellaswag/hellaswag.yaml: process_docs: !function utils.process_docs: runs Python ` +
        `code on the dataset, which evomerge cannot run; preprocess the data into local files instead`,
    );
    expect(ev.stdout).toBe('');
    const file = writeSpace(tmp, 'bad-space.yaml', { ...space(), suite });
    const db = path.join(tmp, 'bad.sqlite');
    const r = runCli(tmp, 'search', file, '--db', db, '--device', 'cpu');
    expect(r.status).toBe(1);
    expect(errorLines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain('process_docs');
    expect(existsSync(db)).toBe(false);
    // the suite itself is fine without hellaswag
    expect(parseSuiteFile(writeSharedSuite(path.join(tmp, 'good'))).tasks).toHaveLength(6);
  });
});
