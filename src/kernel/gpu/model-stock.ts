// model_stock on the WebGPU kernel (mergekit model_stock.py, filter_wise false): the pairwise dot products of
// the task vectors on the device, the interpolation ratio on the host in float32, one weighted sum.

import type { MergeOp, SourceRef, TensorJob } from '../kernel.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { linearCombination } from './linear.ts';
import type { GpuPasses } from './passes.ts';

export async function modelStock(
  kernel: GpuPasses,
  job: TensorJob,
  op: Extract<MergeOp, { kind: 'model_stock' }>,
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const base = await get(op.base);
  const xs: DeviceTensor[] = [];
  for (const r of op.inputs) xs.push(await get(r));
  const count = xs.length;
  kernel.checkBindings(job, count + 2);
  const prelude = ['let b = x0_at(i);', ...xs.map((_, m) => `let o${m} = x${m + 1}_at(i) - b;`)].join('\n      ');
  const pairs: [number, number][] = [];
  for (let i = 0; i < count; i++) for (let j = i; j < count; j++) pairs.push([i, j]);
  const sums = await kernel.sums(
    n,
    [base, ...xs],
    prelude,
    pairs.map(([i, j]) => `o${i} * o${j}`),
  );
  const dotOf = (i: number, j: number) =>
    sums[pairs.findIndex(([p, q]) => p === Math.min(i, j) && q === Math.max(i, j))];
  // The scalar path in float32 like torch (and CpuKernel modelStockT): cos of each pair i<j is
  // (oᵢ·oⱼ) / max(‖oᵢ‖‖oⱼ‖, 1e-6) clamped to [−1, 1]; t = N·cos / (1 + (N−1)·cos) of their mean.
  const f = Math.fround;
  let cosSum = 0;
  let pairCount = 0;
  for (let i = 0; i < count; i++) {
    for (let j = i + 1; j < count; j++) {
      const normProduct = f(f(Math.sqrt(dotOf(i, i))) * f(Math.sqrt(dotOf(j, j))));
      const cos = f(f(dotOf(i, j)) / Math.max(normProduct, f(1e-6)));
      cosSum += Math.min(1, Math.max(-1, cos));
      pairCount++;
    }
  }
  const cos = f(cosSum / pairCount);
  const t = f(f(count * cos) / f(1 + f((count - 1) * cos)));
  // w_h = t·(Σwᵢ / N) + (1 − t)·w₀
  return linearCombination(
    kernel,
    n,
    xs,
    xs.map(() => 1),
    { divisor: count, scale: t, base, baseCoef: f(1 - t) },
  );
}
