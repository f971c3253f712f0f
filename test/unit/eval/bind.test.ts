// Binding checkpoints to graphs: by name on the zoo graph; by content on an export that renamed every weight
// and stores each MatMul weight as Wᵀ (Transpose nodes folded away), inline or in an external data file;
// and the one-line failure naming an initializer that matches nothing.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import { OnnxGraph } from '../../../src/graph/onnx-graph.ts';
import { buildBinding, resolveBinding, transpose2d } from '../../../src/eval/bind.ts';
import { decodeModel, encodeModel, int64ToNumber, type TensorMessage } from '../../../src/graph/onnx-proto.ts';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { MemoryTensors } from '../../../src/checkpoint/tensor-source.ts';
import { EvomergeError } from '../../../src/errors.ts';

const ROOT = join(import.meta.dirname, '../../..');
const SUITE = join(ROOT, 'evals/micro.yaml');
const ZOO_GRAPH = join(ROOT, 'models/micro/base/model.onnx');

function floats(t: TensorMessage): Float32Array {
  const out = new Float32Array(t.rawData!.byteLength / 4);
  new Uint8Array(out.buffer).set(t.rawData!);
  return out;
}
function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

/**
 * Rewrites the zoo graph the way a constant-folding exporter would: each `Transpose(W)` feeding a MatMul
 * becomes an initializer `onnx::MatMul_<k>` holding Wᵀ, every other weight is renamed `onnx::<Op>_<k>`, and
 * the initializers are stored in reverse order. With `external`, the data goes to `weights.bin` beside it.
 */
function writeExportLikeGraph(
  dir: string,
  opts: { external?: boolean; perturb?: boolean } = {},
): { path: string; transposed: number; perturbed?: string; perturbedTensor?: string } {
  const model = decodeModel(readFileSync(ZOO_GRAPH));
  const g = model.graph!;
  const inits = new Map(g.initializer!.map((t) => [t.name!, t]));
  const rename = new Map<string, string>();
  const out: TensorMessage[] = [];
  const origin = new Map<string, string>();
  let k = 100;
  let transposed = 0;
  const nodes = g.node!.filter((n) => {
    const w = n.input?.[0];
    if (n.opType === 'Transpose' && w && inits.has(w)) {
      const t = inits.get(w)!;
      const [r, c] = t.dims!.map(int64ToNumber) as [number, number];
      const name = `onnx::MatMul_${k++}`;
      out.push({ name, dataType: 1, dims: [c, r], rawData: bytesOf(transpose2d(floats(t), r, c)) });
      origin.set(name, w);
      rename.set(n.output![0]!, name);
      inits.delete(w);
      transposed++;
      return false;
    }
    return true;
  });
  for (const n of nodes) {
    n.input = n.input!.map((x) => {
      const t = inits.get(x);
      if (t && !rename.has(x)) {
        const name = `onnx::${n.opType}_${k++}`;
        out.push({ ...t, name });
        rename.set(x, name);
      }
      return rename.get(x) ?? x;
    });
  }
  out.reverse();
  let perturbed: string | undefined;
  let perturbedTensor: string | undefined;
  if (opts.perturb) {
    const victim = out.find((t) => t.name!.startsWith('onnx::MatMul_'))!;
    const data = floats(victim);
    data[7] = data[7]! + 1e-3;
    victim.rawData = bytesOf(data);
    perturbed = victim.name!;
    perturbedTensor = origin.get(perturbed);
  }
  const path = join(dir, 'model.onnx');
  if (opts.external) {
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const t of out) {
      const raw = t.rawData!;
      t.externalData = [
        { key: 'location', value: 'weights.bin' },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.byteLength) },
      ];
      t.dataLocation = 1;
      delete t.rawData;
      chunks.push(raw);
      offset += raw.byteLength;
    }
    writeFileSync(join(dir, 'weights.bin'), Buffer.concat(chunks));
  }
  writeFileSync(path, encodeModel({ ...model, graph: { ...g, node: nodes, initializer: out } }));
  return { path, transposed, ...(perturbed ? { perturbed, perturbedTensor } : {}) };
}

describe('binding', () => {
  let tmp: string;
  let reference: Evaluator;
  const mathExpert = () => openModelDir(join(ROOT, 'models/micro/expert-math'));
  const subset = { split: 'fit' as const, tasks: ['math', 'composite', 'lang'], limit: 40, withPredictions: true };

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'evomerge-bind-'));
    reference = await Evaluator.create({ suite: SUITE });
  });
  afterAll(async () => {
    await reference?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('binds the zoo graph by name, all 57 weights', () => {
    const base = openModelDir(join(ROOT, 'models/micro/base'));
    try {
      const b = buildBinding(OnnxGraph.load(ZOO_GRAPH), base.tensors);
      expect(b.entries).toHaveLength(57);
      expect(b.byContent).toBe(0);
      expect(b.entries.every((e) => e.initializer === e.tensor && !e.transpose)).toBe(true);
    } finally {
      base.close();
    }
  });

  for (const external of [false, true]) {
    it(
      `binds by content an export with renamed, transposed weights${external ? ' in an external data file' : ''}` +
        `, with the same scores`,
      async () => {
        const dir = mkdtempSync(join(tmp, 'export-'));
        const { path, transposed } = writeExportLikeGraph(dir, { external });
        expect(transposed).toBeGreaterThan(40);
        const ev = await Evaluator.create({ suite: SUITE, graph: path });
        const expert = mathExpert();
        try {
          const b = ev.describeBinding()!;
          expect(b.byContent).toBe(57);
          expect(b.entries.filter((e) => e.transpose)).toHaveLength(transposed);
          expect(b.entries.every((e) => e.initializer.startsWith('onnx::'))).toBe(true);
          expect(b.entries.find((e) => e.tensor === 'lm_head.weight')?.transpose).toBe(true);
          // The candidate (expert-math, not the base the binding was built on) must be transposed on the way in.
          const got = await ev.evaluate(expert.tensors, subset);
          const want = await reference.evaluate(expert.tensors, subset);
          for (let i = 0; i < want.length; i++) {
            expect(got[i]!.task).toBe(want[i]!.task);
            expect(got[i]!.predictions).toEqual(want[i]!.predictions);
            expect(Math.abs(got[i]!.value - want[i]!.value)).toBeLessThanOrEqual(1e-6);
          }
          expect(want.find((s) => s.task === 'math')!.value).toBeGreaterThan(0.5); // the expert really is bound
          // The other weight mode: a session per candidate, the (transposed) weights written into the model bytes.
          const rebuilt = await Evaluator.create({ suite: SUITE, graph: path, weightMode: 'rebuild' });
          try {
            const again = await rebuilt.evaluate(expert.tensors, subset);
            for (let i = 0; i < want.length; i++) {
              expect(again[i]!.predictions).toEqual(want[i]!.predictions);
              expect(Math.abs(again[i]!.value - want[i]!.value)).toBeLessThanOrEqual(1e-5);
            }
          } finally {
            await rebuilt.close();
          }
        } finally {
          expert.close();
          await ev.close();
        }
      },
    );
  }

  it('writes the binding to its cache file', () => {
    const dir = mkdtempSync(join(tmp, 'cache-'));
    const { path } = writeExportLikeGraph(dir);
    const cacheFile = join(dir, 'binding.json');
    const base = openModelDir(join(ROOT, 'models/micro/base'));
    try {
      const b = resolveBinding(OnnxGraph.load(path), base.tensors, cacheFile);
      const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as { key: string; binding: typeof b };
      expect(cached.key).toContain(path);
      expect(cached.binding).toEqual(JSON.parse(JSON.stringify(b)));
      expect(cached.binding.entries).toHaveLength(57);
    } finally {
      base.close();
    }
  });

  it('fails naming the initializer that matches no base tensor (and the tensor left over)', async () => {
    const dir = mkdtempSync(join(tmp, 'bad-'));
    const { path, perturbed, perturbedTensor } = writeExportLikeGraph(dir, { perturb: true });
    let err: unknown;
    try {
      await Evaluator.create({ suite: SUITE, graph: path });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EvomergeError);
    const e = err as EvomergeError;
    expect(e.code).toBe('eval.unbound_initializer');
    expect(e.message).toContain(perturbed!);
    expect(e.message).toContain(path);
    expect(e.message.split('\n')).toHaveLength(1);
    expect(e.message).toMatch(
      new RegExp(
        `initializers matching no tensor of .*: ${perturbed}; tensors of .* matching no initializer: ${perturbedTensor}$`,
      ),
    );
  });

  it('says so when the graph stores its weights in 16-bit floats', () => {
    const model = decodeModel(readFileSync(ZOO_GRAPH));
    const norm = model.graph!.initializer!.find((t) => t.name === 'model.norm.weight')!;
    norm.dataType = 10; // FLOAT16
    norm.rawData = new Uint8Array(256);
    const path = join(mkdtempSync(join(tmp, 'f16-')), 'model.onnx');
    writeFileSync(path, encodeModel(model));
    const base = openModelDir(join(ROOT, 'models/micro/base'));
    try {
      expect(() => buildBinding(OnnxGraph.load(path), base.tensors)).toThrow(
        new RegExp(
          'model\\.onnx: initializers: cannot bind .*matching no initializer: model\\.norm\\.weight; ' +
            'the graph stores 1 initializers in 16-bit floats; export it in float32$',
        ),
      );
    } finally {
      base.close();
    }
  });

  it('refuses a candidate that lacks a bound tensor or has it in another shape', async () => {
    const base = openModelDir(join(ROOT, 'models/micro/base'));
    try {
      const partial = new MemoryTensors('partial merge');
      for (const n of base.tensors.tensorNames())
        if (n !== 'model.norm.weight') partial.writeTensor(n, base.tensors.readTensor(n));
      await expect(reference.evaluate(partial, { tasks: ['math'], limit: 1 })).rejects.toThrow(
        /partial merge: tensor "model\.norm\.weight": .*lacks it/,
      );
      partial.writeTensor('model.norm.weight', { shape: [64], data: new Float32Array(64) });
      await expect(reference.evaluate(partial, { tasks: ['math'], limit: 1 })).rejects.toThrow(
        /shape \[64\] but the graph needs \[128\]/,
      );
    } finally {
      base.close();
    }
  });
});
