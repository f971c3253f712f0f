// slerp on the WebGPU kernel (mergekit slerp.py, the whole tensor as one vector): three dot products on the
// device, the angle on the host, one weighted sum.

import type { MergeOp, SourceRef } from '../kernel.ts';
import type { DeviceTensor } from './resident-cache.ts';
import { linearCombination } from './linear.ts';
import type { GpuPasses } from './passes.ts';

export async function slerp(
  kernel: GpuPasses,
  op: Extract<MergeOp, { kind: 'slerp' }>,
  n: number,
  get: (r: SourceRef) => Promise<DeviceTensor>,
): Promise<Float32Array> {
  const a = await get(op.a);
  const b = await get(op.b);
  const [aa, bb, ab] = await kernel.sums(n, [a, b], 'let va = x0_at(i);\n      let vb = x1_at(i);', [
    'va * va',
    'vb * vb',
    'va * vb',
  ]);
  const t = op.t;
  // normalize(v, eps=1e-8) divides only when ‖v‖ > eps; dot of the normalised copies.
  const na = Math.sqrt(aa);
  const nb = Math.sqrt(bb);
  const dot = ab / (na > 1e-8 ? na : 1) / (nb > 1e-8 ? nb : 1);
  let c0: number;
  let c1: number;
  if (Math.abs(dot) > 0.9995) {
    c0 = 1 - t; // lerp of the original tensors
    c1 = t;
  } else {
    const theta0 = Math.acos(dot);
    const sinTheta0 = Math.sin(theta0);
    const thetaT = theta0 * t;
    c0 = Math.sin(theta0 - thetaT) / sinTheta0;
    c1 = Math.sin(thetaT) / sinTheta0;
  }
  return linearCombination(kernel, n, [a, b], [c0, c1], { divisor: 1 });
}
