// Exact conversions between the storage dtypes (F32, F16, BF16) and float32, little-endian byte layout.
// Owns rounding (IEEE 754 round-to-nearest-even); knows nothing about files.
import { EvomergeError, type ErrorPlace } from '../errors.ts';
import { decodeHalvesSimd } from './simd-decode.ts';
import { DTYPE_BYTES, type DType } from './tensor-source.ts';

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** True on little-endian hosts: typed-array views then read safetensors bytes directly. */
export const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------------------
// Scalar conversions (IEEE 754-2008 binary16; bfloat16 = the top 16 bits of a binary32)

/** IEEE binary16 bits → the float32 value it denotes (exact: every half is a float32). */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero and subnormals: mant × 2^-24
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** float32 bits → binary16 bits, round to nearest, ties to even; NaN stays a (quiet) NaN. */
function f32BitsToF16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  const he = exp - 112; // half exponent field = (exp - 127) + 15
  if (he >= 0x1f) return sign | 0x7c00; // ≥ 2^16: overflows to infinity
  if (he <= 0) {
    // Half subnormal (or zero): value = m × 2^(exp-150), half unit 2^-24 → m >> (126 - exp), rounded.
    if (he < -10) return sign; // below 2^-25: rounds to ±0 (2^-25 itself is a tie that goes to even 0)
    const m = mant | 0x800000;
    const shift = 14 - he; // 14..24
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h++; // a carry into 0x400 is the min normal
    return sign | h;
  }
  let h = (he << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry may reach 0x7c00 = infinity: correct
  return sign | h;
}

/** float32 value → IEEE binary16 bits, round to nearest even (the value is first rounded to float32). */
export function f32ToF16(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16(scratchU32[0]);
}

/** bfloat16 bits → float32 value (exact: bf16 is the high half of a float32). */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

/** float32 bits → bfloat16 bits, round to nearest even, NaN kept NaN (quiet bit set), as torch does. */
function f32BitsToBf16(b: number): number {
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  // b + 0x7fff + lsb never exceeds 2^32 for non-NaN b (max is -Inf 0xff800000); JS numbers hold it exactly.
  return ((b + 0x7fff + ((b >>> 16) & 1)) / 65536) & 0xffff;
}

/** float32 value → bfloat16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBf16(x: number): number {
  scratchF32[0] = x;
  return f32BitsToBf16(scratchU32[0]);
}

// ---------------------------------------------------------------------------------------------------------
// Array conversions

let f16Table: Float32Array | undefined;
/** All 65536 halves as float32 (256 KiB, built once): decoding F16 is one table lookup per element. */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

/** A copy of `bytes` in a fresh, aligned buffer when its offset cannot back a typed view of `align`. */
function aligned(bytes: Uint8Array, align: number): Uint8Array {
  return bytes.byteOffset % align === 0 ? bytes : new Uint8Array(bytes);
}

/**
 * Decodes little-endian `dtype` bytes (exact upcast) into `out` if given (its length must be the element count),
 * else into a new Float32Array; returns the array written. Decoding runs forward and reads each element before
 * it writes one, so `bytes` may also lie in `out`'s own memory as its last n × size bytes (a 2-byte tensor read
 * into the upper half of its float32 destination decodes in place, with no second buffer).
 */
export function decodeToF32(dtype: DType, bytes: Uint8Array, out?: Float32Array): Float32Array {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new EvomergeError(
      'internal',
      `decodeToF32: ${bytes.byteLength} bytes is not a multiple of ${size} (this is a bug in evomerge)`,
    );
  }
  const n = bytes.byteLength / size;
  if (out !== undefined && out.length !== n) {
    throw new EvomergeError(
      'internal',
      `decodeToF32: ${n} ${dtype} values into an array of ${out.length} (this is a bug in evomerge)`,
    );
  }
  out ??= new Float32Array(n);
  if (!HOST_LE) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) {
      out[i] =
        dtype === 'F32'
          ? view.getFloat32(4 * i, true)
          : dtype === 'F16'
            ? f16ToF32(view.getUint16(2 * i, true))
            : bf16ToF32(view.getUint16(2 * i, true));
    }
    return out;
  }
  if (dtype === 'F32') {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
    return out;
  }
  // WebAssembly SIMD (simd-decode.ts) where available and worth a call; the same bits as the loops below.
  if (n >= SIMD_MIN && decodeHalvesSimd(dtype, bytes, out)) return out;
  return decodeHalvesLoop(dtype, bytes, out);
}

/** Below this many elements the plain loops decode (a block's copies and the call cost more than they save). */
const SIMD_MIN = 64;

/**
 * The plain-JavaScript decode of little-endian F16/BF16 bytes into `out` (length = the element count; `bytes` may
 * be out's own last 2n bytes, as for decodeToF32), on a little-endian host. The reference the SIMD decode is
 * tested against bit for bit, and its fallback.
 */
export function decodeHalvesLoop(dtype: 'F16' | 'BF16', bytes: Uint8Array, out: Float32Array): Float32Array {
  const n = out.length;
  if (dtype === 'F16') {
    const src = aligned(bytes, 2);
    const u16 = new Uint16Array(src.buffer, src.byteOffset, n);
    const table = f16ToF32Table();
    for (let i = 0; i < n; i++) out[i] = table[u16[i]];
    return out;
  }
  const src = aligned(bytes, 2);
  const o32 = new Int32Array(out.buffer, out.byteOffset, n);
  let i = 0;
  if (src.byteOffset % 4 === 0) {
    // Two halves per 32-bit load (little-endian: element 2k is the word's low half), about 1.7× faster than a
    // 16-bit load per element; still forward, and each word is read before the 8 bytes it becomes are written.
    const words = new Uint32Array(src.buffer, src.byteOffset, n >>> 1);
    for (let k = 0; k < words.length; k++) {
      const w = words[k];
      o32[2 * k] = w << 16;
      o32[2 * k + 1] = w & 0xffff0000;
    }
    i = 2 * words.length;
  }
  if (i < n) {
    const u16 = new Uint16Array(src.buffer, src.byteOffset, n);
    for (; i < n; i++) o32[i] = u16[i] << 16;
  }
  return out;
}

/**
 * Rounds every value of `data` in place to the nearest `dtype` value (ties to even, NaN kept NaN): exactly
 * `decodeToF32(dtype, encodeFromF32(dtype, data))` without the two temporary arrays. F32 leaves data as is.
 */
export function roundToDType(dtype: DType, data: Float32Array): void {
  if (dtype === 'F32') return;
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length); // native order: the value's bits
  if (dtype === 'F16') {
    const table = f16ToF32Table();
    for (let i = 0; i < data.length; i++) data[i] = table[f32BitsToF16(bits[i])];
  } else {
    for (let i = 0; i < data.length; i++) bits[i] = f32BitsToBf16(bits[i]) << 16;
  }
}

/**
 * Encodes float32 values as little-endian `dtype` bytes (F16/BF16 rounded to nearest even), into `out` if given
 * (exactly n × size bytes, 2-aligned, not overlapping data; e.g. a writer's reused buffer), else a new array.
 */
export function encodeFromF32(dtype: DType, data: Float32Array, out?: Uint8Array): Uint8Array {
  const n = data.length;
  if (out !== undefined && (out.byteLength !== n * DTYPE_BYTES[dtype] || out.byteOffset % 2 !== 0)) {
    throw new EvomergeError(
      'internal',
      `encodeFromF32: ${n} ${dtype} values into ${out.byteLength} bytes at offset ${out.byteOffset} (this is a bug in evomerge)`,
    );
  }
  out ??= new Uint8Array(n * DTYPE_BYTES[dtype]);
  const bits = new Uint32Array(data.buffer, data.byteOffset, n); // Float32Array offsets are always 4-aligned
  if (!HOST_LE) {
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (let i = 0; i < n; i++) {
      if (dtype === 'F32') view.setFloat32(4 * i, data[i], true);
      else view.setUint16(2 * i, dtype === 'F16' ? f32BitsToF16(bits[i]) : f32BitsToBf16(bits[i]), true);
    }
    return out;
  }
  switch (dtype) {
    case 'F32':
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      return out;
    case 'F16': {
      const o16 = new Uint16Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) o16[i] = f32BitsToF16(bits[i]);
      return out;
    }
    case 'BF16': {
      const o16 = new Uint16Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const b = bits[i];
        o16[i] =
          (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0
            ? (b >>> 16) | 0x40
            : (b + 0x7fff + ((b >>> 16) & 1)) / 65536; // Uint16Array store truncates; value < 65536
      }
      return out;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Names

const DTYPE_NAMES: Record<string, DType> = {
  f32: 'F32',
  float32: 'F32',
  fp32: 'F32',
  float: 'F32',
  'torch.float32': 'F32',
  f16: 'F16',
  float16: 'F16',
  fp16: 'F16',
  half: 'F16',
  'torch.float16': 'F16',
  bf16: 'BF16',
  bfloat16: 'BF16',
  'torch.bfloat16': 'BF16',
};

/** A dtype name as users and configs write it (`float32`, `bfloat16`, `F16`, `bf16`, …) → DType. */
export function parseDType(name: string, where: ErrorPlace): DType {
  const d = typeof name === 'string' ? DTYPE_NAMES[name.trim().toLowerCase()] : undefined;
  if (d === undefined) {
    throw new EvomergeError(
      'checkpoint.unsupported_dtype',
      `unsupported dtype ${JSON.stringify(name)}; expected one of float32, float16, bfloat16 (or F32, F16, BF16)`,
      where,
    );
  }
  return d;
}

/** The `torch_dtype` spelling that Hugging Face configs use for a DType. */
export function torchDTypeName(dtype: DType): 'float32' | 'float16' | 'bfloat16' {
  return dtype === 'F32' ? 'float32' : dtype === 'F16' ? 'float16' : 'bfloat16';
}
