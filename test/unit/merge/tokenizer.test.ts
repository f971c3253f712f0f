// Tokenizer merging (mergekit tokenizer/build.py + embed.py PermutedEmbeddings) on three tiny Llama models whose
// tokenizers differ by added tokens (tok-fixture.ts). Expected rows are written out by hand from mergekit's
// rules — a model's own row where it has the token; else the base's row when the base has it; else the one
// model's row when only one has it; else the mean of those that have it; a configured source or force
// overrides — then merged by linear with weights base 1, chat 1, tool 2 (normalized: (b + c + 2t) / 4).
// The same rules are checked against mergekit's own output (commit a6e40288, test/fixtures/mergekit-tokenizer)
// by tokenizer-goldens.test.ts; this file keeps the hand-computed cases and the refusals.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { EvomergeError } from '../../../src/errors.ts';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { mergeRecipeToDir } from '../../../src/merge/engine.ts';
import { parseRecipe } from '../../../src/recipe/parse.ts';
import { HIDDEN, modelRow, writeTokModel, type TokModel } from './tok-fixture.ts';

let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'evomerge-tok-'));
  for (const m of ['base', 'chat', 'tool'] as const) writeTokModel(root, m);
  writeTokModel(path.join(root, 'bare'), 'chat', { withTokenizer: false });
  writeTokModel(path.join(root, 'padded'), 'base', { extraAdded: ['<pad0>'] });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const linear = (extra: Record<string, unknown>, base = 'base') => ({
  merge_method: 'linear',
  base_model: base,
  models: [
    { model: base, parameters: { weight: 1 } },
    { model: 'chat', parameters: { weight: 1 } },
    { model: 'tool', parameters: { weight: 2 } },
  ],
  ...extra,
});

let n = 0;
async function merge(doc: Record<string, unknown>) {
  const outDir = path.join(root, `out-${n++}`);
  await mergeRecipeToDir(parseRecipe(doc, { file: 'r.yaml', baseDir: root }), {
    outDir,
    shardSizeBytes: 1e9,
    kernel: new CpuKernel(),
  });
  const m = openModelDir(outDir);
  const tensors = new Map(
    ['model.embed_tokens.weight', 'lm_head.weight'].map((t) => [t, Array.from(m.tensors.readTensor(t).data)]),
  );
  const shapes = ['model.embed_tokens.weight', 'lm_head.weight'].map((t) => m.tensors.tensorInfo(t).shape);
  m.close();
  const json = (f: string) => JSON.parse(readFileSync(path.join(outDir, f), 'utf8'));
  return { outDir, tensors, shapes, json };
}

/** What one model contributes for a token: its row r of model m, the mean of two, or zero. */
type Src = [TokModel, number] | ['mean', [TokModel, number], [TokModel, number]] | 'zero';
function contrib(s: Src, head: boolean): number[] {
  if (s === 'zero') return new Array(HIDDEN).fill(0);
  if (s[0] === 'mean') {
    const [a, b] = [modelRow(s[1][0], s[1][1], head), modelRow(s[2][0], s[2][1], head)];
    return a.map((x, j) => (x + b[j]!) / 2);
  }
  return modelRow(s[0], s[1] as number, head);
}
/** Expected merged rows: per token [base's, chat's, tool's] contribution, (b + c + 2t) / 4. */
function expected(rows: [Src, Src, Src][], head: boolean): number[] {
  return rows.flatMap(([b, c, t]) => {
    const [x, y, z] = [contrib(b, head), contrib(c, head), contrib(t, head)];
    return x.map((v, j) => (v + y[j]! + 2 * z[j]!) / 4);
  });
}
const own = (r: number): [Src, Src, Src] => [
  ['base', r],
  ['chat', r],
  ['tool', r],
];

// a b c ab <s> <|im_end|> bc <|im_start|> <tool_call>
const UNION: [Src, Src, Src][] = [
  own(0),
  own(1),
  own(2),
  own(3),
  [
    ['base', 4],
    ['chat', 4],
    ['tool', 5],
  ], // <s>: everyone has it, at its own id
  [
    ['base', 5],
    ['chat', 6],
    ['base', 5],
  ], // <|im_end|>: tool lacks it, the base has it → the base's row
  [
    ['tool', 4],
    ['tool', 4],
    ['tool', 4],
  ], // bc: only tool has it → tool's row for all
  [
    ['mean', ['chat', 5], ['tool', 7]],
    ['chat', 5],
    ['tool', 7],
  ], // <|im_start|>: base lacks it, two have it → mean
  [
    ['tool', 6],
    ['tool', 6],
    ['tool', 6],
  ], // <tool_call>: only tool
];

function expectRows(got: number[], want: number[], tol = 0): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) =>
    tol === 0 ? expect(g, `element ${i}`).toBe(want[i]) : expect(Math.abs(g - want[i]!)).toBeLessThan(tol),
  );
}

describe('tokenizer_source / tokenizer: the output vocabulary and the permuted embeddings', () => {
  it('union: the base vocabulary, then the others’ plain tokens, then their added tokens', async () => {
    const r = await merge(linear({ tokenizer_source: 'union' }));
    const tj = r.json('tokenizer.json');
    expect(tj.added_tokens.map((a: { id: number; content: string }) => [a.id, a.content])).toEqual([
      [4, '<s>'],
      [5, '<|im_end|>'],
      [6, 'bc'],
      [7, '<|im_start|>'],
      [8, '<tool_call>'],
    ]);
    // bc was a plain token of tool: added as transformers' add_tokens does (normalized, not special).
    expect(tj.added_tokens[2]).toMatchObject({ normalized: true, special: false });
    expect(tj.added_tokens[3]).toMatchObject({ special: true }); // <|im_start|> keeps chat's settings
    expect(Object.keys(tj.model.vocab)).toEqual(['a', 'b', 'c', 'ab']);
    expect(r.json('config.json').vocab_size).toBe(9);
    expect(Object.keys(r.json('tokenizer_config.json').added_tokens_decoder)).toEqual(['4', '5', '6', '7', '8']);
    expect(r.json('special_tokens_map.json')).toEqual({ bos_token: '<s>' });
    expect(r.shapes).toEqual([
      [9, 4],
      [9, 4],
    ]);
    expectRows(r.tensors.get('model.embed_tokens.weight')!, expected(UNION, false));
    expectRows(r.tensors.get('lm_head.weight')!, expected(UNION, true));
  });

  it('the tokenizer: block defaults to union; tokenizer_source: base keeps the base vocabulary', async () => {
    const u = await merge(linear({ tokenizer: {} }));
    expectRows(u.tensors.get('model.embed_tokens.weight')!, expected(UNION, false));

    const r = await merge(linear({ tokenizer_source: 'base' }));
    expect(r.json('config.json').vocab_size).toBe(6);
    // The vocabulary is the base's own: its tokenizer files are copied byte for byte.
    expect(readFileSync(path.join(r.outDir, 'tokenizer.json'), 'utf8')).toBe(
      readFileSync(path.join(root, 'base', 'tokenizer.json'), 'utf8'),
    );
    const rows: [Src, Src, Src][] = [
      own(0),
      own(1),
      own(2),
      own(3),
      [
        ['base', 4],
        ['chat', 4],
        ['tool', 5],
      ],
      [
        ['base', 5],
        ['chat', 6],
        ['base', 5],
      ],
    ];
    expectRows(r.tensors.get('model.embed_tokens.weight')!, expected(rows, false));
    expectRows(r.tensors.get('lm_head.weight')!, expected(rows, true));
  });

  it('model:<path> (or a bare path, as mergekit writes it today): that model’s vocabulary', async () => {
    // a b c ab <s> <|im_start|> <|im_end|>
    const rows: [Src, Src, Src][] = [
      own(0),
      own(1),
      own(2),
      own(3),
      [
        ['base', 4],
        ['chat', 4],
        ['tool', 5],
      ],
      [
        ['mean', ['chat', 5], ['tool', 7]],
        ['chat', 5],
        ['tool', 7],
      ],
      [
        ['base', 5],
        ['chat', 6],
        ['base', 5],
      ],
    ];
    for (const source of ['model:chat', 'chat']) {
      const r = await merge(linear({ tokenizer_source: source }));
      expect(r.json('config.json').vocab_size).toBe(7);
      expect(r.json('tokenizer.json')).toEqual(
        JSON.parse(readFileSync(path.join(root, 'chat', 'tokenizer.json'), 'utf8')),
      );
      expectRows(r.tensors.get('model.embed_tokens.weight')!, expected(rows, false));
      expectRows(r.tensors.get('lm_head.weight')!, expected(rows, true));
    }
  });

  it('a model folder that is not merged: its tokens that no merged model has get zero rows (mergekit fails)', async () => {
    // tool's vocabulary a b c ab bc <s> <tool_call> <|im_start|>, merging base and chat: bc and <tool_call> are
    // in neither (mergekit a6e40288 builds ZeroEmbedding() without `kind` there: a ValidationError)
    const r = await merge({
      merge_method: 'linear',
      base_model: 'base',
      models: [
        { model: 'base', parameters: { weight: 1 } },
        { model: 'chat', parameters: { weight: 1 } },
      ],
      tokenizer_source: 'tool',
    });
    const mean = (a: number[], b: number[]) => a.map((x, j) => (x + b[j]!) / 2);
    for (const head of [false, true]) {
      const got = r.tensors.get(head ? 'lm_head.weight' : 'model.embed_tokens.weight')!;
      const row = (id: number) => got.slice(id * HIDDEN, (id + 1) * HIDDEN);
      expectRows(row(0), mean(modelRow('base', 0, head), modelRow('chat', 0, head)));
      expectRows(row(4), new Array(HIDDEN).fill(0)); // bc
      expectRows(row(6), new Array(HIDDEN).fill(0)); // <tool_call>
      // <|im_start|>: the base lacks it, so it takes the only merged model's row that has it (chat's 5)
      expectRows(row(7), modelRow('chat', 5, head));
    }
  });

  it('tokens: a source, force, zero, and a new token taking another token’s row', async () => {
    const r = await merge(
      linear({
        tokenizer: {
          source: 'union',
          tokens: {
            '<|im_start|>': { source: 'tool', force: true },
            '<tool_call>': { source: { kind: 'zero' } },
            '<new>': { source: { kind: 'model_token', model: 'chat', token: '<|im_end|>' } },
            bc: { source: { kind: 'model_token', model: 'base', token_id: 1 } },
          },
        },
      }),
    );
    const tj = r.json('tokenizer.json');
    expect(tj.added_tokens.at(-1)).toEqual({
      id: 9,
      content: '<new>',
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: true,
      special: false,
    });
    expect(r.json('config.json').vocab_size).toBe(10);
    const rows: [Src, Src, Src][] = [
      ...UNION.slice(0, 6),
      [
        ['base', 1],
        ['base', 1],
        ['tool', 4],
      ], // bc: base's row 1 for those lacking it; tool keeps its own
      [
        ['tool', 7],
        ['tool', 7],
        ['tool', 7],
      ], // <|im_start|> forced from tool: every model takes tool's row
      ['zero', 'zero', ['tool', 6]], // <tool_call>: zero where missing, tool's own row (not forced)
      [
        ['chat', 6],
        ['chat', 6],
        ['chat', 6],
      ], // <new>: nobody has it; chat's row of <|im_end|>
    ];
    expectRows(r.tensors.get('model.embed_tokens.weight')!, expected(rows, false));
    expectRows(r.tensors.get('lm_head.weight')!, expected(rows, true));
  });

  it('pad_to_multiple_of: rows past the vocabulary are the mean of each model’s rows', async () => {
    const r = await merge(linear({ tokenizer: { source: 'union', pad_to_multiple_of: 8 } }));
    expect(r.json('config.json').vocab_size).toBe(16);
    expect(r.shapes[0]).toEqual([16, 4]);
    for (const [t, head] of [
      ['model.embed_tokens.weight', false],
      ['lm_head.weight', true],
    ] as const) {
      const want = expected(UNION, head);
      // The merge is linear, so the merged padding row is the mean of the merged rows.
      const mean = Array.from(
        { length: HIDDEN },
        (_, j) => want.filter((_, i) => i % HIDDEN === j).reduce((a, b) => a + b) / 9,
      );
      const got = r.tensors.get(t)!;
      expectRows(got.slice(0, 9 * HIDDEN), want);
      for (let row = 9; row < 16; row++) expectRows(got.slice(row * HIDDEN, (row + 1) * HIDDEN), mean, 1e-3);
    }
  });

  it('task_arithmetic: the base lacking a token takes the expert’s row, so the task vector there is 0', async () => {
    const r = await merge({
      merge_method: 'task_arithmetic',
      base_model: 'base',
      models: [{ model: 'chat', parameters: { weight: 1 } }],
      tokenizer_source: 'union',
    });
    // base + 1·(chat' − base') = chat' for every row: a b c ab <s> <|im_end|> <|im_start|> → chat rows 0 1 2 3 4 6 5.
    for (const head of [false, true]) {
      const want = [0, 1, 2, 3, 4, 6, 5].flatMap((row) => modelRow('chat', row, head));
      expectRows(r.tensors.get(head ? 'lm_head.weight' : 'model.embed_tokens.weight')!, want);
    }
  });

  it('strips the base tokenizer’s tokens at ids ≥ its config vocab_size (mergekit get_stripped_tokenizer)', async () => {
    const doc = linear({ tokenizer_source: 'base' }, 'padded/base');
    const r = await merge(doc);
    expect(r.json('config.json').vocab_size).toBe(6);
    expect(r.json('tokenizer.json').added_tokens.map((a: { content: string }) => a.content)).toEqual([
      '<s>',
      '<|im_end|>',
    ]);
    expect(Object.keys(r.json('tokenizer_config.json').added_tokens_decoder)).toEqual(['4', '5']);
  });
});

describe('tokenizer refusals: one line, nothing written', () => {
  async function refuse(doc: Record<string, unknown>, message: RegExp) {
    const outDir = path.join(root, `bad-${n++}`);
    let err: unknown;
    try {
      await mergeRecipeToDir(parseRecipe(doc, { file: 'r.yaml', baseDir: root }), {
        outDir,
        shardSizeBytes: 1e9,
        kernel: new CpuKernel(),
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EvomergeError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
    expect(existsSync(outDir)).toBe(false);
  }

  it('a model without a tokenizer.json', async () => {
    const doc = linear({ tokenizer_source: 'union' });
    (doc.models as { model: string }[])[1]!.model = 'bare/chat';
    await refuse(
      doc,
      /bare\/chat\/tokenizer\.json: tokenizer_source: missing; tokenizer_source: union reads every model/,
    );
  });

  it('a token forced from a model that lacks it', async () => {
    await refuse(
      linear({ tokenizer: { tokens: { '<tool_call>': { source: 'chat', force: true } } } }),
      /^r\.yaml: tokenizer\.tokens\.<tool_call>\.source: "<tool_call>" is not in the vocabulary of .*chat$/,
    );
  });

  it('a model_token that is not in its model', async () => {
    await refuse(
      linear({ tokenizer: { tokens: { x: { source: { kind: 'model_token', model: 'base', token: 'zz' } } } } }),
      /^r\.yaml: tokenizer\.tokens\.x\.source: "zz" is not in the vocabulary of /,
    );
  });

  it('a source model that is not merged', async () => {
    const doc = linear({ tokenizer: { tokens: { x: { source: 'padded/base' } } } });
    await refuse(doc, /^r\.yaml: tokenizer\.tokens\.x\.source: .*padded\/base is not one of the models merged$/);
  });
});
