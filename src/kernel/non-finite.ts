// The merge's non-finite guard: the first NaN or ±Inf of a float32 array, scanned with WebAssembly SIMD in blocks
// copied into the module's memory (about one memcpy over the data), or with the plain loop where SIMD is
// unavailable. Both return the same index.
import { SimdRuntime } from './cpu/simd/simd-runtime.ts';
import { NON_FINITE_STEP_BYTES } from './cpu/simd/wasm-non-finite.ts';

/** Elements per block: 64 KB, which stays in L2 between the copy and the scan. */
const BLOCK = 16384;
/** Byte offset of the block in the runtime's memory. */
const AT = 64;

let runtime: SimdRuntime | null | undefined;

/** The index of the first NaN or ±Inf in `data`, or −1 (the reference: one element at a time). */
export function firstNonFiniteLoop(data: Float32Array, from = 0, to = data.length): number {
  for (let i = from; i < to; i++) {
    const v = data[i]!;
    if (v - v !== 0) return i; // NaN and ±Inf
  }
  return -1;
}

/** The index of the first NaN or ±Inf in `data`, or −1: the same answer as firstNonFiniteLoop, faster. */
export function firstNonFinite(data: Float32Array): number {
  if (runtime === undefined) {
    runtime = SimdRuntime.create();
    runtime?.ensure(AT + BLOCK * 4 + NON_FINITE_STEP_BYTES);
  }
  const rt = runtime;
  if (rt === null || data.length < BLOCK) return firstNonFiniteLoop(data);
  const { f32, fn } = rt;
  const at = AT >> 2;
  const step = NON_FINITE_STEP_BYTES >> 2;
  for (let start = 0; start < data.length; start += BLOCK) {
    const count = Math.min(BLOCK, data.length - start);
    f32.set(data.subarray(start, start + count), at);
    const padded = Math.ceil(count / step) * step;
    if (padded !== count) f32.fill(0, at + count, at + padded);
    if (fn.any_nonfinite(AT, padded * 4) !== 0) return firstNonFiniteLoop(data, start, start + count);
  }
  return -1;
}
