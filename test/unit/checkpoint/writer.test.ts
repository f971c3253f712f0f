import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  CheckpointWriter,
  openModelDir,
  parseSize,
  type CheckpointPlanEntry,
} from '../../../src/checkpoint/model-dir.ts';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../../src/checkpoint/dtype.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { MICRO_ZOO, tempDir } from './pico-safetensors.ts';

const tmp = tempDir();
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const BASE = path.join(MICRO_ZOO, 'base');

function planOf(dir: string): CheckpointPlanEntry[] {
  const m = openModelDir(dir);
  const plan = m.tensors.tensorNames().map((name) => ({ name, shape: m.tensors.tensorInfo(name).shape }));
  m.close();
  return plan;
}

/** Copies every tensor of `fromDir` through a CheckpointWriter. */
function copyModel(
  fromDir: string,
  outDir: string,
  dtype: 'F32' | 'F16' | 'BF16',
  shardSizeBytes = 5e9,
  force = false,
): CheckpointWriter {
  const m = openModelDir(fromDir);
  const plan = m.tensors.tensorNames().map((name) => ({ name, shape: m.tensors.tensorInfo(name).shape }));
  const w = new CheckpointWriter({
    outDir,
    dtype,
    shardSizeBytes,
    plan,
    config: m.config,
    copyFilesFrom: fromDir,
    force,
  });
  for (const { name } of plan) w.writeTensor(name, m.tensors.readTensor(name));
  w.finish();
  m.close();
  return w;
}

function leftovers(outDir: string): string[] {
  return fs.readdirSync(path.dirname(outDir)).filter((n) => n.startsWith(path.basename(outDir)));
}

function expectCode(fn: () => unknown, code: string, ...parts: (string | RegExp)[]): void {
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

describe('CheckpointWriter', () => {
  it('copies the zoo base as F32 bit-exactly, with config, tokenizer files and an aligned header', () => {
    const out = path.join(tmp, 'base-copy');
    copyModel(BASE, out, 'F32');
    expect(fs.readdirSync(out).sort()).toEqual([
      'byte_tokenizer.json',
      'config.json',
      'generation_config.json',
      'model.safetensors',
    ]);
    expect(fs.readFileSync(path.join(out, 'byte_tokenizer.json'))).toEqual(
      fs.readFileSync(path.join(BASE, 'byte_tokenizer.json')),
    );
    const a = openModelDir(BASE);
    const b = openModelDir(out);
    expect(b.tensors.tensorNames()).toEqual(a.tensors.tensorNames());
    for (const n of a.tensors.tensorNames()) {
      const same = Buffer.from((b.tensors as SafetensorsFile).readTensorBytes(n)).equals(
        Buffer.from((a.tensors as SafetensorsFile).readTensorBytes(n)),
      );
      expect(same, n).toBe(true);
    }
    expect(b.config).toEqual(a.config);
    expect((b.tensors as SafetensorsFile).metadata).toEqual({ format: 'pt' });
    a.close();
    b.close();
    // The data section starts 8-byte aligned; padding is spaces.
    const bytes = fs.readFileSync(path.join(out, 'model.safetensors'));
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const headerText = bytes.subarray(8, 8 + n).toString('utf8');
    expect(headerText.trimEnd().endsWith('}')).toBe(true);
    expect(/^[ ]*$/.test(headerText.slice(headerText.trimEnd().length))).toBe(true);
    expect(leftovers(out)).toEqual(['base-copy']);
    // ... and the whole file is byte-identical to the zoo's, which Python's safetensors wrote.
    expect(bytes.equals(fs.readFileSync(path.join(BASE, 'model.safetensors')))).toBe(true);
  });

  it('writes expert-math as BF16 with exactly the bytes of the zoo expert-math-bf16 (RNE), torch_dtype bfloat16', () => {
    const out = path.join(tmp, 'math-bf16');
    copyModel(path.join(MICRO_ZOO, 'expert-math'), out, 'BF16');
    const ours = openModelDir(out);
    const zoo = openModelDir(path.join(MICRO_ZOO, 'expert-math-bf16'));
    expect(ours.config.torch_dtype).toBe('bfloat16');
    for (const n of zoo.tensors.tensorNames()) {
      expect(ours.tensors.tensorInfo(n)).toEqual(zoo.tensors.tensorInfo(n));
      expect(
        Buffer.from((ours.tensors as SafetensorsFile).readTensorBytes(n)).equals(
          Buffer.from((zoo.tensors as SafetensorsFile).readTensorBytes(n)),
        ),
      ).toBe(true);
    }
    ours.close();
    zoo.close();
    const file = (d: string) => fs.readFileSync(path.join(d, 'model.safetensors'));
    expect(file(out).equals(file(path.join(MICRO_ZOO, 'expert-math-bf16')))).toBe(true);
  });

  it('writes F16 rounded to nearest even and reads it back', () => {
    const out = path.join(tmp, 'f16');
    const data = new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, -0, 65520, 2 ** -25, NaN, 0.1]);
    const w = new CheckpointWriter({
      outDir: out,
      dtype: 'F16',
      shardSizeBytes: 1e9,
      plan: [{ name: 'v', shape: [7] }],
      config: { model_type: 'x' },
    });
    w.writeTensor('v', { shape: [7], data });
    w.finish();
    const m = openModelDir(out);
    expect(m.config.torch_dtype).toBe('float16');
    const got = m.tensors.readTensor('v').data;
    for (let i = 0; i < data.length; i++) {
      const want = f16ToF32(f32ToF16(data[i]));
      if (Number.isNaN(want)) expect(got[i]).toBeNaN();
      else expect(Object.is(got[i], want)).toBe(true);
    }
    expect([...got.slice(0, 2)]).toEqual([1, 1 + 2 ** -9]);
    expect(got[3]).toBe(Infinity);
    m.close();
  });

  it('shards past a tiny shard size, with an index, and reads back equal', () => {
    const out = path.join(tmp, 'sharded');
    const shardSize = 150_000; // ≈ 0.13 MB of the 2.3 MB bf16 model
    const w = copyModel(BASE, out, 'BF16', shardSize);
    expect(w.shardCount).toBeGreaterThan(5);
    const files = fs
      .readdirSync(out)
      .filter((n) => n.endsWith('.safetensors'))
      .sort();
    expect(files.length).toBe(w.shardCount);
    const count = String(w.shardCount).padStart(5, '0');
    expect(files[0]).toBe(`model-00001-of-${count}.safetensors`);
    expect(fs.existsSync(path.join(out, 'model.safetensors'))).toBe(false);
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    const base = openModelDir(BASE);
    const m = openModelDir(out);
    expect(Object.keys(index.weight_map)).toEqual(base.tensors.tensorNames());
    let total = 0;
    for (const f of m.files) {
      let bytes = 0;
      for (const n of f.tensorNames()) bytes += f.entry(n).byteLength;
      // each shard fits the limit unless it holds one tensor bigger than the limit
      if (f.tensorNames().length > 1) expect(bytes).toBeLessThanOrEqual(shardSize);
      total += bytes;
    }
    expect(index.metadata.total_size).toBe(total);
    expect(total).toBe(1_173_120 * 2);
    for (const n of base.tensors.tensorNames()) {
      const want = base.tensors.readTensor(n).data.map((x) => bf16ToF32(f32ToBf16(x)));
      expect(Buffer.from(m.tensors.readTensor(n).data.buffer).equals(Buffer.from(want.buffer)), n).toBe(true);
    }
    base.close();
    m.close();
  });

  it('replaces a previous output with force only, and refuses a folder with other files', () => {
    const out = path.join(tmp, 'again');
    copyModel(BASE, out, 'F32', 1e6); // sharded first
    expect(fs.existsSync(path.join(out, 'model.safetensors.index.json'))).toBe(true);
    expectCode(() => copyModel(BASE, out, 'BF16'), 'checkpoint.out_exists', /not empty.*--force replaces it/);
    copyModel(BASE, out, 'BF16', 5e9, true); // then one file: the old shards must be gone
    expect(fs.readdirSync(out).sort()).toEqual([
      'byte_tokenizer.json',
      'config.json',
      'generation_config.json',
      'model.safetensors',
    ]);
    const again = openModelDir(out);
    expect(again.config.torch_dtype).toBe('bfloat16');
    again.close();
    expect(leftovers(out)).toEqual(['again']);

    const foreign = path.join(tmp, 'foreign');
    fs.mkdirSync(foreign);
    fs.writeFileSync(path.join(foreign, 'notes.txt'), 'mine');
    expectCode(() => copyModel(BASE, foreign, 'F32', 5e9, true), 'checkpoint.out_exists', 'foreign', /notes\.txt/);
    expect(fs.readdirSync(foreign)).toEqual(['notes.txt']);
    expect(leftovers(foreign)).toEqual(['foreign']);
    expectCode(
      () => copyModel(BASE, BASE, 'F32', 5e9, true),
      'checkpoint.out_is_input',
      /is an input of this command \(base model/,
    );
  });

  it('abort() mid-way leaves no outDir and no temporary folder', () => {
    const out = path.join(tmp, 'aborted');
    const m = openModelDir(BASE);
    const plan = planOf(BASE);
    const w = new CheckpointWriter({ outDir: out, dtype: 'F32', shardSizeBytes: 1e6, plan, config: m.config });
    for (const { name } of plan.slice(0, 20)) w.writeTensor(name, m.tensors.readTensor(name));
    expect(fs.existsSync(w.tmpDir)).toBe(true);
    w.abort();
    w.abort();
    m.close();
    expect(fs.existsSync(out)).toBe(false);
    expect(leftovers(out)).toEqual([]);
  });

  it('a tensor out of plan order, a wrong shape, or an early finish throws and leaves nothing', () => {
    const out = path.join(tmp, 'bad-order');
    const plan = [
      { name: 'a', shape: [2] },
      { name: 'b', shape: [3] },
    ];
    const mk = () => new CheckpointWriter({ outDir: out, dtype: 'F32', shardSizeBytes: 1e6, plan, config: {} });
    const w1 = mk();
    expect(() => w1.writeTensor('b', { shape: [3], data: new Float32Array(3) })).toThrow(/plan expects "a"/);
    expect(leftovers(out)).toEqual([]);
    const w2 = mk();
    w2.writeTensor('a', { shape: [2], data: new Float32Array(2) });
    expect(() => w2.writeTensor('b', { shape: [1, 3], data: new Float32Array(3) })).toThrow(/shape/);
    expect(leftovers(out)).toEqual([]);
    const w3 = mk();
    w3.writeTensor('a', { shape: [2], data: new Float32Array(2) });
    expect(() => w3.finish()).toThrow(/1 of 2/);
    expect(leftovers(out)).toEqual([]);
  });

  it('a process that dies mid-write leaves no outDir (exit: temp removed; SIGKILL: only the temp name)', () => {
    const script = path.join(tmp, 'crash.ts');
    const modUrl = new URL('../../../src/checkpoint/model-dir.ts', import.meta.url).href;
    fs.writeFileSync(
      script,
      `import { CheckpointWriter } from ${JSON.stringify(modUrl)};
const [out, how] = process.argv.slice(2);
const plan = [{ name: 'a', shape: [4] }, { name: 'b', shape: [4] }];
const w = new CheckpointWriter({ outDir: out, dtype: 'F32', shardSizeBytes: 1e6, plan, config: {} });
w.writeTensor('a', { shape: [4], data: new Float32Array(4) });
if (how === 'throw') throw new Error('crash mid-merge');
process.kill(process.pid, 'SIGKILL');
`,
    );
    for (const how of ['throw', 'kill']) {
      const out = path.join(tmp, `crash-${how}`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', script, out, how], { encoding: 'utf8' });
      expect(r.status === 0).toBe(false);
      expect(fs.existsSync(out)).toBe(false);
      const left = leftovers(out);
      if (how === 'throw') expect(left).toEqual([]);
      else expect(left.every((n) => n.includes('.evomerge-tmp-'))).toBe(true);
    }
  });
});

describe('parseSize', () => {
  it('reads decimal and binary units as transformers does', () => {
    expect(parseSize('5GB', {})).toBe(5e9);
    expect(parseSize('500MB', {})).toBe(5e8);
    expect(parseSize('1.5GB', {})).toBe(1.5e9);
    expect(parseSize('100KB', {})).toBe(1e5);
    expect(parseSize('2GiB', {})).toBe(2 * 2 ** 30);
    expect(parseSize('4096', {})).toBe(4096);
    expect(parseSize('5gb', {})).toBe(5e9);
  });
  it('rejects nonsense with the field named', () => {
    for (const bad of ['', 'GB', '5XB', '-1GB', '0', '1e3', 'five']) {
      expectCode(() => parseSize(bad, { field: '--shard-size' }), 'checkpoint.bad_size', /^--shard-size: /);
    }
  });
});
