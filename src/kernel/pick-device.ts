// `--device auto|cpu|gpu` → a MergeKernel, and the one place where GPU faults fall back to the CPU:
// FallbackKernel redoes a job that hit a device loss or out-of-memory — and every later one — on CpuKernel,
// so a campaign loses no candidate. `auto` takes a real GPU adapter only, never a software rasteriser.

import { EvomergeError } from '../errors.ts';
import { CpuKernel } from './cpu/cpu-kernel.ts';
import type { GpuKernel, GpuKernelOptions } from './gpu/gpu-kernel.ts';
import type { MergeKernel, TensorJob, TensorReader } from './kernel.ts';

export const DEVICE_CHOICES = ['auto', 'cpu', 'gpu'] as const;
export type DeviceChoice = (typeof DEVICE_CHOICES)[number];

/** Parses the `--device` option; a usage error (exit 2) naming the choices otherwise. */
export function parseDeviceChoice(text: string): DeviceChoice {
  if ((DEVICE_CHOICES as readonly string[]).includes(text)) return text as DeviceChoice;
  throw new EvomergeError(
    'cli.bad_device',
    `unknown device "${text}"; should be one of: ${DEVICE_CHOICES.join(', ')}`,
    { field: '--device' },
    2,
  );
}

/** GPU fault codes after which the GPU is abandoned for the rest of the run. */
const FATAL_GPU_CODES = new Set(['gpu.device_lost', 'gpu.out_of_memory']);

export interface SelectKernelOptions {
  /** Options for the GPU kernel (chunk size, resident budget); `allowSoftware` is decided by the choice. */
  readonly gpu?: Omit<GpuKernelOptions, 'allowSoftware' | 'hideSoftwareDrivers' | 'log'>;
  /** Where one-line notices go (fallbacks, sources not fitting); default stderr. */
  readonly log?: (line: string) => void;
}

/**
 * The kernel for a `--device` choice:
 * - `cpu`: CpuKernel;
 * - `gpu`: the best WebGPU adapter, software ones included (that is how CI runs the shaders); gpu.no_adapter
 *   if there is none at all;
 * - `auto`: a real GPU adapter if there is one, else CpuKernel.
 * GPU kernels come wrapped in a FallbackKernel.
 */
export async function selectKernel(choice: DeviceChoice, options: SelectKernelOptions = {}): Promise<MergeKernel> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  if (choice === 'cpu') return new CpuKernel();
  let gpu: GpuKernel;
  try {
    // Loaded on demand: a platform without the WebGPU native addon still runs `--device cpu`.
    const { GpuKernel } = await import('./gpu/gpu-kernel.ts').catch((err: unknown) => {
      throw new EvomergeError(
        'gpu.no_adapter',
        `the WebGPU runtime (npm package "webgpu") could not be loaded: ${(err as Error).message}`,
        {
          field: '--device',
        },
      );
    });
    // auto never takes a software adapter: its probe does not load those drivers (no Dawn warnings about them)
    gpu = await GpuKernel.create({
      ...options.gpu,
      allowSoftware: choice === 'gpu',
      hideSoftwareDrivers: choice === 'auto',
      log,
    });
  } catch (err) {
    if (choice === 'auto' && err instanceof EvomergeError && err.code === 'gpu.no_adapter') return new CpuKernel();
    throw err;
  }
  return new FallbackKernel(gpu, new CpuKernel(), log);
}

/**
 * Runs jobs on `primary` (the GPU) until it faults. On gpu.device_lost / gpu.out_of_memory it logs one line
 * and redoes that job and all later ones on `fallback`; a job the GPU kernel cannot express
 * (gpu.unsupported) runs on `fallback` alone. Other errors (bad input, bugs) propagate.
 */
export class FallbackKernel implements MergeKernel {
  private failed: EvomergeError | undefined;
  private readonly unsupportedSeen = new Set<string>();

  constructor(
    readonly primary: MergeKernel,
    readonly fallback: MergeKernel,
    private readonly log: (line: string) => void,
  ) {}

  /** The primary's description until it fails, then the fallback's with the reason. */
  get device(): string {
    if (this.failed === undefined) return this.primary.device;
    return `${this.fallback.device} (after ${this.failed.code} on ${this.primary.device})`;
  }

  /** The fault that moved this kernel to the fallback, if any. */
  get fault(): EvomergeError | undefined {
    return this.failed;
  }

  async mergeTensor(job: TensorJob, read: TensorReader): Promise<Float32Array> {
    if (this.failed !== undefined) return this.fallback.mergeTensor(job, read);
    try {
      return await this.primary.mergeTensor(job, read);
    } catch (err) {
      if (!(err instanceof EvomergeError)) throw err;
      if (FATAL_GPU_CODES.has(err.code)) {
        if (this.failed === undefined) {
          this.failed = err;
          this.log(`evomerge: ${err.message}; continuing on the CPU from tensor "${job.name}" on`);
          await this.primary.close().catch(() => undefined);
        }
        return this.fallback.mergeTensor(job, read);
      }
      if (err.code === 'gpu.unsupported') {
        const reason = err.message.replace(/^tensor "[^"]*": /, '');
        if (!this.unsupportedSeen.has(reason)) {
          this.unsupportedSeen.add(reason);
          this.log(`evomerge: gpu: ${err.message}; such tensors are merged on the CPU`);
        }
        return this.fallback.mergeTensor(job, read);
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.failed === undefined) await this.primary.close();
    await this.fallback.close();
  }
}
