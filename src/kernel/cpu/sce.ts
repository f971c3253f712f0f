// SCE (mergekit sce.py, Wan et al. 2024 "FuseChat"): Select the entries where the task vectors vary most,
// Calculate per-model weights from the mean squared task vector, Erase the entries whose sign disagrees with
// the elected (summed) sign; out = base + Σ wᵢ·agreeᵢ·τᵢ / max(Σ wᵢ·agreeᵢ, 1e-6). torch float32.

import { selectTopK, valuesSource } from '../select-kth.ts';
import { sequentialSum32 } from './f32-reductions.ts';

const MIN_DIVISOR = Math.fround(1e-6);

/**
 * torch.var(τ, dim=0, unbiased=False) of entry e as torch's CPU kernel takes it for float32: the mean and the
 * squared deviations in float64, the result rounded to float32. The GPU kernel calls it for the entries near
 * its cut (src/kernel/gpu/sce.ts), so both kernels decide those entries on the same value.
 */
export function sceVarianceAt(tvs: readonly ArrayLike<number>[], e: number): number {
  const m = tvs.length;
  let mean = 0;
  for (let i = 0; i < m; i++) mean += tvs[i]![e]!;
  mean /= m;
  let ss = 0;
  for (let i = 0; i < m; i++) {
    const d = tvs[i]![e]! - mean;
    ss += d * d;
  }
  return Math.fround(ss / m);
}

/** k = int(nonzero · select_topk): an int64 tensor times a Python float, evaluated in float32. */
export function sceTopK(nonzero: number, selectTopk: number): number {
  return Math.trunc(Math.fround(Math.fround(nonzero) * Math.fround(selectTopk)));
}

/**
 * sce_mask: which entries to keep (null: all), by the variance across the models (population variance, float64
 * then float32), the k = int(nonzero·select_topk) largest. `nonzero * density` is an int64 tensor times a
 * Python float, evaluated in float32 before the truncation. Ties at the cut keep the lowest indices
 * (torch.topk's choice is unspecified).
 */
export function sceKeep(tvs: readonly Float32Array[], selectTopk: number): Uint8Array | null {
  if (selectTopk >= 1) return null;
  const n = tvs[0]!.length;
  const keep = new Uint8Array(n);
  if (selectTopk <= 0) return keep;
  const variance = new Float32Array(n);
  let nonzero = 0;
  for (let e = 0; e < n; e++) {
    variance[e] = sceVarianceAt(tvs, e);
    if (variance[e] !== 0) nonzero++;
  }
  const k = sceTopK(nonzero, selectTopk);
  if (k === 0) return keep;
  const cut = selectTopK(valuesSource(variance), k);
  const bits = new Uint32Array(variance.buffer);
  let equalLeft = cut.keepEqual;
  for (let e = 0; e < n; e++) {
    const b = bits[e]! & 0x7fffffff;
    if (b > cut.bits || (b === cut.bits && equalLeft-- > 0)) keep[e] = 1;
  }
  return keep;
}

export function sce(
  base: Float32Array,
  xs: readonly Float32Array[],
  selectTopk: number,
  out: Float32Array,
): Float32Array {
  const n = base.length;
  const m = xs.length;
  if (m === 0) return (out.set(base), out);
  const tvs = xs.map((x) => x.map((v, e) => v - base[e]!));
  const keep = sceKeep(tvs, selectTopk);
  // `task_vectors * mask`: a dropped entry becomes ±0 (it then never agrees with the elected sign).
  if (keep !== null) for (const tv of tvs) for (let e = 0; e < n; e++) if (!keep[e]) tv[e] = tv[e]! * 0;
  // sce_weight: mean(τᵢ²) per model (float32 sum, then / numel), normalised by their float32 sum.
  const raw = tvs.map((tv) => {
    let s = 0;
    for (let e = 0; e < n; e++) s += Math.fround(tv[e]! * tv[e]!);
    return Math.fround(Math.fround(s) / n);
  });
  const total = sequentialSum32(raw);
  const weights = Math.abs(total) < 1e-6 ? raw.map(() => Math.fround(1 / m)) : raw.map((w) => Math.fround(w / total));
  for (let e = 0; e < n; e++) {
    // Sign election on the (masked, unweighted) task vectors: + when Σ τᵢ ≥ 0; a zero never agrees.
    let vote = 0;
    for (let i = 0; i < m; i++) vote = Math.fround(vote + tvs[i]![e]!);
    const elected = vote >= 0 ? 1 : -1;
    let merged = 0;
    let divisor = 0;
    for (let i = 0; i < m; i++) {
      const v = tvs[i]![e]!;
      const agree = Math.sign(v) === elected;
      const w = agree ? weights[i]! : 0;
      merged = Math.fround(merged + Math.fround(v * w));
      divisor = Math.fround(divisor + w);
    }
    out[e] = base[e]! + Math.fround(merged / (divisor < MIN_DIVISOR ? MIN_DIVISOR : divisor));
  }
  return out;
}
