// The evaluator reproduces the zoo README's reference scores (PyTorch, float32) for base and every expert, on
// the fit and the test split: exact-match counts equal, loglik and next-byte accuracy within 1e-3.
// Measured cost: ~5 s per model per split on one core (the 6 tasks, all items), so the full check (4 models ×
// 2 splits) runs in well under a minute and needs no subsetting. It runs twice: with the shipped model.onnx and
// with the graph evomerge builds from config.json (graph: auto, weights built into a session per model).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';

const ROOT = join(import.meta.dirname, '../../..');

// From ../shared/zoo/README.md, "Reference scores": [math, math_words, composite, spam, lang ll, lang acc,
// english ll, english acc]. Exact matches are fractions of n = 150 (spam: 200), printed to 3 decimals.
const REFERENCE: Record<'fit' | 'test', Record<string, number[]>> = {
  fit: {
    base: [0.133, 0.0, 0.0, 0.0, -2.032, 0.426, -1.244, 0.626],
    'expert-math': [0.82, 0.9, 0.073, 0.0, -2.593, 0.323, -1.262, 0.621],
    'expert-lang': [0.107, 0.0, 0.0, 0.0, -1.394, 0.587, -1.342, 0.603],
    'expert-spam': [0.047, 0.0, 0.0, 0.63, -3.535, 0.146, -1.302, 0.611],
  },
  test: {
    base: [0.107, 0.0, 0.0, 0.0, -2.045, 0.425, -1.255, 0.618],
    'expert-math': [0.907, 0.893, 0.033, 0.0, -2.578, 0.327, -1.267, 0.619],
    'expert-lang': [0.06, 0.0, 0.0, 0.0, -1.397, 0.593, -1.344, 0.6],
    'expert-spam': [0.067, 0.0, 0.0, 0.74, -3.522, 0.151, -1.305, 0.609],
  },
};
const EM_TASKS = ['math', 'math_words', 'composite', 'spam'];

describe.each(['model.onnx', 'auto'])('zoo reference scores (graph: %s)', (graph) => {
  let ev: Evaluator;
  beforeAll(async () => {
    // One intra-op thread: CI has 2 cores and runs test files side by side; spinning ORT threads then fight.
    ev = await Evaluator.create({
      suite: join(ROOT, 'evals/micro.yaml'),
      threads: 1,
      ...(graph === 'auto' ? { graph: 'auto', weightMode: 'external' as const } : {}),
    });
  });
  afterAll(async () => {
    await ev?.close();
  });

  for (const split of ['fit', 'test'] as const) {
    for (const [model, ref] of Object.entries(REFERENCE[split])) {
      it(`${model} on ${split}`, async () => {
        const dir = openModelDir(join(ROOT, 'models/micro', model));
        try {
          const scores = await ev.evaluate(dir.tensors, { split });
          const by = new Map(scores.map((s) => [s.task, s]));
          EM_TASKS.forEach((task, k) => {
            const s = by.get(task)!;
            expect(s.metric).toBe('exact_match');
            expect(s.n).toBe(task === 'spam' ? 200 : 150);
            // Counts, not fractions: the README rounds to 3 decimals, which identifies the count uniquely.
            expect(Math.round(s.value * s.n), `${model} ${split} ${task}`).toBe(Math.round(ref[k]! * s.n));
          });
          for (const [task, k] of [
            ['lang', 4],
            ['english', 6],
          ] as const) {
            const s = by.get(task)!;
            expect(s.metric).toBe('loglik');
            expect(s.n).toBe(200);
            expect(Math.abs(s.value - ref[k]!), `${model} ${split} ${task} loglik ${s.value}`).toBeLessThanOrEqual(
              1e-3,
            );
            const acc = s.extra.next_token_accuracy!;
            expect(acc.n).toBe(200 * 127);
            expect(
              Math.abs(acc.value - ref[k + 1]!),
              `${model} ${split} ${task} next-byte acc ${acc.value}`,
            ).toBeLessThanOrEqual(1e-3);
            expect(s.extra.bits_per_byte!.value).toBeCloseTo(-s.value / Math.LN2, 10);
            expect(s.se).toBeGreaterThan(0);
          }
        } finally {
          dir.close();
        }
      });
    }
  }
});
