// Graphs with a KV cache (optimum's decoder layout), on a zoo-architecture graph the test builds op by op:
// run from scratch it is bit-identical to the zoo's model.onnx; greedy decoding through its cache (one new
// token per step) reproduces the zoo README's exact-match counts while running far fewer token positions.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import { openModelDir, type ModelDir } from '../../../src/checkpoint/model-dir.ts';
import { writeKvLlamaGraph } from './kv-llama-graph.ts';

const ROOT = join(import.meta.dirname, '../../..');
const SUITE = join(ROOT, 'evals/micro.yaml');
let tmp: string;
let kvGraph: string;
let expert: ModelDir;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-kv-'));
  kvGraph = join(tmp, 'decoder_with_past.onnx');
  const base = openModelDir(join(ROOT, 'models/micro/base'));
  try {
    writeKvLlamaGraph(kvGraph, base.tensors);
  } finally {
    base.close();
  }
  expert = openModelDir(join(ROOT, 'models/micro/expert-math'));
});
afterAll(() => {
  expert?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('KV-cache graphs', () => {
  it('without the cache (empty pasts) score exactly as the zoo graph', async () => {
    const zoo = await Evaluator.create({ suite: SUITE, threads: 1 });
    const kv = await Evaluator.create({ suite: SUITE, graph: kvGraph, threads: 1, useKvCache: false });
    try {
      const opts = { split: 'test' as const, tasks: ['math_words', 'english'], limit: 30, withPredictions: true };
      const a = await zoo.evaluate(expert.tensors, opts);
      const b = await kv.evaluate(expert.tensors, opts);
      expect(b[0]!.predictions).toEqual(a[0]!.predictions);
      expect(b[1]!.value).toBe(a[1]!.value); // same float32 operations → the same bits
      expect(kv.describeBinding()!.entries).toHaveLength(57);
    } finally {
      await zoo.close();
      await kv.close();
    }
  });

  it('decode through the cache with the README exact-match counts (expert-math, test split)', async () => {
    const cached = await Evaluator.create({ suite: SUITE, graph: kvGraph, threads: 1 });
    const full = await Evaluator.create({ suite: SUITE, graph: kvGraph, threads: 1, useKvCache: false });
    try {
      const opts = { split: 'test' as const, tasks: ['math', 'math_words', 'composite'], withPredictions: true };
      const withCache = await cached.evaluate(expert.tensors, opts);
      const without = await full.evaluate(expert.tensors, opts);
      // README, test split, expert-math: 0.907, 0.893, 0.033 of 150.
      expect(withCache.map((s) => Math.round(s.value * s.n))).toEqual([136, 134, 5]);
      for (let i = 0; i < 3; i++) expect(withCache[i]!.predictions).toEqual(without[i]!.predictions);
      // One token per step after the prompt: far fewer positions than re-running every sequence.
      expect(cached.tokensProcessed()).toBeLessThan(full.tokensProcessed() * 0.5);
    } finally {
      await cached.close();
      await full.close();
    }
  });
});
