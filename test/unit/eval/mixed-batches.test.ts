// Greedy generation with prompts of different lengths in one batch (padded: onnx-session.ts, PadSide). On tiny
// random decoders the padded rows' next-token logits match the float64 reference (prefill, decoding through the
// cache, rows leaving), on both operator sets and with a sliding window shorter than the padding. On the zoo,
// mixed-length batches give token for token the completions of batch-1 decoding, through the built graph, the
// zoo's model.onnx and KV-cache graphs, for the native math_words task and its lm-eval generate_until twin, and
// through the built graph's standard ops on webgpu. A counting seam around a real session shows that a batch
// mixes lengths, that finished rows leave it, and that a KV-cache graph without attention_mask keeps one prompt
// length per batch.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModelDir, type ModelDir } from '../../../src/checkpoint/model-dir.ts';
import { parseDecoderConfig } from '../../../src/graph/decoder-config.ts';
import { buildDecoderGraph, type OpSet } from '../../../src/graph/decoder-graph.ts';
import { buildAutoGraph } from '../../../src/eval/auto-graph.ts';
import { FeedSet, GraphSession, type KvCache } from '../../../src/eval/onnx-session.ts';
import { OnnxGraph } from '../../../src/graph/onnx-graph.ts';
import { bindWeights, boundInitializers, resolveBinding } from '../../../src/eval/bind.ts';
import { Evaluator, nextTokenSource } from '../../../src/eval/evaluator.ts';
import { generateGreedy } from '../../../src/eval/tasks/generate.ts';
import { batchesMixed, type NextTokenSource } from '../../../src/eval/tasks/forward.ts';
import { readEvalFile } from '../../../src/eval/eval-file.ts';
import { ByteTokenizer } from '../../../src/eval/tokenizers/byte.ts';
import { writeTinyDecoder, type TinyName } from '../../fixtures/tiny-decoders.ts';
import { ReferenceDecoder } from '../../fixtures/reference-decoder.ts';
import { mulberry32 } from '../../fixtures/seeded-random.ts';
import { writeKvLlamaGraph } from './kv-llama-graph.ts';

const ROOT = join(import.meta.dirname, '../../..');
const ZOO = join(ROOT, 'models/micro');
let tmp: string;
let kvGraph: string;
let kvGraphNoMask: string;
let expert: ModelDir;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-mixed-'));
  kvGraph = join(tmp, 'decoder_with_past.onnx');
  kvGraphNoMask = join(tmp, 'decoder_with_past_no_mask.onnx');
  const base = openModelDir(join(ZOO, 'base'));
  try {
    writeKvLlamaGraph(kvGraph, base.tensors);
    writeKvLlamaGraph(kvGraphNoMask, base.tensors, { attentionMask: false });
  } finally {
    base.close();
  }
  expert = openModelDir(join(ZOO, 'expert-math'));
});
afterAll(() => {
  expert?.close();
  rmSync(tmp, { recursive: true, force: true });
});

function maxDiff(got: Float32Array, offset: number, want: Float64Array): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[offset + i]! - want[i]!));
  return m;
}

describe('batchesMixed', () => {
  it('orders rows by length (then index) and fills each batch up to rows × longest ≤ batchTokens', () => {
    const lengths = [5, 2, 9, 2, 4, 9];
    expect(batchesMixed(lengths, 16)).toEqual([[1, 3, 4], [0], [2], [5]]);
    expect(batchesMixed(lengths, 1)).toEqual([[1], [3], [4], [0], [2], [5]]);
    expect(batchesMixed(lengths, 1000)).toEqual([[1, 3, 4, 0, 2, 5]]);
  });
});

describe('padded rows against the float64 reference', () => {
  const cases: [TinyName, OpSet][] = [
    ['llama', 'cpu'],
    ['llama', 'plain'],
    ['mistral', 'cpu'],
    ['mistral', 'plain'],
    ['qwen3', 'plain'],
    ['phi3', 'cpu'],
    ['gemma2', 'cpu'],
    ['gemma2', 'plain'],
    ['gemma3', 'cpu'],
    ['gemma3', 'plain'],
  ];
  for (const [name, opSet] of cases) {
    it(`${name} (${opSet} ops): rows of 3, 11 and 7 tokens in one batch, with and without the cache`, async () => {
      const dir = join(tmp, `${name}-${opSet}`);
      writeTinyDecoder(dir, name, { seed: name.length });
      const model = openModelDir(dir);
      const cfg = parseDecoderConfig(model.config, join(dir, 'config.json'));
      const built = buildDecoderGraph(cfg, { opSet });
      const arrays = new Map<string, Float32Array>();
      for (const n of model.tensors.tensorNames()) arrays.set(n, model.tensors.readTensor(n).data);
      const feeds = new FeedSet();
      for (const w of built.weights) feeds.set(w.name, arrays.get(w.name)!, w.shape);
      const ref = new ReferenceDecoder(model.config, (n) => arrays.get(n));
      model.close();
      const session = await GraphSession.createWithExternalWeights(
        OnnxGraph.fromModel(built.model, join(dir, 'config.json')),
        feeds,
        { ep: 'cpu', intraOpThreads: 1 },
      );
      try {
        expect(session.cachePadSide).toBe(opSet === 'cpu' ? 'right' : 'left');
        const rand = mulberry32(3);
        const rows = [3, 11, 7].map((n) => Array.from({ length: n + 4 }, () => Math.floor(rand() * cfg.vocabSize)));
        const prompts = rows.map((r, i) => r.slice(0, [3, 11, 7][i]));
        // Without a cache: whole padded rows.
        const whole = await session.nextTokenLogits(prompts);
        let err = 0;
        prompts.forEach((p, b) => {
          const want = ref.run(p, ref.emptyCache());
          err = Math.max(err, maxDiff(whole.data, b * cfg.vocabSize, want[want.length - 1]!));
        });
        expect(err, 'padded rows without a cache').toBeLessThanOrEqual(1e-4);
        // Through the cache: the prefill, then one token per row per step; the longest row leaves after two.
        const refCaches = prompts.map((p) => {
          const c = ref.emptyCache();
          ref.run(p, c);
          return c;
        });
        let step = await session.nextTokenLogitsWithCache(prompts, undefined);
        let cache: KvCache = step.cache;
        expect(cache.length).toBe(11);
        let live = [0, 1, 2];
        for (let s = 0; s < 4; s++) {
          if (s === 2) {
            cache = cache.select([0, 2]); // row 1 (11 tokens) leaves: the positions only it used go too
            live = [0, 2];
            expect(cache.length).toBe(7 + 2);
          }
          const t = (b: number) => [3, 11, 7][b]! + s;
          step = await session.nextTokenLogitsWithCache(
            live.map((b) => [rows[b]![t(b)]!]),
            cache,
          );
          cache = step.cache;
          live.forEach((b, i) => {
            const [want] = ref.run([rows[b]![t(b)]!], refCaches[b]!);
            err = Math.max(err, maxDiff(step.logits.data, i * cfg.vocabSize, want!));
          });
        }
        expect(err, 'padded rows through the cache').toBeLessThanOrEqual(1e-4);
      } finally {
        await session.close();
      }
    });
  }
});

describe('mixed-length batches on the zoo', () => {
  const graphs = [
    ['graph: auto (GroupQueryAttention, rows padded on the right)', 'auto'],
    ["the zoo's model.onnx (no mask, no cache: rows padded on the right)", join(ZOO, 'base/model.onnx')],
    ['a KV-cache graph with attention_mask (rows padded on the left)', 'kv'],
    ['a KV-cache graph without attention_mask (equal lengths only)', 'kv-no-mask'],
  ] as const;
  for (const [label, graph] of graphs) {
    it(`${label}: the same completions as batch-1 decoding (math_words and its lm-eval twin)`, async () => {
      const opts = {
        suite: join(ROOT, 'evals/micro-lm-eval.yaml'),
        graph: graph === 'kv' ? kvGraph : graph === 'kv-no-mask' ? kvGraphNoMask : graph,
        threads: 1,
      };
      const mixed = await Evaluator.create(opts);
      const single = await Evaluator.create({ ...opts, batchTokens: 1 });
      try {
        const run = {
          split: 'test' as const,
          tasks: ['math_words', 'lm_math_words'],
          limit: 60,
          withPredictions: true,
        };
        const a = await mixed.evaluate(expert.tensors, run);
        const b = await single.evaluate(expert.tensors, run);
        for (let i = 0; i < 2; i++) expect(a[i]!.predictions, a[i]!.task).toEqual(b[i]!.predictions);
        // the expert answers most items, so the completions compared are not degenerate
        expect(a[0]!.value).toBeGreaterThan(0.6);
        expect(a[1]!.value).toBe(a[0]!.value);
      } finally {
        await mixed.close();
        await single.close();
      }
    });
  }
});

describe('mixed-length batches on webgpu (lavapipe on machines without a GPU)', () => {
  it('graph: auto with standard ops (rows padded on the left): the completions of batch-1 decoding', async () => {
    const opts = { suite: join(ROOT, 'evals/micro-lm-eval.yaml'), graph: 'auto', ep: 'webgpu' as const };
    const mixed = await Evaluator.create(opts);
    const single = await Evaluator.create({ ...opts, batchTokens: 1 });
    try {
      // a few items: lavapipe compiles shaders for every new sequence length
      const run = { split: 'test' as const, tasks: ['math_words'], limit: 12, withPredictions: true };
      const [a] = await mixed.evaluate(expert.tensors, run);
      const [b] = await single.evaluate(expert.tensors, run);
      expect(a!.predictions).toEqual(b!.predictions);
      expect(a!.value).toBeGreaterThan(0.6);
    } finally {
      await mixed.close();
      await single.close();
    }
  });
});

describe('a counting seam around a real session', () => {
  /** Records the row lengths of every call and the rows of the cache it was given. */
  function counting(source: NextTokenSource) {
    const calls: { lengths: number[]; pastRows?: number; pastLength?: number }[] = [];
    const wrapped: NextTokenSource = {
      mixedLengths: source.mixedLengths,
      cached: source.cached,
      next: (rows, past) => {
        calls.push({
          lengths: rows.map((r) => r.length),
          ...(past ? { pastRows: past.batch, pastLength: past.length } : {}),
        });
        return source.next(rows, past);
      },
    };
    return { wrapped, calls };
  }

  const prompts = readEvalFile(join(ROOT, 'evals/micro/math_words.test.jsonl'), {
    prompt: 'prompt',
    answer: 'answer',
  })
    .slice(0, 24)
    .map((i) => i.values.prompt as string);
  const generate = (source: NextTokenSource) =>
    generateGreedy(prompts, new ByteTokenizer(), source, { maxNewTokens: 4, stop: ['\n'], batchTokens: 2048 });

  it('through the KV cache: one batch of mixed lengths, one call per step, finished rows leave', async () => {
    const base = openModelDir(join(ZOO, 'base'));
    const auto = buildAutoGraph(join(ZOO, 'base'), base.config, base.tensors, { ep: 'cpu' });
    base.close();
    const session = await GraphSession.create(auto.graph, boundInitializers(auto.binding), {
      ep: 'cpu',
      intraOpThreads: 1,
    });
    try {
      const feeds = bindWeights(auto.binding, expert.tensors, { refuseNonFinite: false });
      const { wrapped, calls } = counting(nextTokenSource(session, feeds, { useKvCache: true, padRows: true }));
      const out = await generate(wrapped);
      const lengths = prompts.map((p) => Buffer.byteLength(p));
      expect(new Set(lengths).size).toBeGreaterThan(1);
      // the prefill takes every prompt at once, whatever its length
      expect(calls[0]!.lengths.sort((a, b) => a - b)).toEqual([...lengths].sort((a, b) => a - b));
      expect(calls.length).toBeLessThanOrEqual(4);
      // then one token per live row; rows whose answer ended ("12\n" before "7\n\n") are gone from the batch
      for (const c of calls.slice(1)) expect(new Set(c.lengths)).toEqual(new Set([1]));
      const rowsPerCall = calls.map((c) => c.lengths.length);
      for (let i = 1; i < rowsPerCall.length; i++) expect(rowsPerCall[i]).toBeLessThanOrEqual(rowsPerCall[i - 1]!);
      expect(rowsPerCall.at(-1)).toBeLessThan(prompts.length);
      for (const c of calls.slice(1)) expect(c.pastRows).toBe(c.lengths.length);
      const finishedAfter = (n: number) => out.filter((o) => Buffer.byteLength(o) + 1 <= n).length;
      calls.slice(1).forEach((c, i) => expect(c.lengths.length).toBe(prompts.length - finishedAfter(i + 1)));
    } finally {
      await session.close();
    }
  });

  it('a KV-cache graph without attention_mask keeps prompts of one length per batch', async () => {
    const graph = OnnxGraph.load(kvGraphNoMask);
    const base = openModelDir(join(ZOO, 'base'));
    const binding = resolveBinding(graph, base.tensors);
    base.close();
    const session = await GraphSession.create(graph, boundInitializers(binding), { ep: 'cpu', intraOpThreads: 1 });
    try {
      expect(session.cachePadSide).toBeUndefined();
      const feeds = bindWeights(binding, expert.tensors, { refuseNonFinite: false });
      const { wrapped, calls } = counting(nextTokenSource(session, feeds, { useKvCache: true, padRows: true }));
      expect(wrapped.mixedLengths).toBe(false);
      await generate(wrapped);
      for (const c of calls) expect(new Set(c.lengths).size).toBe(1);
      expect(calls.filter((c) => c.pastRows === undefined).length).toBe(new Set(prompts.map((p) => p.length)).size);
    } finally {
      await session.close();
    }
  });

  it("without a cache (the zoo's model.onnx): each step re-runs the live rows of mixed lengths together", async () => {
    const graph = OnnxGraph.load(join(ZOO, 'base/model.onnx'));
    const base = openModelDir(join(ZOO, 'base'));
    const binding = resolveBinding(graph, base.tensors);
    base.close();
    const session = await GraphSession.create(graph, boundInitializers(binding), { ep: 'cpu', intraOpThreads: 1 });
    try {
      const feeds = bindWeights(binding, expert.tensors, { refuseNonFinite: false });
      const { wrapped, calls } = counting(nextTokenSource(session, feeds, { useKvCache: true, padRows: true }));
      await generate(wrapped);
      expect(wrapped.cached).toBe(false);
      expect(calls.length).toBeLessThanOrEqual(4);
      expect(new Set(calls[0]!.lengths).size).toBeGreaterThan(1);
      expect(calls.at(-1)!.lengths.length).toBeLessThan(prompts.length);
      // equal-length batching (padRows false), for contrast: one prompt length per call, and more calls
      const equal = counting(nextTokenSource(session, feeds, { useKvCache: true, padRows: false }));
      await generate(equal.wrapped);
      for (const c of equal.calls) expect(new Set(c.lengths).size).toBe(1);
      expect(equal.calls.length).toBeGreaterThan(calls.length);
    } finally {
      await session.close();
    }
  });
});
