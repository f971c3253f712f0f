// What a merge method is, as data: its parameters (scope, type, default, bounds) and the context its op builder
// receives for one output tensor. registry.ts lists the methods; the builders live beside their definitions.
import type { Sparsification, SourceRef } from '../kernel/kernel.ts';
import type { Scalar } from '../recipe/resolve.ts';

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

export type MethodFamily =
  | 'linear'
  | 'task_arithmetic'
  | 'slerp'
  | 'model_stock'
  | 'passthrough'
  | 'sce'
  | 'nuslerp'
  | 'multislerp'
  | 'karcher'
  | 'arcee_fusion'
  | 'nearswap';

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

/** One input of an output tensor as a method sees it. */
export interface OpInput {
  readonly ref: SourceRef;
  /** The recipe key of its source (`models[1]`, `slices[0].sources[2]`), for messages. */
  readonly key: string;
  /** Whether it is read from the recipe's base_model. */
  readonly isBase: boolean;
}

/** One output tensor as the planner hands it to a method: inputs checked, parameter lookups bound to it. */
export interface OpContext {
  readonly tensor: string;
  readonly shape: readonly number[];
  readonly inputs: readonly OpInput[];
  /** Seed of the DARE / DELLA streams. */
  readonly seed: number;
  /** A per-model parameter of one input: recipe levels, then the default; a missing required one is refused. */
  perModel(input: OpInput, name: string): Scalar | undefined;
  /** A method-wide parameter: recipe levels, then the default; a missing required one is refused. */
  global(name: string): Scalar | undefined;
  fail(code: string, field: string, what: string): never;
}
