// Tokenizer merging through the GPU kernel (lavapipe in CI) against mergekit's own output
// (test/fixtures/mergekit-tokenizer): the permuted embeddings feed the GPU merge like any other tensor, so each
// tensor must be within rel_err 1e-6 of mergekit's, and the tokenizer files as on the CPU (tok-goldens.ts).
// One kernel merges every recipe, so its resident sources outlive each merge: block_base_pad_task_arithmetic
// and block_tokens_linear permute the same stored lm_head to 16 rows differently, which the resident cache once
// confused (the permuted inputs now carry a digest in their refs); the last test runs that pair in that order.
import { afterAll, beforeAll, describe, it } from 'vitest';
import { GpuKernel } from '../../src/kernel/gpu/gpu-kernel.ts';
import { checkTokGolden, tokGoldenNames } from '../unit/merge/tok-goldens.ts';

describe('tokenizer merging against mergekit’s goldens (GPU kernel)', () => {
  let kernel: GpuKernel;
  beforeAll(async () => {
    kernel = await GpuKernel.create({ allowSoftware: true, log: () => {} });
  });
  afterAll(async () => {
    await kernel?.close();
  });

  it.each(tokGoldenNames)('%s', async (name) => {
    await checkTokGolden(name, kernel);
  });

  it('two recipes permuting the same tensors to the same size, through one fresh kernel', async () => {
    const fresh = await GpuKernel.create({ allowSoftware: true, log: () => {} });
    try {
      await checkTokGolden('block_base_pad_task_arithmetic', fresh);
      await checkTokGolden('block_tokens_linear', fresh);
    } finally {
      await fresh.close();
    }
  });
});
