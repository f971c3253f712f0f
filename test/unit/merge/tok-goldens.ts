// The tokenizer-merge goldens (test/fixtures/mergekit-tokenizer, written by mergekit itself: see its README):
// merge each recipe with evomerge and compare with what mergekit wrote, shared by the CPU and GPU tests.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.ts';
import type { MergeKernel } from '../../../src/kernel/kernel.ts';
import { mergeRecipeToDir } from '../../../src/merge/engine.ts';
import { parseRecipeFile } from '../../../src/recipe/parse.ts';
import type { Recipe } from '../../../src/recipe/recipe.ts';
import { relErr } from './rel-err.ts';

export const TOK_GOLDENS = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../fixtures/mergekit-tokenizer',
);
/** mergekit's float32 arithmetic against evomerge's, per tensor (the brief's bound for these goldens). */
export const TOK_TOLERANCE = 1e-6;

export const tokGoldenNames = readdirSync(path.join(TOK_GOLDENS, 'golden'))
  .filter((n) => statSync(path.join(TOK_GOLDENS, 'golden', n)).isDirectory())
  .sort();

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

/**
 * The tokenizer.json fields evomerge writes as mergekit does: the vocabulary model and the added tokens, and
 * the normalizer, pre-tokenizer and decoder kept from the donor. (transformers 5 rewrites `post_processor` when
 * it loads a tokenizer, from tokenizer_config.json's bos/eos settings; evomerge keeps the donor's: see
 * docs/recipes.md.)
 */
const TOKENIZER_JSON_FIELDS = ['model', 'added_tokens', 'normalizer', 'pre_tokenizer', 'decoder'] as const;
/** tokenizer_config.json keys evomerge keeps from the donor and mergekit's transformers writes back unchanged. */
const TOKENIZER_CONFIG_FIELDS = ['bos_token', 'eos_token', 'model_max_length', 'clean_up_tokenization_spaces'];

type AddedEntry = Record<string, unknown> & { id: number; content: string };

/**
 * mergekit's added tokens with one documented difference undone (docs/recipes.md): mergekit appends every token
 * named under `tokenizer.tokens` with `add_tokens(str)`, and tokenizers (0.23) then overwrites the settings of
 * one that is already an added token with a plain token's (`normalized: true, special: false`), so a
 * configured `<|im_start|>` stops being special. evomerge keeps such a token's settings: those of the first
 * model, base first, that has it as an added token. Checks that each entry changed here is one mergekit demoted.
 */
function undemoted(gold: AddedEntry[], recipe: Recipe): AddedEntry[] {
  const named = new Set((recipe.tokenizer?.tokens ?? []).map((t) => t.token));
  const dirs = [...new Set([recipe.baseModel, ...(recipe.models ?? []).map((m) => m.model)])].filter(
    (d): d is string => d !== undefined,
  );
  const first = new Map<string, AddedEntry>();
  for (const dir of dirs)
    for (const e of readJson(path.join(dir, 'tokenizer.json')).added_tokens as AddedEntry[])
      if (!first.has(e.content)) first.set(e.content, e);
  return gold.map((e) => {
    const had = first.get(e.content);
    if (!named.has(e.content) || had === undefined) return e;
    expect({ normalized: e.normalized, special: e.special }, `mergekit's ${e.content}`).toEqual({
      normalized: true,
      special: false,
    });
    return { ...e, normalized: had.normalized, special: had.special };
  });
}

/** Merges golden `name` with `kernel` and compares every tensor, the tokenizer files and config vocab_size. */
export async function checkTokGolden(name: string, kernel: MergeKernel): Promise<void> {
  const recipe = parseRecipeFile(path.join(TOK_GOLDENS, 'recipes', `${name}.yaml`));
  const gold = path.join(TOK_GOLDENS, 'golden', name);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-tokgold-'));
  const outDir = path.join(tmp, 'out');
  try {
    await mergeRecipeToDir(recipe, { outDir, shardSizeBytes: 1e9, kernel });
    const out = openModelDir(outDir);
    const golden = SafetensorsFile.open(path.join(gold, 'model.safetensors'));
    try {
      expect([...out.tensors.tensorNames()].sort()).toEqual([...golden.tensorNames()].sort());
      for (const t of golden.tensorNames()) {
        const want = golden.readTensor(t);
        const got = out.tensors.readTensor(t);
        expect(got.shape, t).toEqual(want.shape);
        expect(relErr(got.data, want.data), `${name}: ${t}`).toBeLessThanOrEqual(TOK_TOLERANCE);
      }
    } finally {
      golden.close();
      out.close();
    }

    expect(readJson(path.join(outDir, 'config.json')).vocab_size).toBe(
      readJson(path.join(gold, 'config.json')).vocab_size,
    );
    const tj = readJson(path.join(outDir, 'tokenizer.json'));
    const gj = readJson(path.join(gold, 'tokenizer.json'));
    gj.added_tokens = undemoted(gj.added_tokens as AddedEntry[], recipe);
    for (const f of TOKENIZER_JSON_FIELDS) expect(tj[f], `${name}: tokenizer.json ${f}`).toEqual(gj[f]);
    const tc = readJson(path.join(outDir, 'tokenizer_config.json'));
    const gc = readJson(path.join(gold, 'tokenizer_config.json'));
    for (const f of TOKENIZER_CONFIG_FIELDS) expect(tc[f], `${name}: tokenizer_config.json ${f}`).toEqual(gc[f]);
    // transformers 5 keeps the added tokens in tokenizer.json only; evomerge also writes them as transformers 4's
    // added_tokens_decoder, which must then say what mergekit's tokenizer.json says.
    const decoder = Object.fromEntries(
      (gj.added_tokens as { id: number }[]).map(({ id, ...rest }) => [String(id), rest]),
    );
    expect(tc.added_tokens_decoder, `${name}: tokenizer_config.json added_tokens_decoder`).toEqual(decoder);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
