// The resident source cache on a real WebGPU device: each (model, tensor) is read and uploaded once and
// reused by later merges; past the budget it says so once and streams, with unchanged results.

import { describe, expect, it } from 'vitest';
import { GpuKernel } from '../../src/kernel/gpu/gpu-kernel.ts';
import type { SourceRef, TensorJob } from '../../src/kernel/kernel.ts';
import { rngKey } from '../../src/kernel/rng.ts';

const N = 10_000;
const TENSORS = ['a.weight', 'b.weight'];
const MODELS = ['base', 'x1', 'x2'];

function zoo() {
  const reads: string[] = [];
  const read = (ref: SourceRef) => {
    reads.push(`${ref.model}:${ref.tensor}`);
    const s = MODELS.indexOf(ref.model) + 1 + TENSORS.indexOf(ref.tensor) * 7;
    return Float32Array.from(
      { length: N },
      (_, e) => Math.sin(e * 0.01 * s) + (ref.model === 'base' ? 0 : 0.03 * Math.cos(e * s)),
    );
  };
  return { reads, read };
}

/** One candidate: a TIES merge of every tensor with candidate-specific weights and densities. */
function candidate(c: number): TensorJob[] {
  return TENSORS.map((name) => ({
    name,
    shape: [100, 100],
    op: {
      kind: 'task_arithmetic',
      base: { model: 'base', tensor: name },
      inputs: ['x1', 'x2'].map((m, i) => ({
        ref: { model: m, tensor: name },
        weight: 0.3 + 0.1 * c + 0.2 * i,
        density: 0.2 + 0.15 * ((c + i) % 4),
        gamma: 0.01,
        epsilon: 0.1,
        modelIndex: i + 1,
      })),
      sparsification: 'magnitude',
      consensus: 'sum',
      normalize: true,
      lambda: 1,
      rescale: 'none',
      rng: rngKey(c, name),
    },
  }));
}

describe('resident source cache', () => {
  it('reads and uploads each source tensor once across candidates', async () => {
    const kernel = await GpuKernel.create({ allowSoftware: true, log: () => {} });
    const { reads, read } = zoo();
    for (const job of candidate(0)) await kernel.mergeTensor(job, read);
    const uploaded = kernel.cache.bytesUploaded;
    expect(uploaded).toBe(MODELS.length * TENSORS.length * N * 4);
    expect(kernel.cache.bytes).toBe(uploaded);
    for (let c = 1; c < 4; c++) for (const job of candidate(c)) await kernel.mergeTensor(job, read);
    expect(reads.length).toBe(MODELS.length * TENSORS.length);
    expect(new Set(reads).size).toBe(reads.length);
    expect(kernel.cache.bytesUploaded).toBe(uploaded);
    expect(kernel.cache.streaming).toBe(false);
    await kernel.close();
  });

  it('keeps exactly-bf16 sources packed (half the bytes) with results identical to float32 storage', async () => {
    const packed = await GpuKernel.create({ allowSoftware: true, log: () => {} });
    const plain = await GpuKernel.create({ allowSoftware: true, log: () => {}, residentStorage: 'f32' });
    const { read } = zoo();
    const bf16Read = (ref: SourceRef) => {
      const data = read(ref).slice();
      const bits = new Uint32Array(data.buffer);
      for (let e = 0; e < bits.length; e++) bits[e] = (bits[e] & 0xffff0000) >>> 0;
      return data;
    };
    for (let c = 0; c < 2; c++) {
      for (const job of candidate(c)) {
        const a = await packed.mergeTensor(job, bf16Read);
        const b = await plain.mergeTensor(job, bf16Read);
        expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
      }
    }
    expect(plain.cache.bytes).toBe(MODELS.length * TENSORS.length * N * 4);
    expect(packed.cache.bytes).toBe(MODELS.length * TENSORS.length * N * 2);
    await packed.close();
    await plain.close();
  });

  it('evicting resident sources (as after an out-of-memory) streams them back with identical results', async () => {
    const lines: string[] = [];
    const kernel = await GpuKernel.create({ allowSoftware: true, log: (l) => lines.push(l) });
    const { reads, read } = zoo();
    const before = await Promise.all(candidate(0).map((job) => kernel.mergeTensor(job, read)));
    const resident = kernel.cache.bytes;
    const freed = kernel.cache.evict(N * 4, 'test');
    expect(freed).toBe(N * 4);
    expect(kernel.cache.bytes).toBe(resident - N * 4);
    expect(kernel.cache.streaming).toBe(true);
    expect(lines).toEqual([
      expect.stringMatching(
        /^evomerge: gpu: sources do not fit on .+ \(test; 0\.0 MiB released; 0\.2 MiB resident\): streaming/,
      ),
    ]);
    const readsBefore = reads.length;
    const after = await Promise.all(candidate(0).map((job) => kernel.mergeTensor(job, read)));
    after.forEach((a, i) => expect(Buffer.from(a.buffer).equals(Buffer.from(before[i].buffer))).toBe(true));
    expect(reads.length - readsBefore).toBe(1); // only the evicted tensor is read again
    expect(kernel.cache.evict(Infinity, 'test again')).toBe(resident - N * 4);
    expect(kernel.cache.bytes).toBe(0);
    expect(lines.length).toBe(1);
    await kernel.close();
  });

  it('past the budget: one notice, streaming per job, identical results', async () => {
    const unlimited = await GpuKernel.create({ allowSoftware: true, log: () => {} });
    const lines: string[] = [];
    // Room for two of the six source tensors.
    const tight = await GpuKernel.create({
      allowSoftware: true,
      residentBudgetBytes: 2 * N * 4,
      log: (l) => lines.push(l),
    });
    const free = zoo();
    const limited = zoo();
    for (let c = 0; c < 3; c++) {
      for (const job of candidate(c)) {
        const want = await unlimited.mergeTensor(job, free.read);
        const got = await tight.mergeTensor(job, limited.read);
        expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      }
    }
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(
      new RegExp(
        '^evomerge: gpu: sources do not fit on .+ \\(the resident budget of 0\\.1 MiB is reached; ' +
          '0\\.1 MiB resident\\): streaming the remaining source tensors per merge',
      ),
    );
    expect(tight.cache.streaming).toBe(true);
    expect(tight.cache.bytes).toBe(2 * N * 4);
    // The two resident tensors are read once; the four others once per candidate.
    expect(limited.reads.length).toBe(2 + 4 * 3);
    await unlimited.close();
    await tight.close();
  });
});
