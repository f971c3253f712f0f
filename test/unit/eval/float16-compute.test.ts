// float16 compute on a GPU provider (WebGPU here: ORT's webgpu provider on Mesa lavapipe, whose adapter offers
// shader-f16). The float16 graph against the independent float64 forward pass on tiny bfloat16 checkpoints of
// the families (Llama, Mistral, Qwen2, Qwen3, Phi-3, Gemma 2, Gemma 3), for a prefill and for one-token
// decoding through the cache: logits within F16_TOLERANCE (measured 0.015–0.030 on logits of magnitude ≤ 7;
// float32 compute stays within 1e-4). The automatic choice
// (float16 on webgpu for a 16-bit checkpoint, float32 otherwise and on the CPU), the float32 override, and the
// one-line refusals of float16 where it cannot be used, the fallback to float32 where the float16 probe fails
// (cuda, not installed here), the CLI. The saturating float32 → float16 rounding of weights; the zoo in float16.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { parseDecoderConfig } from '../../../src/graph/decoder-config.ts';
import { buildDecoderGraph } from '../../../src/graph/decoder-graph.ts';
import { float16Failure } from '../../../src/eval/auto-graph.ts';
import { Evaluator, type EvaluatorOptions } from '../../../src/eval/evaluator.ts';
import { FeedSet, GraphSession } from '../../../src/eval/onnx-session.ts';
import { OnnxGraph } from '../../../src/graph/onnx-graph.ts';
import { toFloat16Saturated } from '../../../src/graph/float16-weights.ts';
import { OnnxDataType } from '../../../src/graph/onnx-proto.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { writeTinyDecoder, type TinyName } from '../../fixtures/tiny-decoders.ts';
import { ReferenceDecoder } from '../../fixtures/reference-decoder.ts';
import { mulberry32 } from '../../fixtures/seeded-random.ts';

/** Most a float16 logit may differ from the float64 reference on these checkpoints (logits of order 1–4). */
const F16_TOLERANCE = 0.05;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-f16-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function maxDiff(got: Float32Array, offset: number, want: Float64Array): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[offset + i]! - want[i]!));
  return Number.isNaN(m) ? Infinity : m;
}

/** A session of a built graph on webgpu, its weights (by checkpoint name) uploaded once as external data. */
function webgpuSession(
  built: ReturnType<typeof buildDecoderGraph>,
  arrays: ReadonlyMap<string, Float32Array>,
  dir: string,
): Promise<GraphSession> {
  const feeds = new FeedSet();
  for (const w of built.weights) feeds.set(w.name, arrays.get(w.name)!, w.shape);
  return GraphSession.createWithExternalWeights(OnnxGraph.fromModel(built.model, join(dir, 'config.json')), feeds, {
    ep: 'webgpu',
  });
}

describe('float16 compute on webgpu', () => {
  for (const name of ['llama', 'mistral', 'qwen2', 'qwen3', 'phi3', 'gemma2', 'gemma3'] as TinyName[]) {
    it(`${name} (bf16 checkpoint, float16 graph) is within ${F16_TOLERANCE} of the float64 reference`, async () => {
      const dir = join(tmp, name);
      writeTinyDecoder(dir, name, { seed: name.length, dtype: 'BF16' });
      const model = openModelDir(dir);
      const cfg = parseDecoderConfig(model.config, join(dir, 'config.json'));
      const built = buildDecoderGraph(cfg, { opSet: 'plain', computeDtype: 'f16' });
      expect(
        built.model.graph!.initializer!.find((t) => t.name === 'lm_head.weight' || t.name === 'model.norm.weight')!,
      ).toMatchObject({ dataType: OnnxDataType.FLOAT16 });
      const arrays = new Map(model.tensors.tensorNames().map((n) => [n, model.tensors.readTensor(n).data]));
      model.close();
      const session = await webgpuSession(built, arrays, dir);
      const ref = new ReferenceDecoder(model.config, (n) => arrays.get(n));
      try {
        const rand = mulberry32(7);
        const row = Array.from({ length: 10 }, () => Math.floor(rand() * cfg.vocabSize));
        const prefill = await session.forward(Int32Array.from(row), 1, row.length);
        let worstPrefill = 0;
        ref
          .run(row, ref.emptyCache())
          .forEach((w, t) => (worstPrefill = Math.max(worstPrefill, maxDiff(prefill.data, t * cfg.vocabSize, w))));
        const cache = ref.emptyCache();
        ref.run(row.slice(0, 6), cache);
        let step = await session.forwardWithCache(Int32Array.from(row.slice(0, 6)), 1, 6, undefined);
        let worstDecode = 0;
        for (let t = 6; t < 9; t++) {
          step = await session.forwardWithCache(Int32Array.of(row[t]!), 1, 1, step.cache);
          worstDecode = Math.max(worstDecode, maxDiff(step.logits.data, 0, ref.run([row[t]!], cache)[0]!));
        }
        expect(worstPrefill, 'prefill').toBeLessThanOrEqual(F16_TOLERANCE);
        expect(worstDecode, 'cached decode').toBeLessThanOrEqual(F16_TOLERANCE);
        // and it is float16, not float32 in disguise: float32 compute is within 1e-4 of the same reference
        expect(Math.max(worstPrefill, worstDecode)).toBeGreaterThan(1e-3);
      } finally {
        await session.close();
      }
    });
  }

  it('a scaled layer path (data-flow slots) in float16: the hop scales in float16, within tolerance', async () => {
    const dir = join(tmp, 'llama-slots');
    writeTinyDecoder(dir, 'llama', { seed: 3, dtype: 'BF16' });
    const model = openModelDir(dir);
    const cfg = parseDecoderConfig(model.config, join(dir, 'config.json'));
    const path = [0, 1, 1, cfg.layers - 1];
    const scales = [1, 0.8, 1.25, 0.9];
    const slots = path.map((layer, i) => ({ source: 0, layer, scale: scales[i]! }));
    const built = buildDecoderGraph(cfg, { opSet: 'plain', computeDtype: 'f16', slots });
    const arrays = new Map(model.tensors.tensorNames().map((n) => [n, model.tensors.readTensor(n).data]));
    model.close();
    const session = await webgpuSession(built, arrays, dir);
    const ref = new ReferenceDecoder(model.config, (n) => arrays.get(n), path, scales);
    try {
      const row = [5, 17, 3, 42, 8, 11, 29];
      const got = await session.forward(Int32Array.from(row), 1, row.length);
      let worst = 0;
      ref
        .run(row, ref.emptyCache())
        .forEach((w, t) => (worst = Math.max(worst, maxDiff(got.data, t * cfg.vocabSize, w))));
      expect(worst).toBeLessThanOrEqual(F16_TOLERANCE);
    } finally {
      await session.close();
    }
  });

  it('a one-layer float16 probe runs on webgpu here, so auto may choose float16', async () => {
    expect(await float16Failure('webgpu')).toBeUndefined();
  });
});

describe('choosing the compute dtype', () => {
  let families = 0;
  const family = (dtype: 'F32' | 'BF16' | 'F16') => {
    const dir = join(tmp, `choice-${dtype}-${families++}`);
    writeTinyDecoder(dir, 'llama-linear', { seed: 2, dtype });
    const suite = join(dir, 'suite.yaml');
    writeFileSync(join(dir, 'text.jsonl'), '{"text": "ABBA CAB"}\n'); // bytes below the tiny vocabulary's 97
    writeFileSync(
      suite,
      'base_model: .\ntokenizer: byte\ntasks:\n  text: {kind: loglik, fit: text.jsonl, test: text.jsonl}\n',
    );
    return suite;
  };
  const decide = async (suite: string, options: Partial<EvaluatorOptions>) => {
    const ev = await Evaluator.create({ suite, ...options });
    try {
      return ev.computeDtype();
    } finally {
      await ev.close();
    }
  };

  it('auto: float16 on webgpu for bf16 and f16 checkpoints, float32 for a float32 one and on the CPU', async () => {
    expect((await decide(family('BF16'), { ep: 'webgpu' })).dtype).toBe('f16');
    expect((await decide(family('F16'), { ep: 'webgpu' })).dtype).toBe('f16');
    const f32 = await decide(family('F32'), { ep: 'webgpu' });
    expect(f32.dtype).toBe('f32');
    expect(f32.reason).toMatch(/stored in float32$/);
    const cpu = await decide(family('BF16'), { ep: 'cpu' });
    expect(cpu).toEqual({
      dtype: 'f32',
      reason: expect.stringMatching(/^float32: the CPU provider computes in float32/),
    });
    // weights fed per run are float32 arrays: auto stays in float32 there
    expect((await decide(family('BF16'), { ep: 'webgpu', weightMode: 'inputs' })).dtype).toBe('f32');
  });

  it('float32 can be forced by option or by the suite key compute_dtype', async () => {
    const suite = family('BF16');
    expect((await decide(suite, { ep: 'webgpu', computeDtype: 'f32' })).dtype).toBe('f32');
    writeFileSync(suite, `compute_dtype: f32\n${readFileSync(suite, 'utf8')}`);
    expect(await decide(suite, { ep: 'webgpu' })).toEqual({ dtype: 'f32', reason: 'float32 (compute_dtype: f32)' });
  });

  it('float16 forced where it cannot be used is refused in one line', async () => {
    const suite = family('BF16');
    const refusal = async (options: Partial<EvaluatorOptions>) => {
      const err = await decide(suite, options).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EvomergeError);
      expect((err as EvomergeError).code).toBe('eval.compute_dtype');
      expect((err as Error).message).not.toContain('\n');
      return (err as Error).message;
    };
    expect(await refusal({ ep: 'cpu', computeDtype: 'f16' })).toBe(
      '--compute-dtype: float16 cannot be used: the CPU provider computes in float32 (float16 needs --ep webgpu or cuda)',
    );
    expect(await refusal({ ep: 'webgpu', weightMode: 'inputs', computeDtype: 'f16' })).toMatch(
      /^--compute-dtype: float16 cannot be used: weight mode inputs feeds float32 arrays/,
    );
    const exported = join(tmp, 'exported.onnx');
    writeFileSync(exported, '');
    expect(await refusal({ ep: 'webgpu', graph: exported, computeDtype: 'f16' })).toBe(
      '--compute-dtype: float16 compute applies to the graph evomerge builds (graph: auto); an exported graph runs as exported',
    );
    writeFileSync(suite, `compute_dtype: half\n${readFileSync(suite, 'utf8')}`);
    await expect(decide(suite, { ep: 'webgpu' })).rejects.toThrow(
      `${suite}: compute_dtype: expected one of auto, f32, f16, got "half"`,
    );
  });

  it('where the float16 probe fails (cuda without its provider here), auto falls back to float32 and says why', async () => {
    const suite = family('BF16');
    const failure = await float16Failure('cuda');
    if (failure === undefined) {
      // a machine with CUDA: float16 runs there
      expect((await decide(suite, { ep: 'cuda' })).dtype).toBe('f16');
      return;
    }
    expect(failure).toMatch(
      /^a float16 graph does not run on cuda here \(--ep: execution provider "cuda" is not available/,
    );
    expect(await decide(suite, { ep: 'cuda' })).toEqual({ dtype: 'f32', reason: `float32: ${failure}` });
    await expect(decide(suite, { ep: 'cuda', computeDtype: 'f16' })).rejects.toThrow(
      `--compute-dtype: float16 cannot be used: ${failure}`,
    );
  });

  it('through the CLI: eval --json reports the dtype; --compute-dtype f16 on the cpu is one line on stderr, exit 1', () => {
    const suite = family('BF16');
    const dir = join(suite, '..');
    const cli = join(import.meta.dirname, '../../../bin/evomerge.js');
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [cli, 'eval', dir, '--suite', suite, '--threads', '1', ...args], {
        encoding: 'utf8',
      });
    const ok = run('--ep', 'webgpu', '--json');
    expect(ok.status, ok.stderr).toBe(0);
    const doc = JSON.parse(ok.stdout) as { compute: { dtype: string }; scores: { task: string; value: number }[] };
    expect(doc.compute.dtype).toBe('f16');
    expect(doc.scores[0]!.task).toBe('text');
    expect(Number.isFinite(doc.scores[0]!.value)).toBe(true);
    const bad = run('--compute-dtype', 'f16');
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trim().split('\n')).toEqual([
      'evomerge: --compute-dtype: float16 cannot be used: the CPU provider computes in float32 (float16 needs --ep ' +
        'webgpu or cuda)',
    ]);
  });
});

describe('float32 → float16 weights', () => {
  it('round to nearest even, saturate finite overflow to ±65504, keep ±Inf and NaN', () => {
    const x = Float32Array.of(
      1,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      65504,
      65519,
      65520,
      3e38,
      -3e38,
      -Infinity,
      NaN,
      2 ** -26,
    );
    const h = new Uint16Array(toFloat16Saturated(x).buffer);
    expect([...h].map((b) => b.toString(16))).toEqual([
      '3c00', // 1
      '3c00', // a tie rounds to the even 1
      '3c02', // a tie rounds to the even 1 + 2^-9
      '7bff', // 65504, the largest half
      '7bff', // rounds down to it
      '7bff', // would round to Inf: saturates
      '7bff',
      'fbff',
      'fc00', // -Inf stays
      '7e00', // NaN stays NaN
      '0', // below half the smallest subnormal: 0
    ]);
  });
});

describe('float16 compute on the zoo', () => {
  it('expert-math-bf16 in float16 on webgpu scores as in float32 on the cpu (subset): ±1 exact match, loglik within 2e-3', async () => {
    const root = join(import.meta.dirname, '../../..');
    const model = openModelDir(join(root, 'models/micro/expert-math-bf16'));
    const runs = [
      { tasks: ['math', 'math_words', 'composite'], limit: 20 },
      { tasks: ['lang', 'english'], limit: 12 },
    ];
    const scores: Record<string, Awaited<ReturnType<Evaluator['evaluate']>>> = { f16: [], f32: [] };
    try {
      for (const [dtype, ep] of [
        ['f16', 'webgpu'],
        ['f32', 'cpu'],
      ] as const) {
        const ev = await Evaluator.create({
          suite: join(root, 'evals/micro.yaml'),
          graph: 'auto',
          ep,
          computeDtype: dtype,
          threads: 1,
        });
        try {
          expect(ev.computeDtype().dtype).toBe(dtype);
          for (const r of runs)
            scores[dtype]!.push(...(await ev.evaluate(model.tensors, { split: 'test', ...r, withPredictions: true })));
        } finally {
          await ev.close();
        }
      }
    } finally {
      model.close();
    }
    const [half, full] = [scores.f16!, scores.f32!];
    expect(half.map((s) => s.task)).toEqual(['math', 'math_words', 'composite', 'lang', 'english']);
    half.forEach((h, i) => {
      const f = full[i]!;
      if (f.metric === 'exact_match') {
        const differing = h.predictions!.filter((p, k) => p !== f.predictions![k]).length;
        expect(differing, h.task).toBeLessThanOrEqual(1);
      } else {
        expect(Math.abs(h.value - f.value), h.task).toBeLessThanOrEqual(2e-3);
        expect(Math.abs(h.extra.next_token_accuracy!.value - f.extra.next_token_accuracy!.value)).toBeLessThanOrEqual(
          2e-3,
        );
      }
    });
    expect(full[0]!.value).toBeGreaterThan(0.5); // the subset is not degenerate: the expert solves its arithmetic
  });
});
