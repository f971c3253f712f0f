// How every evomerge shader addresses its elements: a tensor is processed in chunks of at most one storage
// binding, each described by a `Chunk` uniform; workgroups are laid out over x and y (dispatchGrid).

/** Elements handled by one workgroup of the tiled passes (reductions, histograms): 256 threads × 16. */
export const TILE_ELEMENTS = 4096;

/** Elements per mask block: 256 threads × one 32-bit mask word each. Chunk sizes are multiples of this. */
export const BLOCK_ELEMENTS = 8192;

/** Byte stride between Chunk uniforms (minUniformBufferOffsetAlignment is at most 256). */
export const CHUNK_UNIFORM_STRIDE = 256;

/**
 * `chunk.count` elements starting at global element `chunk.offset`; binding windows of the chunk's tensors
 * start at that element, so `x[i]` is global element `chunk.offset + i`.
 */
export const WGSL_CHUNK = /* wgsl */ `
struct Chunk {
  count: u32,
  offset: u32,
  pad0: u32,
  pad1: u32,
}
fn workgroup_linear(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.y * nwg.x + wid.x;
}
`;
