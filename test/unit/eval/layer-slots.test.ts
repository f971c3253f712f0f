// A data-flow path evaluated without writing a checkpoint: slots over two models (A's layers 0–2, B's layers
// 3–5, A's last layer), bound to both checkpoints' tensors, score exactly what the same model written out as a
// 7-layer checkpoint scores through the plain graph; with per-hop input scales, the slot graph's logits match
// an independent float64 forward pass, and a checkpoint whose config.json carries the scales scores the same.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointWriter, openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import { LAYER_INPUT_SCALES_KEY, parseDecoderConfig, type LayerSlot } from '../../../src/graph/decoder-config.ts';
import { buildDecoderGraph } from '../../../src/graph/decoder-graph.ts';
import { SlotTensors } from '../../../src/graph/slot-tensors.ts';
import { FeedSet, GraphSession } from '../../../src/eval/onnx-session.ts';
import { OnnxGraph } from '../../../src/graph/onnx-graph.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { writeTinyDecoder } from '../../fixtures/tiny-decoders.ts';
import { ReferenceDecoder } from '../../fixtures/reference-decoder.ts';
import { mulberry32 } from '../../fixtures/seeded-random.ts';

let tmp: string;
let a: string;
let b: string;
const SIX = { num_hidden_layers: 6, vocab_size: 256 };

/** A's 0–2, B's 3–5, A's 5: the hand-written path. */
const PATH: { model: 'a' | 'b'; layer: number }[] = [
  { model: 'a', layer: 0 },
  { model: 'a', layer: 1 },
  { model: 'a', layer: 2 },
  { model: 'b', layer: 3 },
  { model: 'b', layer: 4 },
  { model: 'b', layer: 5 },
  { model: 'a', layer: 5 },
];
const SCALES = [1, 0.8, 1.3, 0.6, 1, 1.15, 0.9];

function slots(scales?: readonly number[]): LayerSlot[] {
  return PATH.map((p, i) => ({ source: p.model === 'a' ? 0 : 1, layer: p.layer, scale: scales?.[i] ?? 1 }));
}

/** The path written out by hand as a plain checkpoint: layer i of the output is PATH[i]'s layer, renamed. */
function writePathCheckpoint(out: string, extraConfig: Record<string, unknown> = {}): string {
  const A = openModelDir(a);
  const B = openModelDir(b);
  try {
    const entries: { name: string; from: string; src: typeof A }[] = [];
    entries.push({ name: 'model.embed_tokens.weight', from: 'model.embed_tokens.weight', src: A });
    PATH.forEach((p, i) => {
      const src = p.model === 'a' ? A : B;
      for (const n of src.tensors.tensorNames()) {
        const prefix = `model.layers.${p.layer}.`;
        if (n.startsWith(prefix)) entries.push({ name: `model.layers.${i}.${n.slice(prefix.length)}`, from: n, src });
      }
    });
    for (const n of ['model.norm.weight', 'lm_head.weight']) entries.push({ name: n, from: n, src: A });
    const plan = entries.map((e) => ({ name: e.name, shape: [...e.src.tensors.tensorInfo(e.from).shape] }));
    const config = { ...A.config, num_hidden_layers: PATH.length, ...extraConfig };
    const writer = new CheckpointWriter({ outDir: out, dtype: 'F32', shardSizeBytes: 1e12, plan, config });
    for (const e of entries) writer.writeTensor(e.name, e.src.tensors.readTensor(e.from));
    writer.finish();
    return out;
  } finally {
    A.close();
    B.close();
  }
}

function writeSuite(file: string, baseDir: string): string {
  writeFileSync(
    file,
    `base_model: ${baseDir}\ngraph: auto\ntokenizer: byte\ntasks:\n  gen:\n    kind: generate\n    fit: data/gen.jsonl\n` +
      `    test: data/gen.jsonl\n    max_new_tokens: 5\n    stop: "\\n"\n  text:\n    kind: loglik\n` +
      `    fit: data/text.jsonl\n    test: data/text.jsonl\n`,
  );
  return file;
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-slots-'));
  a = writeTinyDecoder(join(tmp, 'a'), 'llama', { seed: 11, config: SIX });
  b = writeTinyDecoder(join(tmp, 'b'), 'llama', { seed: 12, config: SIX });
  mkdirSync(join(tmp, 'data'));
  writeFileSync(
    join(tmp, 'data/gen.jsonl'),
    ['2+2=', 'abc', 'hello ', 'x'].map((p) => JSON.stringify({ prompt: p, answer: '4' })).join('\n') + '\n',
  );
  writeFileSync(
    join(tmp, 'data/text.jsonl'),
    ['the cat sat on the mat', 'a b c d e f g', 'zzz'].map((t) => JSON.stringify({ text: t })).join('\n') + '\n',
  );
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function scoreSlots(scales?: readonly number[]) {
  const A = openModelDir(a);
  const B = openModelDir(b);
  const ev = await Evaluator.create({
    suite: writeSuite(join(tmp, 'suite-a.yaml'), a),
    threads: 1,
    slots: slots(scales),
    slotModels: [B.tensors],
  });
  try {
    return await ev.evaluate(new SlotTensors([A.tensors, B.tensors]), { withPredictions: true });
  } finally {
    await ev.close();
    A.close();
    B.close();
  }
}

async function scoreCheckpoint(dir: string, name: string) {
  const ev = await Evaluator.create({ suite: writeSuite(join(tmp, `suite-${name}.yaml`), dir), threads: 1 });
  const m = openModelDir(dir);
  try {
    return await ev.evaluate(m.tensors, { withPredictions: true });
  } finally {
    await ev.close();
    m.close();
  }
}

const strip = (scores: Awaited<ReturnType<typeof scoreSlots>>) =>
  scores.map(({ task, metric, value, se, n, predictions }) => ({ task, metric, value, se, n, predictions }));

describe('layer slots over two models', () => {
  it("A's 0–2, B's 3–5, A's last through the slot graph equals that checkpoint written out, plain graph", async () => {
    const viaSlots = await scoreSlots();
    const viaCheckpoint = await scoreCheckpoint(writePathCheckpoint(join(tmp, 'path-ckpt')), 'ckpt');
    expect(strip(viaSlots)).toEqual(strip(viaCheckpoint));
    // and the path matters: A alone scores otherwise
    const aAlone = await scoreCheckpoint(a, 'a');
    expect(aAlone.find((s) => s.task === 'text')!.value).not.toBeCloseTo(
      viaSlots.find((s) => s.task === 'text')!.value,
      6,
    );
  });

  it('input scales: slot-graph logits within 1e-4 of a float64 forward pass of the scaled path', async () => {
    const ckpt = openModelDir(join(tmp, 'path-ckpt'));
    const A = openModelDir(a);
    const B = openModelDir(b);
    try {
      const cfg = parseDecoderConfig(A.config, join(a, 'config.json'));
      const built = buildDecoderGraph(cfg, { opSet: 'cpu', slots: slots(SCALES) });
      // a layer used twice is one initializer: A's layer 5 appears once among the weights
      expect(built.weights.filter((w) => w.name === 'model.layers.5.mlp.up_proj.weight')).toHaveLength(1);
      expect(built.weights.filter((w) => w.name === 'source1/model.layers.5.mlp.up_proj.weight')).toHaveLength(1);
      const both = new SlotTensors([A.tensors, B.tensors]);
      const feeds = new FeedSet();
      for (const w of built.weights) feeds.set(w.name, both.readTensor(w.name).data, w.shape);
      const session = await GraphSession.createWithExternalWeights(
        OnnxGraph.fromModel(built.model, join(a, 'config.json')),
        feeds,
        { ep: 'cpu', intraOpThreads: 1 },
      );
      try {
        const rand = mulberry32(5);
        const row = Array.from({ length: 10 }, () => Math.floor(rand() * 256));
        const logits = await session.forward(Int32Array.from(row), 1, row.length);
        const arrays = new Map(ckpt.tensors.tensorNames().map((n) => [n, ckpt.tensors.readTensor(n).data]));
        const ref = new ReferenceDecoder(ckpt.config, (n) => arrays.get(n), undefined, SCALES);
        const unscaled = new ReferenceDecoder(ckpt.config, (n) => arrays.get(n));
        let diff = 0;
        let scaleEffect = 0;
        const want = ref.run(row, ref.emptyCache());
        const plain = unscaled.run(row, unscaled.emptyCache());
        want.forEach((w, t) =>
          w.forEach((v, k) => {
            diff = Math.max(diff, Math.abs(logits.data[t * 256 + k]! - v));
            scaleEffect = Math.max(scaleEffect, Math.abs(plain[t]![k]! - v));
          }),
        );
        expect(diff).toBeLessThanOrEqual(1e-4);
        expect(scaleEffect).toBeGreaterThan(1e-2);
      } finally {
        await session.close();
      }
    } finally {
      ckpt.close();
      A.close();
      B.close();
    }
  });

  it(`a checkpoint with ${LAYER_INPUT_SCALES_KEY} in config.json scores what the scaled slots score`, async () => {
    const dir = writePathCheckpoint(join(tmp, 'path-scaled'), { [LAYER_INPUT_SCALES_KEY]: SCALES });
    expect(strip(await scoreSlots(SCALES))).toEqual(strip(await scoreCheckpoint(dir, 'scaled')));
  });

  it('a malformed scales key is one line naming config.json and the key', () => {
    const cfg = { ...openModelDir(a).config, [LAYER_INPUT_SCALES_KEY]: [1, 2] };
    expect(() => parseDecoderConfig(cfg, '/m/config.json')).toThrow(EvomergeError);
    expect(() => parseDecoderConfig(cfg, '/m/config.json')).toThrow(
      `/m/config.json: ${LAYER_INPUT_SCALES_KEY}: expected a list of 6 numbers`,
    );
  });
});
