// Recipe + opened checkpoints → the ordered output tensors and one TensorJob each: everything mergekit's
// planner (plan.py) decides — slices, stacking order, resolved parameters — checked before anything is written.
import { EvomergeError } from '../errors.ts';
import type { TensorSource, DType } from '../checkpoint/tensor-source.ts';
import type { SourceRef, TensorJob } from '../kernel/kernel.ts';
import type { Recipe, RecipeDType, RecipeSource } from '../recipe/recipe.ts';
import {
  layerPosition,
  NON_LAYER_POSITION,
  resolveParameter,
  type ParameterLevel,
  type Scalar,
} from '../recipe/resolve.ts';
import { methodOp, methodParameter, type MergeMethodDef } from './registry.ts';
import { recipeSlices, validateRecipe, type SliceSpec } from './validate.ts';
import { planTokenizer, type TokenizerFiles, type TokenizerPlan } from './tokenizer/build.ts';
import { permutedRef, planEmbeddingPermutation, type EmbeddingPermutation } from './tokenizer/embed.ts';

/** What the planner needs of a model: its folder, config and tensors (checkpoint/model-dir.ts ModelDir fits). */
export interface PlanModel {
  readonly dir: string;
  readonly config: Record<string, unknown>;
  readonly tensors: TensorSource;
  /** The files behind `tensors`, so that messages name the file that holds a tensor. */
  readonly files?: readonly TensorSource[];
}

/** One input of one output tensor: where it is read from, its stored shape and the file holding it. */
export interface PlannedInput {
  readonly ref: SourceRef;
  readonly storedShape: readonly number[];
  readonly storedDtype: DType;
  readonly file: string;
}

export interface PlannedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly job: TensorJob;
  /** Distinct inputs of the job; inputs whose stored shape exceeds `shape` are cropped top-left (embeddings). */
  readonly inputs: readonly PlannedInput[];
  /** With a tokenizer setting: how each input's rows are permuted onto the output vocabulary (embeddings). */
  readonly permutation?: EmbeddingPermutation;
}

export interface MergePlan {
  readonly recipe: Recipe;
  readonly method: MergeMethodDef;
  /** Seed of the DARE / DELLA streams: --seed, else the recipe's random_seed, else 0. */
  readonly seed: number;
  /** Output tensors in write order (mergekit's: embeddings, layers 0..L−1, final norm, lm_head). */
  readonly tensors: readonly PlannedTensor[];
  /** The model whose config, tokenizer and generation files the output takes (base_model, else the first). */
  readonly referenceDir: string;
  /** The output config.json: the reference's with num_hidden_layers and torch_dtype updated. */
  readonly config: Record<string, unknown>;
  readonly outDtype: DType;
  /**
   * The recipe's `dtype`: every input is rounded to it when loaded, as mergekit's LoadTensor does
   * (`x.to(dtype)`); the arithmetic itself is float32. Absent: inputs are used as stored.
   */
  readonly loadDtype?: DType;
  readonly layerCount: number;
  /** The tokenizer files to write, when the recipe has a tokenizer setting (else the reference's are copied). */
  readonly tokenizer?: TokenizerFiles;
}

export interface PlanOptions {
  /** Overrides the recipe's random_seed. */
  readonly seed?: number;
}

// ---------------------------------------------------------------------------------------------------------
// Tensor names and order

/** `<prefix>.layers.<N>.<suffix>`: the blocks of any Hugging Face decoder. */
const LAYER_NAME = /^((?:.+\.)?layers)\.(\d+)\.(.+)$/;

/** mergekit _data/architectures/llama.json: the order of a layer's tensors (others follow, by name). */
const KNOWN_LAYER_ORDER = [
  'input_layernorm',
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'post_attention_layernorm',
  'mlp.up_proj',
  'mlp.gate_proj',
  'mlp.down_proj',
];

/** mergekit's tied_names for Llama: a model without lm_head.weight contributes its embeddings instead. */
const LM_HEAD = 'lm_head.weight';

interface LayerName {
  readonly prefix: string;
  readonly index: number;
  readonly suffix: string;
}

function parseLayerName(name: string): LayerName | undefined {
  const m = LAYER_NAME.exec(name);
  return m ? { prefix: m[1]!, index: Number(m[2]), suffix: m[3]! } : undefined;
}

/** Tensors outside the layers that come before them (embeddings); the others (final norm, heads) come after. */
function isPreLayer(name: string): boolean {
  return /embed|\bwte\b|\bwpe\b/.test(name);
}

/** Embedding matrices, which mergekit crops to their common top-left block when shapes differ (rectify_embed.py). */
function isEmbedding(name: string): boolean {
  return name.includes('embed_tokens') || name.includes('lm_head') || /\bwte\b/.test(name);
}

function layerSuffixRank(suffix: string): number {
  const base = suffix.replace(/\.(weight|bias)$/, '');
  const i = KNOWN_LAYER_ORDER.indexOf(base);
  return i === -1 ? KNOWN_LAYER_ORDER.length : i;
}

function compareLayerSuffix(a: string, b: string): number {
  return layerSuffixRank(a) - layerSuffixRank(b) || (a < b ? -1 : a > b ? 1 : 0);
}

function comparePost(a: string, b: string): number {
  const ra = a.includes('lm_head') ? 1 : 0;
  const rb = b.includes('lm_head') ? 1 : 0;
  return ra - rb || (a < b ? -1 : a > b ? 1 : 0);
}

/** A model's tensor names split into the part before the layers, the layers, and the part after. */
interface Layout {
  readonly pre: readonly string[];
  readonly post: readonly string[];
  readonly prefix?: string;
  /** Suffixes of each layer, in order. */
  readonly layers: readonly (readonly string[])[];
}

function layoutOf(model: PlanModel): Layout {
  const pre: string[] = [];
  const post: string[] = [];
  const layers: string[][] = [];
  let prefix: string | undefined;
  for (const name of model.tensors.tensorNames()) {
    const l = parseLayerName(name);
    if (!l) {
      (isPreLayer(name) ? pre : post).push(name);
      continue;
    }
    if (prefix !== undefined && prefix !== l.prefix) {
      throw new EvomergeError(
        'merge.unsupported_layout',
        `two layer stacks ("${prefix}" and "${l.prefix}"); evomerge merges one stack of layers`,
        {
          file: fileOf(model, name),
          field: `tensor "${name}"`,
        },
      );
    }
    prefix = l.prefix;
    (layers[l.index] ??= []).push(l.suffix);
  }
  for (let i = 0; i < layers.length; i++) {
    if (!layers[i]) {
      throw new EvomergeError(
        'merge.unsupported_layout',
        `layer ${i} has no tensors but layer ${layers.length - 1} has`,
        { file: model.tensors.location },
      );
    }
    layers[i]!.sort(compareLayerSuffix);
  }
  pre.sort();
  post.sort(comparePost);
  return { pre, post, ...(prefix !== undefined ? { prefix } : {}), layers };
}

function fileOf(model: PlanModel, tensor: string): string {
  return model.files?.find((f) => f.hasTensor(tensor))?.location ?? model.tensors.location;
}

// ---------------------------------------------------------------------------------------------------------
// The planner

const RECIPE_TO_DTYPE: Record<RecipeDType, DType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
const DTYPE_TO_TORCH: Record<DType, RecipeDType> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** A source with its layer range filled in. */
interface Source {
  readonly spec: RecipeSource;
  readonly model: PlanModel;
  readonly layout: Layout;
  readonly start: number;
}

interface Slice {
  readonly spec: SliceSpec;
  readonly sources: readonly Source[];
  readonly length: number;
  /** Index of the source whose names and shapes define the output: the base model if listed, else the first. */
  readonly refIndex: number;
}

/** What every stage of the planner shares: the recipe, its method and seed, the opened models and the error. */
interface PlanContext {
  readonly recipe: Recipe;
  readonly method: MergeMethodDef;
  readonly seed: number;
  readonly modelOf: (dir: string) => PlanModel;
  readonly layoutFor: (dir: string) => Layout;
  readonly tokenizer: TokenizerPlan | undefined;
  /** Throws an EvomergeError naming `file` (default: the recipe). */
  readonly fail: (code: string, field: string | undefined, what: string, file?: string) => never;
}

/**
 * Plans a merge: validates the recipe against its method and the checkpoints against each other (names,
 * shapes, layer ranges, required parameters), then builds one job per output tensor. Reads no tensor data.
 * `models` maps each absolute model folder of the recipe to its opened checkpoint.
 */
export function planMerge(
  recipe: Recipe,
  models: ReadonlyMap<string, PlanModel>,
  options: PlanOptions = {},
): MergePlan {
  const method = validateRecipe(recipe);
  const seed = options.seed ?? recipe.randomSeed ?? 0;
  const modelOf = (dir: string): PlanModel => {
    const m = models.get(dir);
    if (!m) throw new EvomergeError('internal', `model ${dir} was not opened (this is a bug in evomerge)`);
    return m;
  };
  const layouts = new Map<string, Layout>();
  const layoutFor = (dir: string): Layout => {
    let l = layouts.get(dir);
    if (!l) layouts.set(dir, (l = layoutOf(modelOf(dir))));
    return l;
  };
  const ctx: PlanContext = {
    recipe,
    method,
    seed,
    modelOf,
    layoutFor,
    tokenizer: planTokenizer(recipe, (dir) => modelOf(dir).config),
    fail: (code, field, what, file = recipe.file) => {
      throw new EvomergeError(code, what, { file, field });
    },
  };

  const slices = planSlices(ctx);
  const reference = slices[0]!.sources[slices[0]!.refIndex]!;
  checkSameArchitecture(ctx, slices, reference);
  const { tensors, layerCount } = planTensors(ctx, slices, reference.layout);
  const out = outputConfig(ctx, reference, layerCount);
  // mergekit merge.py _update_config_vocab: vocab_size is the (padded) size of the output vocabulary.
  if (ctx.tokenizer) out.config.vocab_size = ctx.tokenizer.rows;
  return {
    recipe,
    method,
    seed,
    tensors,
    ...out,
    layerCount,
    ...(ctx.tokenizer ? { tokenizer: ctx.tokenizer.files } : {}),
    ...(recipe.dtype !== undefined ? { loadDtype: RECIPE_TO_DTYPE[recipe.dtype] } : {}),
  };
}

/** Slices with their layer ranges (models: → one slice [0, L) per model; all models must have L layers). */
function planSlices(ctx: PlanContext): Slice[] {
  const { recipe, fail } = ctx;
  return recipeSlices(recipe).map((spec) => {
    const refIndex = Math.max(
      0,
      spec.sources.findIndex((s) => s.model === recipe.baseModel),
    );
    const sources: Source[] = spec.sources.map((src) => {
      const model = ctx.modelOf(src.model);
      const layout = ctx.layoutFor(src.model);
      const range = src.layerRange ?? [0, layout.layers.length];
      if (range[1] > layout.layers.length) {
        fail(
          'recipe.layer_range_out_of_bounds',
          `${src.key}.layer_range`,
          `[${range[0]}, ${range[1]}] is past the model's ${layout.layers.length} layers`,
        );
      }
      return { spec: src, model, layout, start: range[0] };
    });
    const lengths = spec.sources.map((src, i) =>
      src.layerRange ? src.layerRange[1] - src.layerRange[0] : sources[i]!.layout.layers.length,
    );
    const ref = sources[refIndex]!;
    lengths.forEach((n, i) => {
      if (n !== lengths[refIndex]) {
        const src = sources[i]!;
        if (spec.sources[i]!.layerRange) {
          fail(
            'recipe.slice_length_mismatch',
            `${src.spec.key}.layer_range`,
            `covers ${n} layers but ${ref.spec.key} covers ${lengths[refIndex]}; every source of a slice needs the same number of layers`,
          );
        }
        fail(
          'merge.layer_count_mismatch',
          undefined,
          `has ${n} layers but ${ref.model.dir} has ${lengths[refIndex]}; models: recipes need models with the same layer count`,
          src.model.dir,
        );
      }
    });
    return { spec, sources, length: lengths[refIndex]!, refIndex };
  });
}

/** Same architecture: every model has the reference's non-layer tensors and layer prefix. */
function checkSameArchitecture(ctx: PlanContext, slices: readonly Slice[], reference: Source): void {
  const { fail } = ctx;
  const refLayout = reference.layout;
  const refNonLayer = new Set([...refLayout.pre, ...refLayout.post]);
  for (const dir of new Set(slices.flatMap((s) => s.sources.map((x) => x.spec.model)))) {
    if (dir === reference.spec.model) continue;
    const model = ctx.modelOf(dir);
    const layout = ctx.layoutFor(dir);
    const nonLayer = new Set([...layout.pre, ...layout.post]);
    for (const name of refNonLayer) {
      if (!nonLayer.has(name) && !(name === LM_HEAD && tiedEmbedding(model) !== undefined)) {
        fail(
          'merge.tensor_missing',
          `tensor "${name}"`,
          `missing; ${reference.model.tensors.location} has it (every model needs the same tensor names)`,
          model.tensors.location,
        );
      }
    }
    for (const name of nonLayer) {
      if (!refNonLayer.has(name) && name !== LM_HEAD) {
        fail(
          'merge.tensor_extra',
          `tensor "${name}"`,
          `not in ${reference.model.tensors.location} (every model needs the same tensor names)`,
          fileOf(model, name),
        );
      }
    }
    if (layout.layers.length > 0 && refLayout.layers.length > 0 && layout.prefix !== refLayout.prefix) {
      fail(
        'merge.tensor_missing',
        undefined,
        `layers are named "${layout.prefix}.N" but "${refLayout.prefix}.N" in ${reference.model.tensors.location}`,
        model.tensors.location,
      );
    }
  }
}

/**
 * The output tensors in write order: embeddings with the first slice, the layers slice by slice (renumbered
 * from 0), then the final norm and lm_head with the last slice; non-layer tensors at t = 0 (mergekit plan.py).
 */
function planTensors(
  ctx: PlanContext,
  slices: readonly Slice[],
  refLayout: Layout,
): { tensors: PlannedTensor[]; layerCount: number } {
  const first = slices[0]!;
  const last = slices[slices.length - 1]!;
  const tensors: PlannedTensor[] = [];
  const push = (outName: string, slice: Slice, inputNameOf: (src: Source) => string, t: number): void => {
    tensors.push(planTensor(ctx, outName, slice, inputNameOf, t));
  };
  for (const name of refLayout.pre) push(name, first, () => name, NON_LAYER_POSITION);
  let outLayer = 0;
  for (const slice of slices) {
    const ref = slice.sources[slice.refIndex]!;
    for (let i = 0; i < slice.length; i++) {
      const t = layerPosition(i, slice.length);
      const refSuffixes = ref.layout.layers[ref.start + i]!;
      checkLayerTensors(ctx, slice, i);
      for (const suffix of refSuffixes) {
        const outName = `${refLayout.prefix ?? ref.layout.prefix}.${outLayer}.${suffix}`;
        push(outName, slice, (src) => `${src.layout.prefix}.${src.start + i}.${suffix}`, t);
      }
      outLayer++;
    }
  }
  const lastRef = last.sources[last.refIndex]!;
  for (const name of lastRef.layout.post) push(name, last, () => name, NON_LAYER_POSITION);
  return { tensors, layerCount: outLayer };
}

/** Layer i of a slice has the same tensors in every source as in the slice's reference. */
function checkLayerTensors(ctx: PlanContext, slice: Slice, i: number): void {
  const ref = slice.sources[slice.refIndex]!;
  const refSuffixes = ref.layout.layers[ref.start + i]!;
  for (const src of slice.sources) {
    const suffixes = src.layout.layers[src.start + i]!;
    const missing = refSuffixes.find((s) => !suffixes.includes(s));
    const extra = suffixes.find((s) => !refSuffixes.includes(s));
    if (missing !== undefined) {
      const name = `${src.layout.prefix}.${src.start + i}.${missing}`;
      ctx.fail(
        'merge.tensor_missing',
        `tensor "${name}"`,
        `missing; ${ref.model.tensors.location} has ${ref.layout.prefix}.${ref.start + i}.${missing}`,
        src.model.tensors.location,
      );
    }
    if (extra !== undefined) {
      const name = `${src.layout.prefix}.${src.start + i}.${extra}`;
      ctx.fail(
        'merge.tensor_extra',
        `tensor "${name}"`,
        `not in ${ref.model.tensors.location} (every model needs the same tensor names)`,
        fileOf(src.model, name),
      );
    }
  }
}

/** An input of one output tensor as read: its source, where it lies, and its stored shape and dtype. */
interface TensorInput {
  readonly src: Source;
  readonly ref: SourceRef;
  readonly storedShape: readonly number[];
  readonly storedDtype: DType;
  readonly file: string;
}

/** One output tensor: inputs checked (present, same shape), parameters resolved, the job built. */
function planTensor(
  ctx: PlanContext,
  outName: string,
  slice: Slice,
  inputNameOf: (src: Source) => string,
  t: number,
): PlannedTensor {
  const { recipe, method, fail } = ctx;
  const inputs = tensorInputs(ctx, outName, slice, inputNameOf);
  let shape = outputShape(ctx, outName, inputs, inputs[slice.refIndex]!);
  const permutation =
    ctx.tokenizer && isEmbedding(outName) && shape.length === 2
      ? planEmbeddingPermutation(ctx.tokenizer, inputs, recipe.file)
      : undefined;
  if (permutation) shape = [permutation.rows, shape[1]!];

  const globalLevel: ParameterLevel = { parameters: recipe.parameters, key: 'parameters' };
  const sliceLevels: ParameterLevel[] = slice.spec.parametersKey
    ? [{ parameters: slice.spec.parameters, key: slice.spec.parametersKey }]
    : [];
  const perModel = (src: Source, inputName: string, name: string): Scalar | undefined => {
    const levels = [
      { parameters: src.spec.parameters, key: `${src.spec.key}.parameters` },
      ...sliceLevels,
      globalLevel,
    ];
    const def = methodParameter(method, name);
    const r = resolveParameter(name, levels, inputName, t);
    if (r !== undefined) return r.value;
    if (def?.required) {
      fail(
        'recipe.missing_parameter',
        `${src.spec.key}.parameters.${name}`,
        `${method.name} needs "${name}" for every model; none is given for tensor "${inputName}"`,
      );
    }
    return def?.default;
  };
  const global = (name: string): { value: Scalar | undefined; key: string } => {
    const r = resolveParameter(name, [...sliceLevels, globalLevel], outName, t);
    if (r !== undefined) return r;
    const def = methodParameter(method, name);
    if (def?.required)
      fail(
        'recipe.missing_parameter',
        `parameters.${name}`,
        `${method.name} needs "${name}"; none is given for tensor "${outName}"`,
      );
    return { value: def?.default, key: `parameters.${name}` };
  };

  const opInputs = inputs.map((inp) => ({
    ref: permutation ? permutedRef(permutation, inp.ref) : inp.ref,
    key: inp.src.spec.key,
    isBase: inp.src.spec.model === recipe.baseModel,
  }));
  const op = methodOp(method, {
    tensor: outName,
    shape,
    inputs: opInputs,
    seed: ctx.seed,
    perModel: (input, name) => {
      const inp = inputs[opInputs.indexOf(input)]!;
      return perModel(inp.src, inp.ref.tensor, name);
    },
    global: (name) => global(name).value,
    fail: (code, field, what) => fail(code, field, what),
  });
  const distinct = new Map<string, PlannedInput>();
  for (const inp of inputs)
    distinct.set(refKey(inp.ref), {
      ref: inp.ref,
      storedShape: inp.storedShape,
      storedDtype: inp.storedDtype,
      file: inp.file,
    });
  const job = { name: outName, shape, op };
  return { name: outName, shape, job, inputs: [...distinct.values()], ...(permutation ? { permutation } : {}) };
}

/** Each source's input of an output tensor, present in its checkpoint (lm_head may fall back to the embedding). */
function tensorInputs(
  ctx: PlanContext,
  outName: string,
  slice: Slice,
  inputNameOf: (src: Source) => string,
): TensorInput[] {
  return slice.sources.map((src) => {
    let tensor = inputNameOf(src);
    if (!src.model.tensors.hasTensor(tensor)) {
      const tied = tensor === LM_HEAD ? tiedEmbedding(src.model) : undefined;
      if (tied === undefined) {
        ctx.fail(
          'merge.tensor_missing',
          `tensor "${tensor}"`,
          `missing; needed for output tensor "${outName}" (${src.spec.key})`,
          src.model.tensors.location,
        );
      }
      tensor = tied!;
    }
    const file = fileOf(src.model, tensor);
    const info = src.model.tensors.tensorInfo(tensor);
    return { src, ref: { model: src.spec.model, tensor }, storedShape: info.shape, storedDtype: info.dtype, file };
  });
}

/** Shapes: equal, or (embeddings only) cropped to the common top-left block (mergekit rectify_embed.py). */
function outputShape(
  ctx: PlanContext,
  outName: string,
  inputs: readonly TensorInput[],
  refInput: TensorInput,
): number[] {
  let shape = [...refInput.storedShape];
  for (const inp of inputs) {
    if (sameShape(inp.storedShape, refInput.storedShape)) continue;
    if (isEmbedding(outName) && inp.storedShape.length === 2 && shape.length === 2) {
      shape = [Math.min(shape[0]!, inp.storedShape[0]!), Math.min(shape[1]!, inp.storedShape[1]!)];
      continue;
    }
    ctx.fail(
      'merge.shape_mismatch',
      `tensor "${inp.ref.tensor}"`,
      `shape [${inp.storedShape.join(', ')}] differs from [${refInput.storedShape.join(', ')}] in ${refInput.file}`,
      inp.file,
    );
  }
  return shape;
}

/** The output's reference model (base_model, else the first slice's reference), config.json and dtype. */
function outputConfig(
  ctx: PlanContext,
  reference: Source,
  layerCount: number,
): Pick<MergePlan, 'referenceDir' | 'config' | 'outDtype'> {
  const { recipe } = ctx;
  const referenceDir = recipe.baseModel ?? reference.spec.model;
  const referenceModel = ctx.modelOf(referenceDir);
  const firstTensor = referenceModel.tensors.tensorNames()[0];
  const storedDtype: DType = firstTensor !== undefined ? referenceModel.tensors.tensorInfo(firstTensor).dtype : 'F32';
  const outDtype = recipe.outDtype
    ? RECIPE_TO_DTYPE[recipe.outDtype]
    : recipe.dtype
      ? RECIPE_TO_DTYPE[recipe.dtype]
      : storedDtype;
  const config: Record<string, unknown> = { ...referenceModel.config, torch_dtype: DTYPE_TO_TORCH[outDtype] };
  if (reference.layout.layers.length > 0 || 'num_hidden_layers' in config) config.num_hidden_layers = layerCount;
  return { referenceDir, config, outDtype };
}

/** The embedding a model without lm_head.weight contributes instead (mergekit llama.json tied_names). */
function tiedEmbedding(model: PlanModel): string | undefined {
  return model.tensors.tensorNames().find((n) => n.endsWith('embed_tokens.weight'));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A map key for a SourceRef. */
export function refKey(ref: SourceRef): string {
  return `${ref.model}\u0000${ref.tensor}`;
}
