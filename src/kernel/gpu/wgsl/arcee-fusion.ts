// WGSL for arcee_fusion (kernel/cpu/arcee-fusion.ts). The importance |δ|·KL(row) is a float32 cancellation whose
// value depends on the exact rounding of exp, the reciprocal of the float64 sum, p/q and log, which WGSL does not
// specify. The row pass (one thread per row) computes each of those in double-float (pairs of f32 with
// error-free transformations; `o()` is an opaque identity that keeps the compiler from simplifying them — Mesa
// folds TwoSum's error term to 0 without it) to within a relative bound ε, and rounds it to float32; when the
// double-float value lies within ε of a float32 rounding midpoint, the float32 result is not proven to be the
// CPU kernel's, and the row is flagged for the host. Every other step is float32 + − × in the CPU kernel's order
// (the KL sum in torch's cascade, f32-reductions.ts sum32), so an unflagged row's KL is the CPU kernel's, bit for
// bit. Then importance histograms over the bit patterns (three quantiles at once) and the keep/drop pass.

import { WGSL_CHUNK } from './chunk.ts';
import { sourceBinding, type SourceFormat } from './source.ts';
import { TORCH_LANES } from '../../cpu/f32-reductions.ts';

/**
 * Relative error bounds of the double-float exp, 1/s and p/q, log, and log(1 + e) − e (of c, log1p_tail): an error
 * analysis with a factor 2 to spare; test/backend/fusion-double-float.test.ts holds the device to 1/16 of them.
 */
export const FUSION_EPS = { exp: 2 ** -42, div: 2 ** -42, log: 2 ** -41, log1p: 2 ** -42 } as const;
/** exp(t) below this rounds to a float32 under 2⁻⁵⁹: p = 1e-8 exactly, and its share of the sum is bounded. */
const T_TINY = -41;
/** Threads per workgroup of the row pass. */
export const ROW_GROUP = 64;

function f32Bits(x: number): string {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0]!;
  return `bitcast<f32>(0x${u.toString(16)}u)`;
}

/** A double-float constant: hi = fround(c), lo = fround(c − hi) (c given as an exact-enough double). */
function dfConst(c: number): string {
  const hi = Math.fround(c);
  return `vec2f(${f32Bits(hi)}, ${f32Bits(Math.fround(c - hi))})`;
}

// ln 2 in three parts: C1, C2 with 16 significant bits (k·C1, k·C2 exact for |k| < 2⁸), C3 the rest.
const LN2 = Math.LN2;
const C1 = Math.round(LN2 * 2 ** 16) / 2 ** 16;
const C2 = Math.round((LN2 - C1) * 2 ** 32) / 2 ** 32;
const C3 = Math.fround(LN2 - C1 - C2);

/** 1/n! as double-float for n = 0..12 (exp's Taylor series on |r| ≤ 0.35: the tail is below 2⁻⁵²). */
function factorials(): string[] {
  const out: string[] = [];
  let f = 1;
  for (let n = 0; n <= 12; n++) {
    if (n > 0) f *= n;
    out.push(dfConst(1 / f));
  }
  return out;
}

export const WGSL_DOUBLE_FLOAT = /* wgsl */ `
fn o(v: f32) -> f32 { return bitcast<f32>(bitcast<u32>(v) ^ prm.zero); }
fn two_sum(a: f32, b: f32) -> vec2f {
  let s = o(a + b);
  let bb = o(s - a);
  return vec2f(s, o(a - o(s - bb)) + o(b - bb));
}
fn fast_two_sum(a: f32, b: f32) -> vec2f {
  let s = o(a + b);
  return vec2f(s, b - o(s - a));
}
fn split(a: f32) -> vec2f {
  let t = o(4097.0 * a);
  let hi = o(t - o(t - a));
  return vec2f(hi, a - hi);
}
fn two_prod(a: f32, b: f32) -> vec2f {
  let p = o(a * b);
  let x = split(a);
  let y = split(b);
  return vec2f(p, o(o(o(o(x.x * y.x) - p) + o(x.x * y.y)) + o(x.y * y.x)) + o(x.y * y.y));
}
fn df_add(a: vec2f, b: vec2f) -> vec2f {
  var s = two_sum(a.x, b.x);
  let t = two_sum(a.y, b.y);
  s = fast_two_sum(s.x, o(s.y + t.x));
  return fast_two_sum(s.x, o(s.y + t.y));
}
fn df_mul(a: vec2f, b: vec2f) -> vec2f {
  let p = two_prod(a.x, b.x);
  return fast_two_sum(p.x, o(p.y + o(o(a.x * b.y) + o(a.y * b.x))));
}
fn df_div(a: vec2f, b: vec2f) -> vec2f {
  let q1 = a.x / b.x;
  var r = df_add(a, -df_mul(b, vec2f(q1, 0.0)));
  let q2 = r.x / b.x;
  r = df_add(r, -df_mul(b, vec2f(q2, 0.0)));
  let q3 = r.x / b.x;
  return df_add(fast_two_sum(q1, q2), vec2f(q3, 0.0));
}
`;

/**
 * decide (rounding with a midpoint flag), exp_df/exp_rn, log_df/log_rn, div_rn. Needs WGSL_DOUBLE_FLOAT and a
 * private `bad: bool`.
 */
export function fusionMathWgsl(): string {
  const fact = factorials();
  const logCoef = Array.from({ length: 10 }, (_, i) => dfConst(1 / (2 * i + 1)));
  const log1pCoef = Array.from({ length: 10 }, (_, n) => dfConst(n < 2 ? 0 : (n % 2 === 0 ? -1 : 1) / n));
  return /* wgsl */ `
/** float32 rounding of v (a double-float within eps·|v| of the exact value); flags a possible midpoint. */
fn decide(v: vec2f, eps: f32) -> f32 {
  let w = fast_two_sum(v.x, v.y);
  let h = w.x;
  let l = w.y;
  if (h == 0.0) {
    if (l != 0.0) { bad = true; }
    return 0.0;
  }
  let bits = bitcast<u32>(h) & 0x7fffffffu;
  let e = bits >> 23u;
  if (e < 40u || e > 240u) {
    bad = true;
    return h;
  }
  var half = bitcast<f32>((e - 24u) << 23u);
  if ((bits & 0x7fffffu) == 0u && (l < 0.0) != (h < 0.0)) { half = half * 0.5; }
  if (abs(l) + eps * abs(h) >= half) { bad = true; }
  return h;
}

/** exp(t) in double-float for ${T_TINY} ≤ t ≤ 0. */
fn exp_df(t: f32) -> vec2f {
  let k = round(t * ${f32Bits(1 / LN2)});
  var r = two_sum(t, -(k * ${f32Bits(C1)}));
  r = df_add(r, vec2f(-(k * ${f32Bits(C2)}), 0.0));
  r = df_add(r, vec2f(-(k * ${f32Bits(C3)}), 0.0));
  var s = ${fact[12]};
${fact
  .slice(0, 12)
  .reverse()
  .map((c) => `  s = df_add(df_mul(s, r), ${c});`)
  .join('\n')}
  let ki = i32(k);
  return vec2f(ldexp(s.x, ki), ldexp(s.y, ki));
}

/** fround(exp(t)) for t ≤ 0 (0 below ${T_TINY}, where the CPU kernel's p is 1e-8 whatever it is). */
fn exp_rn(t: f32) -> f32 {
  if (t < ${T_TINY}.0) { return 0.0; }
  return decide(exp_df(t), ${f32Bits(FUSION_EPS.exp)});
}

/** log(v) in double-float for a positive normal float32 v. */
fn log_df(v: f32) -> vec2f {
  let bits = bitcast<u32>(v);
  var k = f32(i32(bits >> 23u) - 127);
  var m = bitcast<f32>((bits & 0x7fffffu) | 0x3f800000u);
  if (m > 1.41421356) {
    m = m * 0.5;
    k = k + 1.0;
  }
  let u = df_div(vec2f(m - 1.0, 0.0), two_sum(m, 1.0));
  let u2 = df_mul(u, u);
  var t = ${logCoef[9]};
${logCoef
  .slice(0, 9)
  .reverse()
  .map((c) => `  t = df_add(df_mul(t, u2), ${c});`)
  .join('\n')}
  let lg = df_mul(u, t) * 2.0;
  let kl = df_add(two_sum(k * ${f32Bits(C1)}, k * ${f32Bits(C2)}), vec2f(k * ${f32Bits(C3)}, 0.0));
  return df_add(kl, lg);
}

/** fround(log(v)) for a positive normal float32 v. */
fn log_rn(v: f32) -> f32 {
  if (v == 1.0) { return 0.0; }
  if (abs(v - 1.0) <= ${f32Bits(2 ** -8)}) { return log1p_rn(v - 1.0); }
  return decide(log_df(v), ${f32Bits(FUSION_EPS.log)});
}

/** c = log(1 + e) − e in double-float for |e| ≤ 2⁻⁸: e²·Σ (−1)^(n+1) eⁿ⁻²/n, n = 2..9. */
fn log1p_tail(e: f32) -> vec2f {
  var t = ${log1pCoef[9]};
${[8, 7, 6, 5, 4, 3, 2].map((k) => `  t = df_add(df_mul(t, vec2f(e, 0.0)), ${log1pCoef[k]});`).join('\n')}
  return df_mul(two_prod(e, e), t);
}

/**
 * fround(log(1 + e)) for an exact float32 e, |e| ≤ 2⁻⁸. p/q is often 1 ± a few ulps, where log(1 + e) = e − e²/2
 * + e³/3 … lies within about e³ of a float32 midpoint, below decide()'s relative bound; so the value is kept as
 * e + c (c = log1p_tail, within FUSION_EPS.log1p·|c| of exact), and only c's error
 * is weighed against the distance to the midpoint.
 */
fn log1p_rn(e: f32) -> f32 {
  let c = log1p_tail(e);
  let s = two_sum(e, c.x);
  let h = s.x;
  if (h == 0.0) {
    bad = true;
    return h;
  }
  // The value is h + s.y + c.y (+ c's error). Toward s.y's side the rounding midpoint is half away.
  let dir = select(-1.0, 1.0, (s.y + c.y) >= 0.0);
  let bits = bitcast<u32>(h) & 0x7fffffffu;
  var half = bitcast<f32>(((bits >> 23u) - 24u) << 23u);
  if ((bits & 0x7fffffu) == 0u && (dir < 0.0) != (h < 0.0)) { half = half * 0.5; }
  // |s.y + c.y| beyond the midpoint by m: |s.y| − half is exact (Sterbenz) wherever m is near 0, and |c.y| ≪ half.
  let m = o(abs(s.y) - half) + select(-c.y, c.y, s.y >= 0.0);
  // c's error, and the CPU kernel's Math.log (float64, within an ulp of exact) before its fround.
  let err = ${f32Bits(FUSION_EPS.log1p)} * abs(c.x) + ${f32Bits(2 ** -51)} * abs(h);
  if (abs(m) <= err) {
    bad = true;
    return h;
  }
  if (m < 0.0) { return h; }
  return h + 2.0 * dir * half;
}

/** fround(a/b) for float32 a, b > 0. */
fn div_rn(a: f32, b: f32) -> f32 {
  return decide(df_div(vec2f(a, 0.0), vec2f(b, 0.0)), ${f32Bits(FUSION_EPS.div)});
}

`;
}

/**
 * The row pass over a block of rows (prm.rows rows from prm.rowBase; the sources and ex/eb are windows of the
 * block): per row r, its KL into klf[r], exp(x − max) and exp(base − max) (float32, as the CPU kernel rounds
 * them) into ex/eb, and r appended to flagged[1..] (count in flagged[0]) when a rounding is not proven.
 * Bindings: 0 params (zero, cap, rows, the row length, its cascade sizes, rowBase), 1 klf, 2 flagged, 3 ex, 4 eb,
 * 5 base, 6 x. One pipeline per pair of source formats.
 */
export function fusionRowShader(baseFormat: SourceFormat, xFormat: SourceFormat): string {
  const L = TORCH_LANES;
  const ILP = 4;
  const LEVELS = 4;
  return /* wgsl */ `
struct Params {
  zero: u32,
  cap: u32,
  rows: u32,
  len: u32,
  vecCount: u32,
  sizeIlp: u32,
  levelPower: u32,
  rowBase: u32,
}
@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> klf: array<f32>;
@group(0) @binding(2) var<storage, read_write> flagged: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> ex: array<f32>;
@group(0) @binding(4) var<storage, read_write> eb: array<f32>;
${sourceBinding(5, 'b', baseFormat)}
${sourceBinding(6, 'x', xFormat)}
const EPS: f32 = ${f32Bits(Math.fround(1e-8))};
var<private> bad: bool;
var<private> start: u32;
var<private> ix: f32;
var<private> ib: f32;
var<private> acc: array<f32, ${LEVELS * ILP * L}>;
${WGSL_DOUBLE_FLOAT}

${fusionMathWgsl()}
/** The CPU kernel's term j of the row: fround(p · fround(log(fround(p/q)))), p and q its softmax + 1e-8. */
fn term(j: u32) -> f32 {
  let p = o(o(ex[start + j] * ix) + EPS);
  let q = o(o(eb[start + j] * ib) + EPS);
  return o(p * log_rn(div_rn(p, q)));
}

fn load(k: u32, vec: u32) {
  for (var l = 0u; l < ${L}u; l = l + 1u) {
    acc[k * ${L}u + l] = o(acc[k * ${L}u + l] + term(vec * ${L}u + l));
  }
}

/** f32-reductions.ts sum32 (torch's cascade sum) of the row's terms. */
fn kl_sum() -> f32 {
  for (var a = 0u; a < ${LEVELS * ILP * L}u; a = a + 1u) { acc[a] = 0.0; }
  let step = 1u << prm.levelPower;
  var i = 0u;
  loop {
    if (i + step > prm.sizeIlp) { break; }
    for (var j = 0u; j < step; j = j + 1u) {
      for (var k = 0u; k < ${ILP}u; k = k + 1u) { load(k, i * ${ILP}u + k); }
      i = i + 1u;
    }
    for (var j = 1u; j < ${LEVELS}u; j = j + 1u) {
      for (var a = 0u; a < ${ILP * L}u; a = a + 1u) {
        acc[j * ${ILP * L}u + a] = o(acc[j * ${ILP * L}u + a] + acc[(j - 1u) * ${ILP * L}u + a]);
        acc[(j - 1u) * ${ILP * L}u + a] = 0.0;
      }
      // The cascade's carry test \`(i >> j·levelPower) & mask != 0\` (always 0 past 32 bits).
      let shift = j * prm.levelPower;
      let carry = shift < 32u && ((i >> shift) & (step - 1u)) != 0u;
      if (carry) { break; }
    }
  }
  for (; i < prm.sizeIlp; i = i + 1u) {
    for (var k = 0u; k < ${ILP}u; k = k + 1u) { load(k, i * ${ILP}u + k); }
  }
  for (var j = 1u; j < ${LEVELS}u; j = j + 1u) {
    for (var a = 0u; a < ${ILP * L}u; a = a + 1u) {
      acc[a] = o(acc[a] + acc[j * ${ILP * L}u + a]);
    }
  }
  // sum32: the vectors after the ilp rows into row 0, the rows into row 0, then the tail and the lanes.
  for (var v = prm.sizeIlp * ${ILP}u; v < prm.vecCount; v = v + 1u) { load(0u, v); }
  for (var k = 1u; k < ${ILP}u; k = k + 1u) {
    for (var l = 0u; l < ${L}u; l = l + 1u) { acc[l] = o(acc[l] + acc[k * ${L}u + l]); }
  }
  var total = 0.0;
  for (var j = prm.vecCount * ${L}u; j < prm.len; j = j + 1u) { total = o(total + term(j)); }
  for (var l = 0u; l < ${L}u; l = l + 1u) { total = o(total + acc[l]); }
  return total;
}

/** The exponent field of a term (its grain is 2^(field − 150)); 0 for a term under 2⁻⁵⁹ (exp_rn gave 0). */
fn grain(e: f32) -> u32 { return bitcast<u32>(e) >> 23u; }

/**
 * fround of the CPU kernel's float64 sum of the exps. When no term is under 2⁻⁵⁹ and sum·2^(150 − grain) < 2⁴⁵,
 * every partial sum fits in 45 bits: the float64 sum and the double-float one (df_add, whose TwoSum steps are
 * then exact) are both the exact sum, and fround resolves a tie to even, as here. Otherwise the double-float sum
 * is within len·2⁻⁴⁶ + 2⁻⁴⁴ of the float64 one (relative), and decide() flags what that cannot settle.
 */
fn round_sum(v: vec2f, g: u32) -> f32 {
  if (g == 0u || v.x >= exp2(f32(g) - 105.0)) { return decide(v, f32(prm.len) * ${f32Bits(2 ** -46)} + ${f32Bits(2 ** -44)}); }
  let w = fast_two_sum(v.x, v.y);
  let h = w.x;
  let l = w.y;
  if (l == 0.0) { return h; }
  let bits = bitcast<u32>(h);
  var half = bitcast<f32>(((bits >> 23u) - 24u) << 23u);
  if ((bits & 0x7fffffu) == 0u && l < 0.0) { half = half * 0.5; }
  if (abs(l) < half) { return h; }
  if (abs(l) > half) {
    bad = true;
    return h;
  }
  if ((bits & 1u) == 0u) { return h; }
  return h + 2.0 * l;
}

fn finite(v: f32) -> bool { return abs(v) <= 3.4028234e38; }

@compute @workgroup_size(${ROW_GROUP})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let local = (wid.y * nwg.x + wid.x) * ${ROW_GROUP}u + lid.x;
  if (local >= prm.rows) { return; }
  let r = prm.rowBase + local;
  bad = false;
  start = local * prm.len;
  var mx = x_at(start);
  var mb = b_at(start);
  for (var j = 0u; j < prm.len; j = j + 1u) {
    let xv = x_at(start + j);
    let bv = b_at(start + j);
    if (!finite(xv) || !finite(bv)) { bad = true; }
    mx = max(mx, xv);
    mb = max(mb, bv);
  }
  // Σ exp in double-float: the CPU kernel adds the float32 exps in float64, then rounds the sum to float32.
  var sx = vec2f(0.0, 0.0);
  var sb = vec2f(0.0, 0.0);
  var gx = 255u;
  var gb = 255u;
  for (var j = 0u; j < prm.len; j = j + 1u) {
    let e1 = exp_rn(x_at(start + j) - mx);
    let e2 = exp_rn(b_at(start + j) - mb);
    ex[start + j] = e1;
    eb[start + j] = e2;
    gx = min(gx, grain(e1));
    gb = min(gb, grain(e2));
    sx = df_add(sx, vec2f(e1, 0.0));
    sb = df_add(sb, vec2f(e2, 0.0));
  }
  let tx = round_sum(sx, gx);
  let tb = round_sum(sb, gb);
  ix = div_rn(1.0, tx);
  ib = div_rn(1.0, tb);
  let kl = kl_sum();
  if (bad) {
    let at = atomicAdd(&flagged[0], 1u);
    if (at < prm.cap) { atomicStore(&flagged[1u + at], r); }
  }
  klf[r] = kl;
}
`;
}

/** Order-preserving u32 key of a float32 (−0 before +0), and the importance of element i (global = local). */
function importance(length: number, baseFormat: SourceFormat, xFormat: SourceFormat, first: number): string {
  return `${sourceBinding(first, 'b', baseFormat)}
${sourceBinding(first + 1, 'x', xFormat)}
fn importance(i: u32) -> f32 { return abs(x_at(i) - b_at(i)) * klf[(chunk.offset + i) / ${length}u]; }
fn key(v: f32) -> u32 {
  let k = bitcast<u32>(v);
  return select(k | 0x80000000u, ~k, (k & 0x80000000u) != 0u);
}`;
}

/**
 * One radix pass (digits 31..21, 20..10, 9..0 as pass 0, 1, 2) of three selections at once: hist[s·2048 + digit]
 * counts the entries whose key matches selection s's prefix so far. Bindings: 0 chunk, 1 params (pass, prefixes),
 * 2 hist, 3 klf, 4 base, 5 x.
 */
export function fusionHistShader(length: number, baseFormat: SourceFormat, xFormat: SourceFormat): string {
  return /* wgsl */ `
${WGSL_CHUNK}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<uniform> sel: vec4<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> klf: array<f32>;
${importance(length, baseFormat, xFormat, 4)}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = workgroup_linear(wid, nwg) * 256u + lid.x;
  if (i >= chunk.count) { return; }
  let k = key(importance(i));
  for (var s = 0u; s < 3u; s = s + 1u) {
    let p = sel[1u + s];
    if (sel.x == 0u) {
      atomicAdd(&hist[s * 2048u + (k >> 21u)], 1u);
    } else if (sel.x == 1u) {
      if ((k >> 21u) == p) { atomicAdd(&hist[s * 2048u + ((k >> 10u) & 0x7ffu)], 1u); }
    } else if ((k >> 10u) == p) {
      atomicAdd(&hist[s * 2048u + (k & 0x3ffu)], 1u);
    }
  }
}
`;
}

/** out = base + fround(x − base) where importance ≥ threshold, else base. Bindings: 0 chunk, 1 params, 2 out, 3 klf, 4 base, 5 x. */
export function fusionMaskShader(length: number, baseFormat: SourceFormat, xFormat: SourceFormat): string {
  return /* wgsl */ `
${WGSL_CHUNK}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<uniform> thr: vec4<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> klf: array<f32>;
${importance(length, baseFormat, xFormat, 4)}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = workgroup_linear(wid, nwg) * 256u + lid.x;
  if (i >= chunk.count) { return; }
  let b = b_at(i);
  // thr.y is 0: the xor keeps the compiler from folding b + (x − b) into x.
  let d = bitcast<f32>(bitcast<u32>(x_at(i) - b) ^ bitcast<u32>(thr.y));
  out[i] = select(b, b + d, importance(i) >= thr.x);
}
`;
}
