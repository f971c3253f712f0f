import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EvomergeError } from '../../../src/errors.ts';
import { parseSuiteFile } from '../../../src/eval/suite.ts';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { ThreadedScorer } from '../../../src/search/scoring/scorer-threads.ts';
import { Scorer } from '../../../src/search/scoring/scorer.ts';

const root = path.resolve(__dirname, '../../..');
const suiteFile = path.join(root, 'evals/micro.yaml');
const base = path.join(root, 'models/micro/base');
const measures = [
  { task: 'composite', metric: 'answer_logprob' },
  { task: 'math_words', metric: 'exact_match' },
  { task: 'lang', metric: 'loglik' },
];
const recipe = (w: number) => ({
  merge_method: 'dare_ties',
  base_model: base,
  dtype: 'float32',
  random_seed: 5,
  models: [
    { model: path.join(root, 'models/micro/expert-math'), parameters: { weight: w, density: 0.6 } },
    { model: path.join(root, 'models/micro/expert-lang'), parameters: { weight: 1 - w / 2, density: 0.6 } },
  ],
});

describe('ThreadedScorer', () => {
  let threaded: ThreadedScorer;
  beforeAll(async () => {
    threaded = await ThreadedScorer.create({
      suiteFile,
      baseModelDir: base,
      ep: 'cpu',
      workers: 2,
      limit: 20,
      baseDir: root,
    });
  });
  afterAll(async () => threaded.close());

  it('gives the same scores as scoring in this thread, whichever thread takes a candidate', async () => {
    const inline = await Scorer.create({
      suite: parseSuiteFile(suiteFile),
      baseModelDir: base,
      kernel: new CpuKernel(),
      ep: 'cpu',
      workers: 1,
      limit: 20,
      baseDir: root,
    });
    try {
      const weights = [0.4, 0.8, 1.2];
      const a = await Promise.all(weights.map((w) => threaded.scoreRecipe(recipe(w), 'fit', measures)));
      for (const [i, w] of weights.entries()) {
        const b = await inline.scoreRecipe(recipe(w), 'fit', measures);
        expect(a[i].value).toEqual(b.value);
      }
      const src = await threaded.scoreModelDir(path.join(root, 'models/micro/expert-math'), 'fit', measures);
      expect(src.value).toEqual(
        (await inline.scoreModelDir(path.join(root, 'models/micro/expert-math'), 'fit', measures)).value,
      );
      // different weights score differently: the threads really merged each recipe
      expect(a[0].value[0].value).not.toBe(a[2].value[0].value);
    } finally {
      await inline.close();
    }
  });

  it('returns a thread’s error as the same EvomergeError, and keeps serving', async () => {
    const bad = {
      ...recipe(1),
      merge_method: 'ties',
      models: [{ model: path.join(root, 'models/micro/expert-math'), parameters: { weight: 1, density: 0 } }],
    };
    const err = await threaded.scoreRecipe(bad, 'fit', measures).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvomergeError);
    expect((err as EvomergeError).code).toMatch(/^(merge|recipe)\./);
    expect((err as Error).message).toMatch(/density/);
    const ok = await threaded.scoreRecipe(recipe(1), 'fit', measures);
    expect(ok.value).toHaveLength(3);
  });
});
