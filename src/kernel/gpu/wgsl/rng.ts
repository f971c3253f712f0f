// WGSL twin of src/kernel/rng.ts: pcg4d and the per-element draw, so DARE/DELLA masks on the GPU are the
// CPU's bit for bit. u32 arithmetic in WGSL wraps modulo 2^32, exactly like Math.imul(...) >>> 0.

/** `pcg4d(a,b,c,d)` (Jarzynski & Olano, JCGT 2020) returning the first output word, and `draw_u32`. */
export const WGSL_RNG = /* wgsl */ `
fn pcg4d_x(a: u32, b: u32, c: u32, d: u32) -> u32 {
  var x = a * 1664525u + 1013904223u;
  var y = b * 1664525u + 1013904223u;
  var z = c * 1664525u + 1013904223u;
  var w = d * 1664525u + 1013904223u;
  x = x + y * w;
  y = y + z * x;
  z = z + x * y;
  w = w + y * z;
  x = x ^ (x >> 16u);
  y = y ^ (y >> 16u);
  z = z ^ (z >> 16u);
  w = w ^ (w >> 16u);
  x = x + y * w;
  y = y + z * x;
  z = z + x * y;
  return x;
}

// rng.ts drawU32(key, model, element): key0 = seedLo ^ tensorHash, key1 = seedHi.
fn draw_u32(key0: u32, key1: u32, model: u32, element: u32) -> u32 {
  return pcg4d_x(key0, key1, model, element);
}
`;
