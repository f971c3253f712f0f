// The task kinds beyond the zoo's reference columns: choice (labels scored by summed log-probability),
// answer_logprob (the search's continuous fitness), batching invariance, and the standard errors.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import { openModelDir, type ModelDir } from '../../../src/checkpoint/model-dir.ts';
import { mean, proportion, ratio } from '../../../src/eval/stats.ts';
import { batchesByLength } from '../../../src/eval/tasks/forward.ts';

const ROOT = join(import.meta.dirname, '../../..');
const models: Record<string, ModelDir> = {};
let tmp: string;
let ev: Evaluator;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-tasks-'));
  for (const m of ['base', 'expert-math', 'expert-spam']) models[m] = openModelDir(join(ROOT, 'models/micro', m));
  // spam as a choice task: the same items, labels given by the task; the answer field is the label.
  const spam = join(ROOT, 'evals/micro/spam.fit.jsonl');
  const badChoice = join(tmp, 'bad-choice.jsonl');
  writeFileSync(
    badChoice,
    '{"prompt": "Subject: hi\\nLabel: ", "answer": "spam"}\n{"prompt": "Subject: x\\nLabel: ", "answer": "eggs"}\n',
  );
  writeFileSync(
    join(tmp, 'suite.yaml'),
    `graph: ${join(ROOT, 'models/micro/base/model.onnx')}
base_model: ${join(ROOT, 'models/micro/base')}
tasks:
  spam_choice: {kind: choice, fit: ${spam}, test: ${spam}, choices: [spam, ham]}
  bad_choice: {kind: choice, fit: ${badChoice}, test: ${badChoice}, choices: [spam, ham]}
  math: {kind: generate, metric: answer_logprob, fit: ${join(ROOT, 'evals/micro/math.fit.jsonl')}, test: ` +
      `${join(ROOT, 'evals/micro/math.test.jsonl')}, max_new_tokens: 4, stop: "\\n"}
`,
  );
  ev = await Evaluator.create({ suite: join(tmp, 'suite.yaml') });
});
afterAll(async () => {
  await ev?.close();
  for (const m of Object.values(models)) m.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('choice', () => {
  it('ranks the labels: the spam expert beats chance and base', async () => {
    const [expert] = await ev.evaluate(models['expert-spam']!.tensors, {
      tasks: ['spam_choice'],
      withPredictions: true,
    });
    const [base] = await ev.evaluate(models.base!.tensors, { tasks: ['spam_choice'] });
    expect(expert!.metric).toBe('accuracy');
    expect(expert!.n).toBe(200);
    // generate exact_match of expert-spam on this file is 0.630 (README), and it always answers with a label.
    expect(expert!.value).toBeGreaterThanOrEqual(0.6);
    expect(expert!.value).toBeGreaterThan(base!.value + 0.05);
    expect(expert!.se).toBeCloseTo(Math.sqrt((expert!.value * (1 - expert!.value)) / 200), 12);
    expect(new Set(expert!.predictions)).toEqual(new Set(['spam', 'ham']));
  });
  it('names the file, line and field of an answer that is not a label', async () => {
    await expect(ev.evaluate(models.base!.tensors, { tasks: ['bad_choice'] })).rejects.toThrow(
      /bad-choice\.jsonl:2: answer: "eggs" is not one of the choices/,
    );
  });
});

describe('answer_logprob', () => {
  it('is higher for the math expert than for base, and agrees with its exact-match ordering', async () => {
    const [b] = await ev.evaluate(models.base!.tensors, { tasks: ['math'] });
    const [m] = await ev.evaluate(models['expert-math']!.tensors, { tasks: ['math'] });
    expect(b!.metric).toBe('answer_logprob');
    expect(b!.n).toBe(150);
    expect(m!.value).toBeLessThan(0);
    expect(m!.value).toBeGreaterThan(b!.value + 0.5);
    expect(m!.value).toBeGreaterThan(-0.5); // 0.82 exact match: the answers are mostly confident
    expect(b!.se).toBeGreaterThan(0);
  });
  it('can be chosen per call instead of the suite metric', async () => {
    const [em] = await ev.evaluate(models['expert-math']!.tensors, {
      tasks: ['math'],
      metrics: { math: 'exact_match' },
    });
    expect(em!.metric).toBe('exact_match');
    expect(Math.round(em!.value * 150)).toBe(123); // README: 0.820 of 150
    await expect(ev.evaluate(models.base!.tensors, { tasks: ['math'], metrics: { math: 'accuracy' } })).rejects.toThrow(
      /tasks\.math\.metric: expected one of exact_match, answer_logprob/,
    );
  });
});

describe('batching', () => {
  it('groups by length within the token budget, every item once', () => {
    const lengths = [5, 3, 5, 5, 3, 9];
    expect(batchesByLength(lengths, 10)).toEqual([[1, 4], [0, 2], [3], [5]]);
    expect(batchesByLength(lengths, 1)).toEqual([[1], [4], [0], [2], [3], [5]]);
  });
  it('gives the same predictions and logliks whatever the batch size', async () => {
    const one = await Evaluator.create({ suite: join(ROOT, 'evals/micro.yaml'), batchTokens: 1 });
    try {
      const opts = { tasks: ['math_words', 'english'], limit: 12, withPredictions: true };
      const a = await one.evaluate(models['expert-math']!.tensors, opts);
      const big = await Evaluator.create({ suite: join(ROOT, 'evals/micro.yaml'), batchTokens: 4096 });
      const b = await big.evaluate(models['expert-math']!.tensors, opts);
      await big.close();
      expect(a[0]!.predictions).toEqual(b[0]!.predictions);
      expect(Math.abs(a[1]!.value - b[1]!.value)).toBeLessThan(1e-5);
    } finally {
      await one.close();
    }
  });
});

describe('standard errors', () => {
  it('binomial, sample mean and ratio estimator', () => {
    expect(proportion(3, 4)).toEqual({ value: 0.75, se: Math.sqrt((0.75 * 0.25) / 4), n: 4 });
    const m = mean([1, 2, 3, 4]);
    expect(m.value).toBe(2.5);
    expect(m.se).toBeCloseTo(Math.sqrt(((1.5 ** 2 + 0.5 ** 2) * 2) / 3 / 4), 12);
    // equal denominators: the ratio estimator is the mean of per-item ratios, with the same SE
    const r = ratio([2, 4, 6, 8], [2, 2, 2, 2]);
    expect(r.value).toBe(2.5);
    expect(r.se).toBeCloseTo(m.se, 12);
    expect(Number.isNaN(proportion(0, 0).value)).toBe(true);
  });
});

// Keep the fixture honest: the spam file really is the zoo's.
it('uses the zoo spam file (200 items)', () => {
  expect(readFileSync(join(ROOT, 'evals/micro/spam.fit.jsonl'), 'utf8').trim().split('\n')).toHaveLength(200);
});
