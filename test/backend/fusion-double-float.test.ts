// The error bounds arcee_fusion's WGSL row pass relies on (src/kernel/gpu/wgsl/arcee-fusion.ts FUSION_EPS): its
// double-float exp, log, log(1 + e) − e and division, run on the device, against float64 (Math.exp, Math.log,
// a/b, each within 2⁻⁵² of exact) or exact rationals, on inputs where the row pass uses them. The bounds are set
// from an error analysis of the double-float steps with a factor 2 to spare; this holds the device to 1/16 of
// them (measured on lavapipe: exp 2⁻⁴⁷, log 2⁻⁴⁶, log(1 + e) − e 2⁻⁴⁶·⁴, division 2⁻⁴⁹), so a compiler that
// folded an error-free transformation fails here.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuDevice } from '../../src/kernel/gpu/device.ts';
import { FUSION_EPS, WGSL_DOUBLE_FLOAT, fusionMathWgsl } from '../../src/kernel/gpu/wgsl/arcee-fusion.ts';
import { mulberry32 } from '../fixtures/seeded-random.ts';

const N = 1 << 16;

describe('arcee_fusion double-float exp, log and division on the device', () => {
  let gpu: GpuDevice;
  let out: Float32Array;
  const t = new Float32Array(N);
  const v = new Float32Array(N);
  const d = new Float32Array(N);
  const eps = new Float32Array(N);
  beforeAll(async () => {
    gpu = await GpuDevice.open({ allowSoftware: true });
    const rnd = mulberry32(21);
    for (let i = 0; i < N; i++) {
      const k = i % 4;
      // exp arguments x − max in [−41, 0]; log arguments p/q: wide, a few ulps from 1, near √2 (the reduction's
      // edge) and in [0.5, 2]; divisors: row sums in [1, 4096].
      t[i] = k === 0 ? -41 * rnd() : k === 1 ? -rnd() * 2 ** -(rnd() * 30) : -rnd() * 3;
      v[i] =
        k === 0
          ? Math.exp((rnd() - 0.5) * 40)
          : k === 1
            ? 1 + (rnd() - 0.5) * 2 ** -(8 + rnd() * 16)
            : k === 2
              ? Math.SQRT2 * (1 + (rnd() - 0.5) * 1e-3)
              : 0.5 + rnd() * 1.5;
      d[i] = 1 + rnd() * 4095;
      // log1p arguments p/q − 1: a few ulps from 1 (where log(1 + e) is nearly a float32 midpoint), up to 2⁻⁸.
      const j = 1 + (i % 997);
      eps[i] = k === 0 ? j * 2 ** -23 : k === 1 ? -j * 2 ** -24 : (rnd() - 0.5) * 2 ** -(7 + rnd() * 16);
    }
    const code = /* wgsl */ `
struct P { zero: u32, a: u32, b: u32, c: u32 }
@group(0) @binding(0) var<uniform> prm: P;
@group(0) @binding(1) var<storage, read> T: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> D: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<storage, read> E: array<f32>;
var<private> bad: bool;
${WGSL_DOUBLE_FLOAT}
${fusionMathWgsl()}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  let e = exp_df(T[i]);
  let l = log_df(V[i]);
  let q = df_div(vec2f(V[i], 0.0), vec2f(D[i], 0.0));
  let c = log1p_tail(E[i]);
  O[i * 8u + 6u] = c.x;
  O[i * 8u + 7u] = c.y;
  O[i * 8u] = e.x; O[i * 8u + 1u] = e.y; O[i * 8u + 2u] = l.x; O[i * 8u + 3u] = l.y;
  O[i * 8u + 4u] = q.x; O[i * 8u + 5u] = q.y;
}`;
    const S = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    const buf = (data: ArrayBufferView, usage: number): GPUBuffer => {
      const b = gpu.createBuffer(data.byteLength, usage | GPUBufferUsage.COPY_DST);
      gpu.write(b, 0, data);
      return b;
    };
    const o = gpu.createBuffer(N * 32, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
    const pipeline = gpu.pipeline(code);
    const group = gpu.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: buf(new Uint32Array(4), GPUBufferUsage.UNIFORM) } },
        { binding: 1, resource: { buffer: buf(t, S) } },
        { binding: 2, resource: { buffer: buf(v, S) } },
        { binding: 3, resource: { buffer: buf(d, S) } },
        { binding: 4, resource: { buffer: o } },
        { binding: 5, resource: { buffer: buf(eps, S) } },
      ],
    });
    const enc = gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(N / 64);
    pass.end();
    out = new Float32Array(
      await gpu.readBack(enc, [{ source: o, sourceOffset: 0, targetOffset: 0, sizeBytes: N * 32 }], N * 32),
    );
  });
  afterAll(() => gpu?.destroy());

  const worst = (slot: number, exact: (i: number) => number): number => {
    let w = 0;
    for (let i = 0; i < N; i++) {
      const want = exact(i);
      if (Number.isNaN(want)) continue;
      const got = out[i * 8 + slot]! + out[i * 8 + slot + 1]!;
      w = Math.max(w, Math.abs(got - want) / Math.abs(want));
    }
    return w;
  };

  it('exp on [−41, 0] within 1/16 of its bound', () => {
    expect(worst(0, (i) => Math.exp(t[i]!))).toBeLessThanOrEqual(FUSION_EPS.exp / 16);
  });

  it('log within 1/16 of its bound (log_rn returns 0 for 1 itself)', () => {
    expect(worst(2, (i) => (v[i] === 1 ? NaN : Math.log(v[i]!)))).toBeLessThanOrEqual(FUSION_EPS.log / 16);
  });

  it('log(1 + e) − e on |e| ≤ 2⁻⁸ within 1/16 of its bound (against the series in exact rationals)', () => {
    const scale = 300n;
    const exact = (e: number): number => {
      // e = m·2⁻ᵏ exactly (a float32); Σ_{n ≥ 2} (−1)^(n+1) eⁿ/n, truncated 2⁻³⁰⁰ below.
      let k = 0n;
      let m = e;
      while (!Number.isInteger(m)) {
        m *= 2;
        k++;
      }
      const M = BigInt(m);
      let sum = 0n;
      for (let n = 2n; n <= 40n; n++) {
        const term = ((M ** n) << scale) / ((1n << (k * n)) * n);
        sum += n % 2n === 0n ? -term : term;
      }
      return Number(sum) / 2 ** Number(scale);
    };
    let w = 0;
    for (let i = 0; i < N; i += 7) {
      const want = exact(eps[i]!);
      if (want === 0) continue;
      const got = out[i * 8 + 6]! + out[i * 8 + 7]!;
      w = Math.max(w, Math.abs(got - want) / Math.abs(want));
    }
    expect(w).toBeLessThanOrEqual(FUSION_EPS.log1p / 16);
  });

  it('division within 1/16 of its bound', () => {
    expect(worst(4, (i) => v[i]! / d[i]!)).toBeLessThanOrEqual(FUSION_EPS.div / 16);
  });
});
