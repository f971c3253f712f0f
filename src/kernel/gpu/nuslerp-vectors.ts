// nuslerp per row or per column on the WebGPU kernel (mergekit nuslerp.py, nuslerp_flatten: false): the
// per-vector norms and cosines on the device (wgsl/nuslerp-vectors.ts), each vector's angle and coefficients on
// the host in float32 exactly as the CPU kernel (kernel/cpu/nuslerp.ts) computes them, then one element-wise
// pass. A tensor that is one vector (1-D) takes the flattened path.

import type { MergeOp, SourceRef } from '../kernel.ts';
import { nuslerpVectors } from '../cpu/nuslerp.ts';
import { elementwise } from './elementwise.ts';
import { nuslerpFlat } from './nuslerp.ts';
import { sourceWindow, type Chunk, type GpuPasses } from './passes.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { mapShader } from './wgsl/map.ts';
import { columnCosineShader, columnNormsShader, perVectorSlerpShader, rowSumsShader } from './wgsl/nuslerp-vectors.ts';

/** nuslerp's `eps`: |sin θ| below it takes the linear branch. */
const COLINEAR_EPS = 1e-8;
const NORM_EPS = Math.fround(1e-7);

export async function nuslerpPerVector(
  kernel: GpuPasses,
  op: Extract<MergeOp, { kind: 'nuslerp' }>,
  shape: readonly number[],
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const { count, length, step } = nuslerpVectors(shape, op.flatten, op.rowWise);
  if (count === 1) return nuslerpFlat(kernel, op, n, get);
  const a = await get(op.a);
  const b = await get(op.b);
  const base = op.base === undefined ? undefined : await get(op.base);
  const sources = [a, b, ...(base === undefined ? [] : [base])];
  const sourceEntries = sources.map((s, k) => (chunk: Chunk) => sourceWindow(2 + k, s, chunk));
  const fmt = [a.format, b.format, base?.format] as const;
  const rows = step !== 1;
  const cosines = rows
    ? await rowCosines(kernel, n, count, length, rowSumsShader(length, ...fmt), sourceEntries)
    : await columnCosines(kernel, n, count, length, fmt, sourceEntries);

  // Python scalars meet float32 tensors: t and 1 − t are rounded to float32.
  const f = Math.fround;
  const tf = f(op.t);
  const omt = f(1 - op.t);
  const coefs = new Float32Array(count * 4);
  for (let v = 0; v < count; v++) {
    const cos = cosines[v]!;
    const theta = f(Math.acos(cos < -1 ? -1 : cos > 1 ? 1 : cos));
    const sinTheta = f(Math.sin(theta));
    const linear = Math.abs(sinTheta) < COLINEAR_EPS;
    coefs[4 * v] = linear ? omt : f(Math.sin(f(omt * theta)));
    coefs[4 * v + 1] = linear ? tf : f(Math.sin(f(tf * theta)));
    coefs[4 * v + 2] = linear ? 1 : sinTheta;
  }
  const coefBuf = kernel.scratch('nuslerp.coefs', coefs.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  kernel.gpu.write(coefBuf, 0, coefs);
  const { decls, body } = perVectorSlerpShader(rows ? `g / ${length}u` : `g % ${count}u`, ...fmt);
  return elementwise(kernel, n, mapShader(decls, body), [
    ...sourceEntries,
    () => ({ binding: 2 + sources.length, resource: { buffer: coefBuf, size: coefs.byteLength } }),
  ]);
}

/** cos θ of each row: Σva², Σvb², Σva·vb by a workgroup per row (and chunk), then ab / (‖a‖‖b‖) in float32. */
async function rowCosines(
  kernel: GpuPasses,
  n: number,
  count: number,
  length: number,
  code: string,
  sourceEntries: readonly ((chunk: Chunk) => GPUBindGroupEntry)[],
): Promise<number[]> {
  const sums = await perVectorPass(kernel, n, count, code, 'nuslerp.rows', sourceEntries, (chunk) => {
    const first = Math.floor(chunk.offset / length);
    return Math.floor((chunk.offset + chunk.count - 1) / length) - first + 1;
  });
  const f = Math.fround;
  const out = new Array<number>(count);
  for (let v = 0; v < count; v++) {
    const n0 = Math.max(f(Math.sqrt(sums[4 * v]!)), NORM_EPS);
    const n1 = Math.max(f(Math.sqrt(sums[4 * v + 1]!)), NORM_EPS);
    out[v] = f(sums[4 * v + 2]! / n0 / n1);
  }
  return out;
}

/** cos θ of each column: the norms in one pass, the cosine's cascade in a second, finished on the host. */
async function columnCosines(
  kernel: GpuPasses,
  n: number,
  count: number,
  length: number,
  fmt: readonly [DeviceTensor['format'], DeviceTensor['format'], DeviceTensor['format'] | undefined],
  sourceEntries: readonly ((chunk: Chunk) => GPUBindGroupEntry)[],
): Promise<number[]> {
  const threads = () => Math.ceil(count / 256);
  const normsBuf = kernel.scratch('nuslerp.norms', count * 16, stateUsage());
  await perVectorPass(kernel, n, count, columnNormsShader(count, ...fmt), 'nuslerp.norms', sourceEntries, threads);
  // multiRowSum's level size: 2^max(4, ⌊⌈log₂ length⌉ / 4⌋).
  const power = Math.max(4, Math.floor((length <= 2 ? 1 : Math.ceil(Math.log2(length))) / 4));
  const normsBinding = 2 + sourceEntries.length;
  const state = await perVectorPass(
    kernel,
    n,
    count,
    columnCosineShader(count, power, ...fmt),
    'nuslerp.cascade',
    [...sourceEntries, () => ({ binding: normsBinding, resource: { buffer: normsBuf, size: count * 16 } })],
    threads,
  );
  const f = Math.fround;
  const out = new Array<number>(count);
  for (let v = 0; v < count; v++) {
    out[v] = f(f(f(state[4 * v]! + state[4 * v + 1]!) + state[4 * v + 2]!) + state[4 * v + 3]!);
  }
  return out;
}

/** Per-vector state: accumulated by the shaders, zeroed and read back by the host (Dawn's globals, read late). */
const stateUsage = (): number => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Runs a per-vector accumulation shader over every chunk into a zeroed state buffer (4 floats per vector). */
async function perVectorPass(
  kernel: GpuPasses,
  n: number,
  count: number,
  code: string,
  stateName: string,
  extra: readonly ((chunk: Chunk) => GPUBindGroupEntry)[],
  groups: (chunk: Chunk) => number,
): Promise<Float32Array> {
  const plan = kernel.plan(n);
  const state = kernel.scratch(stateName, count * 16, stateUsage());
  const pipeline = kernel.gpu.pipeline(code);
  const enc = kernel.gpu.device.createCommandEncoder();
  enc.clearBuffer(state, 0, count * 16);
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  for (const [c, chunk] of plan.chunks.entries()) {
    const entries: GPUBindGroupEntry[] = [
      kernel.chunkEntry(0, plan, c),
      { binding: 1, resource: { buffer: state, size: count * 16 } },
      ...extra.map((e) => e(chunk)),
    ];
    kernel.dispatch(pass, pipeline, entries, groups(chunk));
  }
  pass.end();
  return kernel.readFloats(enc, state, count * 4);
}
