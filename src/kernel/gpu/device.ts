// The only holder of the WebGPU device (Dawn through the `webgpu` npm package): adapter choice (real GPU vs
// software rasteriser), limits, pipeline cache, error scopes and readback. Faults become EvomergeErrors
// with codes gpu.no_adapter / gpu.device_lost / gpu.out_of_memory; nothing here knows about merge methods.

import fs from 'node:fs';
import { create, globals } from 'webgpu';
import { EvomergeError, invariant } from '../../errors.ts';

/** Workgroup size used by every evomerge shader (elements per workgroup in element-wise passes). */
export const WORKGROUP_SIZE = 256;

/** What the adapter says about itself, and whether it is a software rasteriser. */
export interface AdapterDescription {
  /** e.g. `NVIDIA H100 80GB HBM3 (vulkan)` or `llvmpipe: Mesa 25.0.7 (vulkan, software)`. */
  readonly text: string;
  readonly software: boolean;
}

let globalsInstalled = false;
/** Dawn instances, created once per process each (the native instance is not cheap): one that sees every Vulkan
 *  driver, one (`--device auto`'s) that does not load the software ones. */
const gpuInstances = new Map<boolean, GPU>();

/** Dawn's `navigator.gpu`; its adapters are discovered on its first request. */
function gpuEntry(hideSoftwareDrivers: boolean): GPU {
  if (!globalsInstalled) {
    // Dawn's constants (GPUBufferUsage, GPUMapMode, …) must be globals for the WebGPU API to be usable.
    Object.assign(globalThis, globals);
    globalsInstalled = true;
  }
  let gpu = gpuInstances.get(hideSoftwareDrivers);
  if (gpu === undefined) {
    gpu = create([]);
    gpuInstances.set(hideSoftwareDrivers, gpu);
  }
  return gpu;
}

/**
 * The software Vulkan drivers (Mesa lavapipe, SwiftShader) by manifest name. Dawn prints two "artificially reduced
 * … to fit dynamic offset allocation limit" warnings on stderr each time it discovers lavapipe, and `--device auto`
 * never uses a software adapter: its request asks the Vulkan loader (VK_LOADER_DRIVERS_DISABLE, loader 1.3.234 and
 * later; an older one ignores it) not to load them. A real GPU is preferred to a software adapter either way, so
 * auto's choice is the same; where there is none, auto takes the CPU as before. On Linux with no GPU device node
 * at all auto does not probe (nothing but a software driver could answer).
 */
const SOFTWARE_VULKAN_DRIVERS = ['*lvp_icd*', '*swiftshader*'];

/** Whether Linux shows a device node that a hardware Vulkan driver opens: a DRM render node (Mesa, and most
 *  others), NVIDIA's, WSL's dxg, Arm Mali's or Qualcomm's KGSL. Without one, only software drivers can answer. */
function gpuDeviceNodeVisible(): boolean {
  const has = (dir: string, name: RegExp): boolean => {
    try {
      return fs.readdirSync(dir).some((f) => name.test(f));
    } catch {
      return false;
    }
  };
  return has('/dev/dri', /^renderD\d+$/) || has('/dev', /^(nvidia\d+|dxg|mali\d+|kgsl-3d\d+)$/);
}

async function requestAdapter(hideSoftwareDrivers: boolean): Promise<GPUAdapter | null> {
  const request = () => gpuEntry(hideSoftwareDrivers).requestAdapter({ powerPreference: 'high-performance' });
  if (!hideSoftwareDrivers || process.platform !== 'linux') return request();
  // with the software drivers hidden and no GPU node, the loader and Dawn would print that they found no device
  if (!gpuDeviceNodeVisible()) return null;
  if (gpuInstances.has(true)) return request();
  const key = 'VK_LOADER_DRIVERS_DISABLE';
  const before = process.env[key];
  process.env[key] = [before, ...SOFTWARE_VULKAN_DRIVERS].filter((s) => s !== undefined && s !== '').join(',');
  try {
    return await request();
  } finally {
    if (before === undefined) delete process.env[key];
    else process.env[key] = before;
  }
}

const SOFTWARE_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader|swrast|microsoft basic render|\bwarp\b/i;

/** Software adapters (Mesa llvmpipe/lavapipe, SwiftShader, WARP) are usable for tests but never picked by `auto`. */
export function isSoftwareAdapter(info: GPUAdapterInfo): boolean {
  const fallback = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const words = [info.vendor, info.architecture, info.device, info.description].join(' ');
  return fallback || info.architecture === 'software' || SOFTWARE_NAMES.test(words);
}

/** The native API Dawn uses on this platform (the adapter info does not report it). */
function backendName(): string {
  if (process.platform === 'darwin') return 'metal';
  if (process.platform === 'win32') return 'd3d12';
  return 'vulkan';
}

export function describeAdapter(info: GPUAdapterInfo): AdapterDescription {
  const software = isSoftwareAdapter(info);
  const name =
    info.description?.trim() ||
    [info.vendor, info.device || info.architecture]
      .filter((s) => s && s.trim())
      .join(' ')
      .trim() ||
    'unnamed adapter';
  return { text: `${name} (${backendName()}${software ? ', software' : ''})`, software };
}

export interface OpenDeviceOptions {
  /** Accept a software adapter (lavapipe) — for tests and an explicit `--device gpu`; `auto` passes false. */
  readonly allowSoftware: boolean;
  /** Do not load the software Vulkan drivers at all (`--device auto`: no Dawn warnings about an adapter it never
   *  takes); the request then finds a real adapter or none. */
  readonly hideSoftwareDrivers?: boolean;
}

/**
 * An open WebGPU device plus the state evomerge keeps about it.
 * @example const dev = await GpuDevice.open({ allowSoftware: false });
 */
export class GpuDevice {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private lostMessage: string | undefined;
  private destroyed = false;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterDescription,
  ) {
    device.lost.then((info) => {
      if (!this.destroyed) this.lostMessage = info.message || String(info.reason ?? 'unknown reason');
    });
  }

  /** Opens the best adapter; throws gpu.no_adapter when none (or only a software one, unless allowed). */
  static async open(options: OpenDeviceOptions): Promise<GpuDevice> {
    let adapter: GPUAdapter | null = null;
    try {
      adapter = await requestAdapter(options.hideSoftwareDrivers === true);
    } catch (err) {
      throw new EvomergeError('gpu.no_adapter', `no WebGPU adapter could be requested: ${(err as Error).message}`, {
        field: '--device',
      });
    }
    if (adapter === null) {
      throw new EvomergeError(
        'gpu.no_adapter',
        'no WebGPU adapter found (no Vulkan/Metal/D3D12 driver); use --device cpu, or install a GPU driver (Mesa ' +
          'lavapipe for tests, see DEVELOPERS.md)',
        { field: '--device' },
      );
    }
    const description = describeAdapter(adapter.info);
    if (description.software && !options.allowSoftware) {
      throw new EvomergeError(
        'gpu.no_adapter',
        `only a software adapter is available (${description.text}); --device auto does not use it — pass --device ` +
          `gpu to force it, or --device cpu`,
        { field: '--device' },
      );
    }
    const a = adapter.limits;
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({
        requiredLimits: {
          maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
          maxBufferSize: a.maxBufferSize,
          maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
          maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
        },
      });
    } catch (err) {
      throw new EvomergeError(
        'gpu.no_adapter',
        `${description.text}: requestDevice failed: ${(err as Error).message}`,
        {
          field: '--device',
        },
      );
    }
    return new GpuDevice(device, description);
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Largest number of f32 elements one storage binding may hold. */
  get maxBindingElements(): number {
    return Math.floor(Math.min(this.device.limits.maxStorageBufferBindingSize, this.device.limits.maxBufferSize) / 4);
  }

  /** Set once the device is lost (driver reset, device.destroy(), GPU removed). */
  get lost(): boolean {
    return this.lostMessage !== undefined;
  }

  /** Throws gpu.device_lost if the device has been lost. */
  checkAlive(): void {
    if (this.lostMessage !== undefined) {
      throw new EvomergeError('gpu.device_lost', `GPU device lost (${this.adapter.text}): ${this.lostMessage}`, {
        field: '--device',
      });
    }
  }

  /** A compute pipeline for WGSL `code` with entry point `main`, compiled once per distinct code string. */
  pipeline(code: string): GPUComputePipeline {
    let p = this.pipelines.get(code);
    if (p === undefined) {
      const module = this.device.createShaderModule({ code });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.pipelines.set(code, p);
    }
    return p;
  }

  createBuffer(sizeBytes: number, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
    // Buffers are padded to 16 bytes so that every binding size is a multiple of 4 and offsets stay aligned.
    const size = Math.max(16, Math.ceil(sizeBytes / 16) * 16);
    return this.device.createBuffer({ size, usage, label });
  }

  write(buffer: GPUBuffer, offsetBytes: number, data: ArrayBufferView): void {
    this.device.queue.writeBuffer(buffer, offsetBytes, data.buffer, data.byteOffset, data.byteLength);
  }

  /**
   * Runs `body` inside out-of-memory and validation error scopes and waits for the queue.
   * An OOM becomes gpu.out_of_memory, a lost device gpu.device_lost, a validation error an internal bug.
   */
  async scoped<T>(what: string, body: () => Promise<T>): Promise<T> {
    this.checkAlive();
    const device = this.device;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let result: T;
    let thrown: unknown;
    try {
      result = await body();
    } catch (err) {
      thrown = err;
    }
    const validation = await device.popErrorScope().catch(() => null);
    const oom = await device.popErrorScope().catch(() => null);
    if (this.lostMessage !== undefined) this.checkAlive();
    if (oom !== null) {
      throw new EvomergeError(
        'gpu.out_of_memory',
        `out of GPU memory (${this.adapter.text}) while ${what}: ${oom.message}`,
        {
          field: '--device',
        },
      );
    }
    if (validation !== null) invariant(false, `WebGPU validation error while ${what}: ${validation.message}`);
    if (thrown !== undefined) {
      if (thrown instanceof EvomergeError) throw thrown;
      // A rejected mapAsync / onSubmittedWorkDone after the device went away.
      await Promise.resolve();
      if (this.lostMessage !== undefined || /lost|destroy/i.test(String((thrown as Error)?.message))) {
        this.lostMessage ??= String((thrown as Error)?.message);
        this.checkAlive();
      }
      throw thrown;
    }
    return result!;
  }

  /**
   * Submits `encoder` plus the copies into a mapped staging buffer and returns the bytes on the host.
   * `staging` (MAP_READ | COPY_DST, at least totalBytes) is reused when given, else a temporary one is made.
   */
  async readBack(
    encoder: GPUCommandEncoder,
    copies: readonly ReadbackCopy[],
    totalBytes: number,
    reuse?: GPUBuffer,
  ): Promise<ArrayBuffer> {
    const staging =
      reuse ?? this.createBuffer(totalBytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, 'readback');
    try {
      for (const c of copies)
        encoder.copyBufferToBuffer(c.source, c.sourceOffset, staging, c.targetOffset, c.sizeBytes);
      this.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ, 0, Math.ceil(totalBytes / 16) * 16 || 16);
      const copy = staging.getMappedRange(0, Math.ceil(totalBytes / 16) * 16 || 16).slice(0, totalBytes);
      staging.unmap();
      return copy;
    } finally {
      if (reuse === undefined) staging.destroy();
    }
  }

  /** Releases the device; later calls fail with gpu.device_lost. */
  destroy(): void {
    this.destroyed = true;
    this.lostMessage ??= 'device closed';
    this.pipelines.clear();
    this.device.destroy();
  }
}

export interface ReadbackCopy {
  readonly source: GPUBuffer;
  readonly sourceOffset: number;
  readonly targetOffset: number;
  readonly sizeBytes: number;
}

/** Splits `groups` workgroups over x and y so that neither exceeds the per-dimension dispatch limit. */
export function dispatchGrid(groups: number, maxPerDimension: number): [number, number] {
  if (groups <= 0) return [0, 0];
  const x = Math.min(groups, maxPerDimension);
  return [x, Math.ceil(groups / x)];
}
