// WGSL for out = ((Σ cᵢ·xᵢ) / divisor) · scale + c_base·base, element-wise, summed in input order like
// CpuKernel: linear / passthrough (mergekit linear.py), the final combination of slerp (slerp.py: s0·a + s1·b)
// and of model_stock (model_stock.py: t·(Σwᵢ/N) + (1 − t)·w₀).

import { WGSL_CHUNK } from './chunk.ts';
import { sourceBinding, type SourceFormat } from './source.ts';

/**
 * Bindings: 0 chunk (uniform), 1 params (uniform: divisor, scale, c_base, coefficients), 2.. inputs, then
 * the base when `withBase`, last: out.
 */
export function linearCombinationShader(
  formats: readonly SourceFormat[],
  baseFormat: SourceFormat | undefined,
): string {
  const inputs = formats.length;
  const withBase = baseFormat !== undefined;
  const decls: string[] = [];
  const terms: string[] = [];
  for (let m = 0; m < inputs; m++) {
    decls.push(sourceBinding(2 + m, `x${m}`, formats[m]));
    terms.push(`acc = acc + params.coef[${m}].x * x${m}_at(i);`);
  }
  if (baseFormat !== undefined) decls.push(sourceBinding(2 + inputs, 'base', baseFormat));
  return /* wgsl */ `
${WGSL_CHUNK}
struct Params {
  divisor: f32,
  scale: f32,
  baseCoef: f32,
  pad0: f32,
  coef: array<vec4f, ${inputs}>,
}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<uniform> params: Params;
${decls.join('\n')}
@group(0) @binding(${2 + inputs + (withBase ? 1 : 0)}) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = workgroup_linear(wid, nwg) * 256u + lid.x;
  if (i >= chunk.count) { return; }
  var acc = 0.0;
  ${terms.join('\n  ')}
  ${withBase ? 'out[i] = (acc / params.divisor) * params.scale + params.baseCoef * base_at(i);' : 'out[i] = acc / params.divisor;'}
}
`;
}
