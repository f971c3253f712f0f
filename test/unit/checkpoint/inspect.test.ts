import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { inspectModel } from '../../../src/checkpoint/inspect.ts';
import { CheckpointWriter, openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { MICRO_ZOO, tempDir } from './pico-safetensors.ts';

const tmp = tempDir();
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/evomerge.js');

describe('inspectModel', () => {
  it('summarises the zoo base and its bf16 sibling', () => {
    expect(inspectModel(path.join(MICRO_ZOO, 'base'))).toEqual({
      dir: path.join(MICRO_ZOO, 'base'),
      tensorCount: 57,
      parameterCount: 1_173_120,
      dtypes: { F32: 57, F16: 0, BF16: 0 },
      layerCount: 6,
      totalBytes: 1_173_120 * 4,
      shards: 1,
      modelType: 'llama',
      torchDtype: 'float32',
    });
    const bf = inspectModel(path.join(MICRO_ZOO, 'expert-math-bf16'));
    expect(bf.dtypes).toEqual({ F32: 0, F16: 0, BF16: 57 });
    expect(bf.totalBytes).toBe(1_173_120 * 2);
  });

  it('counts shards and layers of a sharded F16 checkpoint', () => {
    const out = path.join(tmp, 'sharded');
    const plan = [
      { name: 'model.embed_tokens.weight', shape: [4, 2] },
      { name: 'model.layers.0.mlp.up_proj.weight', shape: [2, 2] },
      { name: 'model.layers.9.mlp.up_proj.weight', shape: [2, 2] },
    ];
    const w = new CheckpointWriter({
      outDir: out,
      dtype: 'F16',
      shardSizeBytes: 10,
      plan,
      config: { num_hidden_layers: 3 },
    });
    for (const p of plan)
      w.writeTensor(p.name, { shape: p.shape, data: new Float32Array(p.shape[0] * p.shape[1]).fill(0.5) });
    w.finish();
    const s = inspectModel(out);
    expect(s.shards).toBe(3);
    expect(s.layerCount).toBe(10);
    expect(s.parameterCount).toBe(16);
    expect(s.totalBytes).toBe(32);
    expect(s.dtypes.F16).toBe(3);
    expect(s.torchDtype).toBe('float16');
    const m = openModelDir(out);
    expect(m.tensors.readTensor('model.layers.9.mlp.up_proj.weight').data[3]).toBe(0.5);
    m.close();
  });
});

describe('evomerge inspect (CLI)', () => {
  it('prints JSON, and a one-line error with exit 1 for a folder without config', () => {
    const ok = spawnSync(process.execPath, [BIN, 'inspect', path.join(MICRO_ZOO, 'base'), '--json'], {
      encoding: 'utf8',
    });
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout).parameterCount).toBe(1_173_120);
    const table = spawnSync(process.execPath, [BIN, 'inspect', path.join(MICRO_ZOO, 'expert-math-bf16')], {
      encoding: 'utf8',
    });
    expect(table.status).toBe(0);
    expect(table.stdout).toMatch(/parameters\s+1,173,120/);
    expect(table.stdout).toMatch(/dtypes\s+BF16 ×57/);
    const bad = spawnSync(process.execPath, [BIN, 'inspect', MICRO_ZOO], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toBe(
      `evomerge: ${path.join(MICRO_ZOO, 'config.json')}: config.json is missing; a model folder needs its Hugging Face config`,
    );
  });
});
