// karcher on the WebGPU kernel (mergekit karcher.py): the input norms, then per fixed-point iteration three
// reductions on the device (the dots of u with each unit input; the tangent's norm; the stepped u's norm,
// written back in place), the angles and coefficients on the host in float32 as the CPU kernel computes them,
// and one element-wise pass for the scaled mean.

import type { MergeOp, SourceRef, TensorJob } from '../kernel.ts';
import { elementwise } from './elementwise.ts';
import { linearCombination } from './linear.ts';
import { sourceWindow, window, type Chunk, type GpuPasses } from './passes.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { karcherDecls, karcherLayout } from './wgsl/karcher.ts';
import { mapShader } from './wgsl/map.ts';
import { packParams } from './wgsl/params.ts';
import { reduceShader } from './wgsl/reduce.ts';

export async function karcher(
  kernel: GpuPasses,
  job: TensorJob,
  op: Extract<MergeOp, { kind: 'karcher' }>,
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const f = Math.fround;
  const all: DeviceTensor[] = [];
  for (const r of op.inputs) all.push(await get(r));
  const count = all.length;
  if (count === 1) return linearCombination(kernel, n, all, [1], { divisor: 1 });
  kernel.checkBindings(job, count + 2);
  const alphas = all.map(() => 1 / count);
  const norms = (
    await kernel.sums(
      n,
      all,
      '',
      all.map((_, k) => `x${k}_at(i) * x${k}_at(i)`),
    )
  ).map((s) => f(Math.sqrt(s)));
  // Global scale: Σ αᵢ‖xᵢ‖ over every input (zero tensors included), a Python float.
  let scale = 0;
  alphas.forEach((al, i) => (scale += al * norms[i]!));
  const valid = norms.flatMap((nm, i) => (nm > op.tol ? [i] : []));
  if (valid.length === 0) return elementwise(kernel, n, mapShader('', 'out[i] = 0.0;'), []);
  let alphaSum = 0;
  for (const i of valid) alphaSum += alphas[i]!;
  const a = valid.map((i) => f(alphas[i]! / alphaSum));
  const xs = valid.map((i) => all[i]!);
  const m = xs.length;

  const L = karcherLayout(m);
  const params = new Array<number>(L.count).fill(0);
  a.forEach((x, k) => (params[L.alpha + k] = x));
  valid.forEach((i, k) => (params[L.norm + k] = norms[i]!));
  params[L.uNorm] = 1;
  params[L.scale] = f(scale);
  const decls = karcherDecls(xs.map((x) => x.format));
  const u = kernel.scratch('karcher.u', n * 4, GPUBufferUsage.STORAGE);
  let passNo = 0;
  const bindings = (): ((chunk: Chunk) => GPUBindGroupEntry)[] => {
    // A uniform per pass: each is written before the submit that reads it.
    const buf = kernel.uniformData(`karcher.params${passNo++ % 4}`, packParams(params));
    return [
      ...xs.map((x, k) => (chunk: Chunk) => sourceWindow(2 + k, x, chunk)),
      (chunk: Chunk) => window(2 + m, u, chunk),
      () => ({ binding: 3 + m, resource: { buffer: buf } }),
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
  const normOf = async (prelude: string, value: string): Promise<number> =>
    f(Math.sqrt((await sums(prelude, [`${value} * ${value}`]))[0]!));

  // Initial guess: the normalised weighted arithmetic mean, or the first unit input when that is ~0.
  const normU = await normOf('let s = initial_at(i);\n      u[i] = s;', 's');
  if (normU < op.tol) await sums('keep_bindings();\n      let s = unit0(i);\n      u[i] = s;', ['s']);
  else params[L.uNorm] = normU;

  for (let iter = 0; iter < op.maxIter; iter++) {
    const dots = await sums(
      'let uu = u_at(i);',
      xs.map((_, k) => `uu * unit${k}(i)`),
    );
    dots.forEach((d, k) => {
      const dot = Math.min(1, Math.max(-1, f(d)));
      const theta = f(Math.acos(dot));
      // θ < tol: that input adds nothing to the tangent (a zero coefficient adds ±0).
      params[L.dot + k] = dot;
      params[L.coef + k] = theta < op.tol ? 0 : f(a[k]! * f(theta / f(Math.sin(theta))));
    });
    const normT = await normOf('let t = tangent_at(i, u_at(i));', 't');
    if (normT < op.tol) break;
    params[L.tangentNorm] = normT;
    params[L.c] = f(Math.cos(normT));
    params[L.s] = f(Math.sin(normT));
    const step = `let uu = u_at(i);
      let nu = P(${L.c}u) * uu + P(${L.s}u) * (tangent_at(i, uu) / P(${L.tangentNorm}u));
      u[i] = nu;`;
    const normNew = await normOf(step, 'nu');
    params[L.uNorm] = normNew > op.tol ? normNew : 1;
  }
  return elementwise(kernel, n, mapShader(decls, `keep_bindings();\n  out[i] = P(${L.scale}u) * u_at(i);`), bindings());
}
