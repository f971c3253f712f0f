// WGSL for nuslerp per vector (mergekit nuslerp.py, nuslerp_flatten: false): the per-vector reductions and
// the final per-vector slerp. Rows (vectors along the last dim, contiguous) are reduced by one workgroup each
// with a tree, as accurate as torch's vectorised sums the CPU kernel mirrors. Columns (nuslerp_row_wise:
// vectors along dim 0, `count` apart) get one thread each, reducing in the CPU kernel's order: the norm
// sequentially in float32 (torch's strided norm), the cosine as torch's 4-level cascade (f32-reductions.ts
// multiRowSum with one row and one lane), so that the device reproduces what the goldens allow the CPU.
// A vector may straddle chunks: partial states live in a per-vector buffer that each chunk's dispatch adds to.
// Vector length and count are compiled in (one pipeline per tensor shape, a handful per model).

import { WGSL_CHUNK } from './chunk.ts';
import { sourceBinding, type SourceFormat } from './source.ts';

/** The task vectors va, vb (a − base, b − base with a base) at local index i, sources bound at 2, 3 (4). */
function taskVectors(a: SourceFormat, b: SourceFormat, base: SourceFormat | undefined): string {
  const sub = base === undefined ? '' : ' - base_at(i)';
  return `${sourceBinding(2, 'a', a)}
${sourceBinding(3, 'b', b)}
${base === undefined ? '' : sourceBinding(4, 'base', base)}
fn va_at(i: u32) -> f32 { return a_at(i)${sub}; }
fn vb_at(i: u32) -> f32 { return b_at(i)${sub}; }`;
}

/** Σva², Σvb², Σva·vb of each row of `length`, added into sums[4·row ..]. Bindings: 0 chunk, 1 sums, 2.. sources. */
export function rowSumsShader(
  length: number,
  a: SourceFormat,
  b: SourceFormat,
  base: SourceFormat | undefined,
): string {
  return /* wgsl */ `
${WGSL_CHUNK}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;
${taskVectors(a, b, base)}
const LEN: u32 = ${length}u;
var<workgroup> s0: array<f32, 256>;
var<workgroup> s1: array<f32, 256>;
var<workgroup> s2: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = chunk.offset / LEN + workgroup_linear(wid, nwg);
  let lo = max(r * LEN, chunk.offset);
  let hi = min((r + 1u) * LEN, chunk.offset + chunk.count);
  var aa = 0.0;
  var bb = 0.0;
  var ab = 0.0;
  for (var g = lo + lid.x; g < hi; g = g + 256u) {
    let i = g - chunk.offset;
    let x = va_at(i);
    let y = vb_at(i);
    aa = aa + x * x;
    bb = bb + y * y;
    ab = ab + x * y;
  }
  s0[lid.x] = aa;
  s1[lid.x] = bb;
  s2[lid.x] = ab;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid.x < s) {
      s0[lid.x] = s0[lid.x] + s0[lid.x + s];
      s1[lid.x] = s1[lid.x] + s1[lid.x + s];
      s2[lid.x] = s2[lid.x] + s2[lid.x + s];
    }
    workgroupBarrier();
  }
  if (lid.x == 0u && lo < hi) {
    sums[4u * r] = sums[4u * r] + s0[0];
    sums[4u * r + 1u] = sums[4u * r + 1u] + s1[0];
    sums[4u * r + 2u] = sums[4u * r + 2u] + s2[0];
  }
}
`;
}

/** One thread per column of `count` columns: the loop over the chunk's entries of column c (global j·count + c). */
function columnLoop(count: number, body: string): string {
  return /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = workgroup_linear(wid, nwg) * 256u + lid.x;
  if (c >= ${count}u) { return; }
  let end = chunk.offset + chunk.count;
  var j0 = 0u;
  if (chunk.offset > c) { j0 = (chunk.offset - c + ${count - 1}u) / ${count}u; }
  var j1 = 0u;
  if (end > c) { j1 = (end - c + ${count - 1}u) / ${count}u; }
  ${body}
}`;
}

/** Sequential float32 Σva², Σvb² per column into norms[4·c ..]. Bindings: 0 chunk, 1 norms, 2.. sources. */
export function columnNormsShader(
  count: number,
  a: SourceFormat,
  b: SourceFormat,
  base: SourceFormat | undefined,
): string {
  return /* wgsl */ `
${WGSL_CHUNK}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read_write> norms: array<f32>;
${taskVectors(a, b, base)}
${columnLoop(
  count,
  `var aa = norms[4u * c];
  var bb = norms[4u * c + 1u];
  for (var j = j0; j < j1; j = j + 1u) {
    let i = j * ${count}u + c - chunk.offset;
    let x = va_at(i);
    let y = vb_at(i);
    aa = aa + x * x;
    bb = bb + y * y;
  }
  norms[4u * c] = aa;
  norms[4u * c + 1u] = bb;`,
)}`;
}

/**
 * Σ (va/n0)·(vb/n1) per column as torch's cascade: levels acc[4·c .. 4·c+3], a block of 2^power terms added to
 * level 0, then carried up while the block count is a multiple of 2^power. Bindings: 0 chunk, 1 cascade state,
 * 2.. sources, then the norms (squared, from columnNormsShader) at `normsBinding`.
 */
export function columnCosineShader(
  count: number,
  power: number,
  a: SourceFormat,
  b: SourceFormat,
  base: SourceFormat | undefined,
): string {
  const normsBinding = base === undefined ? 4 : 5;
  const mask = (1 << power) - 1;
  return /* wgsl */ `
${WGSL_CHUNK}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
${taskVectors(a, b, base)}
@group(0) @binding(${normsBinding}) var<storage, read> norms: array<f32>;
${columnLoop(
  count,
  `// _normalize: the norm clamped at 1e-7.
  let n0 = max(sqrt(norms[4u * c]), 1e-7);
  let n1 = max(sqrt(norms[4u * c + 1u]), 1e-7);
  var l0 = acc[4u * c];
  var l1 = acc[4u * c + 1u];
  var l2 = acc[4u * c + 2u];
  var l3 = acc[4u * c + 3u];
  for (var j = j0; j < j1; j = j + 1u) {
    let i = j * ${count}u + c - chunk.offset;
    l0 = l0 + (va_at(i) / n0) * (vb_at(i) / n1);
    let done = j + 1u;
    if ((done & ${mask}u) == 0u) {
      l1 = l1 + l0;
      l0 = 0.0;
      if (((done >> ${power}u) & ${mask}u) == 0u) {
        l2 = l2 + l1;
        l1 = 0.0;
        if (((done >> ${2 * power}u) & ${mask}u) == 0u) {
          l3 = l3 + l2;
          l2 = 0.0;
        }
      }
    }
  }
  acc[4u * c] = l0;
  acc[4u * c + 1u] = l1;
  acc[4u * c + 2u] = l2;
  acc[4u * c + 3u] = l3;`,
)}`;
}

/**
 * out = (c0·va + c1·vb) / div (+ base) with the coefficients of the element's vector (coefs[v] = c0, c1, div).
 * Bindings: 0 chunk, 1 out, 2.. sources, then coefs. `vectorOf` maps the global index g to the vector index.
 */
export function perVectorSlerpShader(
  vectorOf: string,
  a: SourceFormat,
  b: SourceFormat,
  base: SourceFormat | undefined,
): { decls: string; body: string } {
  const coefBinding = base === undefined ? 4 : 5;
  const r = '(k.x * va_at(i) + k.y * vb_at(i)) / k.z';
  return {
    decls: `${taskVectors(a, b, base)}
@group(0) @binding(${coefBinding}) var<storage, read> coefs: array<vec4f>;`,
    body: `let k = coefs[${vectorOf}];
  out[i] = ${base === undefined ? r : `base_at(i) + ${r}`};`,
  };
}
