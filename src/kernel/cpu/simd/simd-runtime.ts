// The CPU kernel's WebAssembly SIMD module: its functions (wasm-task-arithmetic.ts, wasm-select-kth.ts,
// wasm-dare.ts) assembled at run time by wasm-asm.ts into one module, and an instance with its memory. The drivers
// (simd-*.ts, kernel/non-finite.ts) copy chunks in and out.

import { buildModule } from './wasm-asm.ts';
import { bernoulliMaskWords, maskedL1 } from './wasm-dare.ts';
import { decodeBf16, decodeF16 } from './wasm-decode.ts';
import { anyNonFinite } from './wasm-non-finite.ts';
import { bracket } from './wasm-select-kth.ts';
import { taskArithmeticFunctions } from './wasm-task-arithmetic.ts';
import { weightedSumChunk } from './wasm-weighted-sum.ts';

export interface SimdExports {
  bernoulli_mask(out: number, words: number, e0: number, x0: number, y0: number, z0: number, threshold: number): void;
  masked_l1(x: number, b: number, bytes: number, mask: number, acc: number): void;
  delta_all(x: number, b: number, d: number, bytes: number, w: number): void;
  delta_cut(x: number, b: number, d: number, bytes: number, kb: number, db: number, mul: number, w: number): number;
  delta_mask(x: number, b: number, d: number, bytes: number, mask: number, mul: number, w: number): void;
  combine_sum(
    d: number,
    models: number,
    slot: number,
    b: number,
    out: number,
    bytes: number,
    div: number,
    useDiv: number,
    lambda: number,
    useLambda: number,
  ): void;
  combine_consensus(
    d: number,
    models: number,
    slot: number,
    wp: number,
    b: number,
    out: number,
    bytes: number,
    normalize: number,
    lambda: number,
    useLambda: number,
  ): void;
  bracket(x: number, b: number, bytes: number, lo: number, hi: number, cand: number): number;
  any_nonfinite(ptr: number, bytes: number): number;
  decode_bf16(src: number, dst: number, bytes: number): void;
  decode_f16(src: number, dst: number, bytes: number): void;
  weighted_sum(
    xs: number,
    models: number,
    slot: number,
    wp: number,
    out: number,
    bytes: number,
    div: number,
    useDiv: number,
  ): void;
  combine_dense(
    xs: number,
    models: number,
    slot: number,
    wp: number,
    b: number,
    out: number,
    bytes: number,
    div: number,
    useDiv: number,
    lambda: number,
    useLambda: number,
  ): void;
  /** combine_cut variants by cutVariantName, and their unrolled forms by unrolledName. */
  [variant: `combine_cut_${string}`]: (
    xs: number,
    models: number,
    slot: number,
    prm: number,
    ds: number,
    b: number,
    out: number,
    bytes: number,
    div: number,
    useDiv: number,
    lambda: number,
    useLambda: number,
  ) => number;
}

/** Elements per chunk in the SIMD drivers (selection and combine use the same chunks). */
export const SIMD_CHUNK = 4096;
/** Bytes per chunk slot in the drivers' memory layout: the unrolled combines bake it in. */
export const SLOT_BYTES = SIMD_CHUNK * 4;

let compiled: WebAssembly.Module | null | undefined;

function compile(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  const bytes = buildModule([
    bracket(),
    bernoulliMaskWords(),
    maskedL1(),
    anyNonFinite(),
    decodeBf16(),
    decodeF16(),
    weightedSumChunk(),
    ...taskArithmeticFunctions(SLOT_BYTES),
  ]);
  compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  return compiled;
}

/** One instance with its own memory; views are refreshed when the memory grows. */
export class SimdRuntime {
  readonly fn: SimdExports;
  private readonly memory: WebAssembly.Memory;
  f32: Float32Array;
  u32: Uint32Array;
  f64: Float64Array;

  private constructor(module: WebAssembly.Module) {
    this.memory = new WebAssembly.Memory({ initial: 16 });
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.fn = instance.exports as unknown as SimdExports;
    this.f32 = new Float32Array(this.memory.buffer);
    this.u32 = new Uint32Array(this.memory.buffer);
    this.f64 = new Float64Array(this.memory.buffer);
  }

  /** A runtime, or null where WebAssembly SIMD is unavailable (the kernel then uses the plain loops). */
  static create(): SimdRuntime | null {
    const module = compile();
    return module === null ? null : new SimdRuntime(module);
  }

  private readonly scratch: Uint32Array[] = [];

  /**
   * A reusable JS-side buffer of `length` u32 (numbered slot, grown on demand): selection candidates, so
   * that large merges do not fault in fresh pages for every tensor. Valid until the slot is asked for again.
   */
  scratchU32(slot: number, length: number): Uint32Array {
    let buf = this.scratch[slot];
    if (buf === undefined || buf.length < length) {
      buf = new Uint32Array(Math.max(length, Math.ceil((buf?.length ?? 0) * 1.25)));
      this.scratch[slot] = buf;
    }
    return buf.subarray(0, length);
  }

  /** The memory as bytes (a fresh view: valid until the memory next grows). */
  get u8(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  /** Makes at least `bytes` of memory addressable. */
  ensure(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return;
    this.memory.grow(Math.ceil((bytes - have) / 65536));
    this.f32 = new Float32Array(this.memory.buffer);
    this.u32 = new Uint32Array(this.memory.buffer);
    this.f64 = new Float64Array(this.memory.buffer);
  }
}
