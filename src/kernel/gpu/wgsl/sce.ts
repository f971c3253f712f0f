// WGSL for sce (mergekit sce.py) as the CPU kernel (kernel/cpu/sce.ts) computes it: the task vectors τₖ, an
// approximate float32 variance across the models with a proven relative error bound (sceVarianceBound), the
// keep rule of the top-k cut, the probe passes that locate the cut (a two-digit histogram of the variance's bits;
// counting and gathering the entries whose variance is too near the cut to decide in float32) and the decls the
// weights reduction and the element-wise pass share. Nothing but the output is stored per element.

import { WGSL_CHUNK } from './chunk.ts';
import { paramsBinding } from './params.ts';
import { sourceBinding, type SourceFormat } from './source.ts';

/** Indices of the scalars in the params uniform (u32 values are stored as their bit patterns). */
export function sceLayout(m: number) {
  return {
    /** 1/m² (float32). */
    invM2: 0,
    /** Variances below this are "tiny": their float32 value may have underflowed (bits of an f32). */
    tiny: 1,
    /** The band of undecided variances [lo, hi]: above hi kept, below lo dropped. */
    lo: 2,
    hi: 3,
    /** Histogram pass 1: the first digit (bits 31..21) entries must match (u32). */
    prefix: 4,
    /** Gather: most entries the gather buffer holds (u32). */
    capacity: 5,
    /** How many entries of the band are kept (u32): the length of the sorted `kept` index list. */
    keptCount: 6,
    /**
     * The keep rule's band [keepLo, keepHi], 2⁻²⁰ inside [lo, hi]: an entry the weights or element-wise pass
     * finds inside was gathered even if that pipeline rounds sce_var up to 16 ulp differently from the probe's.
     */
    keepLo: 7,
    keepHi: 8,
    /** Which probe the probe pass runs (SCE_PROBE_KINDS, u32). */
    kind: 9,
    /** The per-model weights of the element-wise pass. */
    w: 10,
    count: 10 + m,
  };
}

/** How the keep mask is decided: every entry (select_topk ≥ 1), none, or by the cut and the band's list. */
export type SceKeepMode = 'all' | 'none' | 'cut';

/**
 * Bindings from 2: the base, the models x0.., the params uniform, then (mode 'cut') the sorted list of the band's
 * kept global indices. Functions: tv{k}(i), all_equal(i), sce_var(i) (Σ_{a<b} (τa − τb)² / m², the population
 * variance), keep(i, g).
 */
export function sceDecls(baseFormat: SourceFormat, formats: readonly SourceFormat[], mode: SceKeepMode): string {
  const m = formats.length;
  const L = sceLayout(m);
  const lines: string[] = [sourceBinding(2, 'base', baseFormat)];
  formats.forEach((f, k) => lines.push(sourceBinding(3 + k, `x${k}`, f)));
  lines.push(paramsBinding(3 + m, L.count));
  lines.push(`fn U(k: u32) -> u32 { return bitcast<u32>(P(k)); }`);
  for (let k = 0; k < m; k++) lines.push(`fn tv${k}(i: u32) -> f32 { return x${k}_at(i) - base_at(i); }`);
  const eq = formats.map((_, k) => `tv${k}(i) == t0`).join(' && ');
  lines.push(`fn all_equal(i: u32) -> bool { let t0 = tv0(i); return ${eq}; }`);
  const pairs: string[] = [];
  for (let a = 0; a < m; a++) {
    for (let b = a + 1; b < m; b++) pairs.push(`d = tv${a}(i) - tv${b}(i); s = s + d * d;`);
  }
  lines.push(`fn sce_var(i: u32) -> f32 { var s = 0.0; var d = 0.0; ${pairs.join(' ')} return s * P(${L.invM2}u); }`);
  if (mode === 'cut') {
    lines.push(`@group(0) @binding(${4 + m}) var<storage, read> kept: array<u32>;`);
    // Binary search of the band's kept list (sorted ascending); reached only for entries inside the band.
    lines.push(`fn in_kept(g: u32) -> bool {
  var lo = 0u; var hi = U(${L.keptCount}u);
  while (lo < hi) { let mid = (lo + hi) / 2u; if (kept[mid] < g) { lo = mid + 1u; } else { hi = mid; } }
  return lo < U(${L.keptCount}u) && kept[lo] == g;
}`);
    lines.push(`fn keep(i: u32, g: u32) -> bool {
  if (all_equal(i)) { return false; }
  let v = sce_var(i);
  if (v > P(${L.keepHi}u)) { return true; }
  if (v < P(${L.keepLo}u)) { return false; }
  return in_kept(g);
}`);
  } else {
    // The phony read keeps the params binding in the pipeline's layout (layout 'auto' drops unused bindings).
    lines.push(`fn keep(i: u32, g: u32) -> bool { _ = P(0u); return ${mode === 'all' ? 'true' : 'false'}; }`);
  }
  return lines.join('\n');
}

/** The probe pass's kinds, as the `kind` param selects them. */
export const SCE_PROBE_KINDS = { hist0: 0, hist1: 1, band: 2 } as const;

/**
 * The probe pass over the chunk, one thread per entry, binding 1 an array of atomic u32 counters. Counts go to
 * workgroup counters first, then one global add per workgroup and counter (few global atomics on hot bins). One
 * shader for the three kinds (the `kind` param), with sce_var computed once per entry, so every probe sees the
 * same float32 variance (one compiled pipeline).
 * - hist0: probe[0..2047] counts the variance bits' first digit (31..21); probe[2048] the entries with
 *   a certainly nonzero variance (not all τ equal, variance ≥ tiny), probe[2049] those not all equal but tiny.
 * - hist1: probe[0..2047] counts the second digit (20..10) of the entries whose first digit is `prefix`.
 * - band: probe[0] counts the entries above hi, probe[1] those in [lo, hi] (not all equal); the first
 *   `capacity` of those are gathered from probe[2] on as (global index, τ0 bits, τ1 bits, ...).
 */
export function sceProbeShader(baseFormat: SourceFormat, formats: readonly SourceFormat[]): string {
  const m = formats.length;
  const L = sceLayout(m);
  const stores = formats.map((_, k) => `atomicStore(&probe[at + ${k + 1}u], bitcast<u32>(tv${k}(i)));`).join(' ');
  return /* wgsl */ `
${WGSL_CHUNK}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<storage, read_write> probe: array<atomic<u32>>;
${sceDecls(baseFormat, formats, 'all')}

var<workgroup> local: array<atomic<u32>, 2050>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  for (var j = lid.x; j < 2050u; j = j + 256u) { atomicStore(&local[j], 0u); }
  workgroupBarrier();
  let i = workgroup_linear(wid, nwg) * 256u + lid.x;
  let kind = U(${L.kind}u);
  if (i < chunk.count) {
    let g = chunk.offset + i;
    let eq = all_equal(i);
    let v = select(sce_var(i), 0.0, eq);
    let bits = bitcast<u32>(v);
    if (kind == ${SCE_PROBE_KINDS.hist0}u) {
      atomicAdd(&local[bits >> 21u], 1u);
      if (!eq) { atomicAdd(&local[select(2049u, 2048u, v >= P(${L.tiny}u))], 1u); }
    } else if (kind == ${SCE_PROBE_KINDS.hist1}u) {
      if ((bits >> 21u) == U(${L.prefix}u)) { atomicAdd(&local[(bits >> 10u) & 0x7ffu], 1u); }
    } else if (!eq) {
      // Only the count above hi is a workgroup counter; a band entry takes its gather slot from probe[1] at once.
      if (v > P(${L.hi}u)) {
        atomicAdd(&local[0], 1u);
      } else if (v >= P(${L.lo}u)) {
        let slot = atomicAdd(&probe[1], 1u);
        if (slot < U(${L.capacity}u)) {
          let at = 2u + slot * ${m + 1}u;
          atomicStore(&probe[at], g); ${stores}
        }
      }
    }
  }
  workgroupBarrier();
  for (var j = lid.x; j < 2050u; j = j + 256u) {
    let c = atomicLoad(&local[j]);
    if (c != 0u) { atomicAdd(&probe[j], c); }
  }
}
`;
}

/**
 * A relative bound on |sce_var − the CPU kernel's variance| / variance for m models, for variances ≥ tiny:
 * each (τa − τb)² is within 3 ulp (one rounding of the difference, one of the square), the K = m(m−1)/2
 * positive terms add at most K − 1 roundings, the scale by 1/m² two more; the CPU's float64 mean and deviations
 * are within m·2⁻²⁸ and its rounding to float32 one ulp. Quadrupled for safety.
 */
export function sceVarianceBound(m: number): number {
  const K = (m * (m - 1)) / 2;
  return 4 * (K + 8 + m) * 2 ** -24;
}
