// readTensorInto (a tensor read into a caller's reused buffer), decodeToF32 into a given array (in place from
// its upper half), and roundToDType: each must give exactly the bits of the allocating paths they replace.
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.ts';
import { CheckpointWriter, openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { ShardedTensors } from '../../../src/checkpoint/sharded.ts';
import { decodeToF32, encodeFromF32, roundToDType } from '../../../src/checkpoint/dtype.ts';
import { numel, type DType } from '../../../src/checkpoint/tensor-source.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { MICRO_ZOO, safetensorsBytes, tempDir } from './pico-safetensors.ts';

const tmp = tempDir();
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const bitsOf = (a: Float32Array): number[] => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

/** Values that exercise rounding: ties, subnormals of both halves, overflow, signed zeros, infinities, NaN. */
function awkwardValues(): Float32Array {
  const v = [
    0,
    -0,
    1,
    -1,
    65504,
    65520,
    65519.99,
    1e6,
    -1e6,
    2 ** -24,
    2 ** -25,
    3 * 2 ** -26,
    2 ** -14,
    6e-8,
    1e-40,
    -1e-40,
  ];
  v.push(
    Infinity,
    -Infinity,
    NaN,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    1 + 2 ** -8,
    1 + 3 * 2 ** -8,
    Math.PI,
    -Math.E,
    3.4e38,
  );
  let s = 12345;
  for (let i = 0; i < 2000; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    v.push(((s / 2 ** 32) * 2 - 1) * 2 ** ((i % 40) - 20));
  }
  return new Float32Array(v);
}

/** One-tensor file of `dtype` holding `values` (rounded to it), its header's length chosen so that the tensor
 *  starts at an odd file offset (a data section may hold no gap, so the header does the misaligning). */
function oneTensorFile(dtype: DType, values: Float32Array, shape: number[]): string {
  const bytes = encodeFromF32(dtype, values);
  const t = { dtype, shape, data_offsets: [0, bytes.length] };
  let header: Record<string, unknown> = { t };
  for (let pad = ''; (8 + JSON.stringify(header).length) % 2 === 0; pad += 'x') header = { __metadata__: { pad }, t };
  const data = bytes;
  const p = path.join(tmp, `${dtype}-${values.length}.safetensors`);
  fs.writeFileSync(p, safetensorsBytes(header, data));
  return p;
}

describe('SafetensorsFile.readTensorInto', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`${dtype}: into a view inside a larger buffer gives readTensor's bits and leaves the rest untouched`, () => {
      const values = awkwardValues();
      const n = values.length - (values.length % 6);
      const f = SafetensorsFile.open(oneTensorFile(dtype, values.subarray(0, n), [6, n / 6]));
      try {
        const fresh = f.readTensor('t').data;
        expect(bitsOf(fresh)).toEqual(bitsOf(decodeToF32(dtype, f.readTensorBytes('t'))));
        const big = new Float32Array(n + 10).fill(7.25);
        const view = big.subarray(3, 3 + n);
        f.readTensorInto('t', view);
        expect(bitsOf(view)).toEqual(bitsOf(fresh));
        expect([...big.subarray(0, 3), ...big.subarray(3 + n)]).toEqual(Array(10).fill(7.25));
        // A second read into the same (now dirty) buffer gives the same bits.
        view.fill(-3);
        f.readTensorInto('t', view);
        expect(bitsOf(view)).toEqual(bitsOf(fresh));
      } finally {
        f.close();
      }
    });
  }

  it('an array of the wrong length is refused (internal), naming the tensor', () => {
    const f = SafetensorsFile.open(path.join(MICRO_ZOO, 'base/model.safetensors'));
    try {
      let caught: unknown;
      try {
        f.readTensorInto('model.norm.weight', new Float32Array(127));
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(EvomergeError);
      expect((caught as EvomergeError).code).toBe('internal');
      expect((caught as EvomergeError).message).toMatch(/tensor "model.norm.weight".*127 elements for 128/);
    } finally {
      f.close();
    }
  });

  it('the bf16 zoo expert: every tensor read into one reused buffer equals readTensor bit for bit', () => {
    const m = openModelDir(path.join(MICRO_ZOO, 'expert-math-bf16'));
    try {
      const names = m.tensors.tensorNames();
      expect(m.tensors.tensorInfo(names[0]!).dtype).toBe('BF16');
      const largest = Math.max(...names.map((t) => numel(m.tensors.tensorInfo(t).shape)));
      const buf = new Float32Array(largest);
      for (const t of names) {
        const view = buf.subarray(0, numel(m.tensors.tensorInfo(t).shape));
        m.tensors.readTensorInto!(t, view);
        expect(bitsOf(view), t).toEqual(bitsOf(m.tensors.readTensor(t).data));
      }
    } finally {
      m.close();
    }
  });

  it('ShardedTensors forwards readTensorInto to the shard holding the tensor', () => {
    const base = openModelDir(path.join(MICRO_ZOO, 'base'));
    const out = path.join(tmp, 'sharded');
    try {
      const names = base.tensors.tensorNames();
      const plan = names.map((name) => ({ name, shape: base.tensors.tensorInfo(name).shape }));
      const w = new CheckpointWriter({
        outDir: out,
        dtype: 'BF16',
        shardSizeBytes: 400_000,
        plan,
        config: base.config,
      });
      for (const { name } of plan) w.writeTensor(name, base.tensors.readTensor(name));
      w.finish();
    } finally {
      base.close();
    }
    const m = openModelDir(out);
    try {
      expect(m.tensors).toBeInstanceOf(ShardedTensors);
      expect(m.files.length).toBeGreaterThan(1);
      for (const t of m.tensors.tensorNames()) {
        const view = new Float32Array(numel(m.tensors.tensorInfo(t).shape));
        m.tensors.readTensorInto!(t, view);
        expect(bitsOf(view), t).toEqual(bitsOf(m.tensors.readTensor(t).data));
      }
    } finally {
      m.close();
    }
  });
});

describe('decodeToF32 into a given array', () => {
  for (const dtype of ['F16', 'BF16'] as const) {
    it(`${dtype}: decodes in place from the upper half of its destination`, () => {
      const values = awkwardValues();
      const bytes = encodeFromF32(dtype, values);
      const want = decodeToF32(dtype, bytes);
      const out = new Float32Array(values.length);
      const upper = new Uint8Array(out.buffer, out.byteLength - bytes.length, bytes.length);
      upper.set(bytes);
      expect(decodeToF32(dtype, upper, out)).toBe(out);
      expect(bitsOf(out)).toEqual(bitsOf(want));
    });
  }

  it('refuses an array whose length is not the element count', () => {
    expect(() => decodeToF32('BF16', new Uint8Array(8), new Float32Array(3))).toThrow(
      /4 BF16 values into an array of 3/,
    );
  });
});

describe('encodeFromF32 into a given array', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`${dtype}: into a view inside a larger, dirty buffer gives the fresh encoding and leaves the rest untouched`, () => {
      const values = awkwardValues();
      const want = encodeFromF32(dtype, values);
      const big = new Uint8Array(want.length + 8).fill(0xab);
      const view = big.subarray(2, 2 + want.length);
      expect(encodeFromF32(dtype, values, view)).toBe(view);
      expect(Buffer.from(view).equals(Buffer.from(want))).toBe(true);
      expect([...big.subarray(0, 2), ...big.subarray(2 + want.length)]).toEqual(Array(8).fill(0xab));
    });
  }

  it('refuses a wrong byte length', () => {
    expect(() => encodeFromF32('F16', new Float32Array(3), new Uint8Array(4))).toThrow(/3 F16 values into 4 bytes/);
  });
});

describe('roundToDType', () => {
  for (const dtype of ['F16', 'BF16', 'F32'] as const) {
    it(`${dtype}: in place, exactly decodeToF32(encodeFromF32(x))`, () => {
      const values = awkwardValues();
      const want = decodeToF32(dtype, encodeFromF32(dtype, values));
      const got = values.slice();
      roundToDType(dtype, got);
      expect(bitsOf(got)).toEqual(bitsOf(want));
      if (dtype !== 'F32') expect(bitsOf(got)).not.toEqual(bitsOf(values));
    });
  }
});
