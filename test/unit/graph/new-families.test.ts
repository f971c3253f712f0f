// The families added to graph: auto after Llama, Mistral and Qwen2 (Qwen3, Phi-3, Gemma 2, Gemma 3's text
// decoder), beyond the logits test of decoder-graph.test.ts: what their config.json keys become (defaults,
// sliding layers, soft-caps, longrope's context), the one-line refusals of what is not built, and merging: a
// task_arithmetic merge of two tiny fine-tunes of one family works on the tensor names (Phi-3's fused
// projections stay one tensor each, as mergekit treats them), equals base + Σ wᵢ (mᵢ − base) tensor by tensor,
// runs through the built graph within 1e-4 of the float64 reference on the merged weights, and is scored
// through graph: auto by the evaluator.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { MemoryTensors } from '../../../src/checkpoint/tensor-source.ts';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { mergeRecipe } from '../../../src/merge/engine.ts';
import { parseRecipe } from '../../../src/recipe/parse.ts';
import { parseDecoderConfig } from '../../../src/graph/decoder-config.ts';
import { buildDecoderGraph } from '../../../src/graph/decoder-graph.ts';
import { contextOfConfig } from '../../../src/eval/context-length.ts';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import { FeedSet, GraphSession } from '../../../src/eval/onnx-session.ts';
import { OnnxGraph } from '../../../src/graph/onnx-graph.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { TINY_CONFIGS, byteLevelTokenizerJson, writeTinyDecoder, type TinyName } from '../../fixtures/tiny-decoders.ts';
import { ReferenceDecoder } from '../../fixtures/reference-decoder.ts';

const FILE = '/m/config.json';
const parse = (name: TinyName, change: Record<string, unknown> = {}) =>
  parseDecoderConfig({ ...TINY_CONFIGS[name], ...change }, FILE);
function refusal(name: TinyName, change: Record<string, unknown>): string {
  try {
    parse(name, change);
  } catch (e) {
    expect(e).toBeInstanceOf(EvomergeError);
    return (e as Error).message;
  }
  throw new Error('not refused');
}

describe('config.json of the new families', () => {
  it('Qwen3: head_dim defaults to 128 as transformers; q_norm/k_norm and o_proj bias with attention_bias', () => {
    const { head_dim: _drop, ...noHeadDim } = TINY_CONFIGS.qwen3;
    expect(parseDecoderConfig(noHeadDim, FILE).headDim).toBe(128);
    const c = parse('qwen3');
    expect([c.qkvBias, c.oBias, c.mlpBias, c.attentionScale]).toEqual([true, true, false, 1 / Math.sqrt(32)]);
    const names = buildDecoderGraph(c).weights.map((w) => w.name);
    expect(names).toContain('model.layers.0.self_attn.q_norm.weight');
    expect(names).toContain('model.layers.2.self_attn.k_norm.weight');
  });

  it('Phi-3: fused tensors, longrope short factors with √(1 + ln s / ln original), context = original_max_position_embeddings', () => {
    const c = parse('phi3');
    expect(c.ropeScaling).toMatchObject({ type: 'longrope', originalMaxPositions: 32 });
    expect((c.ropeScaling as { attentionFactor: number }).attentionFactor).toBeCloseTo(
      Math.sqrt(1 + Math.log(4) / Math.log(32)),
      12,
    );
    expect(c.maxPositions).toBe(32);
    expect([c.slidingWindow, c.rmsNormEps]).toEqual([9, 1e-5]);
    expect(
      buildDecoderGraph(c)
        .weights.filter((w) => w.name.startsWith('model.layers.0.'))
        .map((w) => [w.name, w.shape]),
    ).toEqual([
      ['model.layers.0.input_layernorm.weight', [64]],
      ['model.layers.0.self_attn.qkv_proj.weight', [192, 64]],
      ['model.layers.0.self_attn.o_proj.weight', [64, 64]],
      ['model.layers.0.post_attention_layernorm.weight', [64]],
      ['model.layers.0.mlp.gate_up_proj.weight', [192, 64]],
      ['model.layers.0.mlp.down_proj.weight', [64, 96]],
    ]);
    expect(contextOfConfig('/m', TINY_CONFIGS.phi3)).toEqual({
      tokens: 32,
      from: "original_max_position_embeddings in /m/config.json: longrope's short factors",
    });
    expect(parse('phi3', { rope_scaling: null }).maxPositions).toBe(128);
  });

  it("Gemma 2: transformers' defaults (soft-caps 50 and 30, window 4096 on the even layers, scale 256^-0.5)", () => {
    const {
      attn_logit_softcapping: _a,
      final_logit_softcapping: _f,
      sliding_window: _s,
      query_pre_attn_scalar: _q,
      ...bare
    } = TINY_CONFIGS.gemma2;
    const c = parseDecoderConfig({ ...bare, num_hidden_layers: 4 }, FILE);
    expect([c.attnSoftcap, c.finalSoftcap, c.slidingWindow, c.attentionScale]).toEqual([50, 30, 4096, 1 / 16]);
    expect(c.slidingLayers).toEqual([true, false, true, false]);
    expect(parse('gemma2', { attn_logit_softcapping: null }).attnSoftcap).toBeUndefined();
    expect(
      parse('gemma2', { layer_types: ['full_attention', 'sliding_attention', 'full_attention'] }).slidingLayers,
    ).toEqual([false, true, false]);
  });

  it('Gemma 3: every sliding_window_pattern-th layer global (layer_types wins), local RoPE base, no soft-caps', () => {
    const c = parse('gemma3', { num_hidden_layers: 7, sliding_window_pattern: undefined });
    expect(c.slidingLayers).toEqual([true, true, true, true, true, false, true]);
    expect(parse('gemma3').slidingLayers).toEqual([true, true, false]);
    expect([c.localRopeTheta, c.ropeTheta, c.attnSoftcap, c.finalSoftcap]).toEqual([10000, 1e6, undefined, undefined]);
    const names = buildDecoderGraph(parse('gemma3')).weights.map((w) => w.name);
    for (const n of ['pre_feedforward_layernorm', 'post_feedforward_layernorm', 'self_attn.q_norm', 'self_attn.k_norm'])
      expect(names).toContain(`model.layers.1.${n}.weight`);
  });
});

describe('one-line refusals of what the new families do not build', () => {
  const cases: [TinyName, Record<string, unknown>, string][] = [
    [
      'qwen3',
      { use_sliding_window: true },
      'use_sliding_window: true is not supported (a sliding window on only some layers); evomerge builds full attention',
    ],
    ['phi3', { partial_rotary_factor: 0.75 }, 'partial_rotary_factor: 0.75 is not supported (only 1)'],
    [
      'phi3',
      { rope_scaling: { type: 'longrope', short_factor: [1, 2], long_factor: [1, 2] } },
      'rope_scaling.short_factor: expected 8 positive numbers (head_dim / 2)',
    ],
    [
      'phi3',
      { rope_scaling: { ...(TINY_CONFIGS.phi3.rope_scaling as object), long_mscale: 1.2 } },
      'rope_scaling.long_mscale: is not supported (Phi-3.5-MoE scaling)',
    ],
    [
      'phi3',
      { rope_scaling: { rope_type: 'yarn', factor: 4 } },
      'rope_scaling.rope_type: "yarn" is not supported (default, linear, llama3, longrope, su)',
    ],
    [
      'phi3',
      { hidden_act: 'gelu' },
      'hidden_act: "gelu" is not supported (only silu, the gated MLP of Phi3ForCausalLM)',
    ],
    [
      'llama',
      { rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [1] } },
      'rope_scaling.rope_type: "longrope" is not supported (default, linear, llama3)',
    ],
    [
      'gemma2',
      { hidden_activation: 'gelu' },
      'hidden_activation: "gelu" is not supported (only gelu_pytorch_tanh, the gated MLP of Gemma2ForCausalLM)',
    ],
    ['gemma2', { final_logit_softcapping: -1 }, 'final_logit_softcapping: expected a positive number, got -1'],
    [
      'gemma3',
      { layer_types: ['sliding_attention'] },
      'layer_types: expected a list of 3 layer types (num_hidden_layers)',
    ],
    [
      'gemma3',
      { layer_types: ['sliding_attention', 'chunked_attention', 'full_attention'] },
      'layer_types[1]: "chunked_attention" is not supported (sliding_attention, full_attention)',
    ],
    ['gemma3', { query_pre_attn_scalar: 0 }, 'query_pre_attn_scalar: expected a positive number, got 0'],
    ['gemma3', { rope_local_base_freq: 'x' }, 'rope_local_base_freq: expected a positive number, got "x"'],
  ];
  for (const [name, change, want] of cases)
    it(`${name}: ${Object.keys(change)[0]}`, () => expect(refusal(name, change)).toBe(`${FILE}: ${want}`));
});

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-families-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('merging two tiny fine-tunes of a new family (task_arithmetic) and scoring the merge through graph: auto', () => {
  for (const name of ['qwen3', 'phi3', 'gemma2', 'gemma3'] as TinyName[]) {
    it(`${name}: the merge works on the tensor names, and its graph matches the reference within 1e-4`, async () => {
      const dir = join(tmp, name);
      const config = { vocab_size: 256 };
      const base = writeTinyDecoder(join(dir, 'base'), name, { seed: 11, config });
      const a = writeTinyDecoder(join(dir, 'a'), name, { seed: 12, config });
      const b = writeTinyDecoder(join(dir, 'b'), name, { seed: 13, config });
      const recipe = parseRecipe(
        {
          merge_method: 'task_arithmetic',
          base_model: 'base',
          models: [
            { model: 'a', parameters: { weight: 0.7 } },
            { model: 'b', parameters: { weight: 0.4 } },
          ],
          dtype: 'float32',
        },
        { file: join(dir, 'recipe.yaml'), baseDir: dir },
      );
      const merged = new MemoryTensors('merged');
      await mergeRecipe(recipe, merged, { kernel: new CpuKernel() });
      const models = [base, a, b].map((d) => openModelDir(d));
      try {
        const names = models[0]!.tensors.tensorNames();
        expect(merged.tensorNames().sort()).toEqual([...names].sort());
        for (const n of names) {
          const [t0, t1, t2] = models.map((m) => m.tensors.readTensor(n).data);
          const got = merged.readTensor(n).data;
          let worst = 0;
          for (let i = 0; i < got.length; i++)
            worst = Math.max(
              worst,
              Math.abs(got[i]! - (t0![i]! + 0.7 * (t1![i]! - t0![i]!) + 0.4 * (t2![i]! - t0![i]!))),
            );
          expect(worst, n).toBeLessThanOrEqual(1e-6);
        }
      } finally {
        models.forEach((m) => m.close());
      }
      // the merged weights through the built graph against the reference on the same weights
      const cfg = parseDecoderConfig(openModelDir(base).config, join(base, 'config.json'));
      const built = buildDecoderGraph(cfg, { opSet: 'cpu' });
      const feeds = new FeedSet();
      for (const w of built.weights) feeds.set(w.name, merged.readTensor(w.name).data, w.shape);
      const session = await GraphSession.createWithExternalWeights(OnnxGraph.fromModel(built.model, FILE), feeds, {
        ep: 'cpu',
        intraOpThreads: 1,
      });
      try {
        const row = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100];
        const got = await session.forward(Int32Array.from(row), 1, row.length);
        const ref = new ReferenceDecoder({ ...TINY_CONFIGS[name], ...config }, (n) => merged.readTensor(n).data);
        let worst = 0;
        ref
          .run(row, ref.emptyCache())
          .forEach((w, t) => w.forEach((v, i) => (worst = Math.max(worst, Math.abs(got.data[t * 256 + i]! - v)))));
        expect(worst).toBeLessThanOrEqual(1e-4);
      } finally {
        await session.close();
      }
      // and the evaluator scores it through graph: auto (a suite naming only the base folder)
      writeFileSync(join(base, 'tokenizer.json'), byteLevelTokenizerJson());
      mkdirSync(join(dir, 'data'));
      writeFileSync(
        join(dir, 'data/text.jsonl'),
        ['hello world', 'the cat sat'].map((t) => JSON.stringify({ text: t })).join('\n') + '\n',
      );
      const suite = join(dir, 'suite.yaml');
      writeFileSync(
        suite,
        `base_model: base\ntasks:\n  text: {kind: loglik, fit: data/text.jsonl, test: data/text.jsonl}\n`,
      );
      const ev = await Evaluator.create({ suite, threads: 1 });
      try {
        const baseModel = openModelDir(base);
        const [mergedScore] = await ev.evaluate(merged);
        const [baseScore] = await ev.evaluate(baseModel.tensors);
        baseModel.close();
        expect(Number.isFinite(mergedScore!.value)).toBe(true);
        expect(mergedScore!.value).not.toBe(baseScore!.value);
      } finally {
        await ev.close();
      }
    });
  }
});
