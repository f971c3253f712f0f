// Model Stock (Jang et al. 2024; mergekit model_stock.py ModelStockMergeTask, filter_wise false): interpolate
// between the base and the mean of N ≥ 2 fine-tunes by t = N·cos / (1 + (N−1)·cos) of the flattened offsets.

/** The interpolation factor t, as float32 (mergekit computes it with float32 torch ops). */
export function modelStockT(base: Float32Array, xs: readonly Float32Array[]): number {
  const models = xs.length;
  const n = base.length;
  // Offsets oᵢ = fround(wᵢ − w₀); pairwise dot products and norms in float64.
  const norms2 = new Float64Array(models);
  const dots = new Float64Array(models * models);
  const off = new Float32Array(models);
  for (let e = 0; e < n; e++) {
    const b = base[e];
    for (let i = 0; i < models; i++) off[i] = xs[i][e] - b;
    for (let i = 0; i < models; i++) {
      const oi = off[i];
      norms2[i] += oi * oi;
      for (let j = i + 1; j < models; j++) dots[i * models + j] += oi * off[j];
    }
  }
  // cos of each pair i<j: (oᵢ·oⱼ) / max(‖oᵢ‖‖oⱼ‖, 1e-6), clamped to [−1, 1]; then their mean.
  let cosSum = 0;
  let pairs = 0;
  for (let i = 0; i < models; i++) {
    for (let j = i + 1; j < models; j++) {
      const normProduct = Math.fround(Math.fround(Math.sqrt(norms2[i])) * Math.fround(Math.sqrt(norms2[j])));
      let c = Math.fround(Math.fround(dots[i * models + j]) / Math.max(normProduct, Math.fround(1e-6)));
      c = Math.min(1, Math.max(-1, c));
      cosSum += c;
      pairs++;
    }
  }
  const cos = Math.fround(cosSum / pairs);
  return Math.fround(Math.fround(models * cos) / Math.fround(1 + Math.fround((models - 1) * cos)));
}

/** out = t·mean(wᵢ) + (1 − t)·w₀ with mean = (Σ wᵢ)/N in float32 (mergekit: `sum(ws) / len(ws)`). */
export function modelStock(
  base: Float32Array,
  xs: readonly Float32Array[],
  out: Float32Array = new Float32Array(base.length),
): Float32Array {
  const n = base.length;
  const models = xs.length;
  const t = modelStockT(base, xs);
  const oneMinusT = Math.fround(1 - t);
  const mean = out;
  mean.set(xs[0]);
  for (let i = 1; i < models; i++) {
    const x = xs[i];
    for (let e = 0; e < n; e++) mean[e] += x[e];
  }
  for (let e = 0; e < n; e++)
    mean[e] = Math.fround(Math.fround(mean[e] / models) * t) + Math.fround(oneMinusT * base[e]);
  return mean;
}
