// runPlan's reused buffers (one per input slot, one output buffer for a sink that keeps nothing) must change no
// bit of any merge and must never leak into a sink that keeps its tensors: checked against a merge that
// allocates fresh arrays for every input and output, on the micro zoo and on pico checkpoints with crops.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { bf16ToF32, decodeToF32, encodeFromF32, f32ToBf16 } from '../../../src/checkpoint/dtype.ts';
import {
  MemoryTensors,
  type Tensor,
  type TensorSink,
  type TensorSource,
} from '../../../src/checkpoint/tensor-source.ts';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import type { MergeKernel, SourceRef, TensorJob, TensorReader } from '../../../src/kernel/kernel.ts';
import { mergeRecipe, mergeRecipeToDir, openRecipeModels, runPlan } from '../../../src/merge/engine.ts';
import { planMerge, type PlanModel } from '../../../src/merge/plan.ts';
import { parseRecipe } from '../../../src/recipe/parse.ts';
import type { Recipe } from '../../../src/recipe/recipe.ts';
import { writePico } from './pico.ts';

const ZOO = path.resolve(import.meta.dirname, '../../../models/micro');
let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'evomerge-reuse-'));
  writePico(path.join(root, 'a'), { seed: 1, override: { 'model.embed_tokens.weight': { shape: [10, 5] } } });
  writePico(path.join(root, 'b'), { seed: 2 });
  writePico(path.join(root, 'c'), { seed: 3, override: { 'model.embed_tokens.weight': { shape: [9, 4] } } });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** A source that only has readTensor (fresh arrays), as every source was before readTensorInto. */
function freshOnly(src: TensorSource): TensorSource {
  return {
    location: src.location,
    tensorNames: () => src.tensorNames(),
    hasTensor: (n) => src.hasTensor(n),
    tensorInfo: (n) => src.tensorInfo(n),
    readTensor: (n) => src.readTensor(n),
  };
}

/** The reference: every input read into a fresh array, every output a fresh array, kept in memory. */
async function freshMerge(recipe: Recipe): Promise<MemoryTensors> {
  const models = openRecipeModels(recipe);
  try {
    const wrapped = new Map<string, PlanModel>(
      [...models].map(([k, m]) => [k, { dir: m.dir, config: m.config, tensors: freshOnly(m.tensors), files: m.files }]),
    );
    const plan = planMerge(recipe, wrapped);
    const out = new MemoryTensors('fresh');
    const kernel = new CpuKernel();
    await runPlan(plan, wrapped, out, {
      kernel: { device: kernel.device, mergeTensor: (j, r) => kernel.mergeTensor(j, r), close: async () => {} },
    });
    return out;
  } finally {
    models.forEach((m) => m.close());
  }
}

const zooRecipes: Record<string, Record<string, unknown>> = {
  task_arithmetic: {
    merge_method: 'task_arithmetic',
    base_model: 'base',
    models: [
      { model: 'expert-math', parameters: { weight: 0.6 } },
      { model: 'expert-lang', parameters: { weight: 0.4 } },
      { model: 'expert-spam', parameters: { weight: -0.2 } },
    ],
    dtype: 'float32',
  },
  ties_mixed_dtypes: {
    merge_method: 'ties',
    base_model: 'base',
    models: [
      { model: 'expert-math-bf16', parameters: { weight: 0.5, density: 0.4 } },
      { model: 'expert-lang', parameters: { weight: 0.5, density: 0.6 } },
    ],
    parameters: { normalize: true },
  },
  dare_ties: {
    merge_method: 'dare_ties',
    base_model: 'base',
    models: [
      { model: 'expert-math', parameters: { weight: 0.5, density: 0.5 } },
      { model: 'expert-lang', parameters: { weight: 0.3, density: 0.7 } },
      { model: 'expert-spam', parameters: { weight: 0.2, density: 0.3 } },
    ],
    random_seed: 11,
    dtype: 'float32',
  },
  slerp_slices: {
    merge_method: 'slerp',
    base_model: 'expert-math',
    slices: [
      {
        sources: [
          { model: 'expert-math', layer_range: [0, 6] },
          { model: 'expert-lang', layer_range: [0, 6] },
        ],
      },
    ],
    parameters: {
      t: [{ filter: 'self_attn', value: [0, 0.5, 1] }, { filter: 'mlp', value: [1, 0.3, 0] }, { value: 0.5 }],
    },
    dtype: 'float32',
  },
  passthrough_slices: {
    merge_method: 'passthrough',
    slices: [
      { sources: [{ model: 'expert-math', layer_range: [0, 4] }] },
      { sources: [{ model: 'expert-lang', layer_range: [2, 6], parameters: { scale: 0.5 } }] },
    ],
    dtype: 'float32',
  },
  linear_rounded_to_bf16: {
    merge_method: 'linear',
    models: [
      { model: 'expert-math', parameters: { weight: 2 } },
      { model: 'expert-spam', parameters: { weight: 1 } },
    ],
    dtype: 'bfloat16',
  },
};

describe('runPlan with reused buffers: same bits as fresh arrays', () => {
  it.each(Object.keys(zooRecipes))(
    'micro zoo %s: the written checkpoint and the in-memory merge equal the fresh merge bit for bit',
    async (name) => {
      const recipe = parseRecipe(zooRecipes[name]!, { file: `${name}.yaml`, baseDir: ZOO });
      const want = await freshMerge(recipe);
      const outDir = path.join(root, `out-${name}`);
      const r = await mergeRecipeToDir(recipe, { outDir, shardSizeBytes: 2_000_000, kernel: new CpuKernel() });
      const inMemory = new MemoryTensors('in memory');
      await mergeRecipe(recipe, inMemory, { kernel: new CpuKernel() });
      const written = openModelDir(outDir);
      try {
        const names = want.tensorNames();
        expect(written.tensors.tensorNames().sort()).toEqual([...names].sort());
        expect(inMemory.tensorNames()).toEqual(names);
        let differ = 0;
        for (const t of names) {
          const fresh = want.readTensor(t).data;
          const stored =
            r.plan.outDtype === 'F32' ? fresh : decodeToF32(r.plan.outDtype, encodeFromF32(r.plan.outDtype, fresh));
          if (Buffer.compare(Buffer.from(bits(written.tensors.readTensor(t).data)), Buffer.from(bits(stored))) !== 0)
            differ++;
          if (Buffer.compare(Buffer.from(bits(inMemory.readTensor(t).data)), Buffer.from(bits(fresh))) !== 0) differ++;
        }
        expect(differ).toBe(0);
      } finally {
        written.close();
      }
    },
  );

  for (const dtype of ['float32', 'bfloat16']) {
    it(
      `pico checkpoints with differing vocab sizes (${dtype}): the crop to the top-left block is exact,` +
        ` in place in the slot`,
      async () => {
        const doc = {
          merge_method: 'task_arithmetic',
          base_model: 'b',
          models: [
            { model: 'a', parameters: { weight: 0.7 } },
            { model: 'c', parameters: { weight: 0.3 } },
          ],
          dtype,
        };
        const recipe = parseRecipe(doc, { file: 'crop.yaml', baseDir: root });
        const want = await freshMerge(recipe);
        const outDir = path.join(root, `out-crop-${dtype}`);
        await mergeRecipeToDir(recipe, { outDir, shardSizeBytes: 1e9, kernel: new CpuKernel() });
        const written = openModelDir(outDir);
        const a = openModelDir(path.join(root, 'a'));
        const b = openModelDir(path.join(root, 'b'));
        const c = openModelDir(path.join(root, 'c'));
        try {
          const emb = written.tensors.readTensor('model.embed_tokens.weight');
          expect(emb.shape).toEqual([8, 4]);
          for (const t of want.tensorNames()) {
            const fresh = want.readTensor(t).data;
            const stored = dtype === 'float32' ? fresh : decodeToF32('BF16', encodeFromF32('BF16', fresh));
            expect([...bits(written.tensors.readTensor(t).data)], t).toEqual([...bits(stored)]);
          }
          // Independently of the engine, on the in-memory merge (not rounded on output): out[r][k] = b + 0.7 (a − b)
          // + 0.3 (c − b) at [r][k], a cropped from 10×5, c from 9×4, every input first rounded to the recipe dtype.
          const inMemory = new MemoryTensors('in memory');
          await mergeRecipe(recipe, inMemory, { kernel: new CpuKernel() });
          const got = inMemory.readTensor('model.embed_tokens.weight').data;
          const q = (x: number): number => (dtype === 'float32' ? x : bf16ToF32(f32ToBf16(x)));
          const ea = a.tensors.readTensor('model.embed_tokens.weight').data;
          const eb = b.tensors.readTensor('model.embed_tokens.weight').data;
          const ec = c.tensors.readTensor('model.embed_tokens.weight').data;
          for (let r = 0; r < 8; r++) {
            for (let k = 0; k < 4; k++) {
              const base = q(eb[r * 4 + k]!);
              expect(got[r * 4 + k]).toBeCloseTo(
                base + 0.7 * (q(ea[r * 5 + k]!) - base) + 0.3 * (q(ec[r * 4 + k]!) - base),
                6,
              );
            }
          }
        } finally {
          for (const m of [written, a, b, c]) m.close();
        }
      },
    );
  }
});

/** Pico plan (a, b, c on disk) for the aliasing tests. */
function picoPlan(doc: Record<string, unknown>) {
  const recipe = parseRecipe(doc, { file: 'alias.yaml', baseDir: root });
  const models = openRecipeModels(recipe);
  return { plan: planMerge(recipe, models), models, close: () => models.forEach((m) => m.close()) };
}
const threeWay = {
  merge_method: 'ties',
  base_model: 'b',
  models: [
    { model: 'a', parameters: { weight: 0.5, density: 0.5 } },
    { model: 'c', parameters: { weight: 0.5, density: 0.8 } },
  ],
  dtype: 'float32',
};

/** A CPU kernel that records the arrays its reader hands out; optionally without mergeTensorInto. */
function recordingKernel(withInto: boolean): { kernel: MergeKernel; inputBuffers: Set<ArrayBufferLike> } {
  const cpu = new CpuKernel();
  const inputBuffers = new Set<ArrayBufferLike>();
  const spy =
    (read: TensorReader): TensorReader =>
    (ref: SourceRef) => {
      const d = read(ref);
      inputBuffers.add(d.buffer);
      return d;
    };
  const kernel: MergeKernel = {
    device: 'recording cpu',
    mergeTensor: (job: TensorJob, read: TensorReader) => cpu.mergeTensor(job, spy(read)),
    close: async () => {},
    ...(withInto
      ? {
          mergeTensorInto: (job: TensorJob, read: TensorReader, out: Float32Array) =>
            cpu.mergeTensorInto(job, spy(read), out),
        }
      : {}),
  };
  return { kernel, inputBuffers };
}

describe('runPlan buffer ownership', () => {
  it('into MemoryTensors: every tensor keeps the values it had when written, each in its own array', async () => {
    const { plan, models, close } = picoPlan(threeWay);
    try {
      const snapshots = new Map<string, Uint32Array>();
      class Snapshotting extends MemoryTensors {
        override writeTensor(name: string, tensor: Tensor): void {
          snapshots.set(name, bits(tensor.data).slice());
          super.writeTensor(name, tensor);
        }
      }
      const sink = new Snapshotting('kept');
      const { kernel, inputBuffers } = recordingKernel(true);
      await runPlan(plan, models, sink, { kernel });
      const outputs = sink.tensorNames().map((t) => sink.readTensor(t).data);
      expect(outputs.length).toBe(plan.tensors.length);
      for (const t of sink.tensorNames()) expect([...bits(sink.readTensor(t).data)], t).toEqual([...snapshots.get(t)!]);
      expect(new Set(outputs.map((d) => d.buffer)).size).toBe(outputs.length);
      for (const d of outputs) expect(inputBuffers.has(d.buffer)).toBe(false);
      // Inputs do come from the reused slot buffers: one per input position (base + 2 models), not one per read.
      expect(inputBuffers.size).toBe(3);
    } finally {
      close();
    }
  });

  it('a sink that does not say it keeps nothing (retainsTensors absent) gets fresh arrays', async () => {
    const { plan, models, close } = picoPlan(threeWay);
    try {
      const kept = new Map<string, { data: Float32Array; snap: Uint32Array }>();
      const sink: TensorSink = {
        writeTensor: (n, t) => void kept.set(n, { data: t.data, snap: bits(t.data).slice() }),
      };
      await runPlan(plan, models, sink, { kernel: new CpuKernel() });
      expect(kept.size).toBe(plan.tensors.length);
      for (const [n, { data, snap }] of kept) expect([...bits(data)], n).toEqual([...snap]);
      expect(new Set([...kept.values()].map((k) => k.data.buffer)).size).toBe(kept.size);
    } finally {
      close();
    }
  });

  it('a sink that keeps nothing gets one reused output buffer when the kernel has mergeTensorInto, fresh ones otherwise', async () => {
    const { plan, models, close } = picoPlan(threeWay);
    try {
      const seen = (withInto: boolean) => async () => {
        const buffers = new Set<ArrayBufferLike>();
        const values = new Map<string, number[]>();
        const sink: TensorSink = {
          retainsTensors: false,
          writeTensor: (n, t) => (buffers.add(t.data.buffer), void values.set(n, [...bits(t.data)])),
        };
        await runPlan(plan, models, sink, { kernel: recordingKernel(withInto).kernel });
        return { buffers: buffers.size, values };
      };
      const reused = await seen(true)();
      const fresh = await seen(false)();
      expect(reused.buffers).toBe(1);
      expect(fresh.buffers).toBe(plan.tensors.length);
      expect(reused.values).toEqual(fresh.values);
    } finally {
      close();
    }
  });

  it('a kernel that returns an input array itself: the sink that keeps tensors gets a copy, not the slot buffer', async () => {
    const { plan, models, close } = picoPlan({
      merge_method: 'passthrough',
      slices: [{ sources: [{ model: 'b', layer_range: [0, 2] }] }],
      dtype: 'float32',
    });
    try {
      const identity: MergeKernel = {
        device: 'identity',
        mergeTensor: async (job, read) => {
          if (job.op.kind !== 'weighted_sum') throw new Error(`unexpected ${job.op.kind}`);
          return read(job.op.inputs[0]!.ref);
        },
        close: async () => {},
      };
      const sink = new MemoryTensors('kept');
      await runPlan(plan, models, sink, { kernel: identity });
      const b = openModelDir(path.join(root, 'b'));
      try {
        for (const t of sink.tensorNames())
          expect([...bits(sink.readTensor(t).data)], t).toEqual([...bits(b.tensors.readTensor(t).data)]);
      } finally {
        b.close();
      }
    } finally {
      close();
    }
  });
});
