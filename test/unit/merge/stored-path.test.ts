// The kernel's stored path (CpuKernel.mergeStoredInto: sources decoded chunk by chunk in WebAssembly memory, the
// non-finite guard folded in) against the float32 path it replaces, on real safetensors folders: the same bits for
// bf16, f16, f32 and mixed sources with lengths off the 4096-element chunk, and the same one-line errors.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHalvesLoop } from '../../../src/checkpoint/dtype.ts';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import {
  ArrayPool,
  MemoryTensors,
  type DType,
  type Tensor,
  type TensorSink,
} from '../../../src/checkpoint/tensor-source.ts';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { SimdRuntime } from '../../../src/kernel/cpu/simd/simd-runtime.ts';
import type { MergeKernel } from '../../../src/kernel/kernel.ts';
import { runPlan } from '../../../src/merge/engine.ts';
import { planMerge, type PlanModel } from '../../../src/merge/plan.ts';
import { parseRecipe } from '../../../src/recipe/parse.ts';
import { writePico } from './pico.ts';

let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'evomerge-stored-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const UP0 = 'model.layers.0.mlp.up_proj.weight';
const UP1 = 'model.layers.1.mlp.up_proj.weight';
const SHAPES: Record<string, number[]> = { [UP0]: [3, 4101], [UP1]: [1, 2 * 4096 + 7] };

/** Values over many magnitudes (f16 subnormals and near-overflow included), from a seeded LCG. */
function spread(n: number, seed: number, scale = 1): Float32Array {
  let s = (seed * 2654435761) >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 4294967296;
    out[i] = scale * (u - 0.5) * 2 ** ((s % 41) - 26);
  }
  return out;
}

function writeModel(name: string, seed: number, dtype: DType, edit?: (t: string, d: Float32Array) => void): string {
  const override: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [t, shape] of Object.entries(SHAPES)) {
    const data = spread(shape[0]! * shape[1]!, seed * 7 + shape[1]!);
    edit?.(t, data);
    override[t] = { shape, data };
  }
  return writePico(path.join(root, name), { seed, dtype, override });
}

/** The CPU kernel without its stored path: the float32 path of before. */
function floatOnly(k: CpuKernel): MergeKernel {
  return {
    device: k.device,
    mergeTensor: (job, read) => k.mergeTensor(job, read),
    mergeTensorInto: (job, read, out) => k.mergeTensorInto(job, read, out),
    close: () => k.close(),
  };
}

/** The CPU kernel, counting the tensors its stored path computed. */
function counting(k: CpuKernel): MergeKernel & { stored: number } {
  const c = {
    stored: 0,
    device: k.device,
    mergeTensor: (job: Parameters<CpuKernel['mergeTensor']>[0], read: Parameters<CpuKernel['mergeTensor']>[1]) =>
      k.mergeTensor(job, read),
    mergeTensorInto: (...a: Parameters<CpuKernel['mergeTensorInto']>) => k.mergeTensorInto(...a),
    mergeStoredInto: (...a: Parameters<CpuKernel['mergeStoredInto']>) => {
      const r = k.mergeStoredInto(...a);
      if (r !== null) c.stored++;
      return r;
    },
    close: () => k.close(),
  };
  return c;
}

async function merge(
  doc: Record<string, unknown>,
  kernel: MergeKernel,
  keep = true,
  pool?: ArrayPool,
): Promise<Map<string, Tensor>> {
  const recipe = parseRecipe(doc, { file: path.join(root, 'r.yaml'), baseDir: root });
  const models = new Map<string, PlanModel>();
  const dirs = [...(recipe.baseModel !== undefined ? [recipe.baseModel] : []), ...recipe.models!.map((m) => m.model)];
  for (const d of dirs) if (!models.has(d)) models.set(d, openModelDir(d));
  try {
    const plan = planMerge(recipe, models);
    const got = new Map<string, Tensor>();
    // keep: a sink that keeps its arrays (fresh per tensor); else one that copies (the reused output buffer).
    const sink: TensorSink = keep
      ? new MemoryTensors('out', pool)
      : { retainsTensors: false, writeTensor: (n, t) => got.set(n, { shape: t.shape, data: t.data.slice() }) };
    await runPlan(plan, models, sink, { kernel });
    if (keep) for (const n of (sink as MemoryTensors).tensorNames()) got.set(n, (sink as MemoryTensors).readTensor(n));
    return got;
  } finally {
    models.forEach((m) => (m as { close?: () => void }).close?.());
  }
}

function expectSameBits(a: Map<string, Tensor>, b: Map<string, Tensor>): void {
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [name, t] of a) {
    const u = b.get(name)!;
    expect(u.shape, name).toEqual(t.shape);
    const x = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    const y = new Uint32Array(u.data.buffer, u.data.byteOffset, u.data.length);
    let diff = -1;
    for (let i = 0; i < x.length && diff < 0; i++) if (x[i] !== y[i]) diff = i;
    expect(diff, `${name}: first differing element`).toBe(-1);
  }
}

const recipe = (base: string, models: string[], parameters: Record<string, unknown> = {}) => ({
  merge_method: 'task_arithmetic',
  base_model: base,
  parameters,
  models: models.map((m, i) => ({ model: m, parameters: { weight: [0.6, 0.4, -0.3, 1.1, 0.25][i] } })),
});

describe('the stored path of the CPU kernel', () => {
  for (const [label, dtypes] of [
    ['bf16', ['BF16', 'BF16', 'BF16']],
    ['f16', ['F16', 'F16', 'F16']],
    ['f32', ['F32', 'F32', 'F32']],
    ['mixed bf16 / f16 / f32', ['BF16', 'F16', 'F32']],
  ] as const) {
    it(`gives the float32 path's bits on ${label} sources, lengths off the chunk (task_arithmetic, linear)`, async () => {
      const names = ['base', 'a', 'b'].map((n, i) => writeModel(`${label}-${n}`, i + 1, dtypes[i]!));
      const linear = (normalize: boolean) => ({
        merge_method: 'linear',
        parameters: { normalize },
        models: names.map((m, i) => ({ model: m, parameters: { weight: [0.5, 0.3, -0.35][i] } })),
      });
      for (const doc of [
        recipe(names[0]!, names.slice(1)),
        recipe(names[0]!, names.slice(1), { normalize: true, lambda: 0.7 }),
        linear(true),
        linear(false),
      ]) {
        const counted = counting(new CpuKernel());
        const after = await merge(doc, counted);
        expect(counted.stored).toBe(after.size);
        expectSameBits(await merge(doc, floatOnly(new CpuKernel())), after);
        expectSameBits(after, await merge(doc, new CpuKernel(), false));
      }
    });
  }

  it('gives the same bits with more models than the unrolled combines take', async () => {
    const names = ['base', 'a', 'b', 'c', 'd', 'e'].map((n, i) => writeModel(`many-${n}`, i + 11, 'BF16'));
    const doc = recipe(names[0]!, names.slice(1), { normalize: true });
    const counted = counting(new CpuKernel());
    const after = await merge(doc, counted);
    expect(counted.stored).toBe(after.size);
    expectSameBits(await merge(doc, floatOnly(new CpuKernel())), after);
  });

  it('leaves ties, and a kernel without SIMD, to the float32 path', async () => {
    const names = ['base', 'a', 'b'].map((n, i) => writeModel(`ties-${n}`, i + 21, 'BF16'));
    const ties = { ...recipe(names[0]!, names.slice(1)), merge_method: 'ties', parameters: { density: 0.5 } };
    const counted = counting(new CpuKernel());
    const after = await merge(ties, counted);
    expect(counted.stored).toBe(0);
    expectSameBits(await merge(ties, floatOnly(new CpuKernel())), after);
    const job = {
      name: 't',
      shape: [4],
      op: { kind: 'slerp' as const, a: { model: 'x', tensor: 't' }, b: { model: 'y', tensor: 't' }, t: 0.5 },
    };
    expect(
      new CpuKernel({ simd: false }).mergeStoredInto(
        job,
        () => {
          throw new Error('not read');
        },
        new Float32Array(4),
      ),
    ).toBeNull();
  });

  for (const [dtype, bad] of [
    ['BF16', NaN],
    ['F16', -Infinity],
    ['F32', Infinity],
  ] as const) {
    it(`names the file, tensor and first element of a ${bad} in a ${dtype} source, as the float32 path does`, async () => {
      const base = writeModel(`bad-${dtype}-base`, 31, dtype, (t, d) => {
        if (t === UP1) d[100] = bad; // chunk 0 of the base; the plan reads expert a first, which is named
      });
      const a = writeModel(`bad-${dtype}-a`, 32, dtype, (t, d) => {
        if (t === UP1) {
          d[4097] = bad;
          d[8190] = bad;
        }
      });
      const b = writeModel(`bad-${dtype}-b`, 33, dtype);
      const doc = recipe(base, [a, b]);
      const err = await merge(doc, new CpuKernel()).catch((e) => e);
      const before = await merge(doc, floatOnly(new CpuKernel())).catch((e) => e);
      expect(err.code).toBe('merge.non_finite');
      expect(err.message).toBe(before.message);
      expect(err.message).toBe(
        `${path.join(a, 'model.safetensors')}: tensor "${UP1}": holds ${bad} at element 4097; ` +
          'a checkpoint with NaN or Inf weights cannot be merged',
      );
    });
  }

  it("refuses a result that overflows to Inf with the float32 path's error", async () => {
    const big = (t: string, d: Float32Array) => {
      if (t === UP0) d.fill(3e38, 5000, 5003);
    };
    const base = writeModel('big-base', 41, 'F32');
    const doc = recipe(base, [writeModel('big-a', 42, 'F32', big), writeModel('big-b', 43, 'F32', big)], {
      normalize: false,
    });
    (doc.models[0]!.parameters as { weight: number }).weight = 1;
    (doc.models[1]!.parameters as { weight: number }).weight = 1;
    const err = await merge(doc, new CpuKernel()).catch((e) => e);
    const before = await merge(doc, floatOnly(new CpuKernel())).catch((e) => e);
    expect(err.code).toBe('merge.non_finite_output');
    expect(err.message).toBe(before.message);
    expect(err.message).toMatch(
      /tensor "model\.layers\.0\.mlp\.up_proj\.weight": the merge gives Infinity at element 500[0-2];/,
    );
  });

  it("decodes every f16 and bf16 half as the checkpoint's decoder does", () => {
    const rt = SimdRuntime.create()!;
    const n = 65536;
    rt.ensure(64 + 2 * n + 4 * n + 64);
    const halves = new Uint16Array(n).map((_, i) => i);
    const bytes = new Uint8Array(halves.buffer);
    for (const dtype of ['F16', 'BF16'] as const) {
      rt.u8.set(bytes, 64);
      (dtype === 'F16' ? rt.fn.decode_f16 : rt.fn.decode_bf16)(64, 64 + 2 * n, 2 * n);
      const got = new Uint32Array(rt.u32.buffer, 64 + 2 * n, n).slice();
      const want = new Uint32Array(decodeHalvesLoop(dtype, bytes, new Float32Array(n)).buffer);
      let diff = -1;
      for (let i = 0; i < n && diff < 0; i++) if (got[i] !== want[i]) diff = i;
      expect(diff, `${dtype}: first differing half`).toBe(-1);
    }
  });

  it('writes a merge into the arrays of a released candidate (ArrayPool), with the same bits', async () => {
    const names = ['base', 'a', 'b'].map((n, i) => writeModel(`pool-${n}`, i + 51, 'BF16'));
    const pool = new ArrayPool();
    const first = new MemoryTensors('first', pool);
    const recipe1 = parseRecipe(recipe(names[0]!, names.slice(1)), { file: 'r.yaml', baseDir: root });
    const opened = names.map((d) => openModelDir(d));
    const models = new Map<string, PlanModel>(names.map((d, i) => [d, opened[i]!]));
    await runPlan(planMerge(recipe1, models), models, first, { kernel: new CpuKernel() });
    opened.forEach((m) => m.close());
    const released = new Set(first.tensorNames().map((n) => first.readTensor(n).data));
    first.release();
    expect(() => first.readTensor(UP0)).toThrow(/not found/);
    // The second candidate (other weights, and ties: the float32 path) lands in the same arrays, stale content
    // overwritten: the same bits as into fresh arrays.
    for (const doc of [
      recipe(names[0]!, [names[2]!, names[1]!], { lambda: 0.5 }),
      { ...recipe(names[0]!, names.slice(1)), merge_method: 'ties', parameters: { density: 0.5 } },
    ]) {
      const pooled = await merge(doc, new CpuKernel(), true, pool);
      expect([...pooled.values()].every((t) => released.has(t.data))).toBe(true);
      expectSameBits(await merge(doc, floatOnly(new CpuKernel())), pooled);
      pool.refill([...pooled.values()].map((t) => t.data));
    }
  });

  it('hands an array written under two names out once', () => {
    const pool = new ArrayPool();
    const m = new MemoryTensors('m', pool);
    const shared = new Float32Array(6);
    m.writeTensor('x', { shape: [6], data: shared });
    m.writeTensor('y', { shape: [6], data: shared });
    m.release();
    expect(pool.take(6)).toBe(shared);
    expect(pool.take(6)).not.toBe(shared);
  });
});
