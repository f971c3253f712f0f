// arcee_fusion on the WebGPU kernel (mergekit arcee_fusion.py, as kernel/cpu/arcee-fusion.ts): a row pass computes
// each row's KL as the CPU kernel rounds it (wgsl/arcee-fusion.ts: double-float exp, reciprocal, division and
// log, each rounded to float32 only where the rounding is proven), and flags the rows where one was not proven;
// the host recomputes only those rows with the CPU kernel's own code (fusionRowKl). The three quantiles of the
// importances |δ|·KL are then exact: radix-selected on their bit patterns (three histogram passes, the three
// quantiles at once); the threshold is computed on the host in float32 and one pass keeps or drops each δ.

import { invariant } from '../../errors.ts';
import type { MergeOp, SourceRef } from '../kernel.ts';
import { fusionRowKl } from '../cpu/arcee-fusion.ts';
import { TORCH_LANES } from '../cpu/f32-reductions.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { sourceWindow, window, type ChunkPlan, type GpuPasses } from './passes.ts';
import { fusionHistShader, fusionMaskShader, fusionRowShader, ROW_GROUP } from './wgsl/arcee-fusion.ts';

/** The rows of the last arcee_fusion tensor merged on the device, and how many of them the host recomputed. */
export interface FusionHostStats {
  rows: number;
  flaggedRows: number;
}

export const fusionStats: FusionHostStats = { rows: 0, flaggedRows: 0 };

export async function arceeFusionGpu(
  kernel: GpuPasses,
  op: Extract<MergeOp, { kind: 'arcee_fusion' }>,
  shape: readonly number[],
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const base = await get(op.base);
  const x = await get(op.other);
  const length = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  const rows = n / length;
  const plan = kernel.plan(n);
  const device = kernel.gpu.device;

  // ---- the row pass: KL per row, the float32 exps, the rows whose rounding is not proven ----
  const klf = kernel.scratch(
    'fusion.klf',
    rows * 4,
    GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
  );
  const cap = Math.min(rows, 4096);
  const flagged = kernel.scratch(
    'fusion.flagged',
    (cap + 1) * 4,
    GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  );
  // Blocks of whole rows, each within one storage binding and starting 128 elements aligned (binding offsets).
  const block = plan.chunks.length === 1 ? rows : fusionRowsPerBlock(length, plan.chunks[0]!.count);
  invariant(block > 0, `arcee_fusion: a row of ${length} does not fit one storage binding`);
  const ex = kernel.scratch('fusion.ex', Math.min(rows, block) * length * 4, GPUBufferUsage.STORAGE);
  const eb = kernel.scratch('fusion.eb', Math.min(rows, block) * length * 4, GPUBufferUsage.STORAGE);
  // The cascade of torch's sum over a row (f32-reductions.ts sum32, multiRowSum): its sizes for this length.
  const vecCount = Math.floor(length / TORCH_LANES);
  const sizeIlp = Math.floor(vecCount / 4);
  const levelPower = Math.max(4, Math.floor((sizeIlp <= 2 ? 1 : Math.ceil(Math.log2(sizeIlp))) / 4));
  const blocks = Math.ceil(rows / block);
  const params = new Uint32Array(blocks * 64);
  for (let k = 0; k < blocks; k++) {
    const inBlock = Math.min(block, rows - k * block);
    params.set([0, cap, inBlock, length, vecCount, sizeIlp, levelPower, k * block], k * 64);
  }
  const paramBuf = kernel.uniformData('fusion.params', params);
  {
    const pipeline = kernel.gpu.pipeline(fusionRowShader(base.format, x.format));
    const enc = device.createCommandEncoder();
    enc.clearBuffer(flagged, 0, (cap + 1) * 4);
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    for (let k = 0; k < blocks; k++) {
      const inBlock = Math.min(block, rows - k * block);
      const rowsWindow = { offset: k * block * length, count: inBlock * length };
      kernel.dispatch(
        pass,
        pipeline,
        [
          { binding: 0, resource: { buffer: paramBuf, offset: k * 256, size: 32 } },
          { binding: 1, resource: { buffer: klf, size: rows * 4 } },
          { binding: 2, resource: { buffer: flagged, size: (cap + 1) * 4 } },
          { binding: 3, resource: { buffer: ex, size: rowsWindow.count * 4 } },
          { binding: 4, resource: { buffer: eb, size: rowsWindow.count * 4 } },
          sourceWindow(5, base, rowsWindow),
          sourceWindow(6, x, rowsWindow),
        ],
        Math.ceil(inBlock / ROW_GROUP),
      );
    }
    pass.end();
    const head = await kernel.readFloats(enc, flagged, 1);
    const count = new Uint32Array(head.buffer, head.byteOffset, 1)[0]!;
    fusionStats.rows = rows;
    fusionStats.flaggedRows = count;
    if (count > 0)
      await hostRows(
        kernel,
        base,
        x,
        klf,
        length,
        count <= cap ? await flaggedList(kernel, flagged, count) : all(rows),
      );
  }

  // ---- the three quantiles: radix select over the importances' bit patterns ----
  const positions = [0.25, 0.5, 0.75].map((q) => Math.trunc(Math.fround(Math.fround(q) * Math.fround(n - 1))));
  const ranks = [...positions];
  const prefix = [0, 0, 0];
  const sel = new Uint32Array(4);
  const hist = kernel.scratch(
    'fusion.hist',
    3 * 2048 * 4,
    GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  );
  const histCode = kernel.gpu.pipeline(fusionHistShader(length, base.format, x.format));
  for (let p = 0; p < 3; p++) {
    sel[0] = p;
    for (let s = 0; s < 3; s++) sel[1 + s] = prefix[s]!;
    const selBuf = kernel.uniformData(`fusion.sel${p}`, sel);
    const enc = device.createCommandEncoder();
    enc.clearBuffer(hist, 0, 3 * 2048 * 4);
    const pass = enc.beginComputePass();
    pass.setPipeline(histCode);
    for (const [c, chunk] of plan.chunks.entries()) {
      kernel.dispatch(
        pass,
        histCode,
        [
          kernel.chunkEntry(0, plan, c),
          { binding: 1, resource: { buffer: selBuf } },
          { binding: 2, resource: { buffer: hist, size: 3 * 2048 * 4 } },
          { binding: 3, resource: { buffer: klf, size: rows * 4 } },
          sourceWindow(4, base, chunk),
          sourceWindow(5, x, chunk),
        ],
        Math.ceil(chunk.count / 256),
      );
    }
    pass.end();
    const f = await kernel.readFloats(enc, hist, 3 * 2048);
    const h = new Uint32Array(f.buffer, f.byteOffset, 3 * 2048);
    const bits = p === 2 ? 10 : 11;
    for (let s = 0; s < 3; s++) {
      let below = 0;
      let d = 0;
      for (; d < 1 << bits; d++) {
        const c = h[s * 2048 + d]!;
        if (below + c > ranks[s]!) break;
        below += c;
      }
      ranks[s] = ranks[s]! - below;
      prefix[s] = (prefix[s]! << bits) | d;
    }
  }
  const [q1, q2, q3] = prefix.map((k) => keyToFloat(k >>> 0)) as [number, number, number];
  const iqr = Math.fround(q3 - q1);
  const threshold = Math.fround(q2 + Math.fround(1.5 * iqr));

  // ---- keep or drop each δ ----
  const out = kernel.scratch('out', n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const thr = kernel.uniformData('fusion.thr', new Float32Array([threshold, 0, 0, 0]));
  const maskCode = kernel.gpu.pipeline(fusionMaskShader(length, base.format, x.format));
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(maskCode);
  for (const [c, chunk] of plan.chunks.entries()) {
    kernel.dispatch(
      pass,
      maskCode,
      [
        kernel.chunkEntry(0, plan, c),
        { binding: 1, resource: { buffer: thr } },
        window(2, out, chunk),
        { binding: 3, resource: { buffer: klf, size: rows * 4 } },
        sourceWindow(4, base, chunk),
        sourceWindow(5, x, chunk),
      ],
      Math.ceil(chunk.count / 256),
    );
  }
  pass.end();
  return kernel.readOutput(enc, out, n);
}

/**
 * Rows per block of the row pass: as many whole rows as one binding of `maxElements` holds, a multiple of the
 * rows that keep a block's first element 128-aligned (256-byte offsets for bf16 sources too); 0 when a row is
 * too long for that (GpuKernel then merges the tensor on the host).
 */
export function fusionRowsPerBlock(length: number, maxElements: number): number {
  const align = 128 / gcd(length, 128);
  return Math.floor(Math.floor(maxElements / length) / align) * align;
}

/** Whether the row pass can bind this tensor's rows (a single chunk, or blocks of whole rows). */
export function fusionFits(shape: readonly number[], plan: ChunkPlan): boolean {
  const length = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  return plan.chunks.length === 1 || fusionRowsPerBlock(length, plan.chunks[0]!.count) > 0;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function all(rows: number): number[] {
  return Array.from({ length: rows }, (_, r) => r);
}

async function flaggedList(kernel: GpuPasses, flagged: GPUBuffer, count: number): Promise<number[]> {
  const f = await kernel.readFloats(kernel.gpu.device.createCommandEncoder(), flagged, count + 1);
  return [...new Uint32Array(f.buffer, f.byteOffset + 4, count)];
}

/** Recomputes the KL of `rows` on the host from those rows alone (CPU kernel code) and writes it into klf. */
async function hostRows(
  kernel: GpuPasses,
  base: DeviceTensor,
  x: DeviceTensor,
  klf: GPUBuffer,
  length: number,
  rows: readonly number[],
): Promise<void> {
  const b = await readRows(kernel, base, length, rows);
  const xs = await readRows(kernel, x, length, rows);
  const p = new Float32Array(length);
  const q = new Float32Array(length);
  const values = new Float32Array(1);
  for (const [k, r] of rows.entries()) {
    values[0] = fusionRowKl(b, xs, k * length, length, p, q);
    kernel.gpu.write(klf, r * 4, values);
  }
}

/** The given rows of a device tensor, decoded to float32 and packed one after the other. */
async function readRows(
  kernel: GpuPasses,
  t: DeviceTensor,
  length: number,
  rows: readonly number[],
): Promise<Float32Array> {
  const perElement = t.format === 'f32' ? 4 : 2;
  const spans = rows.map((r) => {
    const from = Math.floor((r * length * perElement) / 4) * 4;
    const to = Math.ceil(((r + 1) * length * perElement) / 4) * 4;
    return { r, from, bytes: to - from };
  });
  let total = 0;
  const copies = spans.map((s) => {
    const c = { source: t.buffer, sourceOffset: s.from, targetOffset: total, sizeBytes: s.bytes };
    total += s.bytes;
    return c;
  });
  const data = await kernel.gpu.readBack(kernel.gpu.device.createCommandEncoder(), copies, total);
  const out = new Float32Array(rows.length * length);
  const u16 = new Uint16Array(data);
  const f32 = new Float32Array(data);
  const bits = new Uint32Array(1);
  const asFloat = new Float32Array(bits.buffer);
  let at = 0;
  spans.forEach((s, k) => {
    const skip = (s.r * length * perElement - s.from) / perElement;
    for (let j = 0; j < length; j++) {
      if (t.format === 'f32') out[k * length + j] = f32[at / 4 + skip + j]!;
      else {
        bits[0] = u16[at / 2 + skip + j]! << 16;
        out[k * length + j] = asFloat[0]!;
      }
    }
    at += s.bytes;
  });
  return out;
}

/** The float32 whose order-preserving key (wgsl key()) is k. */
function keyToFloat(k: number): number {
  const bits = k & 0x80000000 ? k & 0x7fffffff : ~k >>> 0;
  return new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0]!;
}
