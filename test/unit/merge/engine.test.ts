// The streaming engine on pico models in memory: inputs are cropped (embeddings), tied lm_head read from the
// embeddings, passthrough scales, results land in plan order in the sink, and NaN/Inf are refused.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryTensors, type Tensor, type TensorSink } from '../../../src/checkpoint/tensor-source.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../../src/checkpoint/dtype.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { runPlan } from '../../../src/merge/engine.ts';
import { planMerge, type PlanModel } from '../../../src/merge/plan.ts';
import { parseRecipe } from '../../../src/recipe/parse.ts';
import { picoMemory, type PicoOptions } from './pico.ts';

let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'evomerge-engine-'));
  for (const m of ['a', 'b']) mkdirSync(path.join(root, m));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const dir = (m: string) => path.join(root, m);
function setup(doc: Record<string, unknown>, spec: Record<string, Partial<PicoOptions>> = {}) {
  const models = new Map<string, PlanModel>();
  models.set(dir('a'), picoMemory(dir('a'), { seed: 1, ...spec.a }));
  models.set(dir('b'), picoMemory(dir('b'), { seed: 2, ...spec.b }));
  const plan = planMerge(parseRecipe(doc, { file: 'r.yaml', baseDir: root }), models);
  return { models, plan, read: (m: string, t: string) => models.get(dir(m))!.tensors.readTensor(t).data };
}
const linear = {
  merge_method: 'linear',
  models: [
    { model: 'a', parameters: { weight: 3 } },
    { model: 'b', parameters: { weight: 1 } },
  ],
};

describe('runPlan', () => {
  it('writes every planned tensor once, in plan order, with the linear result', async () => {
    const { models, plan, read } = setup(linear);
    const order: string[] = [];
    const sink = new MemoryTensors('out');
    const spy: TensorSink = { writeTensor: (n: string, t: Tensor) => (order.push(n), sink.writeTensor(n, t)) };
    const r = await runPlan(plan, models, spy, { kernel: new CpuKernel() });
    expect(order).toEqual(plan.tensors.map((t) => t.name));
    expect(r.tensors).toBe(plan.tensors.length);
    const n = 'model.layers.1.mlp.up_proj.weight';
    const got = sink.readTensor(n).data;
    const a = read('a', n);
    const b = read('b', n);
    for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo((3 * a[i]! + b[i]!) / 4, 6);
  });

  it('crops a larger embedding to the common top-left block before merging', async () => {
    const { models, plan, read } = setup(linear, {
      a: { override: { 'model.embed_tokens.weight': { shape: [10, 5] } } },
    });
    const out = new MemoryTensors('out');
    await runPlan(plan, models, out, { kernel: new CpuKernel() });
    const got = out.readTensor('model.embed_tokens.weight');
    expect(got.shape).toEqual([8, 4]);
    const a = read('a', 'model.embed_tokens.weight');
    const b = read('b', 'model.embed_tokens.weight');
    for (let r = 0; r < 8; r++)
      for (let c = 0; c < 4; c++) expect(got.data[r * 4 + c]).toBeCloseTo((3 * a[r * 5 + c]! + b[r * 4 + c]!) / 4, 6);
  });

  it('reads a missing lm_head from the embeddings (tied)', async () => {
    const { models, plan, read } = setup(linear, { b: { drop: ['lm_head.weight'] } });
    const out = new MemoryTensors('out');
    await runPlan(plan, models, out, { kernel: new CpuKernel() });
    const got = out.readTensor('lm_head.weight').data;
    const a = read('a', 'lm_head.weight');
    const e = read('b', 'model.embed_tokens.weight');
    for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo((3 * a[i]! + e[i]!) / 4, 6);
  });

  it('passthrough copies a slice times its scale', async () => {
    const { models, plan, read } = setup({
      merge_method: 'passthrough',
      slices: [{ sources: [{ model: 'b', layer_range: [1, 2], parameters: { scale: 2 } }] }],
    });
    const out = new MemoryTensors('out');
    await runPlan(plan, models, out, { kernel: new CpuKernel() });
    expect(out.tensorNames().filter((n) => n.includes('layers.1'))).toEqual([]);
    const got = out.readTensor('model.layers.0.self_attn.q_proj.weight').data;
    const src = read('b', 'model.layers.1.self_attn.q_proj.weight');
    for (let i = 0; i < got.length; i++) expect(got[i]).toBe(2 * src[i]!);
  });

  it('a recipe dtype narrower than the stored one rounds the inputs when loaded (mergekit LoadTensor)', async () => {
    const pick = {
      merge_method: 'linear',
      models: [
        { model: 'a', parameters: { weight: 1 } },
        { model: 'b', parameters: { weight: 0 } },
      ],
    };
    const n = 'model.layers.0.mlp.up_proj.weight';
    for (const [dtype, round] of [
      ['bfloat16', (x: number) => bf16ToF32(f32ToBf16(x))],
      ['float16', (x: number) => f16ToF32(f32ToF16(x))],
      [undefined, (x: number) => x],
    ] as const) {
      const { models, plan, read } = setup(dtype ? { ...pick, dtype } : pick);
      const out = new MemoryTensors('out');
      await runPlan(plan, models, out, { kernel: new CpuKernel() });
      const a = read('a', n);
      const got = out.readTensor(n).data;
      let changed = 0;
      for (let i = 0; i < a.length; i++) {
        expect(got[i]).toBe(Math.fround(round(a[i]!)));
        if (got[i] !== a[i]) changed++;
      }
      expect(changed > 0).toBe(dtype !== undefined);
    }
  });

  it('refuses an input holding Inf, naming the model and the tensor, before writing it', async () => {
    const data = new Float32Array(4).fill(1);
    data[2] = -Infinity;
    const { models, plan } = setup(linear, { b: { override: { 'model.norm.weight': { shape: [4], data } } } });
    const written: string[] = [];
    const err = await runPlan(plan, models, { writeTensor: (n) => written.push(n) }, { kernel: new CpuKernel() }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(EvomergeError);
    expect(err.code).toBe('merge.non_finite');
    expect(err.message).toBe(
      `${dir('b')}: tensor "model.norm.weight": holds -Infinity at element 2; a checkpoint with NaN or Inf weights cannot be merged`,
    );
    expect(written).not.toContain('model.norm.weight');
  });

  it("names the first bad element of a tensor larger than the guard's SIMD block", async () => {
    const data = new Float32Array(40000).fill(0.5);
    data[33000] = NaN;
    data[39999] = Infinity;
    const { models, plan } = setup(linear, {
      b: { override: { 'model.embed_tokens.weight': { shape: [400, 100], data } } },
    });
    const err = await runPlan(plan, models, new MemoryTensors('out'), { kernel: new CpuKernel() }).catch((e) => e);
    expect(err.code).toBe('merge.non_finite');
    expect(err.message).toBe(
      `${dir('b')}: tensor "model.embed_tokens.weight": holds NaN at element 33000; a checkpoint with NaN or Inf weights cannot be merged`,
    );
  });

  it('refuses a result that overflows to Inf', async () => {
    const big = new Float32Array(4).fill(3e38);
    const { models, plan } = setup(
      {
        merge_method: 'linear',
        parameters: { normalize: false },
        models: [
          { model: 'a', parameters: { weight: 1 } },
          { model: 'b', parameters: { weight: 1 } },
        ],
      },
      {
        a: { override: { 'model.norm.weight': { shape: [4], data: big } } },
        b: { override: { 'model.norm.weight': { shape: [4], data: big } } },
      },
    );
    const err = await runPlan(plan, models, new MemoryTensors('out'), { kernel: new CpuKernel() }).catch((e) => e);
    expect(err.code).toBe('merge.non_finite_output');
    expect(err.message).toMatch(/^r\.yaml: tensor "model\.norm\.weight": the merge gives Infinity at element 0/);
  });
});
