// The merge methods added to mergekit since 2024, as data (registry.ts lists them after the classic ones):
// sce, nuslerp, multislerp, karcher, arcee_fusion, nearswap. Each has mergekit's parameter names, scopes and
// defaults (mergekit merge_methods/<name>.py at v0.1.4) and builds its kernel op for one output tensor,
// refusing the model counts mergekit fails on at merge time.
import type { MergeOp } from '../kernel/kernel.ts';
import type { MergeMethodDef, MethodFamily, MethodParameter, OpContext, OpInput } from './method-def.ts';

export type NewerFamily = Extract<
  MethodFamily,
  'sce' | 'nuslerp' | 'multislerp' | 'karcher' | 'arcee_fusion' | 'nearswap'
>;

const requiredWeight: MethodParameter = {
  name: 'weight',
  scope: 'per_model',
  type: 'number',
  required: true,
  description: 'how much of this model',
};

const flag = (name: string, def: boolean, description: string): MethodParameter => ({
  name,
  scope: 'global',
  type: 'boolean',
  default: def,
  required: false,
  description,
});

export const NEWER_METHODS: readonly MergeMethodDef[] = [
  {
    name: 'sce',
    family: 'sce',
    needsBase: true,
    parameters: [
      {
        name: 'select_topk',
        scope: 'global',
        type: 'number',
        default: 1.0,
        required: false,
        min: 0,
        max: 1,
        description: 'fraction of the entries kept, those of highest variance across the task vectors (1 = all)',
      },
      flag('int8_mask', false, 'accepted for mergekit compatibility; never changes the result'),
    ],
    description:
      'SCE: select high-variance entries, weight each task vector by its mean square, erase minority signs ' +
      '(Wan et al. 2024, FuseChat, arXiv:2408.07990)',
  },
  {
    name: 'nuslerp',
    family: 'nuslerp',
    needsBase: false,
    parameters: [
      requiredWeight,
      flag('nuslerp_flatten', true, 'slerp each tensor as one flat vector; false: each row separately'),
      flag('nuslerp_row_wise', false, 'with nuslerp_flatten false: slerp along dim 0 (columns) instead of rows'),
    ],
    description:
      'NuSLERP: slerp of two models (of their task vectors with a base) at t = w₂/(w₁+w₂), flat or per row ' +
      '(mergekit nuslerp.py; Shoemake 1985)',
  },
  {
    name: 'multislerp',
    family: 'multislerp',
    needsBase: false,
    parameters: [
      requiredWeight,
      flag('normalize_weights', true, 'divide the weights by their sum'),
      {
        name: 'eps',
        scope: 'global',
        type: 'number',
        default: 1e-8,
        required: false,
        min: 0,
        description: 'added to the norms before dividing by them',
      },
    ],
    description:
      'Multi-SLERP: weighted barycentre of N models (task vectors with a base) on the hypersphere ' +
      '(Goddard, goddard.blog/posts/multislerp-wow-what-a-cool-idea)',
  },
  {
    name: 'karcher',
    family: 'karcher',
    needsBase: false,
    parameters: [
      {
        name: 'max_iter',
        scope: 'global',
        type: 'number',
        default: 10,
        required: false,
        min: 0,
        description: 'most fixed-point iterations of the Karcher mean (a whole number)',
      },
      {
        name: 'tol',
        scope: 'global',
        type: 'number',
        default: 1e-5,
        required: false,
        min: 0,
        description: 'stop when the tangent step is shorter than this',
      },
    ],
    description:
      'Karcher mean: Riemannian mean of the models on the hypersphere, scaled by their mean norm ' +
      '(Karcher 1977; mergekit karcher.py)',
  },
  {
    name: 'arcee_fusion',
    family: 'arcee_fusion',
    needsBase: true,
    parameters: [],
    description:
      "Arcee Fusion: keep the expert's deltas whose |δ|·KL of the row softmaxes reaches median + 1.5·IQR " +
      '(mergekit arcee_fusion.py)',
  },
  {
    name: 'nearswap',
    family: 'nearswap',
    needsBase: true,
    parameters: [
      {
        name: 't',
        scope: 'global',
        type: 'number',
        required: true,
        min: 0,
        description: 'similarity threshold: entries within t of the base take the other model fully',
      },
    ],
    description:
      'NearSwap: interpolate towards the other model by clamp(t/|base − other|, 0, 1) per entry ' +
      '(alchemonaut, huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001)',
  },
];

/** The one input copied as is (weight 1): mergekit returns a lone tensor unchanged. */
function copyOf(inp: OpInput): MergeOp {
  return { kind: 'weighted_sum', inputs: [{ ref: inp.ref, weight: 1 }], normalize: false };
}

function others(ctx: OpContext): OpInput[] {
  return ctx.inputs.filter((inp) => !inp.isBase);
}

function exactly(ctx: OpContext, method: string, count: number, got: OpInput[], what: string): void {
  if (got.length !== count) {
    ctx.fail(
      `merge.${method}_models`,
      got[count]?.key ?? ctx.inputs[0]?.key ?? 'models',
      `${method} merges ${what}; tensor "${ctx.tensor}" has ${got.length} model(s) besides the base`,
    );
  }
}

export const NEWER_FAMILY_OPS: Record<NewerFamily, (method: MergeMethodDef, ctx: OpContext) => MergeOp> = {
  sce: (_method, ctx) => {
    ctx.global('int8_mask');
    return {
      kind: 'sce',
      base: ctx.inputs.find((inp) => inp.isBase)!.ref,
      inputs: others(ctx).map((inp) => inp.ref),
      selectTopk: ctx.global('select_topk') as number,
    };
  },
  nuslerp: (_method, ctx) => {
    if (ctx.inputs.length === 1) return copyOf(ctx.inputs[0]!);
    const pair = others(ctx);
    exactly(ctx, 'nuslerp', 2, pair, 'exactly two models (plus an optional base_model, not one of the two)');
    const [w0, w1] = pair.map((inp) => ctx.perModel(inp, 'weight') as number) as [number, number];
    const sum = 0 + w0 + w1;
    const base = ctx.inputs.find((inp) => inp.isBase);
    return {
      kind: 'nuslerp',
      a: pair[0]!.ref,
      b: pair[1]!.ref,
      ...(base ? { base: base.ref } : {}),
      // mergekit: t = w₂ / (w₁ + w₂), and 0.5 when the weights sum to about 0 ("more sane than exploding").
      t: Math.abs(sum) < 1e-6 ? 0.5 : w1 / sum,
      flatten: ctx.global('nuslerp_flatten') as boolean,
      rowWise: ctx.global('nuslerp_row_wise') as boolean,
    };
  },
  multislerp: (_method, ctx) => {
    const models = others(ctx);
    if (models.length === 0) {
      ctx.fail('merge.multislerp_models', 'models', `multislerp needs at least one model besides the base`);
    }
    const base = ctx.inputs.find((inp) => inp.isBase);
    return {
      kind: 'multislerp',
      inputs: models.map((inp) => ({ ref: inp.ref, weight: ctx.perModel(inp, 'weight') as number })),
      ...(base ? { base: base.ref } : {}),
      normalizeWeights: ctx.global('normalize_weights') as boolean,
      eps: ctx.global('eps') as number,
    };
  },
  karcher: (_method, ctx) => {
    const maxIter = ctx.global('max_iter') as number;
    if (!Number.isInteger(maxIter)) {
      // mergekit runs range(max_iter), which refuses a float.
      ctx.fail('recipe.bad_value', 'parameters.max_iter', `max_iter must be a whole number, got ${maxIter}`);
    }
    // mergekit's karcher has no base: a base_model is one more model of equal weight.
    return { kind: 'karcher', inputs: ctx.inputs.map((inp) => inp.ref), maxIter, tol: ctx.global('tol') as number };
  },
  arcee_fusion: (_method, ctx) => {
    if (ctx.inputs.length === 1) return copyOf(ctx.inputs[0]!);
    const other = others(ctx);
    exactly(ctx, 'arcee_fusion', 1, other, 'base_model and exactly one other model');
    return { kind: 'arcee_fusion', base: ctx.inputs.find((inp) => inp.isBase)!.ref, other: other[0]!.ref };
  },
  nearswap: (_method, ctx) => {
    const t = ctx.global('t') as number;
    const base = ctx.inputs.find((inp) => inp.isBase)!;
    const other = others(ctx);
    if (other.length === 0) return copyOf(base);
    exactly(ctx, 'nearswap', 1, other, 'base_model and exactly one other model');
    return { kind: 'nearswap', base: base.ref, other: other[0]!.ref, t };
  },
};
