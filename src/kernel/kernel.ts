// The merge kernel contract: one output tensor's arithmetic, described as data (a TensorJob) so that the
// CPU backend (kernel/cpu) and the WebGPU backend (kernel/gpu) execute the same declaration. merge/ builds
// jobs from a recipe (mergekit semantics: which inputs, which resolved parameters); a kernel only computes.
// This module imports nothing from recipe/ or checkpoint/.

import type { RngKey } from './rng.ts';

/** One input tensor: `model` is a stable id of the source model (its absolute folder path). */
export interface SourceRef {
  readonly model: string;
  readonly tensor: string;
}

/** How a task vector is sparsified before merging (mergekit sparsify.py). */
export type Sparsification = 'none' | 'magnitude' | 'random' | 'magnitude_outliers' | 'della_magprune';

/** How the sparsified task vector is rescaled: mergekit's L1-norm ratio, the DARE paper's 1/density, or not. */
export type Rescale = 'none' | 'l1' | 'density';

/** One model's task vector τ = x − base in the task-arithmetic family, with its resolved parameters. */
export interface TaskVectorInput {
  readonly ref: SourceRef;
  readonly weight: number;
  readonly density: number;
  /** breadcrumbs: fraction of largest entries dropped. */
  readonly gamma: number;
  /** della: spread of the keep probabilities around density. */
  readonly epsilon: number;
  /** Index of this model in the recipe's model list: the `model` word of the random stream key. */
  readonly modelIndex: number;
}

export type MergeOp =
  /** linear (Σ wᵢxᵢ, divided by Σ wᵢ when normalize) and passthrough (one input, weight = scale). */
  | {
      readonly kind: 'weighted_sum';
      readonly inputs: readonly { readonly ref: SourceRef; readonly weight: number }[];
      readonly normalize: boolean;
    }
  /** task_arithmetic, ties, dare_*, breadcrumbs*, della*: mergekit generalized_task_arithmetic.py. */
  | {
      readonly kind: 'task_arithmetic';
      readonly base: SourceRef;
      readonly inputs: readonly TaskVectorInput[];
      readonly sparsification: Sparsification;
      readonly consensus: 'none' | 'sum';
      readonly normalize: boolean;
      readonly lambda: number;
      readonly rescale: Rescale;
      /** Key of the counter-based random stream (random and della_magprune only). */
      readonly rng: RngKey;
    }
  /** slerp: one t per tensor; a is the base model (t = 0), b the other (t = 1). */
  | { readonly kind: 'slerp'; readonly a: SourceRef; readonly b: SourceRef; readonly t: number }
  /** model_stock: base plus N ≥ 2 fine-tunes. */
  | { readonly kind: 'model_stock'; readonly base: SourceRef; readonly inputs: readonly SourceRef[] }
  /** sce (mergekit sce.py): variance top-k mask over the task vectors, sign election, τ²-mean weights. */
  | {
      readonly kind: 'sce';
      readonly base: SourceRef;
      readonly inputs: readonly SourceRef[];
      readonly selectTopk: number;
    }
  /**
   * nuslerp (mergekit nuslerp.py): slerp of a and b (of their task vectors when base is set) at t, over the
   * flattened tensor, its rows (last dim) or, rowWise, its columns (dim 0).
   */
  | {
      readonly kind: 'nuslerp';
      readonly a: SourceRef;
      readonly b: SourceRef;
      readonly base?: SourceRef;
      readonly t: number;
      readonly flatten: boolean;
      readonly rowWise: boolean;
    }
  /** multislerp (mergekit multislerp.py): barycentric interpolation on the hypersphere, around base if set. */
  | {
      readonly kind: 'multislerp';
      readonly inputs: readonly { readonly ref: SourceRef; readonly weight: number }[];
      readonly base?: SourceRef;
      readonly normalizeWeights: boolean;
      readonly eps: number;
    }
  /** karcher (mergekit karcher.py): Riemannian mean of the inputs' directions, equal weights, scaled by mean norm. */
  | { readonly kind: 'karcher'; readonly inputs: readonly SourceRef[]; readonly maxIter: number; readonly tol: number }
  /** arcee_fusion (mergekit arcee_fusion.py): keep the deltas whose |δ|·KL(softmax rows) passes median + 1.5·IQR. */
  | { readonly kind: 'arcee_fusion'; readonly base: SourceRef; readonly other: SourceRef }
  /** nearswap (mergekit nearswap.py): w = clamp(t / max(|base − other|, 1e-6), 0, 1); w·other + (1 − w)·base. */
  | { readonly kind: 'nearswap'; readonly base: SourceRef; readonly other: SourceRef; readonly t: number };

/** Everything needed to compute one output tensor. */
export interface TensorJob {
  /** Output tensor name. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly op: MergeOp;
}

/** Reads one input tensor as float32 (already upcast, already cropped to the job's shape). */
export type TensorReader = (ref: SourceRef) => Float32Array;

/** Storage dtypes a kernel may be handed as stored bytes (safetensors names, little-endian). */
export type StoredDType = 'F32' | 'F16' | 'BF16';

/** One input tensor as stored (already of the job's shape): its dtype, its size, and a copy of its bytes. */
export interface StoredTensor {
  readonly dtype: StoredDType;
  readonly byteLength: number;
  /** Copies the tensor's stored bytes into `dest` (exactly byteLength bytes long). */
  readInto(dest: Uint8Array): void;
}

/** The inputs of a job as stored, for a kernel that decodes them itself (mergeStoredInto). */
export type StoredReader = (ref: SourceRef) => StoredTensor;

/** A backend that computes merged tensors. */
export interface MergeKernel {
  /** `cpu`, or `gpu: <adapter description>`: printed and recorded with campaigns. */
  readonly device: string;
  /** Computes one output tensor. Must be deterministic: same job → same bits on the same backend. */
  mergeTensor(job: TensorJob, read: TensorReader): Promise<Float32Array>;
  /**
   * Optional: computes the job into `out` (length numel(shape)), a buffer the caller reuses across tensors, and
   * returns it; same bits as mergeTensor. A kernel must keep no reference to `out` or to what `read` returned.
   */
  mergeTensorInto?(job: TensorJob, read: TensorReader, out: Float32Array): Float32Array | Promise<Float32Array>;
  /**
   * Optional: computes the job from its inputs as stored, decoded chunk by chunk in the kernel's own memory, into
   * `out` (length numel(shape)); same bits as mergeTensor from the inputs upcast exactly to float32. Returns null,
   * leaving out's contents unspecified, when it does not take this job or when an input or the result holds a NaN
   * or ±Inf: the caller then runs the float32 path, whose guard names the value. A non-null result holds neither.
   */
  mergeStoredInto?(job: TensorJob, stored: StoredReader, out: Float32Array): Float32Array | null;
  /** Releases device resources (resident buffers). */
  close(): Promise<void>;
}
