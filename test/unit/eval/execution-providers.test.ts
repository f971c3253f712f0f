// Execution providers: ORT's webgpu provider (Dawn; lavapipe on GPU-less machines such as CI) gives the same
// predictions as cpu and log-likelihoods within 1e-3; cuda, where not installed, fails with one clear line.
// On lavapipe every new sequence length compiles shaders (~0.2 s each), so this runs a subset of the items.
import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { EvomergeError } from '../../../src/errors.ts';

const ROOT = join(import.meta.dirname, '../../..');
const SUITE = join(ROOT, 'evals/micro.yaml');
const expert = openModelDir(join(ROOT, 'models/micro/expert-math'));
afterAll(() => expert.close());

describe('execution providers', () => {
  it('webgpu gives the same scores as cpu on the zoo (subset)', async () => {
    const runs = [
      { tasks: ['math', 'math_words', 'composite'], limit: 20 },
      { tasks: ['spam'], limit: 6 },
      { tasks: ['lang', 'english'], limit: 12 },
    ];
    const results: Record<string, Awaited<ReturnType<Evaluator['evaluate']>>> = {};
    for (const ep of ['cpu', 'webgpu'] as const) {
      const ev = await Evaluator.create({ suite: SUITE, ep });
      try {
        results[ep] = [];
        for (const r of runs)
          results[ep]!.push(...(await ev.evaluate(expert.tensors, { split: 'test', ...r, withPredictions: true })));
      } finally {
        await ev.close();
      }
    }
    const cpu = results.cpu!;
    const gpu = results.webgpu!;
    expect(gpu.map((s) => s.task)).toEqual(['math', 'math_words', 'composite', 'spam', 'lang', 'english']);
    for (let i = 0; i < cpu.length; i++) {
      const c = cpu[i]!;
      const g = gpu[i]!;
      if (c.metric === 'exact_match') {
        expect(g.predictions, c.task).toEqual(c.predictions);
        expect(g.value).toBe(c.value);
      } else {
        expect(Math.abs(g.value - c.value), c.task).toBeLessThanOrEqual(1e-3);
        expect(Math.abs(g.extra.next_token_accuracy!.value - c.extra.next_token_accuracy!.value)).toBeLessThanOrEqual(
          1e-3,
        );
      }
    }
    // and the subset is not degenerate: the expert solves most of its arithmetic
    expect(cpu[0]!.value).toBeGreaterThan(0.5);
  });

  it('cuda either runs or says clearly that it is not available', async () => {
    let ev: Evaluator | undefined;
    try {
      ev = await Evaluator.create({ suite: SUITE, ep: 'cuda' });
      const [s] = await ev.evaluate(expert.tensors, { tasks: ['math'], limit: 10 });
      expect(s!.n).toBe(10);
    } catch (e) {
      expect(e).toBeInstanceOf(EvomergeError);
      expect((e as EvomergeError).code).toBe('eval.ep_unavailable');
      expect((e as Error).message).toMatch(
        /^--ep: execution provider "cuda" is not available here \(.*\); install .* or use --ep cpu$/,
      );
    } finally {
      await ev?.close();
    }
  });
});
