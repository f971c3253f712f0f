// WGSL for exact k-th magnitude selection without a sort (TIES `magnitude`, breadcrumbs
// `magnitude_outliers`): a radix select over the f32 bit patterns of |τ| (non-negative floats order like
// their bits), 11+11+10 bits in three histogram passes, then a bit-packed keep mask per model. Ties at the
// cut are resolved by element index: the order is |τ| descending then index ascending, as in CpuKernel
// (src/kernel/select-kth.ts MagnitudeCut: the lowest indices of the tied values are kept).

import { BLOCK_ELEMENTS, TILE_ELEMENTS, WGSL_CHUNK } from './chunk.ts';
import { sourceBinding, type SourceFormat } from './source.ts';

/** The three radix passes: the digit's shift and width (bits 31..21, 20..10, 9..0). */
export const RADIX_PASSES = [
  { shift: 21, bits: 11 },
  { shift: 10, bits: 11 },
  { shift: 0, bits: 10 },
] as const;

/** Bins of the widest digit: the histogram window per selection slot. */
export const RADIX_BINS = 2048;

/**
 * One selection (u32 ×8, 32 bytes): select the k elements that come first in the order
 * (|τ| descending or ascending, ties by index). After the passes: `prefix` = the cut's bit pattern T,
 * `kRem` = how many elements equal to T are selected, `tiesTotal` = how many equal T.
 */
export const WGSL_SELECTION = /* wgsl */ `
struct Selection {
  prefix: u32,
  mask: u32,
  kRem: u32,
  tiesTotal: u32,
  needTie: u32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
}
`;

/** Bytes between selection slots (storage binding offsets must be 256-byte aligned). */
export const SELECTION_STRIDE = 256;
export const SELECTION_BYTES = 32;

/** |τ| bit pattern of element i: bitcast(x − base) with the sign cleared (−0 and +0 are both 0). */
const KEY = `(bitcast<u32>(x_at(i) - base_at(i)) & 0x7fffffffu)`;

/** The formats of the base and of the model a selection runs over. */
export interface PairFormats {
  readonly base: SourceFormat;
  readonly x: SourceFormat;
}

/** Histogram of the current digit over the elements that match the selection's prefix so far. */
export function histogramShader(pass: number, f: PairFormats): string {
  const { shift, bits } = RADIX_PASSES[pass];
  const bins = 1 << bits;
  return /* wgsl */ `
${WGSL_CHUNK}
${WGSL_SELECTION}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read> sel: Selection;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>>;
${sourceBinding(3, 'base', f.base)}
${sourceBinding(4, 'x', f.x)}

var<workgroup> local: array<atomic<u32>, ${bins}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  for (var j = lid.x; j < ${bins}u; j = j + 256u) { atomicStore(&local[j], 0u); }
  workgroupBarrier();
  let tile = workgroup_linear(wid, nwg);
  let prefix = sel.prefix;
  let mask = sel.mask;
  for (var r = 0u; r < ${TILE_ELEMENTS / 256}u; r = r + 1u) {
    let i = tile * ${TILE_ELEMENTS}u + r * 256u + lid.x;
    if (i < chunk.count) {
      let key = ${KEY};
      if ((key & mask) == prefix) {
        atomicAdd(&local[(key >> ${shift}u) & ${bins - 1}u], 1u);
      }
    }
  }
  workgroupBarrier();
  for (var j = lid.x; j < ${bins}u; j = j + 256u) {
    let c = atomicLoad(&local[j]);
    if (c != 0u) { atomicAdd(&hist[j], c); }
  }
}
`;
}

/** One thread picks the digit holding the kRem-th element of the order, narrows the prefix, clears the histogram. */
export function selectDigitShader(pass: number, descending: boolean): string {
  const { shift, bits } = RADIX_PASSES[pass];
  const bins = 1 << bits;
  const last = pass === RADIX_PASSES.length - 1;
  return /* wgsl */ `
${WGSL_SELECTION}
@group(0) @binding(0) var<storage, read_write> sel: Selection;
@group(0) @binding(1) var<storage, read_write> hist: array<u32>;

@compute @workgroup_size(1)
fn main() {
  var cum = 0u;
  var chosen = ${descending ? bins - 1 : 0}u;
  var count = 0u;
  for (var s = 0u; s < ${bins}u; s = s + 1u) {
    let d = ${descending ? `${bins - 1}u - s` : 's'};
    let c = hist[d];
    if (cum + c >= sel.kRem) {
      chosen = d;
      count = c;
      break;
    }
    cum = cum + c;
  }
  sel.kRem = sel.kRem - cum;
  sel.prefix = sel.prefix | (chosen << ${shift}u);
  sel.mask = sel.mask | (${bins - 1}u << ${shift}u);
  ${last ? 'sel.tiesTotal = count;\n  sel.needTie = select(0u, 1u, sel.kRem != 0u && sel.kRem != count);' : ''}
  for (var j = 0u; j < ${bins}u; j = j + 1u) { hist[j] = 0u; }
}
`;
}

/** Counts, per block of BLOCK_ELEMENTS, the elements equal to the cut (only when the cut splits its ties). */
export function tieCountShader(f: PairFormats): string {
  return /* wgsl */ `
${WGSL_CHUNK}
${WGSL_SELECTION}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read> sel: Selection;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
${sourceBinding(3, 'base', f.base)}
${sourceBinding(4, 'x', f.x)}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  if (sel.needTie == 0u) { return; }
  let block = workgroup_linear(wid, nwg);
  let t = sel.prefix;
  var c = 0u;
  for (var r = 0u; r < ${BLOCK_ELEMENTS / 256}u; r = r + 1u) {
    let i = block * ${BLOCK_ELEMENTS}u + r * 256u + lid.x;
    if (i < chunk.count && ${KEY} == t) { c = c + 1u; }
  }
  if (c != 0u) { atomicAdd(&counts[chunk.offset / ${BLOCK_ELEMENTS}u + block], c); }
}
`;
}

/** Exclusive prefix sum of the per-block tie counts, in place, in one workgroup (plus the total at [blocks]). */
export function tieScanShader(): string {
  return /* wgsl */ `
${WGSL_SELECTION}
struct ScanParams { blocks: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> params: ScanParams;
@group(0) @binding(1) var<storage, read> sel: Selection;
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;

var<workgroup> sums: array<u32, 256>;
var<workgroup> need: u32;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3u) {
  if (lid.x == 0u) { need = sel.needTie; }
  let needTie = workgroupUniformLoad(&need);
  if (needTie == 0u) { return; }
  let per = (params.blocks + 255u) / 256u;
  let start = lid.x * per;
  let end = min(start + per, params.blocks);
  var s = 0u;
  for (var b = start; b < end; b = b + 1u) { s = s + counts[b]; }
  sums[lid.x] = s;
  workgroupBarrier();
  for (var off = 1u; off < 256u; off = off << 1u) {
    var v = 0u;
    if (lid.x >= off) { v = sums[lid.x - off]; }
    workgroupBarrier();
    sums[lid.x] = sums[lid.x] + v;
    workgroupBarrier();
  }
  // counts[blocks] = the total, so that block b holds counts[b + 1] − counts[b] ties.
  if (lid.x == 255u) { counts[params.blocks] = sums[255]; }
  var run = sums[lid.x] - s;
  for (var b = start; b < end; b = b + 1u) {
    let c = counts[b];
    counts[b] = run;
    run = run + c;
  }
}
`;
}

/** How a model's keep mask follows from its selections. */
export type MaskRule =
  /** keep = the first k of |τ| descending (mergekit sparsify.py magnitude). */
  | { readonly kind: 'top'; readonly tieFirst: boolean }
  /**
   * keep = in the first n − n_bot and not in the first n_top of the order (sparsify.py magnitude_outliers:
   * drops the n_top largest and the n_bot smallest). sel0 = the n_top selection, sel1 = the n − n_bot one.
   */
  | { readonly kind: 'middle'; readonly tieFirst: boolean };

/**
 * Writes the bit-packed keep mask (bit i%32 of word i/32) for one model from its descending selections
 * (sel1 is bound to sel0 when unused); `counts0/1` hold the per-block exclusive tie prefixes.
 */
export function maskShader(rule: MaskRule, f: PairFormats): string {
  const two = rule.kind === 'middle';
  const tie0First = rule.tieFirst;
  const tie1First = rule.tieFirst;
  const pick = (slot: number, first: boolean) =>
    first ? `rank${slot} < s${slot}.kRem` : `rank${slot} >= s${slot}.tiesTotal - s${slot}.kRem`;
  return /* wgsl */ `
${WGSL_CHUNK}
${WGSL_SELECTION}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read> sel0: Selection;
@group(0) @binding(2) var<storage, read> sel1: Selection;
@group(0) @binding(3) var<storage, read> counts0: array<u32>;
@group(0) @binding(4) var<storage, read> counts1: array<u32>;
${sourceBinding(5, 'base', f.base)}
${sourceBinding(6, 'x', f.x)}
@group(0) @binding(7) var<storage, read_write> masks: array<u32>;

var<workgroup> words: array<atomic<u32>, 256>;
var<workgroup> scanbuf: array<u32, 256>;
var<workgroup> flag0: u32;
var<workgroup> flag1: u32;

// Exclusive prefix sum over the workgroup (Hillis–Steele); returns (exclusive, total).
fn scan(lid: u32, v: u32) -> vec2u {
  scanbuf[lid] = v;
  workgroupBarrier();
  for (var off = 1u; off < 256u; off = off << 1u) {
    var t = 0u;
    if (lid >= off) { t = scanbuf[lid - off]; }
    workgroupBarrier();
    scanbuf[lid] = scanbuf[lid] + t;
    workgroupBarrier();
  }
  let r = vec2u(scanbuf[lid] - v, scanbuf[255]);
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let block = workgroup_linear(wid, nwg);
  let globalBlock = chunk.offset / ${BLOCK_ELEMENTS}u + block;
  let s0 = sel0;
  let s1 = sel1;
  atomicStore(&words[lid.x], 0u);
  let blocksInChunk = (chunk.count + ${BLOCK_ELEMENTS - 1}u) / ${BLOCK_ELEMENTS}u;
  // Ranks among the ties are needed only where the cut splits its ties and this block holds some of them.
  if (lid.x == 0u) {
    flag0 = 0u;
    flag1 = 0u;
    if (block < blocksInChunk) {
      if (s0.needTie != 0u && counts0[globalBlock + 1u] != counts0[globalBlock]) { flag0 = 1u; }
      ${two ? 'if (s1.needTie != 0u && counts1[globalBlock + 1u] != counts1[globalBlock]) { flag1 = 1u; }' : ''}
    }
  }
  let need0 = workgroupUniformLoad(&flag0);
  let need1 = workgroupUniformLoad(&flag1);
  var run0 = 0u;
  var run1 = 0u;
  if (block < blocksInChunk) {
    if (need0 != 0u) { run0 = counts0[globalBlock]; }
    if (need1 != 0u) { run1 = counts1[globalBlock]; }
  }
  for (var r = 0u; r < ${BLOCK_ELEMENTS / 256}u; r = r + 1u) {
    let i = block * ${BLOCK_ELEMENTS}u + r * 256u + lid.x;
    let valid = block < blocksInChunk && i < chunk.count;
    var key = 0u;
    if (valid) { key = ${KEY}; }
    let tie0 = valid && key == s0.prefix;
    var rank0 = 0u;
    if (need0 != 0u) {
      let sc = scan(lid.x, select(0u, 1u, tie0));
      rank0 = run0 + sc.x;
      run0 = run0 + sc.y;
    }
    let in0 = key > s0.prefix || (tie0 && select(s0.kRem != 0u, ${pick(0, tie0First)}, need0 != 0u));
    ${
      two
        ? `let tie1 = valid && key == s1.prefix;
    var rank1 = 0u;
    if (need1 != 0u) {
      let sc1 = scan(lid.x, select(0u, 1u, tie1));
      rank1 = run1 + sc1.x;
      run1 = run1 + sc1.y;
    }
    let in1 = key > s1.prefix || (tie1 && select(s1.kRem != 0u, ${pick(1, tie1First)}, need1 != 0u));
    let keep = in1 && !in0;`
        : 'let keep = in0;'
    }
    if (valid && keep) {
      atomicOr(&words[r * 8u + lid.x / 32u], 1u << (lid.x % 32u));
    }
  }
  workgroupBarrier();
  let word = block * 256u + lid.x;
  if (block < blocksInChunk && word * 32u < chunk.count) {
    masks[chunk.offset / 32u + word] = atomicLoad(&words[lid.x]);
  }
}
`;
}
