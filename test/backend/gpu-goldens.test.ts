// Parity of the GPU kernel with mergekit's own outputs (shared/mergekit-goldens): every golden recipe merged
// in process through one GpuKernel (sources stay resident across recipes), each tensor within
// rel_err = max|a−b|/max|b| ≤ 1.2e-6 of mergekit: the CPU kernel's 2e-7 plus the README's 1e-6 between the
// GPU and CPU kernels (lavapipe is at 1.98e-7).

import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.ts';
import { MemoryTensors } from '../../src/checkpoint/tensor-source.ts';
import { GpuKernel } from '../../src/kernel/gpu/gpu-kernel.ts';
import { mergeRecipe } from '../../src/merge/engine.ts';
import { parseRecipeFile } from '../../src/recipe/parse.ts';
import { relErr } from '../unit/merge/rel-err.ts';

const TOLERANCE = 1.2e-6;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const goldens = path.resolve(repoRoot, '../shared/mergekit-goldens');
const have = existsSync(goldens);
const names = have
  ? readdirSync(path.join(goldens, 'golden'))
      .filter((f) => f.endsWith('.safetensors'))
      .map((f) => f.replace(/\.safetensors$/, ''))
  : [];

describe.runIf(have)('golden parity (in-process, GPU kernel)', () => {
  let kernel: GpuKernel;
  beforeAll(async () => {
    kernel = await GpuKernel.create({ allowSoftware: true, log: () => {} });
  });
  afterAll(async () => {
    await kernel?.close();
  });

  it.each(names)('%s', async (name) => {
    const recipe = parseRecipeFile(path.join(goldens, 'recipes', `${name}.yaml`));
    const out = new MemoryTensors(`merge of ${name}`);
    await mergeRecipe(recipe, out, { kernel });
    const golden = SafetensorsFile.open(path.join(goldens, 'golden', `${name}.safetensors`));
    try {
      expect([...out.tensorNames()].sort()).toEqual([...golden.tensorNames()].sort());
      for (const t of golden.tensorNames()) {
        const want = golden.readTensor(t);
        const got = out.readTensor(t);
        expect(got.shape, t).toEqual(want.shape);
        expect(relErr(got.data, want.data), `${name}: ${t}`).toBeLessThanOrEqual(TOLERANCE);
      }
    } finally {
      golden.close();
    }
  });

  it('kept the zoo sources resident: no source tensor was uploaded twice', () => {
    expect(kernel.cache.streaming).toBe(false);
    expect(kernel.cache.bytesUploaded).toBe(kernel.cache.bytes);
  });
});

describe.skipIf(have)('golden parity (in-process, GPU kernel)', () => {
  it.skip(`skipped: ${goldens} is absent`, () => {});
});
