// nuslerp on the WebGPU kernel (mergekit nuslerp.py) when each tensor is one flat vector (nuslerp_flatten, the
// default): three dot products of the (task) vectors on the device, the angle on the host, one weighted sum.
// Per-row and per-column nuslerp (flatten false) are in nuslerp-vectors.ts; a 1-D tensor comes here from there.

import type { MergeOp, SourceRef } from '../kernel.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { linearCombination } from './linear.ts';
import type { GpuPasses } from './passes.ts';

export async function nuslerpFlat(
  kernel: GpuPasses,
  op: Extract<MergeOp, { kind: 'nuslerp' }>,
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const a = await get(op.a);
  const b = await get(op.b);
  const base = op.base === undefined ? undefined : await get(op.base);
  const prelude =
    base === undefined
      ? 'let va = x0_at(i);\n      let vb = x1_at(i);'
      : 'let va = x0_at(i) - x2_at(i);\n      let vb = x1_at(i) - x2_at(i);';
  const [aa, bb, ab] = await kernel.sums(n, base === undefined ? [a, b] : [a, b, base], prelude, [
    'va * va',
    'vb * vb',
    'va * vb',
  ]);
  // _normalize clamps each norm at 1e-7; cos θ of the normalised vectors, clamped to [−1, 1].
  const na = Math.max(Math.sqrt(aa), 1e-7);
  const nb = Math.max(Math.sqrt(bb), 1e-7);
  const cos = Math.min(1, Math.max(-1, ab / na / nb));
  const theta = Math.acos(cos);
  const sinTheta = Math.sin(theta);
  let c0: number;
  let c1: number;
  if (Math.abs(sinTheta) < 1e-8) {
    c0 = 1 - op.t;
    c1 = op.t;
  } else {
    c0 = Math.sin((1 - op.t) * theta) / sinTheta;
    c1 = Math.sin(op.t * theta) / sinTheta;
  }
  // With a base: base + c0·(a − base) + c1·(b − base) = c0·a + c1·b + (1 − c0 − c1)·base.
  return linearCombination(
    kernel,
    n,
    [a, b],
    [c0, c1],
    base === undefined ? { divisor: 1 } : { divisor: 1, base, baseCoef: 1 - c0 - c1 },
  );
}
