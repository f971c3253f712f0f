// The streaming merge: for each planned output tensor, read only its inputs (float32), let the kernel compute,
// hand the result to a sink and drop it, in buffers reused across tensors. Peak memory ≈ (inputs + 1) × the
// largest tensor into a checkpoint (+ what the kernel allocates), never a whole model.
import { EvomergeError, invariant } from '../errors.ts';
import { existsSync } from 'node:fs';
import { CheckpointWriter, isCheckpointOutputFile, openModelDir, type ModelDir } from '../checkpoint/model-dir.ts';
import { checkOutputAvoidsInputs, checkOutputReplaceable, type InputPath } from '../checkpoint/paths.ts';
import { roundToDType } from '../checkpoint/dtype.ts';
import { DTYPE_BYTES, numel, type DType, type TensorSink } from '../checkpoint/tensor-source.ts';
import type { MergeKernel, SourceRef, StoredReader, StoredTensor } from '../kernel/kernel.ts';
import { firstNonFinite } from '../kernel/non-finite.ts';
import type { Recipe } from '../recipe/recipe.ts';
import { planMerge, refKey, type MergePlan, type PlanModel, type PlannedTensor } from './plan.ts';
import { computeDefaultRows, permutedRef, permuteInto } from './tokenizer/embed.ts';

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
 *
 * Memory: inputs are read into one buffer per input slot, each allocated once at the largest size that slot
 * takes in the plan (sources with readTensorInto); a sink that keeps no array (`retainsTensors === false`, a
 * CheckpointWriter) gets one reused output buffer when the kernel has mergeTensorInto. Nothing is allocated per
 * tensor then, so no dead tensor waits for the garbage collector: peak ≈ (inputs + 1) × the largest tensor.
 * A sink that keeps its tensors (MemoryTensors) gets an array per tensor from its newTensorArray (recycled from an
 * earlier candidate with an ArrayPool) or a fresh one, never an input buffer.
 *
 * A kernel with mergeStoredInto (the CPU kernel with SIMD, for dense task arithmetic) is first handed the inputs
 * as stored, when they need no crop, permutation or load-dtype rounding: it reads them into its own memory, decodes
 * and guards them chunk by chunk, and guards the result. It declines a tensor holding a NaN or ±Inf, which then
 * takes the float32 path below, so the errors name the same file, tensor and element as before.
 */
export async function runPlan(
  plan: MergePlan,
  models: ReadonlyMap<string, PlanModel>,
  sink: TensorSink,
  options: RunOptions,
): Promise<MergeResult> {
  const started = performance.now();
  const totalBytes = plan.tensors.reduce((s, t) => s + numel(t.shape) * 4, 0);
  const slots = new InputSlots(plan);
  const kernel = options.kernel;
  const reuseOutput = sink.retainsTensors === false && kernel.mergeTensorInto !== undefined;
  const outBuffer = reuseOutput
    ? new Float32Array(plan.tensors.reduce((m, t) => Math.max(m, numel(t.shape)), 0))
    : undefined;
  let doneBytes = 0;
  let done = 0;
  for (const planned of plan.tensors) {
    const n = numel(planned.shape);
    // The stored path: a kernel that decodes the inputs itself, guard folded in; null sends the tensor below.
    const stored = kernel.mergeStoredInto !== undefined ? storedReader(planned, models, plan.loadDtype) : undefined;
    // For a keeping sink, an array it hands out (maybe recycled) or a fresh one, for either path.
    const target =
      outBuffer !== undefined
        ? outBuffer.subarray(0, n)
        : stored !== undefined || kernel.mergeTensorInto !== undefined
          ? (sink.newTensorArray?.(n) ?? new Float32Array(n))
          : undefined;
    if (stored !== undefined && target !== undefined) {
      const data = kernel.mergeStoredInto!(planned.job, stored, target);
      if (data !== null) {
        invariant(data === target, `kernel computed "${planned.name}" outside the array it was given`);
        sink.writeTensor(planned.name, { shape: planned.shape, data });
        done++;
        doneBytes += n * 4;
        options.onProgress?.({ done, total: plan.tensors.length, doneBytes, totalBytes, tensor: planned.name });
        continue;
      }
    }
    const inputs = readInputs(planned, models, plan.loadDtype, slots);
    const read = (ref: SourceRef): Float32Array => {
      const d = inputs.get(refKey(ref));
      invariant(
        d !== undefined,
        `kernel asked for "${ref.tensor}" of ${ref.model}, which job "${planned.name}" does not read`,
      );
      return d;
    };
    let data =
      outBuffer !== undefined
        ? await kernel.mergeTensorInto!(planned.job, read, outBuffer.subarray(0, n))
        : target !== undefined && kernel.mergeTensorInto !== undefined
          ? await kernel.mergeTensorInto(planned.job, read, target)
          : await kernel.mergeTensor(planned.job, read);
    inputs.clear();
    invariant(data.length === n, `kernel returned ${data.length} values for "${planned.name}", expected ${n}`);
    // A kernel that hands back an input's own array (or the wrong buffer) must not let a reused buffer escape.
    if (outBuffer !== undefined ? data.buffer !== outBuffer.buffer : slots.owns(data)) data = data.slice();
    const bad = firstNonFinite(data);
    if (bad !== -1) {
      throw new EvomergeError(
        'merge.non_finite_output',
        `the merge gives ${data[bad]} at element ${bad}; check the weights of this tensor`,
        {
          file: plan.recipe.file,
          field: `tensor "${planned.name}"`,
        },
      );
    }
    sink.writeTensor(planned.name, { shape: planned.shape, data });
    done++;
    doneBytes += data.length * 4;
    options.onProgress?.({ done, total: plan.tensors.length, doneBytes, totalBytes, tensor: planned.name });
  }
  return { tensors: done, seconds: (performance.now() - started) / 1000 };
}

/**
 * The inputs of one output tensor as stored, for a kernel's mergeStoredInto; undefined when a value would not be
 * the stored one upcast (a crop, a permuted embedding, a narrower load dtype) or a source cannot hand its bytes.
 */
function storedReader(
  planned: PlannedTensor,
  models: ReadonlyMap<string, PlanModel>,
  loadDtype: DType | undefined,
): StoredReader | undefined {
  if (planned.permutation !== undefined) return undefined;
  const n = numel(planned.shape);
  const byRef = new Map<string, StoredTensor>();
  for (const inp of planned.inputs) {
    const src = models.get(inp.ref.model)?.tensors;
    if (src?.readStoredInto === undefined || numel(inp.storedShape) !== n) return undefined;
    if (loadDtype !== undefined && loadDtype !== 'F32' && loadDtype !== inp.storedDtype) return undefined;
    const name = inp.ref.tensor;
    byRef.set(refKey(inp.ref), {
      dtype: inp.storedDtype,
      byteLength: n * DTYPE_BYTES[inp.storedDtype],
      readInto: (dest) => src.readStoredInto!(name, dest),
    });
  }
  return (ref) => {
    const t = byRef.get(refKey(ref));
    invariant(
      t !== undefined,
      `kernel asked for "${ref.tensor}" of ${ref.model}, which job "${planned.name}" does not read`,
    );
    return t;
  };
}

/**
 * One float32 buffer per input position of the plan's jobs (input i of every tensor shares buffer i), each
 * allocated on first use at the largest stored size that position ever reads, so it never grows (a growing
 * pool would leave each outgrown buffer as garbage). Views of it are valid until the next tensor is read.
 */
class InputSlots {
  private readonly sizes: number[] = [];
  private readonly buffers: (Float32Array | undefined)[] = [];

  /** Stored rows of one input while a permuted embedding is written over its slot (sized at first use). */
  private scratch: Float32Array | undefined;
  private scratchSize = 0;

  constructor(plan: MergePlan) {
    for (const t of plan.tensors) {
      // A permuted embedding (tokenizer setting) is written over its input's slot: room for both shapes.
      const out = t.permutation !== undefined ? numel(t.shape) : 0;
      t.inputs.forEach((inp, i) => (this.sizes[i] = Math.max(this.sizes[i] ?? 0, numel(inp.storedShape), out)));
      if (t.permutation !== undefined)
        for (const inp of t.inputs) this.scratchSize = Math.max(this.scratchSize, numel(inp.storedShape));
    }
  }

  /** A copy of `data` in the scratch buffer. */
  copyToScratch(data: Float32Array): Float32Array {
    const buf = (this.scratch ??= new Float32Array(this.scratchSize));
    invariant(data.length <= buf.length, `scratch of ${buf.length} elements asked for ${data.length}`);
    const view = buf.subarray(0, data.length);
    view.set(data);
    return view;
  }

  /** The first `n` elements of slot i's buffer. */
  view(i: number, n: number): Float32Array {
    const size = this.sizes[i];
    invariant(size !== undefined && n <= size, `input slot ${i} of ${size ?? 0} elements asked for ${n}`);
    const buf = (this.buffers[i] ??= new Float32Array(size));
    return buf.subarray(0, n);
  }

  /** Whether `data` lies in one of the slot buffers. */
  owns(data: Float32Array): boolean {
    return this.buffers.some((b) => b !== undefined && b.buffer === data.buffer);
  }
}

/**
 * Reads the distinct inputs of one output tensor as float32, cropped to the output shape (embeddings), into the
 * slot buffers; a source without readTensorInto is used as it returns (never modified: a rounding or a crop of it
 * goes into the slot).
 */
function readInputs(
  planned: PlannedTensor,
  models: ReadonlyMap<string, PlanModel>,
  loadDtype: DType | undefined,
  slots: InputSlots,
): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  const n = numel(planned.shape);
  planned.inputs.forEach((inp, i) => {
    const model = models.get(inp.ref.model);
    invariant(model !== undefined, `model ${inp.ref.model} is not open`);
    const src = model.tensors;
    const storedN = numel(inp.storedShape);
    let data: Float32Array;
    let inSlot: boolean;
    if (src.readTensorInto !== undefined) {
      data = slots.view(i, storedN);
      src.readTensorInto(inp.ref.tensor, data);
      inSlot = true;
    } else {
      data = src.readTensor(inp.ref.tensor).data;
      inSlot = false;
    }
    invariant(
      data.length === storedN,
      `tensor "${inp.ref.tensor}" of ${inp.ref.model} has ${data.length} elements, its header says ${storedN}`,
    );
    const bad = firstNonFinite(data);
    if (bad !== -1) {
      throw new EvomergeError(
        'merge.non_finite',
        `holds ${data[bad]} at element ${bad}; a checkpoint with NaN or Inf weights cannot be merged`,
        {
          file: inp.file,
          field: `tensor "${inp.ref.tensor}"`,
        },
      );
    }
    // mergekit LoadTensor `x.to(dtype)`: a narrower recipe dtype rounds the inputs (nearest even); to F32 is exact.
    if (loadDtype !== undefined && loadDtype !== 'F32' && loadDtype !== inp.storedDtype) {
      if (!inSlot) {
        const copy = slots.view(i, storedN);
        copy.set(data);
        data = copy;
        inSlot = true;
      }
      roundToDType(loadDtype, data);
    }
    if (storedN !== n && planned.permutation === undefined)
      data = cropTopLeft(data, inp.storedShape, planned.shape, inSlot ? data.subarray(0, n) : slots.view(i, n));
    out.set(jobKey(planned, inp.ref), data);
  });
  if (planned.permutation !== undefined) permuteInputs(planned, out, loadDtype, slots);
  return out;
}

/** The key of an input's values as the job names it (a permuted embedding's differs from the stored tensor's). */
function jobKey(planned: PlannedTensor, ref: SourceRef): string {
  return refKey(planned.permutation !== undefined ? permutedRef(planned.permutation, ref) : ref);
}

/**
 * mergekit PermutedEmbeddings: the tokens' default rows from every input as read, then each input's rows onto
 * the output vocabulary, into its slot (through the scratch buffer, as the slot holds the stored rows).
 */
function permuteInputs(
  planned: PlannedTensor,
  out: Map<string, Float32Array>,
  loadDtype: DType | undefined,
  slots: InputSlots,
): void {
  const perm = planned.permutation!;
  const hidden = planned.shape[1]!;
  const raw = planned.inputs.map((inp) => out.get(jobKey(planned, inp.ref))!);
  const defaults = computeDefaultRows(perm, raw, hidden, loadDtype);
  planned.inputs.forEach((inp, i) => {
    const src = slots.copyToScratch(raw[i]!);
    const dst = slots.view(i, numel(planned.shape));
    permuteInto(perm, i, src, defaults, hidden, dst, loadDtype);
    out.set(jobKey(planned, inp.ref), dst);
  });
}

/**
 * The top-left rows × cols block of a row-major matrix (mergekit rectify_embed.py take_common_submatrix), into
 * `out`, which may start at `data`'s own first element (rows then move down in place, in increasing order).
 */
function cropTopLeft(
  data: Float32Array,
  from: readonly number[],
  to: readonly number[],
  out: Float32Array,
): Float32Array {
  invariant(from.length === 2 && to.length === 2, `crop of a ${from.length}-d tensor`);
  const [rows, cols, fromCols] = [to[0]!, to[1]!, from[1]!];
  invariant(
    rows <= from[0]! && cols <= fromCols && out.length === rows * cols,
    `crop of ${from.join('×')} to ${to.join('×')}`,
  );
  const inPlace = out.buffer === data.buffer && out.byteOffset === data.byteOffset;
  for (let r = 0; r < rows; r++) {
    if (inPlace) data.copyWithin(r * cols, r * fromCols, r * fromCols + cols);
    else out.set(data.subarray(r * fromCols, r * fromCols + cols), r * cols);
  }
  return out;
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
  /** Replace an existing non-empty output folder (never one that is, holds or lies inside an input). */
  readonly force?: boolean;
  /** Inputs besides the recipe's models (which are always protected): a graph, eval files, a database. */
  readonly inputs?: readonly InputPath[];
  /** Small text files written beside the checkpoint, inside the same atomic rename (export's recipe). */
  readonly extraFiles?: Readonly<Record<string, string>>;
}

/** What a merge reads: every model folder of the recipe, and the recipe file itself when it has one. */
export function recipeInputs(recipe: Recipe): InputPath[] {
  const models = recipeModelDirs(recipe).map((dir) => ({
    path: dir,
    role: dir === recipe.baseModel ? 'base_model' : 'model',
  }));
  return existsSync(recipe.file) ? [...models, { path: recipe.file, role: 'recipe' }] : models;
}

/**
 * `evomerge merge`: plans (every check done before a byte is written), then streams into a CheckpointWriter
 * that writes under a temporary name and renames when complete; on any failure nothing is left at outDir.
 */
export async function mergeRecipeToDir(
  recipe: Recipe,
  options: MergeToDirOptions,
): Promise<MergeResult & { plan: MergePlan; device: string }> {
  const inputs = [...recipeInputs(recipe), ...(options.inputs ?? [])];
  checkOutputAvoidsInputs(options.outDir, inputs);
  checkOutputReplaceable(options.outDir, { force: options.force === true, ours: isCheckpointOutputFile });
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
      ...(plan.tokenizer !== undefined ? { tokenizer: plan.tokenizer } : {}),
      metadata: { 'evomerge.merge_method': plan.method.name, 'evomerge.seed': String(plan.seed) },
      force: options.force === true,
      inputs,
      ...(options.extraFiles ? { extraFiles: options.extraFiles } : {}),
    });
    try {
      const result = await runPlan(plan, models, writer, {
        kernel,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
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
