// WGSL for nearswap (mergekit nearswap.py), element-wise: w = clamp(fround(1/max(|a − b|, 1e-6))·t, 0, 1),
// out = w·b + (1 − w)·a, as the CPU kernel (kernel/cpu/nearswap.ts) rounds it.

import { WGSL_CHUNK } from './chunk.ts';
import { sourceBinding, type SourceFormat } from './source.ts';

/** Bindings: 0 chunk, 1 params (t), 2 base, 3 other, 4 out. */
export function nearswapShader(baseFormat: SourceFormat, otherFormat: SourceFormat): string {
  return /* wgsl */ `
${WGSL_CHUNK}
struct Params {
  t: f32,
  pad0: f32,
  pad1: f32,
  pad2: f32,
}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<uniform> params: Params;
${sourceBinding(2, 'a', baseFormat)}
${sourceBinding(3, 'b', otherFormat)}
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = workgroup_linear(wid, nwg) * 256u + lid.x;
  if (i >= chunk.count) { return; }
  let va = a_at(i);
  let vb = b_at(i);
  // torch evaluates t / x as x.reciprocal() * t.
  let r = 1.0 / max(abs(va - vb), 1e-6);
  let w = clamp(r * params.t, 0.0, 1.0);
  out[i] = w * vb + (1.0 - w) * va;
}
`;
}
