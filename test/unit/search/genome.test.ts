import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EvomergeError } from '../../../src/errors.ts';
import {
  buildLayout,
  canonicalJson,
  contentHash,
  decodeGenome,
  type MethodParameters,
} from '../../../src/search/space/genome.ts';
import { parseSpace } from '../../../src/search/space/space.ts';

const repo = path.resolve(__dirname, '../../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'evomerge-space-'));
const file = path.join(dir, 'space.yaml');
const models = path.join(repo, 'models/micro');

function space(extra: Record<string, unknown> = {}, genome: Record<string, unknown> = {}) {
  return parseSpace(
    {
      base_model: `${models}/base`,
      models: [`${models}/expert-math`, { name: 'lang', model: `${models}/expert-lang` }],
      suite: path.join(repo, 'models/micro/PROVENANCE.md'), // any existing file: the suite is checked by the campaign
      genome: {
        layer_groups: 3,
        methods: ['task_arithmetic', 'ties'],
        parameters: { weight: { min: 0, max: 1 }, density: { min: 0.1, max: 1 } },
        ...genome,
      },
      objective: [{ task: 'composite' }],
      budget: { candidates: 10 },
      ...extra,
    },
    file,
  );
}

const params: MethodParameters = (m) =>
  m === 'task_arithmetic'
    ? { perModel: ['weight'], methodWide: ['normalize', 'lambda'] }
    : { perModel: ['weight', 'density'], methodWide: ['normalize', 'lambda'] };

describe('search space', () => {
  it('rejects an unknown key with its path and a hint', () => {
    try {
      space({ budgte: 3 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(EvomergeError);
      expect((err as EvomergeError).code).toBe('space.unknown_key');
      expect((err as Error).message).toBe(`${file}: budgte: unknown key; did you mean "budget"?`);
    }
  });
  it('rejects an inverted range naming the field', () => {
    expect(() => space({}, { parameters: { weight: { min: 2, max: 1 } } })).toThrow(
      `${file}: genome.parameters.weight: min 2 is greater than max 1`,
    );
  });
  it('takes grid_points for the grid optimiser only', () => {
    expect(space({ optimizer: 'grid', grid_points: 1 }).gridPoints).toBe(1);
    expect(space({ optimizer: 'grid' }).gridPoints).toBeUndefined();
    expect(() => space({ grid_points: 3 })).toThrow(
      `${file}: grid_points: grid_points applies to optimizer: grid, not cmaes`,
    );
    expect(() => space({ optimizer: 'grid', grid_points: 0 })).toThrow(`${file}: grid_points:`);
  });
  it('rejects a gate naming an unknown source', () => {
    expect(() => space({ gates: [{ kind: 'no_regression', task: 'math', source: 'nobody' }] })).toThrow(
      /gates\[0\]\.source: unknown source "nobody"/,
    );
  });
});

describe('genome codec', () => {
  it('lays out one gene set per layer group and model, plus the non-layer group', () => {
    const layout = buildLayout(space(), 6);
    expect(layout.cells.map((c) => c.label)).toEqual(['layers0-1', 'layers2-3', 'layers4-5', 'nonlayer']);
    // 4 cells × 2 models × (weight, density)
    expect(layout.domain.continuous).toHaveLength(16);
    expect(layout.domain.categorical).toEqual([{ name: 'method', choices: ['task_arithmetic', 'ties'] }]);
  });

  it('decodes to a mergekit recipe with filter lists, leaving out genes the method does not read', () => {
    const layout = buildLayout(space(), 6);
    const x = layout.domain.continuous.map((_, i) => i / 100);
    const ta = decodeGenome(layout, x, [0], params, 1);
    const models = ta.recipe.models as { parameters: Record<string, unknown> }[];
    expect(ta.recipe.merge_method).toBe('task_arithmetic');
    expect(Object.keys(models[0].parameters)).toEqual(['weight']);
    // weight of expert-math: genes 0 (layers0-1), 4, 8, 12 (nonlayer); each layer of a group gets its own filter
    expect(models[0].parameters.weight).toEqual([
      { filter: 'layers.0.', value: 0 },
      { filter: 'layers.1.', value: 0 },
      { filter: 'layers.2.', value: 0.04 },
      { filter: 'layers.3.', value: 0.04 },
      { filter: 'layers.4.', value: 0.08 },
      { filter: 'layers.5.', value: 0.08 },
      { value: 0.12 },
    ]);
    const ties = decodeGenome(layout, x, [1], params, 1);
    expect(Object.keys((ties.recipe.models as { parameters: object }[])[0].parameters)).toEqual(['weight', 'density']);
  });

  it('merges only the models genome.method_models names for a method, in the order of models', () => {
    const s = space({}, { method_models: { ties: ['lang'] } });
    expect(s.genome.methodModels).toEqual({ ties: ['lang'] });
    const layout = buildLayout(s, 6);
    const x = layout.domain.continuous.map((_, i) => i / 100);
    const paths = (c: number) =>
      (decodeGenome(layout, x, [c], params, 1).recipe.models as { model: string }[]).map((m) => m.model);
    expect(paths(0)).toEqual([`${models}/expert-math`, `${models}/expert-lang`]);
    expect(paths(1)).toEqual([`${models}/expert-lang`]);
  });

  it('refuses genome.method_models for a method not searched, an unknown model or an empty list', () => {
    expect(() => space({}, { method_models: { slerp: ['lang'] } })).toThrow(
      `${file}: genome.method_models.slerp: "slerp" is not in genome.methods (task_arithmetic, ties)`,
    );
    expect(() => space({}, { method_models: { ties: ['lang', 'maths'] } })).toThrow(
      `${file}: genome.method_models.ties[1]: unknown model "maths"; expected one of models: expert-math, lang`,
    );
    expect(() => space({}, { method_models: { ties: [] } })).toThrow(
      `${file}: genome.method_models.ties: expected at least one model name`,
    );
  });

  it('gives genomes that merge identically the same content hash', () => {
    const layout = buildLayout(space(), 6);
    const x = layout.domain.continuous.map(() => 0.5);
    const y = [...x];
    y[2] = 0.9; // layers0-1.expert-math.density: unused by task_arithmetic
    const s = space();
    expect(contentHash(decodeGenome(layout, x, [0], params, 1).recipe, s)).toBe(
      contentHash(decodeGenome(layout, y, [0], params, 1).recipe, s),
    );
    expect(contentHash(decodeGenome(layout, x, [1], params, 1).recipe, s)).not.toBe(
      contentHash(decodeGenome(layout, y, [1], params, 1).recipe, s),
    );
  });

  it('gives a merge the same identity and DARE seed wherever its model folders lie', () => {
    const here = space();
    const moved = {
      ...here,
      baseModel: { ...here.baseModel, path: '/elsewhere/base' },
      models: here.models.map((m) => ({ ...m, path: `/elsewhere/${m.name}` })),
    };
    const x = buildLayout(here, 6).domain.continuous.map(() => 0.4);
    for (const method of [0, 1]) {
      const a = decodeGenome(buildLayout(here, 6), x, [method], params, 7).recipe;
      const b = decodeGenome(buildLayout(moved, 6), x, [method], params, 7).recipe;
      expect(b.base_model).toBe('/elsewhere/base');
      expect(b.random_seed).toBe(a.random_seed);
      expect(contentHash(b, moved)).toBe(contentHash(a, here));
    }
    // the names matter: another source under the same folder is another merge
    const renamed = { ...here, models: here.models.map((m, i) => (i === 0 ? { ...m, name: 'other' } : m)) };
    const r = decodeGenome(buildLayout(here, 6), x, [1], params, 7).recipe;
    expect(contentHash(r, renamed)).not.toBe(contentHash(r, here));
  });

  it('clips genes to their range and splits filters per group', () => {
    const layout = buildLayout(space({}, { filters: ['self_attn', 'mlp'], layer_groups: 'per_layer' }), 2);
    expect(layout.cells.map((c) => c.label)).toEqual([
      'layer0.self_attn',
      'layer0.mlp',
      'layer0.other',
      'layer1.self_attn',
      'layer1.mlp',
      'layer1.other',
      'nonlayer',
    ]);
    const x = layout.domain.continuous.map(() => 5);
    const { genome } = decodeGenome(layout, x, [0], params, 1);
    expect(genome['layer0.mlp.expert-math.weight']).toBe(1);
    expect(genome['layer0.mlp.lang.density']).toBe(1);
  });

  it('canonical JSON sorts keys', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
  });
});
