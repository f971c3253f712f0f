// multislerp on the WebGPU kernel (mergekit multislerp.py): four reductions on the device (the task vectors'
// norms; the weighted mean's norm; each unit vector's dot with the normalised mean; the tangent sum's norm),
// the scalars between them on the host in float32 as the CPU kernel computes them, one element-wise pass.

import { EvomergeError } from '../../errors.ts';
import type { MergeOp, SourceRef, TensorJob } from '../kernel.ts';
import { sequentialSum32 } from '../cpu/f32-reductions.ts';
import { elementwise } from './elementwise.ts';
import { linearCombination } from './linear.ts';
import { sourceWindow, type Chunk, type GpuPasses } from './passes.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { multislerpDecls, multislerpLayout } from './wgsl/multislerp.ts';
import { packParams } from './wgsl/params.ts';
import { mapShader } from './wgsl/map.ts';
import { reduceShader } from './wgsl/reduce.ts';

export async function multislerp(
  kernel: GpuPasses,
  job: TensorJob,
  op: Extract<MergeOp, { kind: 'multislerp' }>,
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const xs: DeviceTensor[] = [];
  for (const input of op.inputs) xs.push(await get(input.ref));
  const m = xs.length;
  // One model: mergekit returns its tensor as is.
  if (m === 1) return linearCombination(kernel, n, xs, [1], { divisor: 1 });
  const base = op.base === undefined ? undefined : await get(op.base);
  kernel.checkBindings(job, m + (base === undefined ? 0 : 1) + 1);
  const L = multislerpLayout(m);
  const f = Math.fround;
  const params = new Array<number>(L.count).fill(0);
  const decls = multislerpDecls(
    xs.map((x) => x.format),
    base?.format,
  );
  const sources = [...xs, ...(base === undefined ? [] : [base])];
  const paramBinding = 2 + sources.length;
  // Each pass writes its own uniform: queue writes land in order with the submits that read them.
  let passNo = 0;
  const bindings = (): ((chunk: Chunk) => GPUBindGroupEntry)[] => {
    const buf = kernel.uniformData(`multislerp.params${passNo++}`, packParams(params));
    return [
      ...sources.map((s, k) => (chunk: Chunk) => sourceWindow(2 + k, s, chunk)),
      () => ({ binding: paramBinding, resource: { buffer: buf } }),
    ];
  };
  const sums = (prelude: string, terms: string[]): Promise<number[]> =>
    kernel.sumsWith(
      kernel.gpu.device.createCommandEncoder(),
      n,
      reduceShader({ decls, prelude, terms }),
      terms.length,
      bindings(),
    );

  // torch.tensor(weight) is float32; normalize divides by its float32 sum.
  let w = op.inputs.map((i) => f(i.weight));
  if (op.normalizeWeights) {
    const sum = sequentialSum32(w);
    w = w.map((x) => f(x / sum));
  }
  const epsf = f(op.eps);
  w.forEach((x, k) => (params[L.w + k] = x));
  const norms =
    // The phony read keeps the params binding in the pipeline's layout (layout 'auto' drops unused bindings).
    (
      await sums(
        '_ = P(0u);',
        xs.map((_, k) => `v${k}(i) * v${k}(i)`),
      )
    ).map((s) => f(Math.sqrt(s)));
  norms.forEach((nm, k) => (params[L.den + k] = f(nm + epsf)));

  const [meanSq] = await sums('let mean = mean_at(i);', ['mean * mean']);
  const meanNorm = f(Math.sqrt(meanSq!));
  if (meanNorm < op.eps) {
    if (m !== 2) {
      throw new EvomergeError(
        'merge.multislerp_degenerate',
        'the weighted sum of the unit inputs is zero (antipodal inputs with balancing weights); change the weights',
        { field: `tensor "${job.name}"` },
      );
    }
    // mergekit's fallback for two antipodal inputs: the plain weighted sum.
    const r = `v0(i) * P(${L.w}u) + v1(i) * P(${L.w + 1}u)`;
    return elementwise(
      kernel,
      n,
      mapShader(decls, `out[i] = ${base === undefined ? r : `base_at(i) + (${r})`};`),
      bindings(),
    );
  }
  params[L.meanNorm] = meanNorm;

  const dots = await sums(
    'let mh = meanhat_at(i);',
    xs.map((_, k) => `unit${k}(i) * mh`),
  );
  dots.forEach((d, k) => (params[L.dot + k] = f(d)));

  const [tangentSq] = await sums('let mh = meanhat_at(i);\n      let s = tangent_sum(i, mh);', ['s * s']);
  // Exponential map back to the sphere, scaled by the weighted mean norm.
  const tn = f(f(Math.sqrt(tangentSq!)) + epsf);
  params[L.c] = f(Math.cos(tn));
  params[L.sc] = f(f(Math.sin(tn)) / tn);
  params[L.avg] = sequentialSum32(norms.map((nm, k) => f(nm * w[k]!)));
  const r = `(mh * P(${L.c}u) + tangent_sum(i, mh) * P(${L.sc}u)) * P(${L.avg}u)`;
  const body = `let mh = meanhat_at(i);\n  out[i] = ${base === undefined ? r : `base_at(i) + ${r}`};`;
  return elementwise(kernel, n, mapShader(decls, body), bindings());
}
