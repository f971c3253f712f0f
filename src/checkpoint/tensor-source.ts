// The types that merge and eval share to move tensors around: a source is read one tensor at a time
// (a checkpoint on disk, or a merge held in memory), a sink takes tensors one at a time.

/** Storage dtypes evomerge reads and writes (safetensors names). Computation is always float32. */
export type DType = 'F32' | 'F16' | 'BF16';

export const DTYPE_BYTES: Record<DType, number> = { F32: 4, F16: 2, BF16: 2 };

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** A float32 tensor in row-major order. */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Anything that yields named float32 tensors, one at a time, without holding them all. */
export interface TensorSource {
  /** Where the tensors come from, for error messages (a folder, a file, `merge of recipe.yaml`). */
  readonly location: string;
  /** Tensor names in the source's stored order. */
  tensorNames(): string[];
  hasTensor(name: string): boolean;
  /** Shape and stored dtype; throws EvomergeError naming the tensor if absent. */
  tensorInfo(name: string): TensorInfo;
  /** Reads one tensor, upcast exactly to float32. */
  readTensor(name: string): Tensor;
  /**
   * Optional: reads one tensor, upcast exactly to float32, into `out` (a buffer the caller reuses across
   * tensors, so nothing is allocated per tensor). `out.length` must equal the tensor's numel.
   */
  readTensorInto?(name: string, out: Float32Array): void;
  /**
   * Optional: copies one tensor's bytes as stored (little-endian, its tensorInfo dtype) into `dest`, whose length
   * must be numel × DTYPE_BYTES[dtype]: for a consumer that decodes them itself (the merge kernel's stored path).
   */
  readStoredInto?(name: string, dest: Uint8Array): void;
}

/** Receives tensors one at a time (a checkpoint writer, or an in-memory map). */
export interface TensorSink {
  /**
   * Whether the sink may keep `tensor.data` after writeTensor returns. Only `false` (a checkpoint writer that
   * encodes and writes the values before returning) lets the caller reuse the array for the next tensor;
   * `true` or absent: the caller must hand over an array it never touches again.
   */
  readonly retainsTensors?: boolean;
  writeTensor(name: string, tensor: Tensor): void;
  /**
   * Optional, for a sink that keeps its tensors: an array of n elements, of unspecified content, for the writer to
   * fill completely and hand back through writeTensor (a recycled one spares faulting in fresh pages).
   */
  newTensorArray?(n: number): Float32Array;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Float32 arrays of released MemoryTensors (one candidate's merge), handed out again to the next merge's outputs
 * of the same length: writing a recycled array costs a copy, a fresh one also a page fault per 4 KB.
 */
export class ArrayPool {
  private free = new Map<number, Float32Array[]>();

  /** A recycled array of n elements (stale content), or a fresh one. */
  take(n: number): Float32Array {
    return this.free.get(n)?.pop() ?? new Float32Array(n);
  }

  /** Replaces what the pool holds by `arrays` (what the last merge did not take again is dropped). */
  refill(arrays: Iterable<Float32Array>): void {
    this.free = new Map();
    for (const a of new Set(arrays)) {
      const list = this.free.get(a.length);
      if (list === undefined) this.free.set(a.length, [a]);
      else list.push(a);
    }
  }
}

/** An in-memory source+sink: how merged weights reach an ONNX Runtime session without touching disk. */
export class MemoryTensors implements TensorSource, TensorSink {
  private readonly tensors = new Map<string, Tensor>();
  /** It keeps every tensor it is given: writers must hand it arrays they own no longer. */
  readonly retainsTensors = true;
  /** With a pool, writers get recycled arrays (newTensorArray) and release() hands this one's back. */
  constructor(
    readonly location: string,
    private readonly pool?: ArrayPool,
  ) {}
  newTensorArray(n: number): Float32Array {
    return this.pool !== undefined ? this.pool.take(n) : new Float32Array(n);
  }
  /**
   * Gives every array back to the pool and forgets the tensors (reads then fail): only once nothing reads them any
   * more (a candidate scored, its sessions done). Without a pool it only forgets them.
   */
  release(): void {
    this.pool?.refill([...this.tensors.values()].map((t) => t.data));
    this.tensors.clear();
  }
  writeTensor(name: string, tensor: Tensor): void {
    this.tensors.set(name, tensor);
  }
  tensorNames(): string[] {
    return [...this.tensors.keys()];
  }
  hasTensor(name: string): boolean {
    return this.tensors.has(name);
  }
  tensorInfo(name: string): TensorInfo {
    const t = this.readTensor(name);
    return { name, dtype: 'F32', shape: t.shape };
  }
  readTensor(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.location}: tensor "${name}" not found`);
    return t;
  }
}
