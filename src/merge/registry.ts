// The merge methods as data (mergekit merge_methods/registry.py): name, family, sparsifier × consensus, every
// parameter with its scope, type and default, and what each family asks of the kernel for one output tensor.
// The planner and the search read method behaviour from here only.
import { numel } from '../checkpoint/tensor-source.ts';
import type { MergeOp, Sparsification, TaskVectorInput } from '../kernel/kernel.ts';
import { rngKey } from '../kernel/rng.ts';
import { EvomergeError } from '../errors.ts';
import type { MergeMethodDef, MethodFamily, MethodParameter, OpContext } from './method-def.ts';
import { NEWER_FAMILY_OPS, NEWER_METHODS } from './newer-methods.ts';

export type {
  MergeMethodDef,
  MethodFamily,
  MethodParameter,
  OpContext,
  OpInput,
  ParameterScope,
  ParameterType,
} from './method-def.ts';

// ---------------------------------------------------------------------------------------------------------
// Parameter definitions (mergekit's names and defaults; MERGEKIT-SEMANTICS.md §4–§11)

const weight = (required: boolean): MethodParameter => ({
  name: 'weight',
  scope: 'per_model',
  type: 'number',
  required,
  description: 'how much of this model (of its task vector, in the task-arithmetic family)',
});
const density: MethodParameter = {
  name: 'density',
  scope: 'per_model',
  type: 'number',
  default: 1.0,
  required: false,
  min: 0,
  max: 1,
  description: 'fraction of each task vector kept by the sparsifier',
};
const gamma: MethodParameter = {
  name: 'gamma',
  scope: 'per_model',
  type: 'number',
  default: 0.01,
  required: false,
  min: 0,
  max: 1,
  description: 'breadcrumbs: fraction of the largest-magnitude entries dropped',
};
const epsilon: MethodParameter = {
  name: 'epsilon',
  scope: 'per_model',
  type: 'number',
  default: 0.15,
  required: false,
  min: 0,
  max: 1,
  description: 'della: spread of the keep probabilities around density (ranked by magnitude)',
};
const normalize = (def: boolean): MethodParameter => ({
  name: 'normalize',
  scope: 'global',
  type: 'boolean',
  default: def,
  required: false,
  description: 'divide by the sum of the weights (element-wise over the agreeing models with sign consensus)',
});
const lambda: MethodParameter = {
  name: 'lambda',
  scope: 'global',
  type: 'number',
  default: 1.0,
  required: false,
  description: 'scale of the merged task vector before it is added to the base',
};
const rescale = (def: boolean): MethodParameter => ({
  name: 'rescale',
  scope: 'global',
  type: 'rescale',
  default: def,
  required: false,
  description:
    'rescale each sparsified task vector: true = L1-norm ratio (mergekit), "density" = 1/density (DARE paper), false = none',
});
const int8Mask: MethodParameter = {
  name: 'int8_mask',
  scope: 'global',
  type: 'boolean',
  default: false,
  required: false,
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
    name,
    family: 'task_arithmetic',
    needsBase: true,
    sparsification,
    consensus,
    description,
    parameters: [...perModel, normalize(defaults.normalize), lambda, rescale(defaults.rescale), int8Mask],
  };
}

/** Every method evomerge implements: mergekit's registry order, then the methods added since 2024. */
export const MERGE_METHODS: readonly MergeMethodDef[] = [
  {
    name: 'linear',
    family: 'linear',
    needsBase: false,
    parameters: [weight(true), normalize(true)],
    description: 'weighted average Σ wᵢxᵢ / Σ wᵢ (mergekit linear.py)',
  },
  taskArithmetic(
    'task_arithmetic',
    'none',
    'none',
    { normalize: false, rescale: false },
    'base + Σ wᵢτᵢ (Ilharco et al. 2023); negative weights negate a task',
  ),
  taskArithmetic(
    'ties',
    'magnitude',
    'sum',
    { normalize: true, rescale: false },
    'TIES: trim by magnitude, elect signs, disjoint mean (Yadav et al. 2023)',
  ),
  taskArithmetic(
    'dare_ties',
    'random',
    'sum',
    { normalize: false, rescale: true },
    'DARE random drop with TIES sign election (Yu et al. 2024)',
  ),
  taskArithmetic(
    'dare_linear',
    'random',
    'none',
    { normalize: false, rescale: true },
    'DARE random drop, summed (Yu et al. 2024)',
  ),
  taskArithmetic(
    'breadcrumbs',
    'magnitude_outliers',
    'none',
    { normalize: false, rescale: false },
    'Model Breadcrumbs: drop the largest and smallest entries (Davari & Belilovsky 2024)',
  ),
  taskArithmetic(
    'breadcrumbs_ties',
    'magnitude_outliers',
    'sum',
    { normalize: false, rescale: false },
    'Model Breadcrumbs with TIES sign election',
  ),
  taskArithmetic(
    'della',
    'della_magprune',
    'sum',
    { normalize: true, rescale: true },
    'DELLA: magnitude-ranked random drop with sign election (Deep et al. 2024)',
  ),
  taskArithmetic(
    'della_linear',
    'della_magprune',
    'none',
    { normalize: false, rescale: true },
    'DELLA without sign election',
  ),
  {
    name: 'slerp',
    family: 'slerp',
    needsBase: true,
    parameters: [
      {
        name: 't',
        scope: 'global',
        type: 'number',
        required: true,
        description: 'interpolation position: 0 = base model, 1 = the other model',
      },
    ],
    description: 'spherical interpolation of two models, one whole tensor at a time (mergekit slerp.py)',
  },
  {
    name: 'model_stock',
    family: 'model_stock',
    needsBase: true,
    parameters: [
      {
        name: 'filter_wise',
        scope: 'global',
        type: 'boolean',
        default: false,
        required: false,
        description: 'per-row instead of per-tensor ratio (only false is supported)',
      },
    ],
    description: "Model Stock: interpolate the fine-tunes' mean towards the base by their angle (Jang et al. 2024)",
  },
  {
    name: 'passthrough',
    family: 'passthrough',
    needsBase: false,
    parameters: [
      {
        name: 'scale',
        scope: 'per_model',
        type: 'number',
        required: false,
        description: 'multiply the copied tensors by this factor',
      },
    ],
    description: 'copy tensors unchanged; with slices, splice layers (mergekit passthrough.py)',
  },
  ...NEWER_METHODS,
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

/** Whether a parameter is method-wide (one value per output tensor, not per model) in the methods taking it. */
export function isMethodWide(name: string): boolean {
  return MERGE_METHODS.some((m) => m.parameters.some((p) => p.name === name && p.scope === 'global'));
}

// ---------------------------------------------------------------------------------------------------------
// What each family asks of the kernel for one output tensor

/** The kernel operation of one output tensor under a method. */
export function methodOp(method: MergeMethodDef, ctx: OpContext): MergeOp {
  return FAMILY_OPS[method.family](method, ctx);
}

const FAMILY_OPS: Record<MethodFamily, (method: MergeMethodDef, ctx: OpContext) => MergeOp> = {
  linear: (_method, ctx) => {
    const weighted = ctx.inputs.map((inp) => ({ ref: inp.ref, weight: ctx.perModel(inp, 'weight') as number }));
    const normalize = ctx.global('normalize') as boolean;
    if (normalize && weighted.reduce((s, w) => s + w.weight, 0) === 0) {
      ctx.fail(
        'merge.zero_weight_sum',
        `${ctx.inputs[0]!.key}.parameters.weight`,
        `the weights of tensor "${ctx.tensor}" sum to 0, and normalize divides by that sum`,
      );
    }
    return { kind: 'weighted_sum', inputs: weighted, normalize };
  },
  passthrough: (_method, ctx) => {
    const inp = ctx.inputs[0]!;
    const scale = ctx.perModel(inp, 'scale');
    return {
      kind: 'weighted_sum',
      inputs: [{ ref: inp.ref, weight: scale === undefined ? 1 : (scale as number) }],
      normalize: false,
    };
  },
  task_arithmetic: (method, ctx) => {
    const base = ctx.inputs.find((inp) => inp.isBase)!;
    const size = numel(ctx.shape);
    const tvInputs: TaskVectorInput[] = [];
    ctx.inputs.forEach((inp, modelIndex) => {
      if (inp.isBase) return; // mergekit skips a model listed as the base
      const density = (ctx.perModel(inp, 'density') as number | undefined) ?? 1;
      if (method.sparsification === 'magnitude' && density < 1 && Math.trunc(density * size) === 0) {
        // mergekit sparsify.py magnitude: `assert k > 0`.
        ctx.fail(
          'merge.density_keeps_nothing',
          `${inp.key}.parameters.density`,
          `density ${density} keeps no entry of tensor "${inp.ref.tensor}" (${size} elements)`,
        );
      }
      tvInputs.push({
        ref: inp.ref,
        weight: ctx.perModel(inp, 'weight') as number,
        density,
        gamma: (ctx.perModel(inp, 'gamma') as number | undefined) ?? 0,
        epsilon: (ctx.perModel(inp, 'epsilon') as number | undefined) ?? 0,
        modelIndex,
      });
    });
    const rescale = ctx.global('rescale');
    return {
      kind: 'task_arithmetic',
      base: base.ref,
      inputs: tvInputs,
      sparsification: method.sparsification!,
      consensus: method.consensus!,
      normalize: ctx.global('normalize') as boolean,
      lambda: ctx.global('lambda') as number,
      rescale: rescale === 'density' ? 'density' : rescale === true ? 'l1' : 'none',
      rng: rngKey(ctx.seed, ctx.tensor),
    };
  },
  slerp: (_method, ctx) => {
    const a = ctx.inputs.find((inp) => inp.isBase)!;
    const b = ctx.inputs.find((inp) => !inp.isBase)!;
    return { kind: 'slerp', a: a.ref, b: b.ref, t: ctx.global('t') as number };
  },
  model_stock: (_method, ctx) => {
    ctx.global('filter_wise');
    const base = ctx.inputs.find((inp) => inp.isBase)!;
    return {
      kind: 'model_stock',
      base: base.ref,
      inputs: ctx.inputs.filter((inp) => inp !== base).map((inp) => inp.ref),
    };
  },
  ...NEWER_FAMILY_OPS,
};
