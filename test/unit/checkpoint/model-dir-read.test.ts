import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { MICRO_ZOO, f32File, tempDir } from './pico-safetensors.ts';

const tmp = tempDir();
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let counter = 0;
/** A model folder with a config and the given files (name → bytes or JSON). */
function modelDir(files: Record<string, Uint8Array | object | string>, withConfig = true): string {
  const dir = path.join(tmp, `m${counter++}`);
  fs.mkdirSync(dir);
  if (withConfig)
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', num_hidden_layers: 2 }));
  for (const [name, v] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), v instanceof Uint8Array || typeof v === 'string' ? v : JSON.stringify(v));
  }
  return dir;
}

function expectError(fn: () => unknown, code: string, ...parts: (string | RegExp)[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(EvomergeError);
  expect((caught as EvomergeError).code).toBe(code);
  for (const p of parts) expect((caught as EvomergeError).message).toMatch(p);
}

const shard1 = f32File({ 'x.a': { shape: [2], data: [1, 2] }, 'x.b': { shape: [1], data: [3] } });
const shard2 = f32File({ 'y.c': { shape: [2, 1], data: [4, 5] } });
const index = {
  metadata: { total_size: 20 },
  weight_map: {
    'x.a': 'model-00001-of-00002.safetensors',
    'x.b': 'model-00001-of-00002.safetensors',
    'y.c': 'model-00002-of-00002.safetensors',
  },
};

describe('openModelDir', () => {
  it('opens a zoo folder with its config', () => {
    const m = openModelDir(path.join(MICRO_ZOO, 'base'));
    expect(m.config.num_hidden_layers).toBe(6);
    expect(m.tensors.tensorNames().length).toBe(57);
    expect(m.files.length).toBe(1);
    m.close();
  });

  it('opens a sharded folder through its index', () => {
    const dir = modelDir({
      'model-00001-of-00002.safetensors': shard1,
      'model-00002-of-00002.safetensors': shard2,
      'model.safetensors.index.json': index,
    });
    const m = openModelDir(dir);
    expect(m.tensors.tensorNames()).toEqual(['x.a', 'x.b', 'y.c']);
    expect([...m.tensors.readTensor('y.c').data]).toEqual([4, 5]);
    expect(m.tensors.tensorInfo('y.c').shape).toEqual([2, 1]);
    expect([...m.tensors.readTensor('x.b').data]).toEqual([3]);
    expect(m.tensors.hasTensor('x.a')).toBe(true);
    expect(m.tensors.hasTensor('z')).toBe(false);
    expect(m.files.length).toBe(2);
    expectError(() => m.tensors.readTensor('z'), 'checkpoint.missing_tensor', dir, 'tensor "z"');
    m.close();
  });

  it('missing shard → checkpoint.missing_shard', () => {
    const dir = modelDir({ 'model-00001-of-00002.safetensors': shard1, 'model.safetensors.index.json': index });
    expectError(
      () => openModelDir(dir),
      'checkpoint.missing_shard',
      'model.safetensors.index.json',
      'weight_map["y.c"]',
      /model-00002-of-00002.safetensors/,
    );
  });

  it('a tensor in two shards → checkpoint.duplicate_tensor', () => {
    const dup = f32File({ 'y.c': { shape: [2, 1], data: [4, 5] }, 'x.b': { shape: [1], data: [3] } });
    const dir = modelDir({
      'model-00001-of-00002.safetensors': shard1,
      'model-00002-of-00002.safetensors': dup,
      'model.safetensors.index.json': index,
    });
    expectError(() => openModelDir(dir), 'checkpoint.duplicate_tensor', 'tensor "x.b"', /two shards/);
  });

  it('weight_map names a tensor its shard lacks → checkpoint.missing_tensor', () => {
    const idx = { weight_map: { ...index.weight_map, 'y.d': 'model-00002-of-00002.safetensors' } };
    const dir = modelDir({
      'model-00001-of-00002.safetensors': shard1,
      'model-00002-of-00002.safetensors': shard2,
      'model.safetensors.index.json': idx,
    });
    expectError(() => openModelDir(dir), 'checkpoint.missing_tensor', 'model.safetensors.index.json', 'tensor "y.d"');
  });

  it('a shard that is broken is reported with its own file name', () => {
    const dir = modelDir({
      'model-00001-of-00002.safetensors': shard1,
      'model-00002-of-00002.safetensors': shard2.subarray(0, shard2.length - 1),
      'model.safetensors.index.json': index,
    });
    expectError(() => openModelDir(dir), 'checkpoint.truncated', 'model-00002-of-00002.safetensors', 'tensor "y.c"');
  });

  it('bad index: unparseable, or a shard path leaving the folder', () => {
    const d1 = modelDir({ 'model.safetensors.index.json': '{oops' });
    expectError(() => openModelDir(d1), 'checkpoint.bad_index', 'model.safetensors.index.json');
    const d2 = modelDir({ 'model.safetensors.index.json': { weight_map: { a: '../evil.safetensors' } } });
    expectError(() => openModelDir(d2), 'checkpoint.bad_index', 'weight_map["a"]');
  });

  it('missing or unparseable config.json → checkpoint.no_config', () => {
    const d1 = modelDir({ 'model.safetensors': shard1 }, false);
    expectError(() => openModelDir(d1), 'checkpoint.no_config', path.join(d1, 'config.json'), /missing/);
    const d2 = modelDir({ 'model.safetensors': shard1, 'config.json': '{"a": ' }, false);
    expectError(() => openModelDir(d2), 'checkpoint.no_config', path.join(d2, 'config.json'), /not valid JSON/);
  });

  it('no weights, or no folder → clear errors', () => {
    const d = modelDir({});
    expectError(() => openModelDir(d), 'checkpoint.no_weights', d);
    expectError(() => openModelDir(path.join(tmp, 'absent')), 'checkpoint.not_found', 'absent');
  });
});
