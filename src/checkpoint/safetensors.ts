// One .safetensors file: the header validated before anything is trusted, tensors read one at a time at
// their byte offsets (never the whole file), and the header layout the writer shares.
import * as fs from 'node:fs';
import { EvomergeError } from '../errors.ts';
import { decodeToF32, HOST_LE } from './dtype.ts';
import { DTYPE_BYTES, numel, type DType, type Tensor, type TensorInfo, type TensorSource } from './tensor-source.ts';

/** The largest header evomerge accepts (the safetensors crate refuses > 100 MB too). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Safetensors dtypes that are real but that evomerge does not compute with (named in the error). */
const OTHER_SAFETENSORS_DTYPES = new Set([
  'F64',
  'I64',
  'I32',
  'I16',
  'I8',
  'U64',
  'U32',
  'U16',
  'U8',
  'BOOL',
  'F8_E4M3',
  'F8_E5M2',
  'F8_E8M0',
  'F6_E2M3',
  'F6_E3M2',
  'F4',
  'C64',
]);

/** One tensor's place in a file: absolute byte range (header included) plus its info. */
export interface TensorEntry extends TensorInfo {
  /** Absolute file offset of the first byte. */
  readonly start: number;
  readonly byteLength: number;
}

/** Reads of more than this are split (fs.readSync takes at most 2^31 - 1 bytes). */
const READ_CHUNK = 1 << 30;

/** A validated safetensors file held open; a TensorSource over its tensors. */
export class SafetensorsFile implements TensorSource {
  readonly location: string;
  /** The header's `__metadata__` (string → string), empty when absent. */
  readonly metadata: Record<string, string>;
  /** Total file size in bytes at open. */
  readonly fileBytes: number;
  private fd: number | undefined;
  private readonly entries: Map<string, TensorEntry>;
  private readonly order: string[];

  private constructor(
    path: string,
    fd: number,
    fileBytes: number,
    metadata: Record<string, string>,
    entries: TensorEntry[],
  ) {
    this.location = path;
    this.fd = fd;
    this.fileBytes = fileBytes;
    this.metadata = metadata;
    this.order = entries.map((e) => e.name);
    this.entries = new Map(entries.map((e) => [e.name, e]));
  }

  /** Opens `path` and validates its header; throws EvomergeError (checkpoint.*) naming the file and tensor. */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new EvomergeError(
        'checkpoint.not_found',
        code === 'ENOENT' ? 'file not found' : `cannot open (${code ?? (err as Error).message})`,
        { file: path },
      );
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new EvomergeError('checkpoint.not_found', 'not a regular file', { file: path });
      const { metadata, entries } = readHeader(fd, path, st.size);
      return new SafetensorsFile(path, fd, st.size, metadata, entries);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  tensorNames(): string[] {
    return [...this.order];
  }

  hasTensor(name: string): boolean {
    return this.entries.has(name);
  }

  tensorInfo(name: string): TensorInfo {
    const e = this.entry(name);
    return { name: e.name, dtype: e.dtype, shape: e.shape };
  }

  /** Byte range and info of one tensor (for inspect and sharded readers). */
  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e)
      throw new EvomergeError('checkpoint.missing_tensor', 'no such tensor in this file', {
        file: this.location,
        field: `tensor "${name}"`,
      });
    return e;
  }

  /** The stored bytes of one tensor, read at its offset (little-endian, its own dtype). */
  readTensorBytes(name: string): Uint8Array {
    const e = this.entry(name);
    const out = new Uint8Array(e.byteLength);
    this.readInto(e, out);
    return out;
  }

  /** One tensor upcast exactly to float32, in a new array the caller owns. */
  readTensor(name: string): Tensor {
    const e = this.entry(name);
    const data = new Float32Array(numel(e.shape));
    this.readTensorInto(name, data);
    return { shape: e.shape, data };
  }

  /**
   * One tensor upcast exactly to float32 into `out` (length = its element count), e.g. a buffer reused across
   * tensors: F32 is read straight into out's bytes; F16/BF16 are read into the upper half of out's bytes and
   * decoded forward in place, so no other buffer is allocated.
   */
  readTensorInto(name: string, out: Float32Array): void {
    const e = this.entry(name);
    const n = numel(e.shape);
    if (out.length !== n) {
      throw new EvomergeError(
        'internal',
        `readTensorInto: an array of ${out.length} elements for ${n} (this is a bug in evomerge)`,
        {
          file: this.location,
          field: `tensor "${name}"`,
        },
      );
    }
    const bytes = new Uint8Array(out.buffer, out.byteOffset + out.byteLength - e.byteLength, e.byteLength);
    this.readInto(e, bytes);
    if (e.dtype !== 'F32' || !HOST_LE) decodeToF32(e.dtype, e.dtype === 'F32' ? bytes.slice() : bytes, out);
  }

  /** One tensor's bytes as stored (little-endian, its dtype) into `dest`, exactly its byte length long. */
  readStoredInto(name: string, dest: Uint8Array): void {
    const e = this.entry(name);
    if (dest.length !== e.byteLength) {
      throw new EvomergeError(
        'internal',
        `readStoredInto: ${dest.length} bytes for ${e.byteLength} (this is a bug in evomerge)`,
        { file: this.location, field: `tensor "${name}"` },
      );
    }
    this.readInto(e, dest);
  }

  /** Releases the file descriptor; further reads fail. Safe to call twice. */
  close(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }

  private readInto(e: TensorEntry, out: Uint8Array): void {
    if (this.fd === undefined) {
      throw new EvomergeError(
        'internal',
        `${this.location}: read of tensor "${e.name}" after close (this is a bug in evomerge)`,
      );
    }
    let done = 0;
    while (done < e.byteLength) {
      const want = Math.min(READ_CHUNK, e.byteLength - done);
      const got = fs.readSync(this.fd, out, done, want, e.start + done);
      if (got === 0) {
        throw new EvomergeError(
          'checkpoint.truncated',
          `file ended at byte ${e.start + done} while reading bytes ${e.start}..${e.start + e.byteLength}; was it truncated after opening?`,
          { file: this.location, field: `tensor "${e.name}"` },
        );
      }
      done += got;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Header validation (format: 8-byte little-endian u64 N, N bytes of JSON, then the data section)

function readExact(fd: number, length: number, position: number): Uint8Array {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const got = fs.readSync(fd, buf, done, Math.min(READ_CHUNK, length - done), position + done);
    if (got === 0) break;
    done += got;
  }
  return done === length ? buf : buf.subarray(0, done);
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function readHeader(
  fd: number,
  path: string,
  size: number,
): { metadata: Record<string, string>; entries: TensorEntry[] } {
  const file = { file: path };
  if (size < 8) {
    throw new EvomergeError(
      'checkpoint.truncated',
      `file is ${size} bytes, shorter than the 8-byte header length; truncated?`,
      file,
    );
  }
  const lenBytes = readExact(fd, 8, 0);
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw new EvomergeError(
      'checkpoint.bad_header',
      `header length ${headerLen} is absurd (limit ${MAX_HEADER_BYTES} bytes); not a safetensors file?`,
      file,
    );
  }
  const n = Number(headerLen);
  if (8 + n > size) {
    throw new EvomergeError(
      'checkpoint.truncated',
      `header length ${n} runs past end of file (${size} bytes); truncated or not a safetensors file?`,
      file,
    );
  }
  if (n < 2)
    throw new EvomergeError('checkpoint.bad_header', `header length ${n} is too short for a JSON object`, file);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(readExact(fd, n, 8));
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw new EvomergeError('checkpoint.bad_header', `header is not valid JSON (${(err as Error).message})`, file);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new EvomergeError('checkpoint.bad_header', 'header is not a JSON object', file);
  }
  // JSON.parse keeps the last of two equal keys: a second entry for a tensor would hide the first.
  const dup = duplicateTopLevelKey(text);
  if (dup !== undefined)
    throw new EvomergeError('checkpoint.bad_header', 'the header names this key twice', {
      file: path,
      field: dup === '__metadata__' ? dup : `tensor "${dup}"`,
    });

  const dataStart = 8 + n;
  const dataBytes = size - dataStart;
  const metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        throw new EvomergeError('checkpoint.bad_header', '__metadata__ is not an object of strings', {
          file: path,
          field: '__metadata__',
        });
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') {
          throw new EvomergeError('checkpoint.bad_header', `__metadata__ value of "${k}" is not a string`, {
            file: path,
            field: '__metadata__',
          });
        }
        metadata[k] = v;
      }
      continue;
    }
    const place = { file: path, field: `tensor "${name}"` };
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new EvomergeError(
        'checkpoint.bad_header',
        'entry is not an object with dtype, shape and data_offsets',
        place,
      );
    }
    const { dtype, shape, data_offsets: offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string')
      throw new EvomergeError('checkpoint.bad_header', 'dtype is missing or not a string', place);
    if (!(dtype in DTYPE_BYTES)) {
      throw new EvomergeError(
        'checkpoint.unsupported_dtype',
        OTHER_SAFETENSORS_DTYPES.has(dtype)
          ? `dtype ${dtype} is not supported; evomerge reads F32, F16 and BF16`
          : `unknown dtype ${JSON.stringify(dtype)}; evomerge reads F32, F16 and BF16`,
        place,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
      throw new EvomergeError(
        'checkpoint.bad_header',
        `shape ${JSON.stringify(shape)} is not a list of non-negative integers`,
        place,
      );
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every(isNonNegativeInt) ||
      offsets[1] < offsets[0]
    ) {
      throw new EvomergeError(
        'checkpoint.bad_header',
        `data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`,
        place,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataBytes) {
      throw new EvomergeError(
        'checkpoint.truncated',
        `data_offsets end ${end} is past end of file (data section is ${dataBytes} bytes); truncated?`,
        place,
      );
    }
    const d = dtype as DType;
    const expected = numel(shape) * DTYPE_BYTES[d];
    if (end - begin !== expected) {
      throw new EvomergeError(
        'checkpoint.bad_header',
        `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${JSON.stringify(shape)} × ${d} needs ${expected}`,
        place,
      );
    }
    entries.push({ name, dtype: d, shape: Object.freeze([...shape]), start: dataStart + begin, byteLength: expected });
  }

  // Sorted by offset, no two tensors may share a byte, and the data section holds the tensors and nothing
  // else: no gap, no trailing bytes (the safetensors crate refuses such an incomplete buffer too).
  entries.sort((a, b) => a.start - b.start || a.byteLength - b.byteLength);
  let covered = dataStart;
  for (let i = 0; i < entries.length; i++) {
    const cur = entries[i];
    if (cur.start > covered) {
      throw new EvomergeError(
        'checkpoint.bad_header',
        `data_offsets start at ${cur.start - dataStart}, leaving ${cur.start - covered} bytes before it that no tensor holds`,
        { file: path, field: `tensor "${cur.name}"` },
      );
    }
    covered = Math.max(covered, cur.start + cur.byteLength);
    if (i === 0) continue;
    const prev = entries[i - 1];
    if (cur.start < prev.start + prev.byteLength) {
      throw new EvomergeError(
        'checkpoint.bad_header',
        `data_offsets [${cur.start - dataStart}, ${cur.start - dataStart + cur.byteLength}] overlap tensor "${prev.name}" ` +
          `[${prev.start - dataStart}, ${prev.start - dataStart + prev.byteLength}]`,
        { file: path, field: `tensor "${cur.name}"` },
      );
    }
  }
  if (covered !== size) {
    throw new EvomergeError(
      'checkpoint.bad_header',
      `${size - covered} bytes follow the last tensor's data; a safetensors file ends with its last tensor`,
      file,
    );
  }
  return { metadata, entries };
}

/** The first key that appears twice at the top level of a JSON object text, if any. */
function duplicateTopLevelKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === '{' || ch === '[') {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (ch === '}' || ch === ']') depth--;
    else if (ch === ',' && depth === 1) expectKey = true;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Header layout for writing

/**
 * Serialises a safetensors header for tensors laid out back to back in the given order: the 8-byte length
 * followed by the JSON padded with spaces to a multiple of 8 (as the safetensors crate does), so the data
 * section starts 8-byte aligned.
 */
export function encodeHeader(
  tensors: readonly { name: string; dtype: DType; shape: readonly number[] }[],
  metadata: Record<string, string>,
): { bytes: Uint8Array; dataBytes: number } {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const len = numel(t.shape) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + len] };
    offset += len;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  const bytes = new Uint8Array(8 + json.length + pad);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length + pad), true);
  bytes.set(json, 8);
  bytes.fill(0x20, 8 + json.length);
  return { bytes, dataBytes: offset };
}
