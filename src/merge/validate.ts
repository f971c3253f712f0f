// Checks a parsed recipe against its method's definition (merge/registry.ts) before any model is opened:
// parameter names, scopes and value types, the base model, and each method's model-count rules.
import { EvomergeError } from '../errors.ts';
import type { ParameterMap, Recipe, RecipeSource, Setting } from '../recipe/recipe.ts';
import { findMethod, methodParameter, type MergeMethodDef, type MethodParameter } from './registry.ts';

/**
 * The models of a recipe in mergekit's stacking order, as one list per slice: `models:` becomes one slice
 * with the base model appended last when it is not listed (mergekit config.py / plan.py).
 */
export interface SliceSpec {
  readonly sources: readonly RecipeSource[];
  readonly parameters: ParameterMap;
  readonly key: string;
  /** The parameters key of the slice for messages (`slices[0].parameters`), absent for `models:` recipes. */
  readonly parametersKey?: string;
}

/** Validates everything about a recipe that does not need the checkpoints; returns its method. */
export function validateRecipe(recipe: Recipe): MergeMethodDef {
  const method = findMethod(recipe.mergeMethod, recipe.file);
  function fail(code: string, field: string | undefined, what: string): never {
    throw new EvomergeError(code, what, { file: recipe.file, field });
  }

  // Parameters: known to this method, at a level where they mean something, with values of the right type.
  const checkMap = (params: ParameterMap, key: string, perModelOnly: boolean): void => {
    for (const [name, setting] of Object.entries(params)) {
      const field = `${key}.${name}`;
      const def = methodParameter(method, name);
      if (!def) {
        const takes = method.parameters.map((p) => p.name).join(', ') || 'no parameters';
        fail(
          'recipe.parameter_not_for_method',
          field,
          `${method.name} takes no parameter "${name}"; it takes ${takes}`,
        );
      }
      if (perModelOnly && def.scope === 'global') {
        fail(
          'recipe.parameter_scope',
          field,
          `"${name}" applies to the whole merge, not to one model (mergekit ignores it here); set it under parameters:`,
        );
      }
      checkSetting(def, setting, field, fail);
    }
  };
  checkMap(recipe.parameters, 'parameters', false);
  for (const m of recipe.models ?? []) checkMap(m.parameters, `${m.key}.parameters`, true);
  for (const s of recipe.slices ?? []) {
    checkMap(s.parameters, `${s.key}.parameters`, false);
    for (const src of s.sources) checkMap(src.parameters, `${src.key}.parameters`, true);
  }

  // The base model.
  if (method.needsBase && recipe.baseModel === undefined) {
    fail('recipe.missing_key', 'base_model', `${method.name} needs a base_model`);
  }
  const slices = recipeSlices(recipe);
  const listed = (s: SliceSpec) => s.sources.map((x) => x.model);

  // With slices:, a method that has a base needs it among each slice's sources (it is where the base's
  // layers come from).
  if (method.needsBase && recipe.slices !== undefined) {
    for (const s of recipe.slices) {
      if (!s.sources.some((x) => x.model === recipe.baseModel)) {
        fail(
          'recipe.base_not_in_slice',
          `${s.key}.sources`,
          `${method.name} needs base_model among the sources of every slice`,
        );
      }
    }
  }

  switch (method.family) {
    case 'linear':
      // mergekit appends an unlisted base without a weight and then fails (MERGEKIT-SEMANTICS.md §4).
      if (
        recipe.baseModel !== undefined &&
        recipe.models !== undefined &&
        !recipe.models.some((m) => m.model === recipe.baseModel)
      ) {
        fail(
          'recipe.base_not_in_models',
          'base_model',
          'linear has no base: list this model under models: with a weight, or remove base_model',
        );
      }
      if (recipe.baseModel !== undefined && recipe.slices !== undefined) {
        recipe.slices.forEach((s) => {
          if (!s.sources.some((x) => x.model === recipe.baseModel)) {
            fail(
              'recipe.base_not_in_models',
              `${s.key}.sources`,
              'linear has no base: list base_model among the sources with a weight, or remove base_model',
            );
          }
        });
      }
      break;
    case 'task_arithmetic':
      for (const s of slices) {
        if (!listed(s).some((m) => m !== recipe.baseModel)) {
          fail('recipe.no_models', s.key, `${method.name} needs at least one model besides base_model`);
        }
      }
      break;
    case 'slerp':
      for (const s of slices) {
        const distinct = new Set(listed(s));
        if (s.sources.length !== 2 || distinct.size !== 2) {
          fail(
            'recipe.slerp_needs_two',
            s.key,
            `slerp merges exactly 2 models (base_model and one other); got ${s.sources.length}`,
          );
        }
      }
      break;
    case 'model_stock':
      for (const s of slices) {
        if (s.sources.length < 3) {
          fail(
            'recipe.model_stock_needs_three',
            s.key,
            `model_stock needs base_model and at least 2 other models; got ${s.sources.length} in all`,
          );
        }
      }
      break;
    case 'passthrough':
      for (const s of slices) {
        if (s.sources.length !== 1) {
          fail(
            'recipe.passthrough_one_source',
            s.key,
            `passthrough copies one model per slice; got ${s.sources.length}`,
          );
        }
      }
      break;
  }
  return method;
}

/**
 * The recipe as slices in stacking order. `models:` gives one slice of all models (layer range filled in by
 * the planner from the checkpoints), with the base model appended last if it is not listed.
 */
export function recipeSlices(recipe: Recipe): SliceSpec[] {
  if (recipe.slices !== undefined) {
    return recipe.slices.map((s) => ({
      sources: s.sources,
      parameters: s.parameters,
      key: s.key,
      parametersKey: `${s.key}.parameters`,
    }));
  }
  const sources = [...(recipe.models ?? [])];
  if (recipe.baseModel !== undefined && !sources.some((m) => m.model === recipe.baseModel)) {
    sources.push({ model: recipe.baseModel, parameters: {}, key: 'base_model' });
  }
  return [{ sources, parameters: {}, key: 'models' }];
}

function checkSetting(
  def: MethodParameter,
  setting: Setting,
  field: string,
  fail: (code: string, field: string, what: string) => never,
): void {
  if (typeof setting === 'object' && setting.kind === 'filters') {
    setting.entries.forEach((e, i) => checkSetting(def, e.value, `${field}[${i}].value`, fail));
    return;
  }
  const leaves: unknown[] = typeof setting === 'object' ? [...setting.values] : [setting];
  if (typeof setting === 'object' && def.type !== 'number') {
    fail(
      'recipe.bad_value',
      field,
      `"${def.name}" cannot be a gradient; give ${def.type === 'boolean' ? 'true or false' : 'true, false or "density"'}`,
    );
  }
  for (const v of leaves) {
    switch (def.type) {
      case 'number':
        if (typeof v !== 'number')
          fail('recipe.bad_value', field, `"${def.name}" must be a number, got ${JSON.stringify(v)}`);
        if (def.min !== undefined && v < def.min)
          fail('recipe.bad_value', field, `"${def.name}" must be ≥ ${def.min}, got ${v}`);
        if (def.max !== undefined && v > def.max)
          fail('recipe.bad_value', field, `"${def.name}" must be ≤ ${def.max}, got ${v}`);
        break;
      case 'boolean':
        if (typeof v !== 'boolean')
          fail('recipe.bad_value', field, `"${def.name}" must be true or false, got ${JSON.stringify(v)}`);
        if (def.name === 'filter_wise' && v)
          fail(
            'recipe.unsupported_value',
            field,
            'filter_wise: true is not supported; model_stock works per whole tensor',
          );
        break;
      case 'rescale':
        if (typeof v !== 'boolean' && v !== 'density') {
          fail(
            'recipe.bad_value',
            field,
            `"rescale" must be true (L1-norm ratio, mergekit), "density" (1/density, DARE paper) or false; got ${JSON.stringify(v)}`,
          );
        }
        break;
    }
  }
}
