// `--device` selection and the GPU → CPU fallback: auto never takes a software adapter, an explicit gpu does;
// a device destroyed between or during jobs makes the kernel log one line and finish every job on the CPU
// with CPU-identical output; jobs the GPU cannot express run on the CPU alone.

import { describe, expect, it } from 'vitest';
import { EvomergeError } from '../../src/errors.ts';
import { CpuKernel } from '../../src/kernel/cpu/cpu-kernel.ts';
import { GpuDevice } from '../../src/kernel/gpu/device.ts';
import { GpuKernel } from '../../src/kernel/gpu/gpu-kernel.ts';
import type { MergeKernel, SourceRef, TensorJob, TensorReader } from '../../src/kernel/kernel.ts';
import { rngKey } from '../../src/kernel/rng.ts';
import { FallbackKernel, parseDeviceChoice, selectKernel } from '../../src/kernel/pick-device.ts';

const N = 4096;

function sources(): { read: TensorReader; job: (name: string) => TensorJob } {
  const data = new Map<string, Float32Array>();
  for (const [m, seed] of [
    ['base', 1],
    ['a', 2],
    ['b', 3],
  ] as const) {
    data.set(
      m,
      Float32Array.from(
        { length: N },
        (_, e) => Math.sin(e * 0.37 * seed) + (m === 'base' ? 0 : 0.05 * Math.cos(e * seed)),
      ),
    );
  }
  const read = (ref: SourceRef) => data.get(ref.model)!;
  const job = (name: string): TensorJob => ({
    name,
    shape: [N],
    op: {
      kind: 'task_arithmetic',
      base: { model: 'base', tensor: name },
      inputs: (['a', 'b'] as const).map((m, i) => ({
        ref: { model: m, tensor: name },
        weight: 0.5 + i * 0.25,
        density: 0.4,
        gamma: 0.01,
        epsilon: 0.1,
        modelIndex: i + 1,
      })),
      sparsification: 'random',
      consensus: 'sum',
      normalize: false,
      lambda: 1,
      rescale: 'l1',
      rng: rngKey(5, name),
    },
  });
  return { read, job };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function relErr(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let e = 0; e < b.length; e++) {
    diff = Math.max(diff, Math.abs(a[e] - b[e]));
    scale = Math.max(scale, Math.abs(b[e]));
  }
  return diff / scale;
}

/** The WebGPU device inside a kernel made by selectKernel('gpu'). */
function deviceOf(k: MergeKernel): GPUDevice {
  expect(k).toBeInstanceOf(FallbackKernel);
  const primary = (k as FallbackKernel).primary;
  expect(primary).toBeInstanceOf(GpuKernel);
  return (primary as GpuKernel).gpu.device;
}

describe('--device parsing', () => {
  it('accepts auto, cpu, gpu and names the choices otherwise', () => {
    expect(['auto', 'cpu', 'gpu'].map(parseDeviceChoice)).toEqual(['auto', 'cpu', 'gpu']);
    try {
      parseDeviceChoice('cuda');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(EvomergeError);
      expect((err as EvomergeError).code).toBe('cli.bad_device');
      expect((err as EvomergeError).exitCode).toBe(2);
      expect((err as Error).message).toBe('--device: unknown device "cuda"; should be one of: auto, cpu, gpu');
    }
  });
});

describe('selectKernel', () => {
  it('cpu gives the CPU kernel', async () => {
    const k = await selectKernel('cpu');
    expect(k).toBeInstanceOf(CpuKernel);
    expect(k.device).toBe(new CpuKernel().device);
  });

  it('auto takes a real GPU adapter only; gpu accepts a software one', async () => {
    const probe = await GpuDevice.open({ allowSoftware: true });
    const software = probe.adapter.software;
    probe.destroy();
    const auto = await selectKernel('auto', { log: () => {} });
    if (software) expect(auto.device).toBe(new CpuKernel().device);
    else expect(auto.device).toMatch(/^gpu: (?!.*software)/);
    await auto.close();
    const gpu = await selectKernel('gpu', { log: () => {} });
    expect(gpu.device).toMatch(
      software ? /^gpu: .*\(vulkan, software\)$|^gpu: .*\((metal|d3d12), software\)$/ : /^gpu: /,
    );
    await gpu.close();
  });

  it('without a real adapter, opening the GPU for auto fails with gpu.no_adapter and says what to do', async () => {
    const probe = await GpuDevice.open({ allowSoftware: true });
    const software = probe.adapter.software;
    probe.destroy();
    if (!software) return; // a real GPU is present: nothing to refuse
    const err = await GpuKernel.create({ allowSoftware: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvomergeError);
    expect((err as EvomergeError).code).toBe('gpu.no_adapter');
    expect((err as Error).message).toMatch(
      /^--device: only a software adapter is available \(.+\); .*--device gpu.*--device cpu$/,
    );
  });
});

describe('GpuKernel options', () => {
  it('refuses a chunk size that is not a multiple of the mask block', async () => {
    const err = await GpuKernel.create({ allowSoftware: true, chunkElements: 1000 }).catch((e: unknown) => e);
    expect((err as EvomergeError).code).toBe('gpu.bad_option');
    expect((err as Error).message).toBe('chunkElements: chunkElements must be a positive multiple of 8192, got 1000');
  });
});

describe('FallbackKernel on a real device', () => {
  it('device destroyed between jobs: one log line, that job and every later one on the CPU, CPU-identical', async () => {
    const lines: string[] = [];
    const kernel = await selectKernel('gpu', { log: (l) => lines.push(l) });
    const gpuName = kernel.device;
    const { read, job } = sources();
    const cpu = new CpuKernel();
    const first = await kernel.mergeTensor(job('t0'), read);
    expect(relErr(first, await cpu.mergeTensor(job('t0'), read))).toBeLessThanOrEqual(1e-6);
    expect(lines).toEqual([]);

    deviceOf(kernel).destroy();
    for (const name of ['t1', 't2', 't3']) {
      const got = await kernel.mergeTensor(job(name), read);
      expect(sameBits(got, await cpu.mergeTensor(job(name), read))).toBe(true);
    }
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/GPU device lost .*continuing on the CPU from tensor "t1" on$/);
    expect(kernel.device).toBe(`${new CpuKernel().device} (after gpu.device_lost on ${gpuName})`);
    expect((kernel as FallbackKernel).fault?.code).toBe('gpu.device_lost');
    await kernel.close();
  });

  it('device destroyed while a job is in flight: the job still returns the CPU result', async () => {
    const lines: string[] = [];
    const kernel = await selectKernel('gpu', { log: (l) => lines.push(l) });
    const { read, job } = sources();
    await kernel.mergeTensor(job('warm'), read);
    const pending = kernel.mergeTensor(job('mid'), read);
    deviceOf(kernel).destroy();
    const got = await pending;
    const want = await new CpuKernel().mergeTensor(job('mid'), read);
    // Either the GPU finished before the loss (then it matched the CPU within parity) or the CPU redid it.
    if (lines.length === 1) expect(sameBits(got, want)).toBe(true);
    else expect(relErr(got, want)).toBeLessThanOrEqual(1e-6);
    const after = await kernel.mergeTensor(job('after'), read);
    expect(sameBits(after, await new CpuKernel().mergeTensor(job('after'), read))).toBe(true);
    expect(lines.length).toBe(1);
    await kernel.close();
  });

  it('a job the GPU cannot express runs on the CPU alone; later jobs stay on the GPU', async () => {
    const lines: string[] = [];
    const kernel = await selectKernel('gpu', { log: (l) => lines.push(l) });
    const gpuName = kernel.device;
    const limit =
      (kernel as FallbackKernel).primary instanceof GpuKernel
        ? ((kernel as FallbackKernel).primary as GpuKernel).gpu.limits.maxStorageBuffersPerShaderStage
        : 0;
    const many = Array.from({ length: limit + 1 }, (_, m) => ({ model: `m${m}`, tensor: 'w' }));
    const read = (ref: SourceRef) => Float32Array.from({ length: 64 }, (_, e) => e + Number(ref.model.slice(1)));
    const job: TensorJob = {
      name: 'w',
      shape: [64],
      op: { kind: 'weighted_sum', inputs: many.map((ref) => ({ ref, weight: 1 })), normalize: true },
    };
    const got = await kernel.mergeTensor(job, read);
    expect(sameBits(got, await new CpuKernel().mergeTensor(job, read))).toBe(true);
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/storage buffers in one shader.*merged on the CPU$/);
    expect(kernel.device).toBe(gpuName);
    await kernel.mergeTensor(job, read);
    expect(lines.length).toBe(1);
    await kernel.close();
  });
});

describe('FallbackKernel fault classification', () => {
  // A real GPU out-of-memory cannot be provoked on a software adapter (allocations are lazy host memory), so
  // this primary raises the gpu.out_of_memory error that GpuDevice.scoped produces from an OOM error scope.
  class OutOfMemoryKernel implements MergeKernel {
    readonly device = 'gpu: test primary';
    calls = 0;
    async mergeTensor(): Promise<Float32Array> {
      this.calls++;
      throw new EvomergeError('gpu.out_of_memory', 'out of GPU memory (test primary) while merging tensor "t0"', {
        field: '--device',
      });
    }
    async close(): Promise<void> {}
  }

  it('out of memory: logs once, the job and later ones go to the CPU, the primary is not retried', async () => {
    const lines: string[] = [];
    const primary = new OutOfMemoryKernel();
    const kernel = new FallbackKernel(primary, new CpuKernel(), (l) => lines.push(l));
    const { read, job } = sources();
    for (const name of ['t0', 't1']) {
      expect(
        sameBits(await kernel.mergeTensor(job(name), read), await new CpuKernel().mergeTensor(job(name), read)),
      ).toBe(true);
    }
    expect(primary.calls).toBe(1);
    expect(lines).toEqual([
      'evomerge: --device: out of GPU memory (test primary) while merging tensor "t0"; continuing on the CPU from tensor "t0" on',
    ]);
    expect(kernel.device).toBe(`${new CpuKernel().device} (after gpu.out_of_memory on gpu: test primary)`);
  });

  it('bad input is not a GPU fault: it propagates', async () => {
    const kernel = await selectKernel('gpu', { log: () => {} });
    const { read, job } = sources();
    const j = job('d0');
    const bad: TensorJob = {
      ...j,
      op: {
        ...(j.op as Extract<TensorJob['op'], { kind: 'task_arithmetic' }>),
        sparsification: 'magnitude',
        inputs: (j.op as Extract<TensorJob['op'], { kind: 'task_arithmetic' }>).inputs.map((i) => ({
          ...i,
          density: 1e-9,
        })),
      },
    };
    const err = await kernel.mergeTensor(bad, read).catch((e: unknown) => e);
    expect((err as EvomergeError).code).toBe('merge.density_zero');
    expect((kernel as FallbackKernel).fault).toBeUndefined();
    await kernel.close();
  });
});
