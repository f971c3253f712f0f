// mergekit YAML → Recipe, validated at the door: every key known, every value of the right shape, model
// folders present. Which method takes which parameter is checked later by merge/ (registry.ts).
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { editDistance, EvomergeError } from '../errors.ts';
import {
  PARAMETER_NAMES,
  RECIPE_DTYPES,
  type FilterSetting,
  type ParameterMap,
  type Recipe,
  type RecipeDType,
  type RecipeSlice,
  type RecipeSource,
  type Setting,
} from './recipe.ts';
import {
  parseTokenizerBlock,
  parseTokenizerSource,
  tokenizerSourceToPlain,
  tokenizerToPlain,
  type TokenizerParseContext,
} from './tokenizer.ts';

/** Where a recipe document came from: the name used in messages and the folder model paths are relative to. */
export interface RecipeOrigin {
  readonly file: string;
  readonly baseDir: string;
}

const TOP_KEYS = [
  'merge_method',
  'base_model',
  'models',
  'parameters',
  'slices',
  'dtype',
  'out_dtype',
  'tokenizer_source',
  'tokenizer',
  'random_seed',
];
/** mergekit keys evomerge recognises but does not implement: a clearer message than "unknown key". */
const UNSUPPORTED_TOP_KEYS: Record<string, string> = {
  modules: 'multi-module recipes are not supported; use models: or slices:',
  chat_template: "chat templates are not supported; the output keeps the base model's files",
  name: 'multi-stage recipes are not supported',
};
const MODEL_KEYS = ['model', 'parameters'];
const SLICE_KEYS = ['sources', 'parameters'];
const SOURCE_KEYS = ['model', 'layer_range', 'parameters'];
const FILTER_KEYS = ['filter', 'value'];

/** Reads and validates a recipe file; model paths are resolved relative to the file's folder. */
export function parseRecipeFile(file: string): Recipe {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new EvomergeError(
      'recipe.unreadable',
      `cannot read the recipe: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { file },
    );
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line;
    throw new EvomergeError('recipe.yaml_syntax', `not valid YAML: ${e.message.split('\n')[0]}`, { file, line });
  }
  let js: unknown;
  try {
    // maxAliasCount: an alias bomb (billion laughs) is refused while expanding, naming the file
    js = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new EvomergeError('recipe.yaml_syntax', `not valid YAML: ${(err as Error).message.split('\n')[0]}`, { file });
  }
  return parseRecipe(js, { file, baseDir: path.dirname(path.resolve(file)) });
}

/**
 * Validates a recipe given as a plain object (a parsed YAML document, or one built by the search).
 * @example parseRecipe(
 *   { merge_method: 'linear', models: [{ model: 'a', parameters: { weight: 1 } }] },
 *   { file: '<search>', baseDir: '/models' },
 * )
 */
export function parseRecipe(doc: unknown, where: RecipeOrigin): Recipe {
  const p = new Parser(where);
  return p.recipe(doc);
}

class Parser {
  constructor(private readonly where: RecipeOrigin) {}

  fail(code: string, field: string | undefined, what: string): never {
    throw new EvomergeError(code, what, { file: this.where.file, field });
  }

  recipe(doc: unknown): Recipe {
    if (!isPlainObject(doc))
      this.fail(
        'recipe.not_a_mapping',
        undefined,
        'a recipe must be a YAML mapping with merge_method and models or slices',
      );
    this.checkKeys(doc, TOP_KEYS, '', UNSUPPORTED_TOP_KEYS);

    const mergeMethod = doc.merge_method;
    if (mergeMethod === undefined || mergeMethod === null)
      this.fail('recipe.missing_key', 'merge_method', 'required; e.g. merge_method: ties');
    if (typeof mergeMethod !== 'string')
      this.fail('recipe.bad_value', 'merge_method', `expected a method name, got ${describe(mergeMethod)}`);

    const hasModels = doc.models !== undefined && doc.models !== null;
    const hasSlices = doc.slices !== undefined && doc.slices !== null;
    if (hasModels && hasSlices)
      this.fail('recipe.models_and_slices', 'slices', 'give either models: or slices:, not both');
    if (!hasModels && !hasSlices)
      this.fail('recipe.missing_key', 'models', 'required (or slices:): the models to merge');

    let baseModel: string | undefined;
    if (doc.base_model !== undefined && doc.base_model !== null)
      baseModel = this.modelPath(doc.base_model, 'base_model');

    const models = hasModels ? this.models(doc.models) : undefined;
    const slices = hasSlices ? this.slices(doc.slices) : undefined;
    const parameters = this.parameterMap(doc.parameters, 'parameters');
    const dtype = this.dtype(doc.dtype, 'dtype');
    const outDtype = this.dtype(doc.out_dtype, 'out_dtype');

    const tok = this.tokenizerContext();
    const hasTokSource = doc.tokenizer_source !== undefined && doc.tokenizer_source !== null;
    const hasTokBlock = doc.tokenizer !== undefined && doc.tokenizer !== null;
    // mergekit config.py validate_tokenizer: "Cannot specify both tokenizer_source and tokenizer".
    if (hasTokSource && hasTokBlock)
      this.fail('recipe.tokenizer_twice', 'tokenizer', 'give tokenizer: or tokenizer_source:, not both');
    const tokenizerSource = hasTokSource
      ? parseTokenizerSource(doc.tokenizer_source, 'tokenizer_source', tok)
      : undefined;
    const tokenizer = hasTokBlock ? parseTokenizerBlock(doc.tokenizer, tok) : undefined;

    let randomSeed: number | undefined;
    if (doc.random_seed !== undefined && doc.random_seed !== null) {
      const s = doc.random_seed;
      if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) {
        this.fail('recipe.bad_value', 'random_seed', `expected a non-negative integer, got ${describe(s)}`);
      }
      randomSeed = s;
    }

    return {
      file: this.where.file,
      baseDir: this.where.baseDir,
      mergeMethod,
      ...(baseModel !== undefined ? { baseModel } : {}),
      ...(models !== undefined ? { models } : {}),
      ...(slices !== undefined ? { slices } : {}),
      parameters,
      ...(dtype !== undefined ? { dtype } : {}),
      ...(outDtype !== undefined ? { outDtype } : {}),
      ...(tokenizerSource !== undefined ? { tokenizerSource } : {}),
      ...(tokenizer !== undefined ? { tokenizer } : {}),
      ...(randomSeed !== undefined ? { randomSeed } : {}),
    };
  }

  tokenizerContext(): TokenizerParseContext {
    return {
      fail: (code, field, what) => this.fail(code, field, what),
      modelPath: (value, key) => this.modelPath(value, key),
      checkKeys: (obj, known, prefix) => this.checkKeys(obj, known, prefix),
      describe,
    };
  }

  models(value: unknown): RecipeSource[] {
    if (!Array.isArray(value) || value.length === 0)
      this.fail(
        'recipe.bad_value',
        'models',
        `expected a non-empty list of {model, parameters}, got ${describe(value)}`,
      );
    return value.map((m, i) => {
      const key = `models[${i}]`;
      if (typeof m === 'string') return { model: this.modelPath(m, `${key}`), parameters: {}, key };
      if (!isPlainObject(m)) this.fail('recipe.bad_value', key, `expected {model, parameters}, got ${describe(m)}`);
      this.checkKeys(m, MODEL_KEYS, key);
      if (m.model === undefined || m.model === null)
        this.fail('recipe.missing_key', `${key}.model`, 'required: the model folder');
      return {
        model: this.modelPath(m.model, `${key}.model`),
        parameters: this.parameterMap(m.parameters, `${key}.parameters`),
        key,
      };
    });
  }

  slices(value: unknown): RecipeSlice[] {
    if (!Array.isArray(value) || value.length === 0)
      this.fail(
        'recipe.bad_value',
        'slices',
        `expected a non-empty list of {sources, parameters}, got ${describe(value)}`,
      );
    return value.map((s, i) => {
      const key = `slices[${i}]`;
      if (!isPlainObject(s)) this.fail('recipe.bad_value', key, `expected {sources, parameters}, got ${describe(s)}`);
      this.checkKeys(s, SLICE_KEYS, key);
      const sources = s.sources;
      if (!Array.isArray(sources) || sources.length === 0) {
        this.fail(
          'recipe.bad_value',
          `${key}.sources`,
          `expected a non-empty list of {model, layer_range}, got ${describe(sources)}`,
        );
      }
      return {
        sources: sources.map((src, j) => this.source(src, `${key}.sources[${j}]`)),
        parameters: this.parameterMap(s.parameters, `${key}.parameters`),
        key,
      };
    });
  }

  source(value: unknown, key: string): RecipeSource {
    if (!isPlainObject(value))
      this.fail('recipe.bad_value', key, `expected {model, layer_range, parameters}, got ${describe(value)}`);
    this.checkKeys(value, SOURCE_KEYS, key);
    if (value.model === undefined || value.model === null)
      this.fail('recipe.missing_key', `${key}.model`, 'required: the model folder');
    const model = this.modelPath(value.model, `${key}.model`);
    const lr = value.layer_range;
    if (lr === undefined || lr === null)
      this.fail('recipe.missing_key', `${key}.layer_range`, 'required in slices: [start, end) of the input layers');
    if (
      !Array.isArray(lr) ||
      lr.length !== 2 ||
      !lr.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0) ||
      !(lr[0] < lr[1])
    ) {
      this.fail(
        'recipe.bad_value',
        `${key}.layer_range`,
        `expected [start, end] with integers 0 <= start < end, got ${describe(lr)}`,
      );
    }
    return {
      model,
      layerRange: [lr[0], lr[1]],
      parameters: this.parameterMap(value.parameters, `${key}.parameters`),
      key,
    };
  }

  modelPath(value: unknown, key: string): string {
    if (typeof value !== 'string' || value.length === 0)
      this.fail('recipe.bad_value', key, `expected a model folder path, got ${describe(value)}`);
    if (value.includes('+'))
      this.fail('recipe.unsupported_value', key, `"${value}": LoRA adapters (model+lora) are not supported`);
    const abs = path.resolve(this.where.baseDir, value);
    if (!existsSync(abs))
      this.fail('recipe.model_not_found', key, `model folder "${value}" does not exist (resolved to ${abs})`);
    if (!statSync(abs).isDirectory())
      this.fail('recipe.model_not_found', key, `"${value}" is not a folder (resolved to ${abs})`);
    return abs;
  }

  dtype(value: unknown, key: string): RecipeDType | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string' || !(RECIPE_DTYPES as readonly string[]).includes(value)) {
      this.fail(
        'recipe.bad_value',
        key,
        `unsupported dtype ${describe(value)}; expected one of ${RECIPE_DTYPES.join(', ')}`,
      );
    }
    return value as RecipeDType;
  }

  parameterMap(value: unknown, key: string): ParameterMap {
    if (value === undefined || value === null) return {};
    if (!isPlainObject(value))
      this.fail('recipe.bad_value', key, `expected a mapping of parameter names to values, got ${describe(value)}`);
    this.checkKeys(value, PARAMETER_NAMES, key);
    const out: Record<string, Setting> = {};
    for (const [name, v] of Object.entries(value)) {
      if (v === null || v === undefined) continue; // mergekit: a null value falls through to the next level
      out[name] = this.setting(v, `${key}.${name}`);
    }
    return out;
  }

  /** mergekit config.py `ParameterSetting`: scalar, list of numbers (gradient), or list of {filter, value}. */
  setting(value: unknown, key: string): Setting {
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) this.fail('recipe.bad_value', key, `expected a finite number, got ${value}`);
      return value;
    }
    if (typeof value === 'boolean' || typeof value === 'string') return value;
    if (Array.isArray(value)) {
      if (value.length === 0)
        this.fail(
          'recipe.bad_value',
          key,
          'an empty list is not a value; give a number, a gradient [a, b, …] or a list of {filter, value}',
        );
      if (value.every((x) => typeof x === 'number')) {
        value.forEach((x, i) => {
          if (!Number.isFinite(x)) this.fail('recipe.bad_value', `${key}[${i}]`, `expected a finite number, got ${x}`);
        });
        return { kind: 'gradient', values: [...value] };
      }
      if (value.every((x) => isPlainObject(x))) {
        const entries: FilterSetting['entries'][number][] = value.map((e: Record<string, unknown>, i) => {
          const ek = `${key}[${i}]`;
          this.checkKeys(e, FILTER_KEYS, ek);
          if (e.value === undefined || e.value === null)
            this.fail('recipe.missing_key', `${ek}.value`, 'required in a {filter, value} entry');
          let filter: string | undefined;
          if (e.filter !== undefined && e.filter !== null) {
            if (typeof e.filter !== 'string')
              this.fail(
                'recipe.bad_value',
                `${ek}.filter`,
                `expected a substring of tensor names, got ${describe(e.filter)}`,
              );
            filter = e.filter;
          }
          const inner = this.setting(e.value, `${ek}.value`);
          return filter !== undefined ? { filter, value: inner } : { value: inner };
        });
        return { kind: 'filters', entries };
      }
      this.fail('recipe.bad_value', key, 'a list must be all numbers (a gradient) or all {filter, value} entries');
    }
    if (isPlainObject(value)) {
      this.fail(
        'recipe.bad_value',
        key,
        'a {filter, value} mapping must be inside a list (mergekit evaluate_setting); write "- filter: …"',
      );
    }
    this.fail('recipe.bad_value', key, `unsupported value ${describe(value)}`);
  }

  checkKeys(
    obj: Record<string, unknown>,
    known: readonly string[],
    prefix: string,
    unsupported: Record<string, string> = {},
  ): void {
    for (const k of Object.keys(obj)) {
      if (known.includes(k)) continue;
      const field = prefix === '' ? k : `${prefix}.${k}`;
      if (k in unsupported) this.fail('recipe.unsupported_key', field, unsupported[k]!);
      const guess = closest(k, known);
      this.fail(
        'recipe.unknown_key',
        field,
        guess !== undefined
          ? `unknown key; did you mean "${guess}"?`
          : `unknown key; expected one of ${known.join(', ')}`,
      );
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v);
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}

/** The known name closest to `word` by edit distance, if close enough to be a plausible typo. */
export function closest(word: string, known: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  if (lower.length >= 3) {
    // An abbreviation or a long shared prefix (`params` for `parameters`).
    const common = (k: string): number => {
      let i = 0;
      while (i < k.length && i < lower.length && k[i] === lower[i]) i++;
      return i;
    };
    const prefixed = known.filter((k) => k.toLowerCase().startsWith(lower) || common(k.toLowerCase()) >= 5);
    if (prefixed.length === 1) return prefixed[0];
  }
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Recipe → YAML

/** Writes a recipe as mergekit YAML, model paths relative to `relativeTo` (default: the recipe's baseDir). */
export function recipeToYaml(recipe: Recipe, relativeTo: string = recipe.baseDir): string {
  const rel = (abs: string): string => {
    const r = path.relative(relativeTo, abs).split(path.sep).join('/');
    return r === '' ? '.' : r;
  };
  const doc: Record<string, unknown> = { merge_method: recipe.mergeMethod };
  if (recipe.baseModel !== undefined) doc.base_model = rel(recipe.baseModel);
  if (recipe.models !== undefined) {
    doc.models = recipe.models.map((m) => {
      const o: Record<string, unknown> = { model: rel(m.model) };
      if (Object.keys(m.parameters).length > 0) o.parameters = parameterMapToPlain(m.parameters);
      return o;
    });
  }
  if (recipe.slices !== undefined) {
    doc.slices = recipe.slices.map((s) => {
      const o: Record<string, unknown> = {
        sources: s.sources.map((src) => {
          const so: Record<string, unknown> = { model: rel(src.model) };
          if (src.layerRange !== undefined) so.layer_range = [...src.layerRange];
          if (Object.keys(src.parameters).length > 0) so.parameters = parameterMapToPlain(src.parameters);
          return so;
        }),
      };
      if (Object.keys(s.parameters).length > 0) o.parameters = parameterMapToPlain(s.parameters);
      return o;
    });
  }
  if (Object.keys(recipe.parameters).length > 0) doc.parameters = parameterMapToPlain(recipe.parameters);
  if (recipe.dtype !== undefined) doc.dtype = recipe.dtype;
  if (recipe.outDtype !== undefined) doc.out_dtype = recipe.outDtype;
  if (recipe.tokenizerSource !== undefined) doc.tokenizer_source = tokenizerSourceToPlain(recipe.tokenizerSource, rel);
  if (recipe.tokenizer !== undefined) doc.tokenizer = tokenizerToPlain(recipe.tokenizer, rel);
  if (recipe.randomSeed !== undefined) doc.random_seed = recipe.randomSeed;
  return YAML.stringify(doc);
}

function parameterMapToPlain(params: ParameterMap): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) out[k] = settingToPlain(v);
  return out;
}

function settingToPlain(s: Setting): unknown {
  if (typeof s !== 'object') return s;
  if (s.kind === 'gradient') return [...s.values];
  return s.entries.map((e) =>
    e.filter !== undefined ? { filter: e.filter, value: settingToPlain(e.value) } : { value: settingToPlain(e.value) },
  );
}
