// WGSL for an element-wise pass whose body the method supplies: one thread per element of the chunk, the
// output window at binding 1. Used for the last pass of multislerp, karcher and per-vector nuslerp.

import { WGSL_CHUNK } from './chunk.ts';

/**
 * Bindings: 0 chunk, 1 out (the chunk's window), 2.. whatever `decls` declares. `body` runs with `i` (chunk-local
 * index) and `g` (global index) in scope and assigns `out[i]`.
 */
export function mapShader(decls: string, body: string): string {
  return /* wgsl */ `
${WGSL_CHUNK}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
${decls}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = workgroup_linear(wid, nwg) * 256u + lid.x;
  if (i >= chunk.count) { return; }
  let g = chunk.offset + i;
  ${body}
}
`;
}
