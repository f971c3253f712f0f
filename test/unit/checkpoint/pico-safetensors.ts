// Test fixture builder: writes small safetensors files byte by byte (independently of CheckpointWriter), so
// the reader is tested against hand-made layouts, including broken ones.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RawEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A fresh temporary folder under os.tmpdir(). */
export function tempDir(prefix = 'evomerge-ckpt-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Header JSON (as given, not validated) + data bytes → a safetensors file image. */
export function safetensorsBytes(
  header: Record<string, unknown>,
  data: Uint8Array,
  headerLenOverride?: bigint,
): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLenOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Float32 tensors laid out back to back: header + bytes of a valid F32 file. */
export function f32File(tensors: Record<string, { shape: number[]; data: number[] }>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const chunks: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = new Uint8Array(new Float32Array(t.data).buffer);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + bytes.length] };
    chunks.push(bytes);
    off += bytes.length;
  }
  const data = new Uint8Array(off);
  let p = 0;
  for (const c of chunks) {
    data.set(c, p);
    p += c.length;
  }
  return safetensorsBytes(header, data);
}

export const MICRO_ZOO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../models/micro');
