// Parity with mergekit's own outputs (shared/mergekit-goldens/golden/NAME.safetensors): every tensor of an
// in-process merge with the CPU kernel within rel_err = max|a−b|/max|b| ≤ 2e-7 (the README's claim; slerp, the
// worst, is at 1.98e-7), names and shapes exact. A few goldens of the second set (methods added since 2024)
// depend on what is not reproducible bit for bit; each has its own documented bound or property below.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.ts';
import { MemoryTensors } from '../../../src/checkpoint/tensor-source.ts';
import { fusionImportance, fusionThreshold } from '../../../src/kernel/cpu/arcee-fusion.ts';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { mergeRecipe } from '../../../src/merge/engine.ts';
import { parseRecipeFile } from '../../../src/recipe/parse.ts';
import { relErr } from './rel-err.ts';

const TOLERANCE = 2e-7;

/**
 * Second-set goldens whose mergekit result depends on torch internals evomerge reproduces only approximately;
 * each bound is the measured worst rel_err (CPU kernel) rounded up. Everything else stays at TOLERANCE.
 */
const SECOND_SET_TOLERANCE: Record<string, number> = {
  // The angle of each vector comes from SLEEF's vectorised float32 acos/sin (1 ulp), not reproduced;
  // measured 2.21e-7 (rows of mlp.up_proj).
  nuslerp_rows: 3e-7,
  // As nuslerp_rows, plus torch's strided (dim 0) reduction order; measured 4.90e-7 (lm_head).
  nuslerp_task_rowwise: 6e-7,
  // Models arrive in Python set order (README: ≤ 3e-7 of float32 rounding); measured 2.70e-7.
  multislerp: 3e-7,
  // torch.dot is BLAS sdot (its lane order unknown); measured 2.56e-7.
  karcher: 3e-7,
};

/**
 * arcee_fusion keeps an entry where |δ|·KL(row softmaxes) ≥ median + 1.5·IQR. The KL of nearly equal rows is a
 * float32 cancellation whose value depends on SLEEF's exp and torch's lane order (not reproduced), so entries
 * near the threshold can be decided differently. Property: every output entry is base or base + δ; mergekit's
 * kept set is a top-|δ| cut in every row, as the rule says; entries decided differently are at most 0.1% of
 * the tensor and lie within 5% of the threshold in importance (measured: 895 of 1,173,120 entries, 0.076%,
 * all within 4.03%); the 13 one-row tensors (norms), where the KL is a common factor, match to TOLERANCE.
 */
const PROPERTY_GOLDENS = new Set(['arcee_fusion']);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const goldens = path.resolve(repoRoot, '../shared/mergekit-goldens');
const have = existsSync(goldens);
const names = have
  ? readdirSync(path.join(goldens, 'golden'))
      .filter((f) => f.endsWith('.safetensors'))
      .map((f) => f.replace(/\.safetensors$/, ''))
  : [];

describe.runIf(have)('golden parity (in-process, CPU kernel)', () => {
  it('covers every golden (23 files)', () => expect(names.length).toBe(23));

  it.each(names.filter((n) => !PROPERTY_GOLDENS.has(n)))('%s', async (name) => {
    const tolerance = SECOND_SET_TOLERANCE[name] ?? TOLERANCE;
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
        expect(e, `${name}: ${t}`).toBeLessThanOrEqual(tolerance);
      }
      expect(worst).toBeLessThanOrEqual(tolerance);
    } finally {
      golden.close();
    }
  });

  it.runIf(names.includes('arcee_fusion'))(
    'arcee_fusion (documented property: threshold-straddling entries)',
    async () => {
      const name = 'arcee_fusion';
      const recipe = parseRecipeFile(path.join(goldens, 'recipes', `${name}.yaml`));
      const out = new MemoryTensors(`merge of ${name}`);
      await mergeRecipe(recipe, out, { kernel: new CpuKernel() });
      const golden = SafetensorsFile.open(path.join(goldens, 'golden', `${name}.safetensors`));
      const baseFile = SafetensorsFile.open(path.join(recipe.baseModel!, 'model.safetensors'));
      const expertFile = SafetensorsFile.open(path.join(recipe.models![0]!.model, 'model.safetensors'));
      try {
        expect([...out.tensorNames()].sort()).toEqual([...golden.tensorNames()].sort());
        let differing = 0;
        let total = 0;
        let worstMargin = 0;
        const violations: string[] = []; // collected, then asserted once (an expect per entry is slow)
        for (const t of golden.tensorNames()) {
          const want = golden.readTensor(t);
          const got = out.readTensor(t).data;
          const base = baseFile.readTensor(t).data;
          const x = expertFile.readTensor(t).data;
          const shape = want.shape;
          if (shape.length === 1) expect(relErr(got, want.data), t).toBeLessThanOrEqual(TOLERANCE);
          const importance = fusionImportance(base, x, shape);
          const threshold = fusionThreshold(importance);
          const row = shape[shape.length - 1]!;
          for (let r = 0; r < base.length; r += row) {
            let minKept = Infinity;
            let maxDropped = 0;
            for (let e = r; e < r + row; e++) {
              const kept = Math.fround(base[e]! + Math.fround(x[e]! - base[e]!));
              if ((got[e] !== base[e] && got[e] !== kept) || (want.data[e] !== base[e] && want.data[e] !== kept)) {
                violations.push(`${t}[${e}] is neither base nor base + δ`);
              }
              const d = Math.abs(Math.fround(x[e]! - base[e]!));
              if (d === 0) continue;
              if (want.data[e] !== base[e]) minKept = Math.min(minKept, d);
              else maxDropped = Math.max(maxDropped, d);
              if (got[e] !== want.data[e]) {
                differing++;
                worstMargin = Math.max(worstMargin, Math.abs(importance[e]! - threshold) / threshold);
              }
            }
            if (!(maxDropped < minKept))
              violations.push(`${t} row ${r / row}: mergekit's kept set is not a top-|δ| cut`);
          }
          total += base.length;
        }
        expect(violations.slice(0, 5)).toEqual([]);
        expect(worstMargin).toBeLessThanOrEqual(0.05);
        expect(differing / total).toBeLessThanOrEqual(1e-3);
      } finally {
        golden.close();
        baseFile.close();
        expertFile.close();
      }
    },
  );
});

describe.skipIf(have)('golden parity (in-process, CPU kernel)', () => {
  it.skip(`skipped: ${goldens} is absent`, () => {});
});
