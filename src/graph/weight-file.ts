// The external-data file of an ONNX model: weights written one after another at page-aligned offsets, float32
// or (for a float16 graph) float16. Writes files only; what loads them is the runtime's business (eval/).
import { closeSync, openSync, writeSync } from 'node:fs';
import { toFloat16Saturated } from './float16-weights.ts';

/** Offsets in the weight file are page-aligned so that ONNX Runtime may map each tensor directly. */
const WEIGHT_ALIGN = 4096;

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** The size of the weight file writeWeightFile would write for these arrays (float16 for the names in `half`). */
export function weightFileBytes(
  arrays: ReadonlyMap<string, Float32Array>,
  half: ReadonlySet<string> = new Set(),
): number {
  let bytes = 0;
  for (const [name, a] of arrays) bytes += alignUp(half.has(name) ? a.byteLength / 2 : a.byteLength, WEIGHT_ALIGN);
  return bytes;
}

/** Writes each array at a page-aligned offset, as float16 when its name is in `half`; returns where each went. */
export function writeWeightFile(
  path: string,
  arrays: ReadonlyMap<string, Float32Array>,
  half: ReadonlySet<string> = new Set(),
): Map<string, { offset: number; length: number }> {
  const offsets = new Map<string, { offset: number; length: number }>();
  const fd = openSync(path, 'w');
  try {
    let offset = 0;
    for (const [name, a] of arrays) {
      const bytes = half.has(name) ? toFloat16Saturated(a) : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      let done = 0;
      while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done, offset + done);
      offsets.set(name, { offset, length: bytes.byteLength });
      offset = alignUp(offset + bytes.byteLength, WEIGHT_ALIGN);
    }
  } finally {
    closeSync(fd);
  }
  return offsets;
}
