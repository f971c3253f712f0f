// BF16 and F16 → float32 decoding with WebAssembly SIMD (8 halves per 128-bit load), in blocks copied through the
// module's memory. The module is written here byte by byte (the checkpoint room imports nothing of ours, so it
// cannot borrow the kernel's assembler, kernel/cpu/simd/wasm-asm.ts); it has two functions of one loop each.
// Bit-identical to the loops of dtype.ts (a test compares them on every half, odd lengths, offsets, in place).

/** Halves per block: 16 KB in, 32 KB out, both in one 64 KB page (and in L2 between the copies). */
const BLOCK = 8192;
const IN = 0;
const OUT = 2 * BLOCK + 1088;

// ---------------------------------------------------------------------------------------------------------
// The module

const simd = (op: number): number[] => (op < 0x80 ? [0xfd, op] : [0xfd, (op & 0x7f) | 0x80, op >> 7]);
const V128_LOAD = [...simd(0x00), 4, 0];
const v128Store = (offset: number) => [...simd(0x0b), 4, ...uleb(offset)];
const EXTEND_LOW_U = simd(0xa9); // i32x4.extend_low_i16x8_u
const EXTEND_HIGH_U = simd(0xaa);
const I32X4_SHL = simd(0xab);
const I32X4_ADD = simd(0xae);
const I32X4_EQ = simd(0x37);
const I32X4_NE = simd(0x38);
const V128_AND = simd(0x4e);
const V128_OR = simd(0x50);
const BITSELECT = simd(0x52);
const F32X4_SUB = simd(0xe5);
const [GET, SET, TEE, I32_CONST, I32_ADD, I32_SHL, I32_GE_U] = [0x20, 0x21, 0x22, 0x41, 0x6a, 0x74, 0x4f];

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** v128.const with the same i32 in all four lanes. */
function splat(x: number): number[] {
  return [...simd(0x0c), ...new Uint8Array(new Int32Array([x, x, x, x]).buffer)];
}

/**
 * fn(src, dst, bytes): for i in [0, bytes) step 16, the 8 halves at src + i become 8 float32 at dst + 2i.
 * `lanes(half)` pushes the code turning the 4 halves zero-extended in local `h` into 4 float32 bits.
 */
function halvesLoop(lanes: (h: number) => number[]): number[] {
  const [src, dst, bytes, i, v, h] = [0, 1, 2, 3, 4, 5];
  const half = (extend: number[], offset: number) => [
    ...[GET, dst, GET, i, I32_CONST, 1, I32_SHL, I32_ADD],
    ...[GET, v, ...extend, SET, h, ...lanes(h)],
    ...v128Store(offset),
  ];
  const code = [
    ...[I32_CONST, 0, SET, i],
    ...[0x02, 0x40, 0x03, 0x40], // block, loop
    ...[GET, i, GET, bytes, I32_GE_U, 0x0d, 1], // br_if 1 when i ≥ bytes
    ...[GET, src, GET, i, I32_ADD, ...V128_LOAD, SET, v],
    ...half(EXTEND_LOW_U, 0),
    ...half(EXTEND_HIGH_U, 16),
    ...[GET, i, I32_CONST, 16, I32_ADD, SET, i, 0x0c, 0], // br 0
    ...[0x0b, 0x0b], // end loop, end block
  ];
  // locals: i (i32); v, h and f16Lanes' two (v128)
  const body = [2, 1, 0x7f, 4, 0x7b, ...code, 0x0b];
  return [...uleb(body.length), ...body];
}

/** bf16: the half's bits are the float32's high 16 bits. */
const bf16Lanes = (h: number) => [GET, h, I32_CONST, 16, ...I32X4_SHL];

/**
 * f16 (f16ToF32 of dtype.ts, bit for bit): exponent and mantissa moved up 13 bits and re-biased by 112; a zero or
 * subnormal half (exponent 0) is 2^-14 × (1 + m/1024) − 2^-14 = m × 2^-24, exact in float32; ±Inf gets the
 * all-ones exponent; every NaN is the canonical 0x7fc00000 (f16ToF32 returns JavaScript's NaN, without sign).
 */
function f16Lanes(h: number): number[] {
  const [o, e] = [h + 1, h + 2];
  const isMax = [GET, e, ...splat(0x0f800000), ...I32X4_EQ];
  return [
    ...[GET, h, ...splat(0x7fff), ...V128_AND, I32_CONST, 13, ...I32X4_SHL, TEE, o], // (h & 0x7fff) << 13
    ...[...splat(0x0f800000), ...V128_AND, SET, e], // the exponent field, moved up
    ...[GET, o, ...splat(0x38000000), ...I32X4_ADD, SET, o], // re-biased
    ...splat(0x7fc00000),
    ...[GET, o, ...splat(0x00800000), ...I32X4_ADD, ...splat(0x38800000), ...F32X4_SUB], // subnormal or zero
    ...[GET, o, GET, e, ...splat(0), ...I32X4_EQ, ...BITSELECT], // exponent 0 ? that : re-biased
    ...[...isMax, ...splat(0x38000000), ...V128_AND, ...I32X4_ADD], // Inf/NaN: exponent 0xff
    ...[GET, h, ...splat(0x8000), ...V128_AND, I32_CONST, 16, ...I32X4_SHL, ...V128_OR], // the sign
    ...[...isMax, GET, h, ...splat(0x3ff), ...V128_AND, ...splat(0), ...I32X4_NE, ...V128_AND], // NaN
    ...BITSELECT, // NaN ? 0x7fc00000 : the value
  ];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function name(text: string): number[] {
  return [text.length, ...[...text].map((c) => c.charCodeAt(0))];
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const fnType = [0x60, 3, 0x7f, 0x7f, 0x7f, 0]; // (i32, i32, i32) → ()
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, ...fnType]),
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x00, 0x01]),
    ...section(3, [2, 0, 0]),
    ...section(7, [2, ...name('bf16'), 0x00, 0, ...name('f16'), 0x00, 1]),
    ...section(10, [2, ...halvesLoop(bf16Lanes), ...halvesLoop(f16Lanes)]),
  ]);
}

// ---------------------------------------------------------------------------------------------------------
// The driver

interface Decoder {
  readonly bf16: (src: number, dst: number, bytes: number) => void;
  readonly f16: (src: number, dst: number, bytes: number) => void;
  readonly u8: Uint8Array;
  readonly f32: Float32Array;
}

let decoder: Decoder | null | undefined;

function instance(): Decoder | null {
  if (decoder !== undefined) return decoder;
  const bytes = moduleBytes();
  if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(bytes)) return (decoder = null);
  const memory = new WebAssembly.Memory({ initial: 1 });
  const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports;
  decoder = {
    bf16: exports['bf16'] as Decoder['bf16'],
    f16: exports['f16'] as Decoder['f16'],
    u8: new Uint8Array(memory.buffer),
    f32: new Float32Array(memory.buffer),
  };
  return decoder;
}

/**
 * Decodes the little-endian halves in `bytes` (2 × out.length bytes, any offset) into `out`, block by block;
 * false (nothing written) where WebAssembly SIMD is unavailable. Forward, and each block is copied in before its
 * float32 are written, so `bytes` may lie in out's own memory as its last 2n bytes (decoding in place).
 */
export function decodeHalvesSimd(dtype: 'F16' | 'BF16', bytes: Uint8Array, out: Float32Array): boolean {
  const d = instance();
  if (d === null) return false;
  const fn = dtype === 'BF16' ? d.bf16 : d.f16;
  const n = out.length;
  for (let start = 0; start < n; start += BLOCK) {
    const count = Math.min(BLOCK, n - start);
    d.u8.set(bytes.subarray(2 * start, 2 * (start + count)), IN);
    const padded = (count + 7) & ~7; // whole vectors: the lanes past count are decoded and never copied out
    fn(IN, OUT, 2 * padded);
    out.set(d.f32.subarray(OUT >> 2, (OUT >> 2) + count), start);
  }
  return true;
}
