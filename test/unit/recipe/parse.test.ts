// Recipe parsing: every golden recipe parses, bad input is one line naming the file and key, and
// recipeToYaml round-trips.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EvomergeError } from '../../../src/errors.ts';
import { parseRecipe, parseRecipeFile, recipeToYaml } from '../../../src/recipe/parse.ts';
import { parseSpaceFile } from '../../../src/search/space/space.ts';
import { parseSuiteFile } from '../../../src/eval/suite.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const goldenRecipes = path.resolve(repoRoot, '../shared/mergekit-goldens/recipes');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'evomerge-recipe-'));
  for (const m of ['base', 'a', 'b', 'c']) mkdirSync(path.join(dir, 'models', m), { recursive: true });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const where = () => ({ file: 'recipe.yaml', baseDir: dir });

function expectError(fn: () => unknown, code: string, message: string | RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(EvomergeError);
  expect((err as EvomergeError).code).toBe(code);
  if (typeof message === 'string') expect((err as EvomergeError).message).toBe(message);
  else expect((err as EvomergeError).message).toMatch(message);
  expect((err as EvomergeError).message).not.toContain('\n');
}

const ties = () => ({
  merge_method: 'ties',
  base_model: 'models/base',
  dtype: 'float32',
  parameters: { normalize: true, density: 0.6 },
  models: [
    { model: 'models/a', parameters: { weight: [0.2, 1.0] } },
    { model: 'models/b', parameters: { weight: [{ filter: 'self_attn', value: 0.3 }, { value: 0.6 }], density: 0.7 } },
  ],
});

describe('parseRecipe', () => {
  it('resolves model paths against baseDir and keeps parameters as typed settings', () => {
    const r = parseRecipe(ties(), where());
    expect(r.mergeMethod).toBe('ties');
    expect(r.baseModel).toBe(path.join(dir, 'models/base'));
    expect(r.models?.map((m) => m.model)).toEqual([path.join(dir, 'models/a'), path.join(dir, 'models/b')]);
    expect(r.models?.[0]?.parameters.weight).toEqual({ kind: 'gradient', values: [0.2, 1.0] });
    expect(r.models?.[1]?.parameters.weight).toEqual({
      kind: 'filters',
      entries: [{ filter: 'self_attn', value: 0.3 }, { value: 0.6 }],
    });
    expect(r.parameters).toEqual({ normalize: true, density: 0.6 });
    expect(r.models?.[1]?.key).toBe('models[1]');
  });

  it('parses slices with layer ranges and the random_seed extension', () => {
    const r = parseRecipe(
      {
        merge_method: 'passthrough',
        random_seed: 7,
        slices: [
          { sources: [{ model: 'models/a', layer_range: [0, 3] }] },
          { sources: [{ model: 'models/b', layer_range: [3, 6], parameters: { scale: 0.5 } }] },
        ],
      },
      where(),
    );
    expect(r.slices?.[1]?.sources[0]?.layerRange).toEqual([3, 6]);
    expect(r.slices?.[1]?.sources[0]?.key).toBe('slices[1].sources[0]');
    expect(r.randomSeed).toBe(7);
  });

  it('names a misspelled parameter with a suggestion', () => {
    const doc = ties();
    (doc.models[1]!.parameters as Record<string, unknown>).densty = 0.5;
    expectError(
      () => parseRecipe(doc, where()),
      'recipe.unknown_key',
      'recipe.yaml: models[1].parameters.densty: unknown key; did you mean "density"?',
    );
  });

  it.each([
    [
      { merge_methd: 'ties' },
      'recipe.unknown_key',
      'recipe.yaml: merge_methd: unknown key; did you mean "merge_method"?',
    ],
    [{ modules: {} }, 'recipe.unsupported_key', /^recipe\.yaml: modules: multi-module recipes are not supported/],
    [
      { models: [{ model: 'models/a', params: {} }] },
      'recipe.unknown_key',
      'recipe.yaml: models[0].params: unknown key; did you mean "parameters"?',
    ],
  ])('unknown top-level and nested keys: %j', (patch, code, msg) => {
    expectError(() => parseRecipe({ ...ties(), ...patch }, where()), code, msg);
  });

  it('a model folder that does not exist names the key', () => {
    const doc = ties();
    doc.models[1]!.model = 'models/nope';
    expectError(
      () => parseRecipe(doc, where()),
      'recipe.model_not_found',
      /^recipe\.yaml: models\[1\]\.model: model folder "models\/nope" does not exist/,
    );
    expectError(
      () => parseRecipe({ ...ties(), base_model: 'gone' }, where()),
      'recipe.model_not_found',
      /^recipe\.yaml: base_model: /,
    );
  });

  it.each([
    [{ merge_method: undefined }, 'recipe.missing_key', 'recipe.yaml: merge_method: required; e.g. merge_method: ties'],
    [{ models: undefined }, 'recipe.missing_key', /^recipe\.yaml: models: required/],
    [
      { slices: [{ sources: [{ model: 'models/a', layer_range: [0, 3] }] }] },
      'recipe.models_and_slices',
      /^recipe\.yaml: slices: /,
    ],
    [{ dtype: 'float64' }, 'recipe.bad_value', /^recipe\.yaml: dtype: unsupported dtype "float64"/],
    [
      { tokenizer_source: 'unoin' },
      'recipe.model_not_found',
      /^recipe\.yaml: tokenizer_source: model folder "unoin" does not exist/,
    ],
    [
      { tokenizer_source: 7 },
      'recipe.bad_value',
      /^recipe\.yaml: tokenizer_source: expected base, union or a model folder/,
    ],
    [
      { tokenizer_source: 'base', tokenizer: { source: 'base' } },
      'recipe.tokenizer_twice',
      'recipe.yaml: tokenizer: give tokenizer: or tokenizer_source:, not both',
    ],
    [
      { tokenizer: { sorce: 'base' } },
      'recipe.unknown_key',
      'recipe.yaml: tokenizer.sorce: unknown key; did you mean "source"?',
    ],
    [
      { tokenizer: { tokens: { '<x>': { force: true } } } },
      'recipe.missing_key',
      /^recipe\.yaml: tokenizer\.tokens\.<x>\.source: required/,
    ],
    [
      { tokenizer: { tokens: { '<x>': { source: { kind: 'mean' } } } } },
      'recipe.bad_value',
      'recipe.yaml: tokenizer.tokens.<x>.source.kind: expected zero or model_token, got "mean"',
    ],
    [
      {
        tokenizer: {
          tokens: { '<x>': { source: { kind: 'model_token', model: 'models/a', token: 'a', token_id: 1 } } },
        },
      },
      'recipe.bad_value',
      'recipe.yaml: tokenizer.tokens.<x>.source: give token or token_id, not both',
    ],
    [
      { tokenizer: { pad_to_multiple_of: 0 } },
      'recipe.bad_value',
      'recipe.yaml: tokenizer.pad_to_multiple_of: expected a positive integer, got 0',
    ],
    [{ random_seed: -1 }, 'recipe.bad_value', /^recipe\.yaml: random_seed: /],
    [
      { parameters: { t: { filter: 'mlp', value: 1 } } },
      'recipe.bad_value',
      /^recipe\.yaml: parameters\.t: a \{filter, value\} mapping must be inside a list/,
    ],
    [{ parameters: { t: [1, 'x'] } }, 'recipe.bad_value', /^recipe\.yaml: parameters\.t: a list must be all numbers/],
    [
      { parameters: { t: [{ filter: 'mlp' }] } },
      'recipe.missing_key',
      'recipe.yaml: parameters.t[0].value: required in a {filter, value} entry',
    ],
    [
      { parameters: { t: [{ filtr: 'mlp', value: 1 }] } },
      'recipe.unknown_key',
      'recipe.yaml: parameters.t[0].filtr: unknown key; did you mean "filter"?',
    ],
    [{ models: [] }, 'recipe.bad_value', /^recipe\.yaml: models: expected a non-empty list/],
  ])('bad value %j', (patch, code, msg) => {
    const doc: Record<string, unknown> = { ...ties(), ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined) delete doc[k];
    expectError(() => parseRecipe(doc, where()), code, msg);
  });

  it.each([[[3, 3]], [[4, 2]], [[-1, 2]], [[0.5, 2]], [[0]], ['0-3']])('layer_range %j is refused', (lr) => {
    expectError(
      () =>
        parseRecipe(
          { merge_method: 'passthrough', slices: [{ sources: [{ model: 'models/a', layer_range: lr }] }] },
          where(),
        ),
      'recipe.bad_value',
      /^recipe\.yaml: slices\[0\]\.sources\[0\]\.layer_range: expected \[start, end\]/,
    );
  });
});

describe('parseRecipeFile', () => {
  it('reports YAML syntax errors with the line', () => {
    const f = path.join(dir, 'broken.yaml');
    writeFileSync(f, 'merge_method: ties\nmodels:\n  - model: [unclosed\n');
    expectError(
      () => parseRecipeFile(f),
      'recipe.yaml_syntax',
      new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: not valid YAML`),
    );
  });

  it('refuses an alias bomb (billion laughs) in a recipe, a search space or a suite in one line naming the file', () => {
    const levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
    const names = 'abcdefghi';
    for (let i = 1; i < names.length; i++)
      levels.push(
        `${names[i]}: &${names[i]} [${Array(9)
          .fill(`*${names[i - 1]}`)
          .join(', ')}]`,
      );
    const bomb = `${levels.join('\n')}\nmerge_method: linear\nmodels: *i\n`;
    const f = path.join(dir, 'laughs.yaml');
    writeFileSync(f, bomb);
    const escaped = f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const started = Date.now();
    expectError(() => parseRecipeFile(f), 'recipe.yaml_syntax', new RegExp(`^${escaped}: not valid YAML: .*alias`));
    expectError(() => parseSpaceFile(f), 'space.bad_yaml', new RegExp(`^${escaped}: not valid YAML: .*alias`));
    expectError(() => parseSuiteFile(f), 'eval.bad_suite', new RegExp(`^${escaped}: not valid YAML: .*alias`));
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('resolves models relative to the recipe file, not the working directory', () => {
    const sub = path.join(dir, 'sub');
    mkdirSync(sub, { recursive: true });
    const f = path.join(sub, 'r.yaml');
    writeFileSync(f, 'merge_method: linear\nmodels:\n  - model: ../models/a\n    parameters: {weight: 1}\n');
    expect(parseRecipeFile(f).models?.[0]?.model).toBe(path.join(dir, 'models/a'));
  });

  const haveGoldens = existsSync(goldenRecipes);
  it.runIf(haveGoldens).each(haveGoldens ? readdirSync(goldenRecipes).filter((f) => f.endsWith('.yaml')) : [])(
    'golden recipe %s parses',
    (f) => {
      const r = parseRecipeFile(path.join(goldenRecipes, f));
      expect(r.mergeMethod.length).toBeGreaterThan(0);
    },
  );
  if (!haveGoldens) it.skip(`golden recipes: ${goldenRecipes} is absent`, () => {});
});

describe('recipeToYaml', () => {
  it('round-trips, writing paths relative to the given folder', () => {
    const r = parseRecipe(
      {
        ...ties(),
        out_dtype: 'bfloat16',
        tokenizer_source: 'base',
        random_seed: 3,
        parameters: { rescale: 'density', lambda: 0.8 },
      },
      where(),
    );
    const other = path.join(dir, 'sub2');
    mkdirSync(other, { recursive: true });
    const text = recipeToYaml(r, other);
    const doc = YAML.parse(text);
    expect(doc.base_model).toBe('../models/base');
    const back = parseRecipe(doc, { file: 'again.yaml', baseDir: other });
    expect({ ...back, file: '', baseDir: '' }).toEqual({ ...r, file: '', baseDir: '' });
  });

  it('round-trips the tokenizer settings (model:<path> is written as a bare path, as mergekit does today)', () => {
    for (const extra of [
      { tokenizer_source: 'union' },
      { tokenizer_source: 'model:models/a' },
      {
        tokenizer: {
          source: 'models/b',
          tokens: {
            '<|im_start|>': { source: 'models/a', force: true },
            '<z>': { source: { kind: 'zero' } },
            '<t>': { source: { kind: 'model_token', model: 'models/b', token_id: 3 } },
          },
          pad_to_multiple_of: 64,
        },
      },
    ]) {
      const r = parseRecipe({ ...ties(), ...extra }, where());
      const doc = YAML.parse(recipeToYaml(r));
      const back = parseRecipe(doc, where());
      expect(back).toEqual(r);
    }
    const r = parseRecipe({ ...ties(), tokenizer: {} }, where());
    expect(r.tokenizer).toEqual({ source: 'union', tokens: [] });
    expect(parseRecipe({ ...ties(), tokenizer_source: 'model:models/a' }, where()).tokenizerSource).toEqual({
      model: path.join(dir, 'models/a'),
    });
  });

  it('round-trips slices', () => {
    const r = parseRecipe(
      {
        merge_method: 'slerp',
        base_model: 'models/a',
        parameters: { t: [{ filter: 'mlp', value: [0, 1] }, { value: 0.5 }] },
        slices: [
          {
            sources: [
              { model: 'models/a', layer_range: [0, 6] },
              { model: 'models/b', layer_range: [0, 6] },
            ],
            parameters: { t: 0.2 },
          },
        ],
      },
      where(),
    );
    const back = parseRecipe(YAML.parse(recipeToYaml(r)), where());
    expect(back).toEqual(r);
  });
});
