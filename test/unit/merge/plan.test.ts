// The planner on pico models held in memory: order, slices, tied lm_head, embedding crops, parameter
// defaults, and every refusal (one line naming the file and the key or tensor).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EvomergeError } from '../../../src/errors.ts';
import { planMerge, type PlanModel } from '../../../src/merge/plan.ts';
import { parseRecipe } from '../../../src/recipe/parse.ts';
import { picoMemory, type PicoOptions } from './pico.ts';

let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'evomerge-plan-'));
  for (const m of ['base', 'a', 'b', 'c']) mkdirSync(path.join(root, m));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const dir = (m: string) => path.join(root, m);
function models(spec: Record<string, Partial<PicoOptions>>): Map<string, PlanModel> {
  const out = new Map<string, PlanModel>();
  let seed = 1;
  for (const m of ['base', 'a', 'b', 'c']) out.set(dir(m), picoMemory(dir(m), { seed: seed++, ...spec[m] }));
  return out;
}
const recipe = (doc: Record<string, unknown>) => parseRecipe(doc, { file: 'r.yaml', baseDir: root });

function planError(doc: Record<string, unknown>, spec: Record<string, Partial<PicoOptions>> = {}): EvomergeError {
  try {
    planMerge(recipe(doc), models(spec));
  } catch (e) {
    expect(e).toBeInstanceOf(EvomergeError);
    expect((e as EvomergeError).message).not.toContain('\n');
    return e as EvomergeError;
  }
  throw new Error('planMerge did not fail');
}

const ties = {
  merge_method: 'ties',
  base_model: 'base',
  parameters: { density: 0.5 },
  models: [
    { model: 'a', parameters: { weight: 1 } },
    { model: 'b', parameters: { weight: [0, 1] } },
  ],
};

describe('planMerge: tensors and jobs', () => {
  it('orders embeddings, layers in mergekit order, then norm and lm_head', () => {
    const plan = planMerge(recipe(ties), models({}));
    expect(plan.tensors.map((t) => t.name)).toEqual([
      'model.embed_tokens.weight',
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.mlp.up_proj.weight',
      'model.layers.1.input_layernorm.weight',
      'model.layers.1.self_attn.q_proj.weight',
      'model.layers.1.mlp.up_proj.weight',
      'model.norm.weight',
      'lm_head.weight',
    ]);
    expect(plan.layerCount).toBe(2);
  });

  it('appends an unlisted base last, and resolves defaults from the registry', () => {
    const plan = planMerge(recipe(ties), models({}));
    const op = plan.tensors[1]!.job.op;
    if (op.kind !== 'task_arithmetic') throw new Error(op.kind);
    expect(op.base.model).toBe(dir('base'));
    expect(op.inputs.map((i) => [i.ref.model, i.modelIndex])).toEqual([
      [dir('a'), 0],
      [dir('b'), 1],
    ]);
    expect(op.normalize).toBe(true); // ties default
    expect(op.rescale).toBe('none');
    expect(op.lambda).toBe(1);
    expect(op.sparsification).toBe('magnitude');
    expect(op.consensus).toBe('sum');
    expect(op.inputs.map((i) => i.density)).toEqual([0.5, 0.5]);
    // gradient [0, 1] over 2 layers: layer 0 → 0, layer 1 → 1; non-layer tensors t = 0.
    const w = (name: string) => {
      const o = plan.tensors.find((t) => t.name === name)!.job.op;
      return o.kind === 'task_arithmetic' ? o.inputs[1]!.weight : NaN;
    };
    expect(w('model.layers.0.mlp.up_proj.weight')).toBe(0);
    expect(w('model.layers.1.mlp.up_proj.weight')).toBe(1);
    expect(w('lm_head.weight')).toBe(0);
  });

  it.each([
    ['dare_linear', { sparsification: 'random', consensus: 'none', normalize: false, rescale: 'l1' }],
    ['dare_ties', { sparsification: 'random', consensus: 'sum', normalize: false, rescale: 'l1' }],
    ['della', { sparsification: 'della_magprune', consensus: 'sum', normalize: true, rescale: 'l1' }],
    ['della_linear', { sparsification: 'della_magprune', consensus: 'none', normalize: false, rescale: 'l1' }],
    ['breadcrumbs', { sparsification: 'magnitude_outliers', consensus: 'none', normalize: false, rescale: 'none' }],
    ['task_arithmetic', { sparsification: 'none', consensus: 'none', normalize: false, rescale: 'none' }],
  ])('%s gets its sparsifier, consensus and defaults', (method, want) => {
    const plan = planMerge(
      recipe({ ...ties, merge_method: method, parameters: method === 'task_arithmetic' ? {} : { density: 0.5 } }),
      models({}),
    );
    const op = plan.tensors[0]!.job.op;
    expect(op).toMatchObject(want);
  });

  it('rescale: "density" asks for the DARE paper\'s 1/density, and the seed keys the random stream', () => {
    const plan = planMerge(
      recipe({
        ...ties,
        merge_method: 'dare_linear',
        random_seed: 5,
        parameters: { density: 0.3, rescale: 'density' },
      }),
      models({}),
      { seed: 9 },
    );
    const op = plan.tensors[0]!.job.op;
    expect(op).toMatchObject({ rescale: 'density' });
    expect(plan.seed).toBe(9);
    expect(planMerge(recipe({ ...ties, random_seed: 5 }), models({})).seed).toBe(5);
  });

  it('splices slices with renumbering; embeddings from the first slice, norm and lm_head from the last', () => {
    const plan = planMerge(
      recipe({
        merge_method: 'passthrough',
        slices: [
          { sources: [{ model: 'a', layer_range: [1, 2], parameters: { scale: 0.5 } }] },
          { sources: [{ model: 'b', layer_range: [0, 2] }] },
        ],
      }),
      models({}),
    );
    expect(plan.layerCount).toBe(3);
    expect(plan.config.num_hidden_layers).toBe(3);
    const byName = new Map(plan.tensors.map((t) => [t.name, t.job.op]));
    const src = (n: string) => {
      const op = byName.get(n)!;
      return op.kind === 'weighted_sum'
        ? op.inputs.map((i) => [path.basename(i.ref.model), i.ref.tensor, i.weight])
        : [];
    };
    expect(src('model.embed_tokens.weight')).toEqual([['a', 'model.embed_tokens.weight', 0.5]]);
    expect(src('model.layers.0.mlp.up_proj.weight')).toEqual([['a', 'model.layers.1.mlp.up_proj.weight', 0.5]]);
    expect(src('model.layers.1.mlp.up_proj.weight')).toEqual([['b', 'model.layers.0.mlp.up_proj.weight', 1]]);
    expect(src('model.layers.2.mlp.up_proj.weight')).toEqual([['b', 'model.layers.1.mlp.up_proj.weight', 1]]);
    expect(src('lm_head.weight')).toEqual([['b', 'lm_head.weight', 1]]);
  });

  it('a one-layer slice uses t = 1; slice parameters sit between the model and the global ones', () => {
    const plan = planMerge(
      recipe({
        merge_method: 'slerp',
        base_model: 'a',
        parameters: { t: 0.9 },
        slices: [
          {
            sources: [
              { model: 'a', layer_range: [0, 1] },
              { model: 'b', layer_range: [0, 1] },
            ],
            parameters: { t: [0.2, 0.6] },
          },
          {
            sources: [
              { model: 'a', layer_range: [1, 2] },
              { model: 'b', layer_range: [1, 2] },
            ],
          },
        ],
      }),
      models({}),
    );
    const t = (n: string) => {
      const op = plan.tensors.find((x) => x.name === n)!.job.op;
      return op.kind === 'slerp' ? op.t : NaN;
    };
    expect(t('model.layers.0.mlp.up_proj.weight')).toBeCloseTo(0.6, 12); // one layer → t = 1 → last value
    expect(t('model.embed_tokens.weight')).toBeCloseTo(0.2, 12); // first slice, t = 0
    expect(t('model.layers.1.mlp.up_proj.weight')).toBe(0.9); // second slice falls back to the global t
    expect(t('lm_head.weight')).toBe(0.9);
  });

  it('a model without lm_head contributes its embeddings (tied)', () => {
    const plan = planMerge(recipe(ties), models({ b: { drop: ['lm_head.weight'] } }));
    const op = plan.tensors.find((t) => t.name === 'lm_head.weight')!.job.op;
    if (op.kind !== 'task_arithmetic') throw new Error(op.kind);
    expect(op.inputs[1]!.ref).toEqual({ model: dir('b'), tensor: 'model.embed_tokens.weight' });
  });

  it('embeddings of different vocabulary sizes are cropped to the common top-left block', () => {
    const plan = planMerge(
      recipe(ties),
      models({ a: { override: { 'model.embed_tokens.weight': { shape: [10, 4] } } } }),
    );
    const t = plan.tensors.find((x) => x.name === 'model.embed_tokens.weight')!;
    expect(t.shape).toEqual([8, 4]);
    expect(t.inputs.find((i) => i.ref.model === dir('a'))!.storedShape).toEqual([10, 4]);
  });

  it('keeps layer tensors it does not know, after the known ones, by name', () => {
    const plan = planMerge(
      recipe(ties),
      models({
        base: {
          override: {
            'model.layers.0.zz.weight': { shape: [2] },
            'model.layers.1.zz.weight': { shape: [2] },
            'model.layers.0.aa.weight': { shape: [2] },
            'model.layers.1.aa.weight': { shape: [2] },
          },
        },
        a: {
          override: {
            'model.layers.0.zz.weight': { shape: [2] },
            'model.layers.1.zz.weight': { shape: [2] },
            'model.layers.0.aa.weight': { shape: [2] },
            'model.layers.1.aa.weight': { shape: [2] },
          },
        },
        b: {
          override: {
            'model.layers.0.zz.weight': { shape: [2] },
            'model.layers.1.zz.weight': { shape: [2] },
            'model.layers.0.aa.weight': { shape: [2] },
            'model.layers.1.aa.weight': { shape: [2] },
          },
        },
      }),
    );
    expect(plan.tensors.slice(1, 6).map((t) => t.name)).toEqual([
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.mlp.up_proj.weight',
      'model.layers.0.aa.weight',
      'model.layers.0.zz.weight',
    ]);
  });

  it("output config: the base's, with torch_dtype from out_dtype", () => {
    const plan = planMerge(recipe({ ...ties, dtype: 'float32', out_dtype: 'bfloat16' }), models({}));
    expect(plan.outDtype).toBe('BF16');
    expect(plan.config.torch_dtype).toBe('bfloat16');
    expect(plan.referenceDir).toBe(dir('base'));
  });
});

describe('planMerge: refusals', () => {
  const cases: [string, Record<string, unknown>, Record<string, Partial<PicoOptions>>, string, string][] = [
    [
      'unknown method',
      { ...ties, merge_method: 'tie' },
      {},
      'recipe.unknown_method',
      'r.yaml: merge_method: unknown merge method "tie"',
    ],
    [
      'a parameter the method does not take',
      { ...ties, parameters: { gamma: 0.1 } },
      {},
      'recipe.parameter_not_for_method',
      'r.yaml: parameters.gamma: ties takes no parameter "gamma"',
    ],
    [
      'a method-wide parameter on a model',
      { ...ties, models: [{ model: 'a', parameters: { weight: 1, normalize: false } }] },
      {},
      'recipe.parameter_scope',
      'r.yaml: models[0].parameters.normalize: "normalize" applies to the whole merge',
    ],
    [
      'a non-number weight',
      { ...ties, models: [{ model: 'a', parameters: { weight: true } }] },
      {},
      'recipe.bad_value',
      'r.yaml: models[0].parameters.weight: "weight" must be a number',
    ],
    [
      'density above 1',
      { ...ties, parameters: { density: 1.5 } },
      {},
      'recipe.bad_value',
      'r.yaml: parameters.density: "density" must be ≤ 1',
    ],
    [
      'a bad rescale',
      { ...ties, parameters: { rescale: 'paper' } },
      {},
      'recipe.bad_value',
      'r.yaml: parameters.rescale: "rescale" must be true',
    ],
    [
      'a missing weight',
      { ...ties, models: [{ model: 'a' }] },
      {},
      'recipe.missing_parameter',
      'r.yaml: models[0].parameters.weight: ties needs "weight" for every model',
    ],
    [
      'ties without base_model',
      { ...ties, base_model: undefined },
      {},
      'recipe.missing_key',
      'r.yaml: base_model: ties needs a base_model',
    ],
    [
      'linear with an unlisted base',
      { merge_method: 'linear', base_model: 'base', models: [{ model: 'a', parameters: { weight: 1 } }] },
      {},
      'recipe.base_not_in_models',
      'r.yaml: base_model: linear has no base',
    ],
    [
      'slerp with three models',
      { merge_method: 'slerp', base_model: 'base', parameters: { t: 0.5 }, models: [{ model: 'a' }, { model: 'b' }] },
      {},
      'recipe.slerp_needs_two',
      'r.yaml: models: slerp merges exactly 2 models',
    ],
    [
      'slerp with one model',
      { merge_method: 'slerp', base_model: 'base', parameters: { t: 0.5 }, models: [{ model: 'base' }] },
      {},
      'recipe.slerp_needs_two',
      'r.yaml: models: slerp merges exactly 2 models',
    ],
    [
      'slerp without t',
      { merge_method: 'slerp', base_model: 'base', models: [{ model: 'a' }] },
      {},
      'recipe.missing_parameter',
      'r.yaml: parameters.t: slerp needs "t"',
    ],
    [
      'model_stock with two models',
      { merge_method: 'model_stock', base_model: 'base', models: [{ model: 'a' }] },
      {},
      'recipe.model_stock_needs_three',
      'r.yaml: models: model_stock needs base_model and at least 2',
    ],
    [
      'passthrough with two sources',
      {
        merge_method: 'passthrough',
        slices: [
          {
            sources: [
              { model: 'a', layer_range: [0, 2] },
              { model: 'b', layer_range: [0, 2] },
            ],
          },
        ],
      },
      {},
      'recipe.passthrough_one_source',
      'r.yaml: slices[0]: passthrough copies one model per slice',
    ],
    [
      'a layer range past the model',
      { merge_method: 'passthrough', slices: [{ sources: [{ model: 'a', layer_range: [1, 3] }] }] },
      {},
      'recipe.layer_range_out_of_bounds',
      "r.yaml: slices[0].sources[0].layer_range: [1, 3] is past the model's 2 layers",
    ],
    [
      'slice sources of different lengths',
      {
        merge_method: 'slerp',
        base_model: 'a',
        parameters: { t: 0.5 },
        slices: [
          {
            sources: [
              { model: 'a', layer_range: [0, 2] },
              { model: 'b', layer_range: [0, 1] },
            ],
          },
        ],
      },
      {},
      'recipe.slice_length_mismatch',
      'r.yaml: slices[0].sources[1].layer_range: covers 1 layers',
    ],
    [
      'linear weights summing to zero',
      {
        merge_method: 'linear',
        models: [
          { model: 'a', parameters: { weight: 1 } },
          { model: 'b', parameters: { weight: -1 } },
        ],
      },
      {},
      'merge.zero_weight_sum',
      'r.yaml: models[0].parameters.weight: the weights of tensor "model.embed_tokens.weight" sum to 0',
    ],
    [
      'a density that keeps nothing',
      { ...ties, parameters: { density: 0.01 } },
      {},
      'merge.density_keeps_nothing',
      'r.yaml: models[0].parameters.density: density 0.01 keeps no entry of tensor "model.embed_tokens.weight" (32 elements)',
    ],
  ];
  it.each(cases)('%s', (_why, doc, spec, code, message) => {
    const clean = Object.fromEntries(Object.entries(doc).filter(([, v]) => v !== undefined));
    const e = planError(clean, spec);
    expect(e.code).toBe(code);
    expect(e.message.startsWith(message)).toBe(true);
  });

  it('a tensor whose shape differs names the model and the tensor', () => {
    const e = planError(ties, { b: { override: { 'model.layers.1.mlp.up_proj.weight': { shape: [4, 6] } } } });
    expect(e.code).toBe('merge.shape_mismatch');
    expect(e.message).toBe(
      `${dir('b')}: tensor "model.layers.1.mlp.up_proj.weight": shape [4, 6] differs from [6, 4] in ${dir('base')}`,
    );
  });

  it('a missing layer tensor names the model and the tensor', () => {
    const e = planError(ties, { a: { drop: ['model.layers.1.self_attn.q_proj.weight'] } });
    expect(e.code).toBe('merge.tensor_missing');
    expect(e.message).toMatch(new RegExp(`^${dir('a')}: tensor "model.layers.1.self_attn.q_proj.weight": missing`));
  });

  it('an extra or renamed tensor names the model and the tensor', () => {
    const e = planError(ties, {
      b: { drop: ['model.norm.weight'], override: { 'model.final_norm.weight': { shape: [4] } } },
    });
    expect(['merge.tensor_missing', 'merge.tensor_extra']).toContain(e.code);
    expect(e.message).toMatch(new RegExp(`^${dir('b')}: tensor "model\\.(norm|final_norm)\\.weight": `));
  });

  it('models with different layer counts name the model', () => {
    const e = planError(ties, { a: { layers: 3 } });
    expect(e.code).toBe('merge.layer_count_mismatch');
    expect(e.message).toBe(
      `${dir('a')}: has 3 layers but ${dir('base')} has 2; models: recipes need models with the same layer count`,
    );
  });
});
