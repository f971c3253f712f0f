// The decoder graph evomerge builds from config.json (graph: auto) against an independent float64 forward pass
// (test/fixtures/reference-decoder.ts) on tiny random checkpoints of Llama (biases, llama3 RoPE), Mistral (GQA 8:2,
// head_dim ≠ hidden/heads, a sliding window shorter than the sequences), Qwen2 (q/k/v biases, tied embeddings,
// linear RoPE, GQA 4:1), Qwen3 (q_norm/k_norm, attention_bias), Mistral-Nemo's shape (heads · head_dim > hidden),
// Phi-3 (fused qkv_proj/gate_up_proj, longrope, a window), Gemma 2 (soft-capping, sandwich norms, GELU-tanh,
// alternating windows) and Gemma 3's text decoder (q/k norms, local RoPE, window pattern): logits within 1e-4 for a
// prefill and for one-token decoding steps through the KV cache, with the weights built into the session (external
// data) and fed per run. On the zoo, the built graph's logits match the shipped model.onnx within 1e-4.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { parseDecoderConfig } from '../../../src/graph/decoder-config.ts';
import { buildDecoderGraph, type OpSet } from '../../../src/graph/decoder-graph.ts';
import { FeedSet, GraphSession, type KvCache } from '../../../src/eval/onnx-session.ts';
import { OnnxGraph } from '../../../src/graph/onnx-graph.ts';
import { TINY_CONFIGS, writeTinyDecoder, type TinyName } from '../../fixtures/tiny-decoders.ts';
import { ReferenceDecoder } from '../../fixtures/reference-decoder.ts';
import { mulberry32 } from '../../fixtures/seeded-random.ts';

const ROOT = join(import.meta.dirname, '../../..');
let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-decoder-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Built {
  session: GraphSession;
  feeds?: FeedSet;
  ref: ReferenceDecoder;
  vocab: number;
  close(): Promise<void>;
}

async function open(
  dir: string,
  opts: { opSet: OpSet; mode: 'external' | 'inputs'; layerPath?: number[] },
): Promise<Built> {
  const model = openModelDir(dir);
  const cfg = parseDecoderConfig(model.config, join(dir, 'config.json'));
  const built = buildDecoderGraph(cfg, { opSet: opts.opSet, ...(opts.layerPath ? { layerPath: opts.layerPath } : {}) });
  const graph = OnnxGraph.fromModel(built.model, join(dir, 'config.json'));
  const feeds = new FeedSet();
  const arrays = new Map<string, Float32Array>();
  for (const name of model.tensors.tensorNames()) arrays.set(name, model.tensors.readTensor(name).data);
  for (const w of built.weights) feeds.set(w.name, arrays.get(w.name)!, w.shape);
  model.close();
  const options = { ep: 'cpu' as const, intraOpThreads: 1 };
  const session =
    opts.mode === 'external'
      ? await GraphSession.createWithExternalWeights(graph, feeds, options)
      : await GraphSession.create(
          graph,
          built.weights.map((w) => w.name),
          options,
        );
  const ref = new ReferenceDecoder(model.config, (n) => arrays.get(n), opts.layerPath);
  return {
    session,
    ...(opts.mode === 'inputs' ? { feeds } : {}),
    ref,
    vocab: cfg.vocabSize,
    close: () => session.close(),
  };
}

function maxDiff(got: Float32Array, offset: number, want: Float64Array): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[offset + i]! - want[i]!));
  return m;
}

/** Prefill two rows of 12 tokens, then decode 4 steps one token at a time from the cache of a 7-token prefix. */
async function checkAgainstReference(b: Built): Promise<{ prefill: number; decode: number }> {
  const rand = mulberry32(7);
  const rows = [0, 1].map(() => Array.from({ length: 12 }, () => Math.floor(rand() * b.vocab)));
  const ids = Int32Array.from(rows.flat());
  const logits = await b.session.forward(ids, 2, 12, b.feeds);
  let prefill = 0;
  rows.forEach((row, r) => {
    const want = b.ref.run(row, b.ref.emptyCache());
    want.forEach((w, t) => (prefill = Math.max(prefill, maxDiff(logits.data, (r * 12 + t) * b.vocab, w))));
  });
  let decode = 0;
  const refCache = rows.map(() => b.ref.emptyCache());
  rows.forEach((row, r) => b.ref.run(row.slice(0, 7), refCache[r]!));
  let step = await b.session.forwardWithCache(
    Int32Array.from(rows.flatMap((row) => row.slice(0, 7))),
    2,
    7,
    undefined,
    b.feeds,
  );
  let cache: KvCache = step.cache;
  for (let t = 7; t < 11; t++) {
    step = await b.session.forwardWithCache(Int32Array.from(rows.map((row) => row[t]!)), 2, 1, cache, b.feeds);
    cache = step.cache;
    rows.forEach((row, r) => {
      const [want] = b.ref.run([row[t]!], refCache[r]!);
      decode = Math.max(decode, maxDiff(step.logits.data, r * b.vocab, want!));
    });
  }
  return { prefill, decode };
}

describe('decoder graph from config.json', () => {
  const cases: [TinyName, OpSet, 'external' | 'inputs'][] = [
    ['llama', 'cpu', 'external'],
    ['llama', 'plain', 'inputs'],
    ['mistral', 'cpu', 'external'],
    ['mistral', 'plain', 'external'],
    ['qwen2', 'cpu', 'inputs'],
    ['qwen2', 'plain', 'external'],
    ['qwen3', 'cpu', 'inputs'],
    ['qwen3', 'plain', 'external'],
    ['mistral-nemo', 'cpu', 'external'],
    ['mistral-nemo', 'plain', 'inputs'],
    ['phi3', 'cpu', 'external'],
    ['phi3', 'plain', 'inputs'],
    ['gemma2', 'cpu', 'inputs'],
    ['gemma2', 'plain', 'external'],
    ['gemma3', 'cpu', 'external'],
    ['gemma3', 'plain', 'inputs'],
  ];
  for (const [name, opSet, mode] of cases) {
    it(
      `${name} (${opSet} ops, weights ${mode === 'external' ? 'built in' : 'fed per run'})` +
        ` matches the float64 reference within 1e-4`,
      async () => {
        const dir = join(tmp, `${name}-${opSet}-${mode}`);
        writeTinyDecoder(dir, name, { seed: name.length });
        const b = await open(dir, { opSet, mode });
        try {
          const { prefill, decode } = await checkAgainstReference(b);
          expect(prefill, 'prefill').toBeLessThanOrEqual(1e-4);
          expect(decode, 'cached decode').toBeLessThanOrEqual(1e-4);
        } finally {
          await b.close();
        }
      },
    );
  }

  // ORT's CPU GroupQueryAttention (with RoPE) takes head sizes that are multiples of 16 only: the CPU operator
  // set computes the others' attention in standard ops (40 and 24 failed at run time before), the rest fused.
  for (const headDim of [40, 24, 80, 96, 256]) {
    it(`head_dim ${headDim} (cpu ops, weights built in) matches the float64 reference within 1e-4`, async () => {
      const dir = join(tmp, `llama-head-${headDim}`);
      writeTinyDecoder(dir, 'llama-linear', { seed: headDim, config: { head_dim: headDim, num_hidden_layers: 4 } });
      const b = await open(dir, { opSet: 'cpu', mode: 'external' });
      try {
        const { prefill, decode } = await checkAgainstReference(b);
        expect(prefill, 'prefill').toBeLessThanOrEqual(1e-4);
        expect(decode, 'cached decode').toBeLessThanOrEqual(1e-4);
      } finally {
        await b.close();
      }
    });
  }

  it('a huge max_position_embeddings allocates nothing: the rotary tables follow the positions that run', () => {
    const cfg = parseDecoderConfig(
      { ...TINY_CONFIGS['llama-linear'], max_position_embeddings: 1e7 },
      join(tmp, 'config.json'),
    );
    for (const opSet of ['cpu', 'plain'] as const) {
      const built = buildDecoderGraph(cfg, { opSet });
      const constants = built.model.graph!.initializer!.filter((t) => t.rawData);
      const largest = Math.max(...constants.map((t) => t.rawData!.byteLength / 4));
      expect(largest, opSet).toBeLessThanOrEqual(cfg.headDim);
    }
  });

  it('runs a layer path (a layer skipped, one repeated) as the reference does', async () => {
    const dir = join(tmp, 'llama-path');
    writeTinyDecoder(dir, 'llama', { seed: 3 });
    const b = await open(dir, { opSet: 'cpu', mode: 'external', layerPath: [0, 2, 2, 1] });
    try {
      const { prefill, decode } = await checkAgainstReference(b);
      expect(prefill).toBeLessThanOrEqual(1e-4);
      expect(decode).toBeLessThanOrEqual(1e-4);
    } finally {
      await b.close();
    }
  });

  for (const dtype of ['F16', 'BF16'] as const) {
    it(`a ${dtype} checkpoint computes in float32 on the CPU: within 1e-4 of the reference on the same (upcast) weights`, async () => {
      const dir = join(tmp, `llama-${dtype}`);
      writeTinyDecoder(dir, 'llama-linear', { seed: 5, dtype });
      expect(openModelDir(dir).tensors.tensorInfo('lm_head.weight').dtype).toBe(dtype);
      const b = await open(dir, { opSet: 'cpu', mode: 'external' });
      try {
        const { prefill, decode } = await checkAgainstReference(b);
        expect(prefill).toBeLessThanOrEqual(1e-4);
        expect(decode).toBeLessThanOrEqual(1e-4);
      } finally {
        await b.close();
      }
    });
  }

  it("on the zoo base, the built graph's logits match the shipped model.onnx within 1e-4", async () => {
    const dir = join(ROOT, 'models/micro/base');
    const built = await open(dir, { opSet: 'cpu', mode: 'external' });
    const zoo = await GraphSession.create(OnnxGraph.load(join(dir, 'model.onnx')), [], {
      ep: 'cpu',
      intraOpThreads: 1,
    });
    try {
      const rand = mulberry32(11);
      const ids = Int32Array.from({ length: 3 * 40 }, () => Math.floor(rand() * 256));
      const a = await built.session.forward(ids, 3, 40);
      const z = await zoo.forward(ids, 3, 40);
      let m = 0;
      for (let i = 0; i < z.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - z.data[i]!));
      expect(m).toBeLessThanOrEqual(1e-4);
      expect(a.data.length).toBe(3 * 40 * 256);
    } finally {
      await built.close();
      await zoo.close();
    }
  });
});
