// The streaming merge: for each planned output tensor, read only its inputs (float32), let the kernel compute,
// hand the result to a sink and drop it. Peak memory ≈ (inputs + 2) × the largest tensor, never a whole model.
import { EvomergeError, invariant } from '../errors.ts';
import { CheckpointWriter, openModelDir, type ModelDir } from '../checkpoint/model-dir.ts';
import { decodeToF32, encodeFromF32 } from '../checkpoint/dtype.ts';
import { numel, type DType, type TensorSink } from '../checkpoint/tensor-source.ts';
import type { MergeKernel } from '../kernel/kernel.ts';
import type { Recipe } from '../recipe/recipe.ts';
import { planMerge, refKey, type MergePlan, type PlanModel, type PlannedTensor } from './plan.ts';

export interface MergeProgress {
  /** Output tensors finished so far, and in all. */
  readonly done: number;
  readonly total: number;
  /** Bytes (float32) of the outputs finished so far, and in all. */
  readonly doneBytes: number;
  readonly totalBytes: number;
  readonly tensor: string;
}

export interface RunOptions {
  readonly kernel: MergeKernel;
  readonly onProgress?: (p: MergeProgress) => void;
}

export interface MergeResult {
  readonly tensors: number;
  readonly seconds: number;
}

/** Every model folder a recipe reads (base included), in first-mention order. */
export function recipeModelDirs(recipe: Recipe): string[] {
  const dirs = [
    ...(recipe.models ?? []).map((m) => m.model),
    ...(recipe.slices ?? []).flatMap((s) => s.sources.map((x) => x.model)),
    ...(recipe.baseModel !== undefined ? [recipe.baseModel] : []),
  ];
  return [...new Set(dirs)];
}

/** Opens (and validates the headers of) every model of a recipe; on failure closes those already open. */
export function openRecipeModels(recipe: Recipe): Map<string, ModelDir> {
  const models = new Map<string, ModelDir>();
  try {
    for (const dir of recipeModelDirs(recipe)) models.set(dir, openModelDir(dir));
  } catch (err) {
    models.forEach((m) => m.close());
    throw err;
  }
  return models;
}

/**
 * Executes a plan into a sink, one output tensor at a time, in plan order. An input holding NaN or ±Inf is
 * refused (merge.non_finite), naming the file and the tensor.
 */
export async function runPlan(plan: MergePlan, models: ReadonlyMap<string, PlanModel>, sink: TensorSink, options: RunOptions): Promise<MergeResult> {
  const started = performance.now();
  const totalBytes = plan.tensors.reduce((s, t) => s + numel(t.shape) * 4, 0);
  let doneBytes = 0;
  let done = 0;
  for (const planned of plan.tensors) {
    const inputs = readInputs(planned, models, plan.loadDtype);
    const data = await options.kernel.mergeTensor(planned.job, (ref) => {
      const d = inputs.get(refKey(ref));
      invariant(d !== undefined, `kernel asked for "${ref.tensor}" of ${ref.model}, which job "${planned.name}" does not read`);
      return d;
    });
    inputs.clear();
    invariant(data.length === numel(planned.shape), `kernel returned ${data.length} values for "${planned.name}", expected ${numel(planned.shape)}`);
    const bad = firstNonFinite(data);
    if (bad !== -1) {
      throw new EvomergeError('merge.non_finite_output', `the merge gives ${data[bad]} at element ${bad}; check the weights of this tensor`, {
        file: plan.recipe.file,
        field: `tensor "${planned.name}"`,
      });
    }
    sink.writeTensor(planned.name, { shape: planned.shape, data });
    done++;
    doneBytes += data.length * 4;
    options.onProgress?.({ done, total: plan.tensors.length, doneBytes, totalBytes, tensor: planned.name });
  }
  return { tensors: done, seconds: (performance.now() - started) / 1000 };
}

/** Reads the distinct inputs of one output tensor as float32, cropped to the output shape (embeddings). */
function readInputs(planned: PlannedTensor, models: ReadonlyMap<string, PlanModel>, loadDtype: DType | undefined): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const inp of planned.inputs) {
    const model = models.get(inp.ref.model);
    invariant(model !== undefined, `model ${inp.ref.model} is not open`);
    let data = model.tensors.readTensor(inp.ref.tensor).data;
    const bad = firstNonFinite(data);
    if (bad !== -1) {
      throw new EvomergeError('merge.non_finite', `holds ${data[bad]} at element ${bad}; a checkpoint with NaN or Inf weights cannot be merged`, {
        file: inp.file,
        field: `tensor "${inp.ref.tensor}"`,
      });
    }
    // mergekit LoadTensor `x.to(dtype)`: a narrower recipe dtype rounds the inputs (nearest even); to F32 is exact.
    if (loadDtype !== undefined && loadDtype !== 'F32' && loadDtype !== inp.storedDtype) data = decodeToF32(loadDtype, encodeFromF32(loadDtype, data));
    if (data.length !== numel(planned.shape)) data = cropTopLeft(data, inp.storedShape, planned.shape);
    out.set(refKey(inp.ref), data);
  }
  return out;
}

/** The top-left rows × cols block of a row-major matrix (mergekit rectify_embed.py take_common_submatrix). */
function cropTopLeft(data: Float32Array, from: readonly number[], to: readonly number[]): Float32Array {
  invariant(from.length === 2 && to.length === 2, `crop of a ${from.length}-d tensor`);
  const [rows, cols] = [to[0]!, to[1]!];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * from[1]!, r * from[1]! + cols), r * cols);
  return out;
}

function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) return i; // NaN and ±Inf
  }
  return -1;
}

/**
 * Merges a recipe into a sink (e.g. MemoryTensors for evaluation without disk): opens the models, plans
 * (validating everything first), streams, closes.
 */
export async function mergeRecipe(
  recipe: Recipe,
  sink: TensorSink,
  options: RunOptions & { readonly seed?: number },
): Promise<MergeResult> {
  const models = openRecipeModels(recipe);
  try {
    const plan = planMerge(recipe, models, options.seed !== undefined ? { seed: options.seed } : {});
    return await runPlan(plan, models, sink, options);
  } finally {
    models.forEach((m) => m.close());
  }
}

export interface MergeToDirOptions {
  readonly outDir: string;
  readonly seed?: number;
  readonly shardSizeBytes: number;
  /**
   * The kernel, or a function that opens one: called only once the plan is validated (so a bad recipe never
   * waits for a GPU adapter); a kernel opened this way is closed here.
   */
  readonly kernel: MergeKernel | (() => Promise<MergeKernel>);
  readonly onProgress?: (p: MergeProgress) => void;
}

/**
 * `evomerge merge`: plans (every check done before a byte is written), then streams into a CheckpointWriter
 * that writes under a temporary name and renames when complete; on any failure nothing is left at outDir.
 */
export async function mergeRecipeToDir(
  recipe: Recipe,
  options: MergeToDirOptions,
): Promise<MergeResult & { plan: MergePlan; device: string }> {
  const models = openRecipeModels(recipe);
  let opened: MergeKernel | undefined;
  try {
    const plan = planMerge(recipe, models, options.seed !== undefined ? { seed: options.seed } : {});
    const kernel = typeof options.kernel === 'function' ? (opened = await options.kernel()) : options.kernel;
    const writer = new CheckpointWriter({
      outDir: options.outDir,
      dtype: plan.outDtype,
      shardSizeBytes: options.shardSizeBytes,
      plan: plan.tensors.map((t) => ({ name: t.name, shape: t.shape })),
      config: plan.config,
      copyFilesFrom: plan.referenceDir,
      metadata: { 'evomerge.merge_method': plan.method.name, 'evomerge.seed': String(plan.seed) },
    });
    try {
      const result = await runPlan(plan, models, writer, { kernel, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
      writer.finish();
      return { ...result, plan, device: kernel.device };
    } catch (err) {
      writer.abort();
      throw err;
    }
  } finally {
    models.forEach((m) => m.close());
    await opened?.close();
  }
}
