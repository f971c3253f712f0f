// Source tensors kept on the device across merges: each (model, tensor) is uploaded once as float32 and
// reused by every later candidate of a campaign. Past the budget (or on a device allocation failure) it
// says so once and streams the remaining sources per job instead; it never evicts what is resident.
// A hit is keyed by (ref.model, ref.tensor, numel) and is not re-read: the reader must return the same values
// for the same ref for the kernel's lifetime (a recipe dtype that rounds inputs must show in the ref, as a
// permuted embedding's permutation does: merge/plan.ts jobRef).

import { EvomergeError } from '../../errors.ts';
import type { SourceRef, TensorReader } from '../kernel.ts';
import type { GpuDevice } from './device.ts';
import type { SourceFormat } from './wgsl/source.ts';

/** A source tensor on the device. `resident: false` means the caller must destroy it after the job. */
export interface DeviceTensor {
  readonly buffer: GPUBuffer;
  readonly numel: number;
  readonly resident: boolean;
  /** float32, or bfloat16 packed two per u32 when every value is exactly a bf16 (lossless). */
  readonly format: SourceFormat;
}

export interface ResidentCacheOptions {
  /** 'auto': keep exactly-bf16 sources as packed bf16 (half the memory, identical values); 'f32': never. */
  readonly storage: 'auto' | 'f32';
  /** Most bytes kept resident; Infinity = until the device refuses an allocation. */
  readonly budgetBytes: number;
  /** Receives the one-line notice when sources stop fitting. */
  readonly log: (line: string) => void;
}

export class ResidentCache {
  private readonly tensors = new Map<string, DeviceTensor>();
  private residentBytes = 0;
  private full = false;
  private uploadedBytes = 0;

  constructor(
    private readonly gpu: GpuDevice,
    private readonly options: ResidentCacheOptions,
  ) {}

  /** Bytes currently resident on the device. */
  get bytes(): number {
    return this.residentBytes;
  }

  /** Total bytes uploaded since creation (resident + streamed): shows whether sources were re-sent. */
  get bytesUploaded(): number {
    return this.uploadedBytes;
  }

  get streaming(): boolean {
    return this.full;
  }

  /** The device copy of `ref`, uploading it (once, if it fits) from `read`. */
  async acquire(ref: SourceRef, numel: number, read: TensorReader): Promise<DeviceTensor> {
    const key = `${ref.model}\u0000${ref.tensor}\u0000${numel}`;
    const hit = this.tensors.get(key);
    if (hit !== undefined) return hit;
    const data = read(ref);
    if (data.length !== numel) {
      throw new EvomergeError(
        'internal',
        `reader returned ${data.length} elements, the job expects ${numel} (this is a bug in evomerge)`,
        {
          file: ref.model,
          field: `tensor "${ref.tensor}"`,
        },
      );
    }
    const format: SourceFormat = this.options.storage === 'auto' && isExactBf16(data) ? 'bf16' : 'f32';
    const packed = format === 'bf16' ? packBf16(data) : data;
    const bytes = packed.byteLength;
    if (bytes > this.gpu.limits.maxBufferSize) {
      throw new EvomergeError(
        'gpu.unsupported',
        `${bytes} bytes exceed the device's maxBufferSize ${this.gpu.limits.maxBufferSize}`,
        {
          file: ref.model,
          field: `tensor "${ref.tensor}"`,
        },
      );
    }
    if (!this.full && this.residentBytes + bytes > this.options.budgetBytes) {
      this.stopResidency(`the resident budget of ${mib(this.options.budgetBytes)} is reached`);
    }
    if (!this.full) {
      const t = await this.tryUpload(packed, numel, format, true);
      if (t !== undefined) {
        this.tensors.set(key, t);
        this.residentBytes += bytes;
        return t;
      }
      this.stopResidency('the device refused a further allocation');
    }
    const streamed = await this.tryUpload(packed, numel, format, false);
    if (streamed === undefined) {
      throw new EvomergeError(
        'gpu.out_of_memory',
        `out of GPU memory uploading ${mib(bytes)} (${this.gpu.adapter.text})`,
        {
          file: ref.model,
          field: `tensor "${ref.tensor}"`,
        },
      );
    }
    return streamed;
  }

  /** Destroys a streamed tensor after its job; resident ones stay. */
  release(t: DeviceTensor): void {
    if (!t.resident) t.buffer.destroy();
  }

  /**
   * Frees resident tensors, most recently uploaded first, until at least `bytes` are freed (Infinity: all),
   * and stops adding new ones: a job that ran out of device memory is retried with more headroom. Returns the
   * bytes freed. The tensors come back, streamed, the next time a job needs them.
   */
  evict(bytes: number, why: string): number {
    const entries = [...this.tensors.entries()].reverse();
    let freed = 0;
    for (const [key, t] of entries) {
      if (freed >= bytes) break;
      t.buffer.destroy();
      this.tensors.delete(key);
      const size = t.format === 'f32' ? t.numel * 4 : Math.ceil(t.numel / 2) * 4;
      freed += size;
      this.residentBytes -= size;
    }
    if (!this.full) this.stopResidency(`${why}; ${mib(freed)} released`);
    return freed;
  }

  /** Frees everything resident. */
  clear(): void {
    for (const t of this.tensors.values()) t.buffer.destroy();
    this.tensors.clear();
    this.residentBytes = 0;
  }

  private stopResidency(why: string): void {
    this.full = true;
    this.options.log(
      `evomerge: gpu: sources do not fit on ${this.gpu.adapter.text} (${why}; ${mib(this.residentBytes)} resident): ` +
        `streaming the remaining source tensors per merge (slower)`,
    );
  }

  /** Uploads inside an out-of-memory scope; undefined if the device could not allocate. */
  private async tryUpload(
    data: Float32Array | Uint32Array,
    numel: number,
    format: SourceFormat,
    resident: boolean,
  ): Promise<DeviceTensor | undefined> {
    const device = this.gpu.device;
    this.gpu.checkAlive();
    device.pushErrorScope('out-of-memory');
    const buffer = this.gpu.createBuffer(
      data.byteLength,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
      resident ? 'resident source' : 'streamed source',
    );
    this.gpu.write(buffer, 0, data);
    const oom = await device.popErrorScope().catch(() => null);
    this.gpu.checkAlive();
    if (oom !== null) {
      buffer.destroy();
      return undefined;
    }
    this.uploadedBytes += data.byteLength;
    return { buffer, numel, resident, format };
  }
}

/** Whether every value is exactly representable in bfloat16 (its low 16 bits are zero). */
function isExactBf16(data: Float32Array): boolean {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < bits.length; i++) if ((bits[i] & 0xffff) !== 0) return false;
  return true;
}

/** The high halves of the float32 bit patterns, two per u32 (element 2k in the low half). */
function packBf16(data: Float32Array): Uint32Array {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint32Array(Math.ceil(data.length / 2));
  for (let k = 0; k < out.length; k++) {
    const lo = bits[2 * k] >>> 16;
    const hi = 2 * k + 1 < bits.length ? bits[2 * k + 1] >>> 16 : 0;
    out[k] = (lo | (hi << 16)) >>> 0;
  }
  return out;
}

function mib(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1048576).toFixed(1)} MiB` : 'unlimited';
}
