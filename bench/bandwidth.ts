// One thread's copy bandwidth, the yardstick the merge and candidate benches state their shares of the bound against.

/** STREAM-style copy bandwidth (bytes read + written per second) over 256 MB, best of 5. */
export function copyBandwidth(): number {
  const n = 64 * 2 ** 20;
  const a = new Float32Array(n).fill(1);
  const b = new Float32Array(n);
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    b.set(a);
    best = Math.min(best, performance.now() - t0);
  }
  return (2 * n * 4) / (best / 1000);
}
