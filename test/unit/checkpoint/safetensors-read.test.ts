import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.ts';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { encodeFromF32, decodeToF32 } from '../../../src/checkpoint/dtype.ts';
import { numel } from '../../../src/checkpoint/tensor-source.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { MICRO_ZOO, f32File, safetensorsBytes, tempDir } from './pico-safetensors.ts';

const tmp = tempDir();
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let counter = 0;
function writeFile(bytes: Uint8Array): string {
  const p = path.join(tmp, `t${counter++}.safetensors`);
  fs.writeFileSync(p, bytes);
  return p;
}

function expectError(fn: () => unknown, code: string, ...parts: (string | RegExp)[]): EvomergeError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(EvomergeError);
  const e = caught as EvomergeError;
  expect(e.code).toBe(code);
  for (const p of parts) expect(e.message).toMatch(p);
  expect(e.message).not.toContain('\n');
  return e;
}

describe('SafetensorsFile on the micro zoo', () => {
  it('reads models/micro/base: 57 tensors, 1,173,120 parameters, all F32', () => {
    const f = SafetensorsFile.open(path.join(MICRO_ZOO, 'base/model.safetensors'));
    try {
      const names = f.tensorNames();
      expect(names.length).toBe(57);
      let params = 0;
      for (const n of names) {
        const info = f.tensorInfo(n);
        expect(info.dtype).toBe('F32');
        params += numel(info.shape);
      }
      expect(params).toBe(1_173_120);
      expect(f.metadata).toEqual({ format: 'pt' });
      const emb = f.readTensor('model.embed_tokens.weight');
      expect(emb.shape).toEqual([256, 128]);
      expect(emb.data.length).toBe(256 * 128);
      expect(emb.data.every(Number.isFinite)).toBe(true);
      // readTensor of F32 equals decoding the raw bytes
      const raw = decodeToF32('F32', f.readTensorBytes('model.norm.weight'));
      expect([...f.readTensor('model.norm.weight').data]).toEqual([...raw]);
    } finally {
      f.close();
    }
  });

  it('expert-math-bf16 upcasts exactly to expert-math rounded to bf16 (nearest even)', () => {
    const bf = openModelDir(path.join(MICRO_ZOO, 'expert-math-bf16'));
    const f32 = openModelDir(path.join(MICRO_ZOO, 'expert-math'));
    try {
      expect(bf.tensors.tensorNames()).toEqual(f32.tensors.tensorNames());
      expect(bf.config.torch_dtype).toBe('bfloat16');
      let differing = 0;
      for (const n of f32.tensors.tensorNames()) {
        expect(bf.tensors.tensorInfo(n).dtype).toBe('BF16');
        const want = decodeToF32('BF16', encodeFromF32('BF16', f32.tensors.readTensor(n).data));
        const got = bf.tensors.readTensor(n);
        expect(got.shape).toEqual(f32.tensors.tensorInfo(n).shape);
        const a = new Uint32Array(got.data.buffer);
        const b = new Uint32Array(want.buffer);
        for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differing++;
      }
      expect(differing).toBe(0);
    } finally {
      bf.close();
      f32.close();
    }
  });
});

describe('SafetensorsFile validation', () => {
  const good = { a: { shape: [2, 2], data: [1, 2, 3, 4] }, 'b.weight': { shape: [3], data: [5, 6, 7] } };

  it('reads a hand-made file, including F16 and BF16 entries and an empty tensor', () => {
    const h16 = encodeFromF32('F16', new Float32Array([0.5, -1]));
    const b16 = encodeFromF32('BF16', new Float32Array([3, 4, 5]));
    const data = new Uint8Array(h16.length + b16.length);
    data.set(b16, 0);
    data.set(h16, b16.length);
    const p = writeFile(
      safetensorsBytes(
        {
          half: { dtype: 'F16', shape: [2], data_offsets: [6, 10] },
          brain: { dtype: 'BF16', shape: [3, 1], data_offsets: [0, 6] },
          empty: { dtype: 'F32', shape: [0, 4], data_offsets: [10, 10] },
        },
        data,
      ),
    );
    const f = SafetensorsFile.open(p);
    expect(f.tensorNames()).toEqual(['brain', 'half', 'empty']); // stored (offset) order
    expect([...f.readTensor('half').data]).toEqual([0.5, -1]);
    expect([...f.readTensor('brain').data]).toEqual([3, 4, 5]);
    expect(f.readTensor('brain').shape).toEqual([3, 1]);
    expect(f.readTensor('empty').data.length).toBe(0);
    expect(f.metadata).toEqual({});
    f.close();
    f.close(); // idempotent
  });

  it('missing file → checkpoint.not_found', () => {
    expectError(
      () => SafetensorsFile.open(path.join(tmp, 'nope.safetensors')),
      'checkpoint.not_found',
      'nope.safetensors',
    );
  });

  it('file shorter than 8 bytes → checkpoint.truncated', () => {
    const p = writeFile(new Uint8Array([1, 2, 3]));
    expectError(() => SafetensorsFile.open(p), 'checkpoint.truncated', p, /3 bytes/);
  });

  it('absurd header length → checkpoint.bad_header', () => {
    const p = writeFile(safetensorsBytes({}, new Uint8Array(0), 1n << 40n));
    expectError(() => SafetensorsFile.open(p), 'checkpoint.bad_header', p, /header length 1099511627776 is absurd/);
  });

  it('header length past end of file → checkpoint.truncated', () => {
    const p = writeFile(safetensorsBytes({ a: 1 }, new Uint8Array(0), 5000n));
    expectError(() => SafetensorsFile.open(p), 'checkpoint.truncated', p, /past end of file/);
  });

  it('truncated data section → checkpoint.truncated naming the tensor', () => {
    const full = f32File(good);
    const p = writeFile(full.subarray(0, full.length - 4));
    expectError(
      () => SafetensorsFile.open(p),
      'checkpoint.truncated',
      p,
      'tensor "b.weight"',
      /data_offsets end 28 is past end of file/,
    );
  });

  it('bad JSON → checkpoint.bad_header', () => {
    const json = new TextEncoder().encode('{"a": {"dtype": "F32",');
    const bytes = new Uint8Array(8 + json.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
    bytes.set(json, 8);
    const p = writeFile(bytes);
    expectError(() => SafetensorsFile.open(p), 'checkpoint.bad_header', p, /not valid JSON/);
  });

  it('header that is not an object → checkpoint.bad_header', () => {
    const p = writeFile(safetensorsBytes([1, 2] as unknown as Record<string, unknown>, new Uint8Array(0)));
    expectError(() => SafetensorsFile.open(p), 'checkpoint.bad_header', p, /not a JSON object/);
  });

  it('overlapping offsets → checkpoint.bad_header naming both tensors', () => {
    const p = writeFile(
      safetensorsBytes(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        new Uint8Array(12),
      ),
    );
    expectError(() => SafetensorsFile.open(p), 'checkpoint.bad_header', p, 'tensor "b"', /overlap tensor "a"/);
  });

  it('offsets past end of file → checkpoint.truncated', () => {
    const p = writeFile(
      safetensorsBytes({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)),
    );
    expectError(
      () => SafetensorsFile.open(p),
      'checkpoint.truncated',
      p,
      'tensor "w"',
      /end 16 is past end of file \(data section is 8 bytes\)/,
    );
  });

  it('wrong byte count → checkpoint.bad_header', () => {
    const p = writeFile(
      safetensorsBytes({ w: { dtype: 'BF16', shape: [2, 3], data_offsets: [0, 8] } }, new Uint8Array(12)),
    );
    expectError(
      () => SafetensorsFile.open(p),
      'checkpoint.bad_header',
      p,
      'tensor "w"',
      /hold 8 bytes but shape \[2,3\] × BF16 needs 12/,
    );
  });

  it('unsupported and unknown dtypes → checkpoint.unsupported_dtype naming tensor and dtype', () => {
    const p1 = writeFile(
      safetensorsBytes({ ids: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)),
    );
    expectError(
      () => SafetensorsFile.open(p1),
      'checkpoint.unsupported_dtype',
      p1,
      'tensor "ids"',
      /dtype I64 is not supported/,
    );
    const p2 = writeFile(safetensorsBytes({ q: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)));
    expectError(() => SafetensorsFile.open(p2), 'checkpoint.unsupported_dtype', p2, 'tensor "q"', /unknown dtype "Q4"/);
  });

  it('bad shape, bad offsets, bad metadata → checkpoint.bad_header', () => {
    const p1 = writeFile(
      safetensorsBytes({ s: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)),
    );
    expectError(() => SafetensorsFile.open(p1), 'checkpoint.bad_header', p1, 'tensor "s"', /shape/);
    const p2 = writeFile(
      safetensorsBytes({ s: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, new Uint8Array(4)),
    );
    expectError(() => SafetensorsFile.open(p2), 'checkpoint.bad_header', p2, 'tensor "s"', /data_offsets/);
    const p3 = writeFile(safetensorsBytes({ __metadata__: { format: 3 } }, new Uint8Array(0)));
    expectError(() => SafetensorsFile.open(p3), 'checkpoint.bad_header', p3, '__metadata__');
  });

  it('unknown tensor → checkpoint.missing_tensor naming file and tensor', () => {
    const p = writeFile(f32File(good));
    const f = SafetensorsFile.open(p);
    expectError(() => f.readTensor('zzz'), 'checkpoint.missing_tensor', p, 'tensor "zzz"');
    f.close();
  });

  it('a file truncated after opening → checkpoint.truncated on read', () => {
    const p = writeFile(f32File(good));
    const f = SafetensorsFile.open(p);
    fs.truncateSync(p, fs.statSync(p).size - 4);
    expect([...f.readTensor('a').data]).toEqual([1, 2, 3, 4]);
    expectError(() => f.readTensor('b.weight'), 'checkpoint.truncated', p, 'tensor "b.weight"');
    f.close();
  });
});
