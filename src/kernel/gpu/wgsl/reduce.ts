// WGSL for K float sums over a tensor in one pass: each workgroup sums a tile of TILE_ELEMENTS contiguous
// elements (per-thread partials, then a tree in workgroup memory) and writes K partials; the host adds the
// partials in float64. Used for slerp norms and dot (mergekit slerp.py), model_stock cosines, L1 rescale.

import { TILE_ELEMENTS, WGSL_CHUNK } from './chunk.ts';

export interface ReduceShaderParts {
  /** Extra declarations (bindings from 2 upward, helper functions). Binding 0 is the chunk, 1 the partials. */
  readonly decls: string;
  /** Statements run per element with `i` (chunk-local) and `g` (global) in scope. */
  readonly prelude: string;
  /** K f32 expressions summed over all elements. */
  readonly terms: readonly string[];
}

export function reduceShader(parts: ReduceShaderParts): string {
  const k = parts.terms.length;
  const perThread = TILE_ELEMENTS / 256;
  const accumulate = parts.terms.map((t, j) => `acc[${j}] = acc[${j}] + (${t});`).join('\n      ');
  return /* wgsl */ `
${WGSL_CHUNK}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
${parts.decls}

var<workgroup> scratch: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tile = workgroup_linear(wid, nwg);
  var acc: array<f32, ${k}>;
  for (var j = 0u; j < ${k}u; j = j + 1u) { acc[j] = 0.0; }
  for (var r = 0u; r < ${perThread}u; r = r + 1u) {
    let i = tile * ${TILE_ELEMENTS}u + r * 256u + lid.x;
    if (i < chunk.count) {
      let g = chunk.offset + i;
      ${parts.prelude}
      ${accumulate}
    }
  }
  let tileGlobal = chunk.offset / ${TILE_ELEMENTS}u + tile;
  for (var j = 0u; j < ${k}u; j = j + 1u) {
    scratch[lid.x] = acc[j];
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
      if (lid.x < s) { scratch[lid.x] = scratch[lid.x] + scratch[lid.x + s]; }
      workgroupBarrier();
    }
    if (lid.x == 0u && tile * ${TILE_ELEMENTS}u < chunk.count) { partials[tileGlobal * ${k}u + j] = scratch[0]; }
    workgroupBarrier();
  }
}
`;
}
