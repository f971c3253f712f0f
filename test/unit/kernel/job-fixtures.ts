// Builders of TensorJobs over in-memory tensors for the kernel tests (no checkpoint involved).

import type { MergeOp, SourceRef, TaskVectorInput, TensorJob, TensorReader } from '../../../src/kernel/kernel.ts';
import { rngKey } from '../../../src/kernel/rng.ts';
import type { Rescale, Sparsification } from '../../../src/kernel/kernel.ts';

export const ref = (model: string, tensor = 't'): SourceRef => ({ model, tensor });

export function readerOf(tensors: Record<string, ArrayLike<number>>): TensorReader {
  return (r) => {
    const t = tensors[r.model];
    if (t === undefined) throw new Error(`no tensor for ${r.model}`);
    return Float32Array.from(t);
  };
}

export interface TaOptions {
  sparsification?: Sparsification;
  consensus?: 'none' | 'sum';
  normalize?: boolean;
  lambda?: number;
  rescale?: Rescale;
  seed?: number;
  density?: number | number[];
  gamma?: number;
  epsilon?: number;
}

/** A task_arithmetic-family job: base is model "base", the others "m0", "m1", ... */
export function taJob(weights: number[], shape: number[], o: TaOptions = {}, name = 't'): TensorJob {
  const inputs: TaskVectorInput[] = weights.map((weight, i) => ({
    ref: ref(`m${i}`, name),
    weight,
    density: Array.isArray(o.density) ? o.density[i] : (o.density ?? 1),
    gamma: o.gamma ?? 0.01,
    epsilon: o.epsilon ?? 0.15,
    modelIndex: i,
  }));
  const op: MergeOp = {
    kind: 'task_arithmetic',
    base: ref('base', name),
    inputs,
    sparsification: o.sparsification ?? 'none',
    consensus: o.consensus ?? 'none',
    normalize: o.normalize ?? false,
    lambda: o.lambda ?? 1,
    rescale: o.rescale ?? 'none',
    rng: rngKey(o.seed ?? 0, name),
  };
  return { name, shape, op };
}
