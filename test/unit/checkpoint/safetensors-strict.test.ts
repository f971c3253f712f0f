// A safetensors data section holds the tensors and nothing else (as the reference crate requires): a gap
// between tensors, bytes after the last one and a key named twice in the header are refused, naming the file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { f32File, tempDir } from './pico-safetensors.ts';

const tmp = tempDir();
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A file with the given header text (padded to 8) and `data`. */
function raw(name: string, header: string, data: Uint8Array): string {
  const h = Buffer.from(header.padEnd(Math.ceil(header.length / 8) * 8, ' '));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
  return file;
}

function refusal(file: string): string {
  try {
    SafetensorsFile.open(file).close();
  } catch (err) {
    if (err instanceof EvomergeError) return err.message;
    throw err;
  }
  return 'opened';
}

describe('safetensors data ranges', () => {
  it('accepts a well-formed file', () => {
    const file = path.join(tmp, 'ok.safetensors');
    fs.writeFileSync(file, f32File({ a: { shape: [2], data: [1, 2] }, b: { shape: [1], data: [3] } }));
    expect(refusal(file)).toBe('opened');
  });

  it('refuses a gap, trailing bytes and a duplicate key', () => {
    const gap = raw(
      'gap.safetensors',
      JSON.stringify({
        a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
      }),
      new Uint8Array(12),
    );
    expect(refusal(gap)).toBe(
      `${gap}: tensor "b": data_offsets start at 8, leaving 4 bytes before it that no tensor holds`,
    );
    const trailing = raw(
      'trailing.safetensors',
      JSON.stringify({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }),
      new Uint8Array(12),
    );
    expect(refusal(trailing)).toBe(
      `${trailing}: 8 bytes follow the last tensor's data; a safetensors file ends with its last tensor`,
    );
    const dup = raw(
      'dup.safetensors',
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
      new Uint8Array(8),
    );
    expect(refusal(dup)).toBe(`${dup}: tensor "a": the header names this key twice`);
    // a key equal to a nested one is not a duplicate
    const nested = raw(
      'nested.safetensors',
      '{"__metadata__":{"a":"x"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
      new Uint8Array(4),
    );
    expect(refusal(nested)).toBe('opened');
  });
});
