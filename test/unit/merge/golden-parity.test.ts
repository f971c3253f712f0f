// Parity with mergekit's own outputs (shared/mergekit-goldens/golden/NAME.safetensors): every tensor of an
// in-process merge with the CPU kernel within rel_err = max|a−b|/max|b| ≤ 2e-7 (the README's claim; slerp, the
// worst, is at 1.98e-7), names and shapes exact.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.ts';
import { MemoryTensors } from '../../../src/checkpoint/tensor-source.ts';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { mergeRecipe } from '../../../src/merge/engine.ts';
import { parseRecipeFile } from '../../../src/recipe/parse.ts';
import { relErr } from './rel-err.ts';

const TOLERANCE = 2e-7;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const goldens = path.resolve(repoRoot, '../shared/mergekit-goldens');
const have = existsSync(goldens);
const names = have
  ? readdirSync(path.join(goldens, 'golden'))
      .filter((f) => f.endsWith('.safetensors'))
      .map((f) => f.replace(/\.safetensors$/, ''))
  : [];

describe.runIf(have)('golden parity (in-process, CPU kernel)', () => {
  it('covers every golden (11 files)', () => expect(names.length).toBe(11));

  it.each(names)('%s', async (name) => {
    const recipe = parseRecipeFile(path.join(goldens, 'recipes', `${name}.yaml`));
    const out = new MemoryTensors(`merge of ${name}`);
    const result = await mergeRecipe(recipe, out, { kernel: new CpuKernel() });
    const golden = SafetensorsFile.open(path.join(goldens, 'golden', `${name}.safetensors`));
    try {
      expect(result.tensors).toBe(golden.tensorNames().length);
      expect([...out.tensorNames()].sort()).toEqual([...golden.tensorNames()].sort());
      let worst = 0;
      for (const t of golden.tensorNames()) {
        const want = golden.readTensor(t);
        const got = out.readTensor(t);
        expect(got.shape, t).toEqual(want.shape);
        const e = relErr(got.data, want.data);
        worst = Math.max(worst, e);
        expect(e, `${name}: ${t}`).toBeLessThanOrEqual(TOLERANCE);
      }
      expect(worst).toBeLessThanOrEqual(TOLERANCE);
    } finally {
      golden.close();
    }
  });
});

describe.skipIf(have)('golden parity (in-process, CPU kernel)', () => {
  it.skip(`skipped: ${goldens} is absent`, () => {});
});
