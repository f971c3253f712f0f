// Parameter resolution: a table of (setting levels, tensor, t) → value, against mergekit's config.py rules
// and the values mergekit itself resolved for the goldens (shared/mergekit-goldens/README.md).
import { describe, expect, it } from 'vitest';
import {
  evaluateSetting,
  interpolateGradient,
  layerPosition,
  resolveParameter,
  type ParameterLevel,
} from '../../../src/recipe/resolve.ts';
import type { Setting } from '../../../src/recipe/recipe.ts';

const grad = (...values: number[]): Setting => ({ kind: 'gradient', values });
const filters = (...entries: { filter?: string; value: Setting }[]): Setting => ({ kind: 'filters', entries });

describe('interpolateGradient (mergekit evaluate_setting)', () => {
  it.each([
    [[0.2, 1.0], 0, 0.2],
    [[0.2, 1.0], 1, 1.0],
    [[0.2, 1.0], 0.5, 0.6],
    [[0, 0.5, 0.3, 0.7, 1], 0.2, 0.4],
    [[0, 0.5, 0.3, 0.7, 1], 0.4, 0.38],
    [[0, 0.5, 0.3, 0.7, 1], 0.6, 0.46],
    [[0, 0.5, 0.3, 0.7, 1], 0.8, 0.76],
    [[1, 0.5, 0.7, 0.3, 0], 0.2, 0.6],
    [[1, 0.5, 0.7, 0.3, 0], 0.8, 0.24],
    [[3], 0.7, 3],
  ])('%j at t=%d → %d', (g, t, want) => {
    expect(interpolateGradient(g, t)).toBeCloseTo(want, 12);
  });

  it('gives the README layer weights 0.2, 0.36, 0.52, 0.68, 0.84, 1.0 for [0.2, 1.0] over 6 layers', () => {
    const got = [0, 1, 2, 3, 4, 5].map((i) => interpolateGradient([0.2, 1.0], layerPosition(i, 6)));
    got.forEach((v, i) => expect(v).toBeCloseTo([0.2, 0.36, 0.52, 0.68, 0.84, 1.0][i]!, 12));
  });
});

describe('layerPosition (mergekit plan.py)', () => {
  it.each([
    [0, 6, 0],
    [5, 6, 1],
    [2, 5, 0.5],
    [0, 1, 1], // a one-layer slice uses t = 1
  ])('layer %d of %d → t=%d', (i, n, t) => expect(layerPosition(i, n)).toBe(t));
});

describe('evaluateSetting: filters', () => {
  const t = filters(
    { filter: 'self_attn', value: grad(0, 0.5, 0.3, 0.7, 1) },
    { filter: 'mlp', value: grad(1, 0.5, 0.7, 0.3, 0) },
    { value: 0.5 },
  );
  it.each([
    ['model.layers.1.self_attn.q_proj.weight', 0.2, 0.4],
    ['model.layers.1.mlp.up_proj.weight', 0.2, 0.6],
    ['model.layers.1.input_layernorm.weight', 0.2, 0.5],
    ['model.embed_tokens.weight', 0, 0.5],
  ])('%s at t=%d → %d', (name, at, want) => expect(evaluateSetting(t, name, at)).toBeCloseTo(want, 12));

  it('is a substring match: "norm" matches every layernorm and model.norm', () => {
    const s = filters({ filter: 'norm', value: 7 });
    expect(evaluateSetting(s, 'model.layers.0.post_attention_layernorm.weight', 0)).toBe(7);
    expect(evaluateSetting(s, 'model.norm.weight', 0)).toBe(7);
    expect(evaluateSetting(s, 'lm_head.weight', 0)).toBeUndefined();
  });

  it('"*" and an absent filter match everything; the first match wins', () => {
    expect(evaluateSetting(filters({ filter: '*', value: 1 }, { value: 2 }), 'x', 0)).toBe(1);
    expect(evaluateSetting(filters({ value: 2 }, { filter: 'x', value: 1 }), 'x', 0)).toBe(2);
  });

  it('passes scalars of any type through', () => {
    expect(evaluateSetting(true, 'x', 0)).toBe(true);
    expect(evaluateSetting('density', 'x', 0)).toBe('density');
  });
});

describe('resolveParameter: precedence (mergekit ConfigReader.parameter)', () => {
  const L = (key: string, parameters: Record<string, Setting>): ParameterLevel => ({ key, parameters });
  const cases: {
    why: string;
    levels: ParameterLevel[];
    name: string;
    tensor: string;
    t: number;
    want: unknown;
    key?: string;
  }[] = [
    {
      why: 'the model value wins over the global one',
      levels: [L('models[0].parameters', { density: 0.5 }), L('parameters', { density: 0.6 })],
      name: 'density',
      tensor: 'a',
      t: 0,
      want: 0.5,
      key: 'models[0].parameters.density',
    },
    {
      why: 'a model without the parameter falls back to the global value',
      levels: [L('models[1].parameters', { weight: 1 }), L('parameters', { density: 0.6 })],
      name: 'density',
      tensor: 'a',
      t: 0,
      want: 0.6,
      key: 'parameters.density',
    },
    {
      why: 'the slice level sits between the model and the global one',
      levels: [
        L('slices[0].sources[0].parameters', {}),
        L('slices[0].parameters', { t: 0.3 }),
        L('parameters', { t: 0.9 }),
      ],
      name: 't',
      tensor: 'a',
      t: 0,
      want: 0.3,
      key: 'slices[0].parameters.t',
    },
    {
      why: 'a filter list with no matching entry falls through to the next level',
      levels: [
        L('models[1].parameters', { weight: filters({ filter: 'mlp', value: 0.9 }) }),
        L('parameters', { weight: 0.1 }),
      ],
      name: 'weight',
      tensor: 'model.layers.0.self_attn.q_proj.weight',
      t: 0,
      want: 0.1,
      key: 'parameters.weight',
    },
    {
      why: 'absent everywhere → undefined (the method default applies)',
      levels: [L('models[0].parameters', { weight: 1 }), L('parameters', {})],
      name: 'gamma',
      tensor: 'a',
      t: 0,
      want: undefined,
    },
    {
      why: 'gradient at a non-layer tensor (t = 0) gives its first value',
      levels: [L('models[0].parameters', { weight: grad(0.2, 1.0) })],
      name: 'weight',
      tensor: 'lm_head.weight',
      t: 0,
      want: 0.2,
      key: 'models[0].parameters.weight',
    },
    {
      why: 'ties_gradient_filters: expert-lang self_attn 0.3',
      levels: [
        L('models[1].parameters', {
          weight: filters({ filter: 'self_attn', value: 0.3 }, { filter: 'mlp', value: 0.9 }, { value: 0.6 }),
        }),
      ],
      name: 'weight',
      tensor: 'model.layers.3.self_attn.o_proj.weight',
      t: 0.6,
      want: 0.3,
    },
    {
      why: 'ties_gradient_filters: expert-lang otherwise 0.6',
      levels: [
        L('models[1].parameters', {
          weight: filters({ filter: 'self_attn', value: 0.3 }, { filter: 'mlp', value: 0.9 }, { value: 0.6 }),
        }),
      ],
      name: 'weight',
      tensor: 'model.norm.weight',
      t: 0,
      want: 0.6,
    },
  ];
  it.each(cases)('$why', ({ levels, name, tensor, t, want, key }) => {
    const r = resolveParameter(name, levels, tensor, t);
    if (want === undefined) {
      expect(r).toBeUndefined();
    } else {
      expect(r?.value).toBeCloseTo(want as number, 12);
      if (key !== undefined) expect(r?.key).toBe(key);
    }
  });
});
