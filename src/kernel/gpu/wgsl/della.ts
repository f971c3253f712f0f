// WGSL for DELLA's MagPrune (mergekit sparsify.py della_magprune, as CpuKernel della-magprune.ts): the rank of
// each |τ| within its row (rows along dim 1; ties by lower index first, i.e. a stable ascending order), a keep
// probability looked up by rank, the counter-based draw, and trim(τ) written out with L1 partial sums.
// Ranks are counted by comparing against the whole row through workgroup tiles: O(n · row length), no sort.

import { WGSL_RNG } from './rng.ts';
import { sourceBinding, type SourceFormat } from './source.ts';

/**
 * Bindings: 0 params (uniform), 1 thresholds by rank (u32, keepThreshold(p)), 2 p by rank (f32; only with
 * the per-element 1/p rescale), 3 base,
 * 4 x (whole tensor), 5 vals (trim(τ), whole tensor), 6 partials (Σ|τ|, Σ|kept τ| per workgroup).
 */
export function dellaShader(perElementRescale: boolean, baseFormat: SourceFormat, xFormat: SourceFormat): string {
  return /* wgsl */ `
${WGSL_RNG}
struct Params {
  rows: u32,
  rowLength: u32,
  inner: u32,
  tilesPerRow: u32,
  key0: u32,
  key1: u32,
  modelIndex: u32,
  pad0: u32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> thresholds: array<u32>;
${perElementRescale ? '@group(0) @binding(2) var<storage, read> probs: array<f32>;' : ''}
${sourceBinding(3, 'base', baseFormat)}
${sourceBinding(4, 'x', xFormat)}
@group(0) @binding(5) var<storage, read_write> vals: array<f32>;
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;

var<workgroup> keys: array<u32, 256>;
var<workgroup> sums: array<vec2f, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let wg = wid.y * nwg.x + wid.x;
  let live = wg < params.rows * params.tilesPerRow;
  let row = wg / params.tilesPerRow;
  let j = (wg % params.tilesPerRow) * 256u + lid.x;
  // Row (i0, r) of the [d0, d1, inner] view; element j of it is at rowStart + j·inner.
  let rowStart = (row / params.inner) * params.rowLength * params.inner + row % params.inner;
  let mine = live && j < params.rowLength;
  var e = 0u;
  var t = 0.0;
  var key = 0u;
  if (mine) {
    e = rowStart + j * params.inner;
    t = x_at(e) - base_at(e);
    key = bitcast<u32>(t) & 0x7fffffffu;
  }
  var rank = 0u;
  for (var tile = 0u; tile < params.tilesPerRow; tile = tile + 1u) {
    let jj = tile * 256u + lid.x;
    var k = 0xffffffffu;
    if (live && jj < params.rowLength) {
      let ee = rowStart + jj * params.inner;
      k = bitcast<u32>(x_at(ee) - base_at(ee)) & 0x7fffffffu;
    }
    keys[lid.x] = k;
    workgroupBarrier();
    for (var q = 0u; q < 256u; q = q + 1u) {
      let other = tile * 256u + q;
      let ko = keys[q];
      if (other < params.rowLength && (ko < key || (ko == key && other < j))) { rank = rank + 1u; }
    }
    workgroupBarrier();
  }
  var kept = 0.0;
  if (mine) {
    let draw = draw_u32(params.key0, params.key1, params.modelIndex, e);
    var v = 0.0;
    if ((draw >> 8u) < thresholds[rank]) {
      kept = abs(t);
      v = ${perElementRescale ? 't / probs[rank]' : 't'};
    }
    vals[e] = v;
  }
  sums[lid.x] = vec2f(abs(t), kept);
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid.x < s) { sums[lid.x] = sums[lid.x] + sums[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && live) {
    partials[wg * 2u] = sums[0].x;
    partials[wg * 2u + 1u] = sums[0].y;
  }
}
`;
}
