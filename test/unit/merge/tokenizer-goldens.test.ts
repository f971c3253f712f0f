// Tokenizer merging checked against mergekit's own output (test/fixtures/mergekit-tokenizer: union,
// model:<path>, base, the tokenizer: block with per-token source/force and pad_to_multiple_of, under linear,
// task_arithmetic and ties), merged with the CPU kernel: every tensor within rel_err 1e-6, and the written
// vocabulary, added tokens and config vocab_size equal to mergekit's (tok-goldens.ts). Also: a permuted embedding is
// named apart from its stored tensor in the job, by a digest of the permutation.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { openRecipeModels } from '../../../src/merge/engine.ts';
import { planMerge } from '../../../src/merge/plan.ts';
import { parseRecipeFile } from '../../../src/recipe/parse.ts';
import { checkTokGolden, TOK_GOLDENS, tokGoldenNames } from './tok-goldens.ts';

describe('tokenizer merging against mergekit’s goldens (CPU kernel)', () => {
  it('has the goldens', () => {
    expect(tokGoldenNames.length).toBeGreaterThanOrEqual(7);
  });

  it.each(tokGoldenNames)('%s', async (name) => {
    await checkTokGolden(name, new CpuKernel());
  });
});

describe('a permuted embedding is named apart from its stored tensor', () => {
  /** lm_head's permutation digest and its job's operation, as JSON. */
  function headPlan(name: string): { digest: string; op: string } {
    const recipe = parseRecipeFile(path.join(TOK_GOLDENS, 'recipes', `${name}.yaml`));
    const models = openRecipeModels(recipe);
    try {
      const t = planMerge(recipe, models).tensors.find((x) => x.name === 'lm_head.weight')!;
      return { digest: t.permutation!.digest, op: JSON.stringify(t.job.op) };
    } finally {
      for (const m of models.values()) m.close();
    }
  }

  // Both give 16 × 16 lm_head rows from the same files, permuted differently: a kernel that keeps sources across
  // merges by ref (the GPU's resident cache) took the first one's rows for the second before the refs differed.
  it('by a digest of the permutation: stable for one recipe, different where the permutation differs', () => {
    const a = headPlan('block_base_pad_task_arithmetic');
    const b = headPlan('block_tokens_linear');
    expect(a.digest).toMatch(/^[0-9a-f]{16}$/);
    expect(headPlan('block_base_pad_task_arithmetic').digest).toBe(a.digest);
    expect(b.digest).not.toBe(a.digest);
    for (const p of [a, b]) {
      expect(p.op).toContain(`"tensor":"lm_head.weight (permuted onto the output vocabulary, ${p.digest})"`);
      expect(p.op).not.toContain('"tensor":"lm_head.weight"');
    }
  });
});
