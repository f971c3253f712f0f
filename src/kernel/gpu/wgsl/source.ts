// How a source tensor is bound and read in WGSL: float32, or bfloat16 packed two per u32 (sources whose
// values are all exactly bf16, e.g. bf16 checkpoints, held at half the device memory; decoding is exact).

/** Storage format of a source tensor on the device. */
export type SourceFormat = 'f32' | 'bf16';

/** Bytes a window of `count` elements occupies in a buffer of this format. */
export function windowBytes(format: SourceFormat, count: number): number {
  return format === 'f32' ? count * 4 : Math.ceil(count / 2) * 4;
}

/** Byte offset of element `offset` (even, for bf16) in a buffer of this format. */
export function offsetBytes(format: SourceFormat, offset: number): number {
  return format === 'f32' ? offset * 4 : offset * 2;
}

/**
 * Declares binding `binding` named `name` and a loader `${name}_at(i: u32) -> f32` for element i of the window.
 * bf16 → f32 is a 16-bit shift of the bit pattern (exact).
 */
export function sourceBinding(binding: number, name: string, format: SourceFormat): string {
  if (format === 'f32') {
    return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<f32>;
fn ${name}_at(i: u32) -> f32 { return ${name}[i]; }`;
  }
  return `@group(0) @binding(${binding}) var<storage, read> ${name}: array<u32>;
fn ${name}_at(i: u32) -> f32 { return bitcast<f32>(((${name}[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu) << 16u); }`;
}
