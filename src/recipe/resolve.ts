// Parameter resolution with mergekit's semantics: precedence across levels, gradients over the layers and
// {filter, value} lists (mergekit config.py `ConfigReader.parameter`, `evaluate_setting`; plan.py for t).
import type { ParameterMap, Setting } from './recipe.ts';

export type Scalar = number | boolean | string;

/** One level of the precedence: its parameters and where they sit in the recipe (for messages). */
export interface ParameterLevel {
  readonly parameters: ParameterMap;
  /** e.g. `models[1].parameters`, `slices[0].parameters`, `parameters`. */
  readonly key: string;
}

/** A resolved value and the recipe key it came from (`models[1].parameters.weight`). */
export interface Resolved {
  readonly value: Scalar;
  readonly key: string;
}

/**
 * Value of one setting for one tensor at position t ∈ [0, 1] (mergekit config.py `evaluate_setting`).
 * Returns undefined when a filter list has no matching entry (the lookup then falls through).
 */
export function evaluateSetting(setting: Setting, tensorName: string, t: number): Scalar | undefined {
  if (typeof setting !== 'object') return setting;
  if (setting.kind === 'gradient') return interpolateGradient(setting.values, t);
  for (const entry of setting.entries) {
    // First entry whose filter is absent, "*", or a substring of the tensor name wins.
    if (
      entry.filter === undefined ||
      entry.filter === '' ||
      entry.filter === '*' ||
      tensorName.includes(entry.filter)
    ) {
      return evaluateSetting(entry.value, tensorName, t);
    }
  }
  return undefined;
}

/**
 * Piecewise-linear through equally spaced knots, in float64 (mergekit config.py `evaluate_setting`):
 * s = t·(m−1), i0 = int(s), i1 = min(m−1, i0+1), f = s − i0, value = (1−f)·g[i0] + f·g[i1].
 */
export function interpolateGradient(g: readonly number[], t: number): number {
  const m = g.length;
  const s = t * (m - 1);
  const i0 = Math.trunc(s);
  const i1 = Math.min(m - 1, i0 + 1);
  const f = s - i0;
  return (1 - f) * g[i0]! + f * g[i1]!;
}

/**
 * First non-null value of `name` across the levels, in order (mergekit config.py `ConfigReader.parameter`).
 * The caller lists the levels: for a per-model parameter the model's own, the output slice's, the global;
 * for a method-wide one the output slice's and the global. undefined = use the method's default.
 */
export function resolveParameter(
  name: string,
  levels: readonly ParameterLevel[],
  tensorName: string,
  t: number,
): Resolved | undefined {
  for (const level of levels) {
    const setting = level.parameters[name];
    if (setting === undefined) continue;
    const value = evaluateSetting(setting, tensorName, t);
    if (value !== undefined) return { value, key: `${level.key}.${name}` };
  }
  return undefined;
}

/**
 * Position of a layer inside its output slice (mergekit plan.py `_plan_slice`): idx/(n−1), and 1 for a
 * one-layer slice. Tensors outside the layers (embeddings, final norm, lm_head) use t = 0 (mergekit ≥ 0.1.2).
 */
export function layerPosition(indexInSlice: number, sliceLength: number): number {
  return sliceLength > 1 ? indexInSlice / (sliceLength - 1) : 1;
}

/** t for tensors that are not in a layer (mergekit ≥ 0.1.2 plans them at t = 0). */
export const NON_LAYER_POSITION = 0;
