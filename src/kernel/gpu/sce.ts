// sce on the WebGPU kernel (mergekit sce.py, as kernel/cpu/sce.ts): the variance top-k cut, then one reduction for
// the τ²-mean weights and one element-wise pass (sign election, masked weighting). The cut must keep exactly the
// CPU kernel's entries, whose variance torch takes in float64 (WGSL has none), so the device computes a float32
// variance with a proven error bound and locates the cut with two histogram passes; the few entries whose
// variance lies within that bound of the cut are gathered (index and τ values only) and decided on the host with
// the CPU kernel's own formula (sceVarianceAt). The host never reads a whole tensor.

import { EvomergeError, invariant } from '../../errors.ts';
import type { MergeOp, SourceRef, TensorJob } from '../kernel.ts';
import { sceTopK, sceVarianceAt } from '../cpu/sce.ts';
import { sequentialSum32 } from '../cpu/f32-reductions.ts';
import { elementwise } from './elementwise.ts';
import { linearCombination } from './linear.ts';
import { sourceWindow, type Chunk, type GpuPasses } from './passes.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { mapShader } from './wgsl/map.ts';
import { reduceShader } from './wgsl/reduce.ts';
import {
  SCE_PROBE_KINDS,
  sceDecls,
  sceLayout,
  sceProbeShader,
  sceVarianceBound,
  type SceKeepMode,
} from './wgsl/sce.ts';

/** Variances below 2⁻⁸⁰ are decided on the host: their float32 square may have underflowed on the device. */
const TINY = 2 ** -80;
const MIN_DIVISOR = Math.fround(1e-6);
const PROBE_WORDS = 2050;

export async function sce(
  kernel: GpuPasses,
  job: TensorJob,
  op: Extract<MergeOp, { kind: 'sce' }>,
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const base = await get(op.base);
  const xs: DeviceTensor[] = [];
  for (const r of op.inputs) xs.push(await get(r));
  const m = xs.length;
  // No model besides the base: mergekit returns the base's tensor.
  if (m === 0) return linearCombination(kernel, n, [base], [1], { divisor: 1 });
  kernel.checkBindings(job, m + 3);
  const L = sceLayout(m);
  const params = new Float32Array(Math.ceil(L.count / 4) * 4);
  const u32 = new Uint32Array(params.buffer);
  params[L.invM2] = 1 / (m * m);
  params[L.tiny] = TINY;
  const formats = xs.map((x) => x.format);
  const sources = [base, ...xs];
  let passNo = 0;
  const bindings = (kept?: GPUBuffer): ((chunk: Chunk) => GPUBindGroupEntry)[] => {
    // A uniform per pass: each is written before the submit that reads it.
    const buf = kernel.uniformData(`sce.params${passNo++ % 8}`, params);
    return [
      ...sources.map((s, k) => (chunk: Chunk) => sourceWindow(2 + k, s, chunk)),
      () => ({ binding: 3 + m, resource: { buffer: buf } }),
      ...(kept === undefined ? [] : [() => ({ binding: 4 + m, resource: { buffer: kept } })]),
    ];
  };
  const probeCode = sceProbeShader(base.format, formats);
  const probe = (kind: keyof typeof SCE_PROBE_KINDS, words: number): Promise<Uint32Array> => {
    u32[L.kind] = SCE_PROBE_KINDS[kind];
    return probePass(kernel, n, probeCode, words, bindings());
  };

  // ---- the keep mask: everything, nothing, or the cut (sceKeep of the CPU kernel) ----
  let mode: SceKeepMode = op.selectTopk >= 1 ? 'all' : 'none';
  let kept: GPUBuffer | undefined;
  if (op.selectTopk > 0 && op.selectTopk < 1) {
    const h0 = await probe('hist0', PROBE_WORDS);
    let nonzero = h0[2048]!;
    if (h0[2049]! > 0) {
      // Not all τ equal, yet a tiny variance: whether it rounds to zero in float32 is the host's call.
      params[L.lo] = 0;
      params[L.hi] = bitsToFloat(floatBits(TINY) - 1);
      u32[L.capacity] = h0[2049]!;
      for (const e of await gather(m, h0[2049]!, u32, L, probe)) if (e.v !== 0) nonzero++;
    }
    const k = sceTopK(nonzero, op.selectTopk);
    if (k > 0) {
      mode = 'cut';
      const [b1, k1] = digitOf(h0, k);
      u32[L.prefix] = b1;
      const [b2] = digitOf(await probe('hist1', PROBE_WORDS), k1);
      const p = (b1 << 11) | b2;
      const delta = sceVarianceBound(m);
      const bl = bitsToFloat(p << 10);
      const bh = (p + 1) << 10 >= 0x7f800000 || p + 1 >= 1 << 21 ? Infinity : bitsToFloat((p + 1) << 10);
      // The k-th largest exact variance c lies in [bl/(1+δ), bh/(1−δ)]: an entry whose sce_var is above
      // bh·(1+4δ) has an exact variance above c, one below bl·(1−4δ) below c, even 2⁻²⁰ inside (keepLo, keepHi).
      const lo = roundDown(bl * (1 - 4 * delta));
      params[L.lo] = lo < 2 * TINY ? 0 : lo;
      params[L.hi] = roundUp(bh * (1 + 4 * delta));
      params[L.keepLo] = roundUp(params[L.lo]! * (1 + 2 ** -20));
      params[L.keepHi] = roundDown(params[L.hi]! * (1 - 2 ** -20));
      u32[L.capacity] = 0;
      const counts = await probe('band', 2);
      const above = counts[0]!;
      u32[L.capacity] = counts[1]!;
      const band = await gather(m, counts[1]!, u32, L, probe);
      const need = k - above;
      invariant(need >= 0 && need <= band.length, `sce: the cut's band holds ${band.length}, needs ${need}`);
      // The CPU's order: variance descending, ties by the lowest index (kernel/select-kth.ts).
      band.sort((a, b) => b.v - a.v || a.g - b.g);
      const keptIdx = new Uint32Array(Math.max(4, need));
      keptIdx.set(band.slice(0, need).map((e) => e.g));
      keptIdx.subarray(0, need).sort();
      u32[L.keptCount] = need;
      kept = kernel.scratch('sce.kept', keptIdx.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
      kernel.gpu.write(kept, 0, keptIdx);
    }
  }

  // ---- sce_weight: mean(τᵢ²) of the masked task vectors, normalised by their float32 sum ----
  const decls = sceDecls(base.format, formats, mode);
  const squares = xs.map((_, k) => `select(0.0, tv${k}(i) * tv${k}(i), kp)`);
  const sums = await kernel.sumsWith(
    kernel.gpu.device.createCommandEncoder(),
    n,
    reduceShader({ decls, prelude: 'let kp = keep(i, g);', terms: squares }),
    m,
    bindings(kept),
  );
  const raw = sums.map((s) => Math.fround(Math.fround(s) / n));
  const total = sequentialSum32(raw);
  const w = Math.abs(total) < 1e-6 ? raw.map(() => Math.fround(1 / m)) : raw.map((r) => Math.fround(r / total));
  w.forEach((x, k) => (params[L.w + k] = x));

  // ---- sign election on the masked τ, weighted sum of the agreeing ones ----
  const votes = xs.map((_, k) => `let t${k} = select(0.0, tv${k}(i), kp); vote = vote + t${k};`).join('\n  ');
  const terms = xs
    .map((_, k) => `if (sign(t${k}) == el) { merged = merged + t${k} * P(${L.w + k}u); div = div + P(${L.w + k}u); }`)
    .join('\n  ');
  const body = `let kp = keep(i, g);
  var vote = 0.0;
  ${votes}
  let el = select(-1.0, 1.0, vote >= 0.0);
  var merged = 0.0;
  var div = 0.0;
  ${terms}
  out[i] = base_at(i) + merged / select(div, ${MIN_DIVISOR}, div < ${MIN_DIVISOR});`;
  return elementwise(kernel, n, mapShader(decls, body), bindings(kept));
}

/** An entry gathered from the band: its global index and its variance as the CPU kernel computes it. */
interface BandEntry {
  readonly g: number;
  readonly v: number;
}

/**
 * Gathers the entries of the band [lo, hi] (params), about `expected` of them, and computes their variances on
 * the host; gathers again with room for all when more were found (the passes need not round alike).
 */
async function gather(
  m: number,
  expected: number,
  u32: Uint32Array,
  L: ReturnType<typeof sceLayout>,
  probe: (kind: 'band', words: number) => Promise<Uint32Array>,
): Promise<BandEntry[]> {
  let capacity = expected;
  let data = await probe('band', 2 + capacity * (m + 1));
  if (data[1]! > capacity) {
    capacity = data[1]!;
    u32[L.capacity] = capacity;
    data = await probe('band', 2 + capacity * (m + 1));
  }
  const count = Math.min(data[1]!, capacity);
  const f32 = new Float32Array(data.buffer, data.byteOffset, data.length);
  const tvs = Array.from({ length: m }, () => new Float32Array(count));
  const index = new Array<number>(count);
  for (let j = 0; j < count; j++) {
    const at = 2 + j * (m + 1);
    index[j] = data[at]!;
    for (let k = 0; k < m; k++) tvs[k]![j] = f32[at + 1 + k]!;
  }
  return index.map((g, j) => ({ g, v: sceVarianceAt(tvs, j) }));
}

/** Runs one probe pass (binding 1: `words` zeroed atomic counters) and reads the counters back. */
async function probePass(
  kernel: GpuPasses,
  n: number,
  code: string,
  words: number,
  extra: readonly ((chunk: Chunk) => GPUBindGroupEntry)[],
): Promise<Uint32Array> {
  const plan = kernel.plan(n);
  const bytes = words * 4;
  const buf = kernel.scratch(
    'sce.probe',
    bytes,
    GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  );
  const pipeline = kernel.gpu.pipeline(code);
  const enc = kernel.gpu.device.createCommandEncoder();
  enc.clearBuffer(buf, 0, Math.ceil(bytes / 16) * 16);
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  for (const [c, chunk] of plan.chunks.entries()) {
    const entries: GPUBindGroupEntry[] = [
      kernel.chunkEntry(0, plan, c),
      { binding: 1, resource: { buffer: buf, size: Math.ceil(bytes / 16) * 16 } },
      ...extra.map((e) => e(chunk)),
    ];
    kernel.dispatch(pass, pipeline, entries, Math.ceil(chunk.count / 256));
  }
  pass.end();
  const f = await kernel.readFloats(enc, buf, words);
  return new Uint32Array(f.buffer, f.byteOffset, words);
}

/** The bin of a 2048-bin histogram that holds the k-th largest entry, and k's rank inside that bin. */
function digitOf(hist: Uint32Array, k: number): [number, number] {
  let above = 0;
  for (let b = 2047; b >= 0; b--) {
    if (above + hist[b]! >= k) return [b, k - above];
    above += hist[b]!;
  }
  throw new EvomergeError('internal', `sce: the histogram holds fewer than ${k} entries (this is a bug in evomerge)`);
}

function bitsToFloat(bits: number): number {
  return new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0]!;
}

function floatBits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0]!;
}

/** The largest float32 ≤ x (x ≥ 0). */
function roundDown(x: number): number {
  const f = Math.fround(x);
  return f <= x ? f : bitsToFloat(floatBits(f) - 1);
}

/** The smallest float32 ≥ x (x ≥ 0). */
function roundUp(x: number): number {
  const f = Math.fround(x);
  return f >= x ? f : bitsToFloat(floatBits(f) + 1);
}
