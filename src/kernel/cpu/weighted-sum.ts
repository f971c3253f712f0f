// linear and passthrough (mergekit linear.py LinearMergeTask.execute): Σ wᵢxᵢ in float32, models in input order,
// divided by the plain float32 Σ wᵢ when normalize (no guard: weights summing to 0 give inf/NaN, as mergekit).

/** res = Σ fround(fround(wᵢ)·xᵢ) (sequential float32), then res / Σ fround(wᵢ) when normalize. */
export function weightedSum(
  xs: readonly Float32Array[],
  weights: readonly number[],
  normalize: boolean,
  out: Float32Array,
): Float32Array {
  const n = out.length;
  const models = xs.length;
  if (models === 0) return out.fill(0);
  let weightSum = 0;
  for (let m = 0; m < models; m++) weightSum = Math.fround(weightSum + Math.fround(weights[m]));
  const w0 = Math.fround(weights[0]);
  const x0 = xs[0];
  for (let e = 0; e < n; e++) out[e] = w0 * x0[e];
  for (let m = 1; m < models; m++) {
    const w = Math.fround(weights[m]);
    const x = xs[m];
    for (let e = 0; e < n; e++) out[e] += Math.fround(w * x[e]);
  }
  if (normalize) for (let e = 0; e < n; e++) out[e] = out[e] / weightSum;
  return out;
}
