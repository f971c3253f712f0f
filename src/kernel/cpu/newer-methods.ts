// The CPU kernel's dispatch of the methods added to mergekit since 2024 (sce, nuslerp, multislerp, karcher,
// arcee_fusion, nearswap), one implementation file each; GpuKernel also runs here the ones it delegates.

import type { MergeOp, SourceRef } from '../kernel.ts';
import { arceeFusion } from './arcee-fusion.ts';
import { karcher } from './karcher.ts';
import { multislerp } from './multislerp.ts';
import { nearswap } from './nearswap.ts';
import { nuslerp } from './nuslerp.ts';
import { sce } from './sce.ts';

export type NewerOpKind = 'sce' | 'nuslerp' | 'multislerp' | 'karcher' | 'arcee_fusion' | 'nearswap';
export type NewerOp = Extract<MergeOp, { kind: NewerOpKind }>;

/** Computes one of the newer ops into `out` (length numel(shape)) from float32 inputs read by `load`. */
export function runNewerOp(
  op: NewerOp,
  shape: readonly number[],
  load: (ref: SourceRef) => Float32Array,
  out: Float32Array,
  tensorName: string,
): Float32Array {
  switch (op.kind) {
    case 'sce':
      return sce(load(op.base), op.inputs.map(load), op.selectTopk, out);
    case 'nuslerp':
      return nuslerp(
        op.t,
        load(op.a),
        load(op.b),
        op.base === undefined ? undefined : load(op.base),
        shape,
        op.flatten,
        op.rowWise,
        out,
      );
    case 'multislerp':
      return multislerp(
        op.inputs.map((i) => load(i.ref)),
        op.inputs.map((i) => i.weight),
        op.base === undefined ? undefined : load(op.base),
        op.normalizeWeights,
        op.eps,
        out,
        tensorName,
      );
    case 'karcher':
      return karcher(op.inputs.map(load), op.maxIter, op.tol, out);
    case 'arcee_fusion':
      return arceeFusion(load(op.base), load(op.other), shape, out);
    case 'nearswap':
      return nearswap(op.t, load(op.base), load(op.other), out);
  }
}
