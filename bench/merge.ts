// Merge-kernel throughput: task_arithmetic, ties, dare_ties and slerp on 1 base + 3 experts of 4096×14336
// float32 (synthetic, in memory), in seconds and GB/s next to a plain Float32Array copy (the bandwidth ceiling).
// `npm run bench -- merge [--device cpu|gpu] [--rows 4096] [--cols 14336] [--reps 3] [--methods a,b]`

import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { CpuKernel } from '../src/kernel/cpu/cpu-kernel.ts';
import type { MergeKernel, MergeOp, SourceRef, TensorJob } from '../src/kernel/kernel.ts';
import { rngKey } from '../src/kernel/rng.ts';

/**
 * Kernel factories by `--device` name. The GPU kernel (src/kernel/gpu/) registers here, e.g.
 * `gpu: async () => (await import('../src/kernel/gpu/gpu-kernel.ts')).openGpuKernel()`.
 */
export const kernelFactories: Record<string, () => Promise<MergeKernel>> = {
  cpu: async () => new CpuKernel(),
  // An explicit gpu request accepts a software adapter (lavapipe), like `--device gpu`.
  gpu: async () => (await import('../src/kernel/gpu/gpu-kernel.ts')).GpuKernel.create({ allowSoftware: true }),
};

const EXPERTS = 3;
const TENSOR = 'model.layers.0.mlp.up_proj.weight';

/** Deterministic uniform fill in [−scale, scale) (xorshift32); fast enough for hundreds of MB. */
function fillUniform(out: Float32Array, seed: number, scale: number, offset?: Float32Array): void {
  let s = seed >>> 0 || 1;
  const k = (2 * scale) / 4294967296;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const v = (s >>> 0) * k - scale;
    out[i] = offset === undefined ? v : offset[i] + v;
  }
}

function jobFor(method: string, shape: number[]): { job: TensorJob; inputs: number } {
  const ref = (model: string): SourceRef => ({ model, tensor: TENSOR });
  const experts = Array.from({ length: EXPERTS }, (_, i) => ({
    ref: ref(`expert${i}`),
    weight: [0.5, 0.3, 0.2][i],
    density: 0.5,
    gamma: 0.01,
    epsilon: 0.15,
    modelIndex: i,
  }));
  const ta = (
    sparsification: 'none' | 'magnitude' | 'random',
    consensus: 'none' | 'sum',
    normalize: boolean,
    rescale: 'none' | 'l1',
  ): MergeOp => ({
    kind: 'task_arithmetic',
    base: ref('base'),
    inputs: sparsification === 'none' ? experts.map((e) => ({ ...e, density: 1 })) : experts,
    sparsification,
    consensus,
    normalize,
    lambda: 1,
    rescale,
    rng: rngKey(42, TENSOR),
  });
  switch (method) {
    case 'task_arithmetic':
      return { job: { name: TENSOR, shape, op: ta('none', 'none', false, 'none') }, inputs: EXPERTS + 1 };
    case 'ties':
      return { job: { name: TENSOR, shape, op: ta('magnitude', 'sum', true, 'none') }, inputs: EXPERTS + 1 };
    case 'dare_ties':
      return { job: { name: TENSOR, shape, op: ta('random', 'sum', false, 'l1') }, inputs: EXPERTS + 1 };
    case 'slerp':
      return {
        job: { name: TENSOR, shape, op: { kind: 'slerp', a: ref('base'), b: ref('expert0'), t: 0.4 } },
        inputs: 2,
      };
    default:
      throw new Error(`unknown method ${method}`);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      device: { type: 'string', default: 'cpu' },
      rows: { type: 'string', default: '4096' },
      cols: { type: 'string', default: '14336' },
      reps: { type: 'string', default: '3' },
      methods: { type: 'string', default: 'task_arithmetic,ties,dare_ties,slerp' },
    },
  });
  const factory = kernelFactories[values.device];
  if (factory === undefined)
    throw new Error(`--device: unknown "${values.device}"; have ${Object.keys(kernelFactories).join(', ')}`);
  const shape = [Number(values.rows), Number(values.cols)];
  const n = shape[0] * shape[1];
  const reps = Number(values.reps);
  const tensorBytes = n * 4;

  console.log(
    `generating 1 base + ${EXPERTS} experts of ${shape.join('×')} float32 (${(tensorBytes / 1e9).toFixed(3)} GB each)`,
  );
  const tensors = new Map<string, Float32Array>();
  const base = new Float32Array(n);
  fillUniform(base, 1, 0.02);
  tensors.set('base', base);
  for (let i = 0; i < EXPERTS; i++) {
    const x = new Float32Array(n);
    fillUniform(x, 100 + i, 0.004, base);
    tensors.set(`expert${i}`, x);
  }
  const read = (r: SourceRef): Float32Array => tensors.get(r.model)!;

  // The ceiling: a plain copy of one tensor (read n·4 bytes + write n·4 bytes), into a reused (already
  // faulted-in) destination, and into a fresh allocation (slice), which also pays the page faults that any
  // freshly allocated output pays on first touch.
  const copyDst = new Float32Array(n);
  const warmCopy: number[] = [];
  const freshCopy: number[] = [];
  for (let r = 0; r < reps + 1; r++) {
    let t0 = process.hrtime.bigint();
    copyDst.set(base);
    let t1 = process.hrtime.bigint();
    if (r > 0) warmCopy.push(Number(t1 - t0) / 1e9);
    t0 = process.hrtime.bigint();
    const fresh = base.slice();
    t1 = process.hrtime.bigint();
    if (r > 0) freshCopy.push(Number(t1 - t0) / 1e9);
    if (fresh.length !== n) throw new Error('copy');
  }
  const copyS = median(warmCopy);
  const copyGBs = (2 * tensorBytes) / copyS / 1e9;

  // CPU seconds (user + system of this process) beside wall seconds: on a shared machine the wall clock also
  // counts the time spent waiting for a core.
  const rows: string[][] = [
    [
      'method',
      'device',
      'output',
      'seconds (median)',
      'seconds (min)',
      'cpu s (median)',
      'GB moved',
      'GB/s',
      'vs copy',
      'vs task_arithmetic',
    ],
  ];
  const row = (
    label: string,
    device: string,
    output: string,
    times: number[],
    cpuTimes: number[],
    bytes: number,
    taS?: number,
  ) => {
    const s = median(times);
    const gbs = bytes / s / 1e9;
    const cpuS = cpuTimes.length === 0 ? '' : median(cpuTimes).toFixed(3);
    rows.push([
      label,
      device,
      output,
      s.toFixed(3),
      Math.min(...times).toFixed(3),
      cpuS,
      (bytes / 1e9).toFixed(2),
      gbs.toFixed(2),
      (gbs / copyGBs).toFixed(2),
      taS === undefined ? '' : `${(s / taS).toFixed(2)}×`,
    ]);
    return s;
  };
  row('Float32Array copy', 'cpu', 'reused', warmCopy, [], 2 * tensorBytes);
  row('Float32Array copy', 'cpu', 'fresh', freshCopy, [], 2 * tensorBytes);
  // A non-CPU device runs next to the CPU backend in the same run; each method is merged once untimed first,
  // so a GPU is timed with its sources already resident (a campaign's steady state).
  const devices = values.device === 'cpu' ? ['cpu'] : ['cpu', values.device];
  const notes: string[] = [];
  for (const device of devices) {
    const kernel = await kernelFactories[device]();
    if (/software/.test(kernel.device)) {
      notes.push(
        `note: ${kernel.device} is a software rasteriser running on the CPU: its figures only prove that the GPU path runs`,
      );
    }
    // A kernel that can write into a caller's buffer (CpuKernel.mergeTensorInto) is also timed that way: it
    // separates the arithmetic from the first-touch cost of a new output array.
    const into = (kernel as Partial<CpuKernel>).mergeTensorInto?.bind(kernel);
    const reusedOut = into === undefined ? undefined : new Float32Array(n);
    const taSeconds: Record<string, number> = {};
    // A GPU kernel is also timed without the copy back to the host: the device's own throughput.
    const onDevice = (
      kernel as { mergeTensorOnDevice?: (j: TensorJob, r: typeof read) => Promise<void> }
    ).mergeTensorOnDevice?.bind(kernel);
    const placeholder = onDevice === undefined ? undefined : new Float32Array(n);
    for (const method of values.methods.split(',')) {
      const { job, inputs } = jobFor(method, shape);
      const bytes = (inputs + 1) * tensorBytes;
      const variants: [string, () => Promise<Float32Array>][] = [['fresh', () => kernel.mergeTensor(job, read)]];
      if (into !== undefined && reusedOut !== undefined)
        variants.push(['reused', async () => into(job, read, reusedOut)]);
      if (onDevice !== undefined && placeholder !== undefined)
        variants.push(['on device', async () => (await onDevice(job, read), placeholder)]);
      if (device !== 'cpu') await kernel.mergeTensor(job, read);
      for (const [output, run] of variants) {
        const times: number[] = [];
        const cpuTimes: number[] = [];
        for (let r = 0; r < reps; r++) {
          const c0 = process.cpuUsage();
          const t0 = process.hrtime.bigint();
          const out = await run();
          const t1 = process.hrtime.bigint();
          const c1 = process.cpuUsage(c0);
          times.push(Number(t1 - t0) / 1e9);
          cpuTimes.push((c1.user + c1.system) / 1e6);
          if (out.length !== n) throw new Error(`${method}: output has ${out.length} elements`);
        }
        const s = row(method, kernel.device, output, times, cpuTimes, bytes, taSeconds[output]);
        if (method === 'task_arithmetic') taSeconds[output] = s;
      }
    }
    await kernel.close();
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c])).join('  '));
  console.log(
    `GB moved = (inputs read + output written) bytes; node ${process.version}; ${reps} reps; ` +
      `load average at the end ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')} on ${cpus().length} cores`,
  );
  for (const note of notes) console.log(note);
}
