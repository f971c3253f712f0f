// A method's per-tensor scalars (weights, norms, dot products, angles computed on the host) as one uniform
// array read with P(k): one pipeline per shape of the method, whatever the scalars, so nothing recompiles per
// tensor. Host side: packParams pads to whole vec4s.

/** Declares `params` at `binding` holding `count` f32 scalars and `fn P(k: u32) -> f32`. */
export function paramsBinding(binding: number, count: number): string {
  const vecs = Math.max(1, Math.ceil(count / 4));
  return `@group(0) @binding(${binding}) var<uniform> params: array<vec4f, ${vecs}>;
fn P(k: u32) -> f32 { return params[k >> 2u][k & 3u]; }`;
}

/** The scalars as float32, padded to a multiple of four (uniform arrays hold vec4s). */
export function packParams(values: readonly number[]): Float32Array {
  const out = new Float32Array(Math.max(4, Math.ceil(values.length / 4) * 4));
  out.set(values);
  return out;
}
