// The merge methods as data (mergekit merge_methods/registry.py): name, family, sparsifier × consensus, and
// every parameter with its scope, type and default. The planner and the search read parameters from here.
import type { Sparsification } from '../kernel/kernel.ts';
import { EvomergeError } from '../errors.ts';

/** `per_model`: resolved per input model (mergekit tensor_parameters); `global`: once per output tensor. */
export type ParameterScope = 'per_model' | 'global';

/**
 * `number` may be a gradient or filter list; `boolean` a flag; `rescale` is true/false or the string
 * `density`: true = mergekit's per-tensor L1-norm ratio ‖τ‖₁/‖trim(τ)‖₁, `density` = the DARE paper's 1/density
 * (Yu et al. 2024, eq. 2; mergekit before v0.1.0).
 */
export type ParameterType = 'number' | 'boolean' | 'rescale';

export interface MethodParameter {
  readonly name: string;
  readonly scope: ParameterScope;
  readonly type: ParameterType;
  /** Value when no level of the recipe sets it; absent = none (required, or optional like passthrough's scale). */
  readonly default?: number | boolean;
  /** A missing value is an error (mergekit `required=True`). */
  readonly required: boolean;
  /** Inclusive bounds a value must respect (checked when the recipe is validated). */
  readonly min?: number;
  readonly max?: number;
  /** One sentence for --help and the README. */
  readonly description: string;
}

export type MethodFamily = 'linear' | 'task_arithmetic' | 'slerp' | 'model_stock' | 'passthrough';

export interface MergeMethodDef {
  readonly name: string;
  readonly family: MethodFamily;
  /** Whether `base_model` is required. */
  readonly needsBase: boolean;
  /** Task-arithmetic family only (mergekit generalized_task_arithmetic.py). */
  readonly sparsification?: Sparsification;
  readonly consensus?: 'none' | 'sum';
  readonly parameters: readonly MethodParameter[];
  readonly description: string;
}

// ---------------------------------------------------------------------------------------------------------
// Parameter definitions (mergekit's names and defaults; MERGEKIT-SEMANTICS.md §4–§11)

const weight = (required: boolean): MethodParameter => ({
  name: 'weight', scope: 'per_model', type: 'number', required,
  description: 'how much of this model (of its task vector, in the task-arithmetic family)',
});
const density: MethodParameter = {
  name: 'density', scope: 'per_model', type: 'number', default: 1.0, required: false, min: 0, max: 1,
  description: 'fraction of each task vector kept by the sparsifier',
};
const gamma: MethodParameter = {
  name: 'gamma', scope: 'per_model', type: 'number', default: 0.01, required: false, min: 0, max: 1,
  description: 'breadcrumbs: fraction of the largest-magnitude entries dropped',
};
const epsilon: MethodParameter = {
  name: 'epsilon', scope: 'per_model', type: 'number', default: 0.15, required: false, min: 0, max: 1,
  description: 'della: spread of the keep probabilities around density (ranked by magnitude)',
};
const normalize = (def: boolean): MethodParameter => ({
  name: 'normalize', scope: 'global', type: 'boolean', default: def, required: false,
  description: 'divide by the sum of the weights (element-wise over the agreeing models with sign consensus)',
});
const lambda: MethodParameter = {
  name: 'lambda', scope: 'global', type: 'number', default: 1.0, required: false,
  description: 'scale of the merged task vector before it is added to the base',
};
const rescale = (def: boolean): MethodParameter => ({
  name: 'rescale', scope: 'global', type: 'rescale', default: def, required: false,
  description: 'rescale each sparsified task vector: true = L1-norm ratio (mergekit), "density" = 1/density (DARE paper), false = none',
});
const int8Mask: MethodParameter = {
  name: 'int8_mask', scope: 'global', type: 'boolean', default: false, required: false,
  description: 'accepted for mergekit compatibility; never changes the result',
};

/** mergekit generalized_task_arithmetic.py: one method per sparsifier × consensus, with its defaults (§5). */
function taskArithmetic(
  name: string,
  sparsification: Sparsification,
  consensus: 'none' | 'sum',
  defaults: { normalize: boolean; rescale: boolean },
  description: string,
): MergeMethodDef {
  const perModel = [weight(true), ...(sparsification === 'none' ? [] : [density])];
  if (sparsification === 'magnitude_outliers') perModel.push(gamma);
  if (sparsification === 'della_magprune') perModel.push(epsilon);
  return {
    name, family: 'task_arithmetic', needsBase: true, sparsification, consensus, description,
    parameters: [...perModel, normalize(defaults.normalize), lambda, rescale(defaults.rescale), int8Mask],
  };
}

/** Every method evomerge implements, in mergekit's registry order. */
export const MERGE_METHODS: readonly MergeMethodDef[] = [
  {
    name: 'linear', family: 'linear', needsBase: false,
    parameters: [weight(true), normalize(true)],
    description: 'weighted average Σ wᵢxᵢ / Σ wᵢ (mergekit linear.py)',
  },
  taskArithmetic('task_arithmetic', 'none', 'none', { normalize: false, rescale: false }, 'base + Σ wᵢτᵢ (Ilharco et al. 2023); negative weights negate a task'),
  taskArithmetic('ties', 'magnitude', 'sum', { normalize: true, rescale: false }, 'TIES: trim by magnitude, elect signs, disjoint mean (Yadav et al. 2023)'),
  taskArithmetic('dare_ties', 'random', 'sum', { normalize: false, rescale: true }, 'DARE random drop with TIES sign election (Yu et al. 2024)'),
  taskArithmetic('dare_linear', 'random', 'none', { normalize: false, rescale: true }, 'DARE random drop, summed (Yu et al. 2024)'),
  taskArithmetic('breadcrumbs', 'magnitude_outliers', 'none', { normalize: false, rescale: false }, 'Model Breadcrumbs: drop the largest and smallest entries (Davari & Belilovsky 2024)'),
  taskArithmetic('breadcrumbs_ties', 'magnitude_outliers', 'sum', { normalize: false, rescale: false }, 'Model Breadcrumbs with TIES sign election'),
  taskArithmetic('della', 'della_magprune', 'sum', { normalize: true, rescale: true }, 'DELLA: magnitude-ranked random drop with sign election (Deep et al. 2024)'),
  taskArithmetic('della_linear', 'della_magprune', 'none', { normalize: false, rescale: true }, 'DELLA without sign election'),
  {
    name: 'slerp', family: 'slerp', needsBase: true,
    parameters: [{
      name: 't', scope: 'global', type: 'number', required: true,
      description: 'interpolation position: 0 = base model, 1 = the other model',
    }],
    description: 'spherical interpolation of two models, one whole tensor at a time (mergekit slerp.py)',
  },
  {
    name: 'model_stock', family: 'model_stock', needsBase: true,
    parameters: [{
      name: 'filter_wise', scope: 'global', type: 'boolean', default: false, required: false,
      description: 'per-row instead of per-tensor ratio (only false is supported)',
    }],
    description: 'Model Stock: interpolate the fine-tunes\' mean towards the base by their angle (Jang et al. 2024)',
  },
  {
    name: 'passthrough', family: 'passthrough', needsBase: false,
    parameters: [{
      name: 'scale', scope: 'per_model', type: 'number', required: false,
      description: 'multiply the copied tensors by this factor',
    }],
    description: 'copy tensors unchanged; with slices, splice layers (mergekit passthrough.py)',
  },
];

/** The method of this name, or an error naming `merge_method` with the closest name. */
export function findMethod(name: string, file: string): MergeMethodDef {
  const m = MERGE_METHODS.find((x) => x.name === name);
  if (m) return m;
  throw new EvomergeError(
    'recipe.unknown_method',
    `unknown merge method "${name}"; evomerge implements ${MERGE_METHODS.map((x) => x.name).join(', ')}`,
    { file, field: 'merge_method' },
  );
}

/** The definition of one parameter of a method, if it takes it. */
export function methodParameter(method: MergeMethodDef, name: string): MethodParameter | undefined {
  return method.parameters.find((p) => p.name === name);
}
