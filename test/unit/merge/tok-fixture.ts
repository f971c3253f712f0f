// Tiny Llama checkpoints whose tokenizers differ by added tokens, for the tokenizer-merging tests: the pico
// model (hidden 4) with embed_tokens / lm_head of one row per token, row r of model m holding
// (m+1)·100 + r·10 + j (lm_head: + 1000), and a BPE tokenizer.json with a small vocabulary.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { writePico } from './pico.ts';

export const HIDDEN = 4;

/** The three models: their plain (BPE) vocabulary and added tokens, by id. */
export const TOK_MODELS = {
  // a b c ab | <s> <|im_end|>
  base: { index: 0, vocab: ['a', 'b', 'c', 'ab'], added: ['<s>', '<|im_end|>'] },
  // a b c ab | <s> <|im_start|> <|im_end|>
  chat: { index: 1, vocab: ['a', 'b', 'c', 'ab'], added: ['<s>', '<|im_start|>', '<|im_end|>'] },
  // a b c ab bc | <s> <tool_call> <|im_start|>
  tool: { index: 2, vocab: ['a', 'b', 'c', 'ab', 'bc'], added: ['<s>', '<tool_call>', '<|im_start|>'] },
} as const;
export type TokModel = keyof typeof TOK_MODELS;

/** Row r of model m's embed_tokens (lm_head: head = true). */
export function modelRow(m: TokModel, r: number, head = false): number[] {
  const k = TOK_MODELS[m].index;
  return Array.from({ length: HIDDEN }, (_, j) => (head ? 1000 : 0) + (k + 1) * 100 + r * 10 + j);
}

function matrix(m: TokModel, rows: number, head: boolean): Float32Array {
  return Float32Array.from(Array.from({ length: rows }, (_, r) => modelRow(m, r, head)).flat());
}

export function tokenizerJson(m: TokModel, extraAdded: string[] = []): Record<string, unknown> {
  const spec = TOK_MODELS[m];
  const vocab = Object.fromEntries(spec.vocab.map((t, i) => [t, i]));
  const added = [...spec.added, ...extraAdded].map((content, i) => ({
    id: spec.vocab.length + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      vocab,
      merges: (spec.vocab as readonly string[]).includes('bc') ? ['a b', 'b c'] : ['a b'],
    },
  };
}

/**
 * Writes model `m` under `root/<m>`: weights, config (vocab_size = its token count), tokenizer.json,
 * tokenizer_config.json and special_tokens_map.json. `withTokenizer: false` leaves the tokenizer out;
 * `extraAdded` adds tokens past the config's vocab_size (padding entries mergekit strips).
 */
export function writeTokModel(
  root: string,
  m: TokModel,
  opts: { withTokenizer?: boolean; extraAdded?: string[] } = {},
): string {
  const spec = TOK_MODELS[m];
  const rows = spec.vocab.length + spec.added.length;
  const dir = path.join(root, m);
  writePico(dir, {
    seed: spec.index + 1,
    override: {
      'model.embed_tokens.weight': { shape: [rows, HIDDEN], data: matrix(m, rows, false) },
      'lm_head.weight': { shape: [rows, HIDDEN], data: matrix(m, rows, true) },
    },
  });
  const cfgFile = path.join(dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, vocab_size: rows }, null, 2));
  if (opts.withTokenizer === false) return dir;
  const json = tokenizerJson(m, opts.extraAdded);
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json, null, 2));
  const decoder = Object.fromEntries(
    (json.added_tokens as { id: number; content: string }[]).map(({ id, ...rest }) => [String(id), rest]),
  );
  writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ tokenizer_class: 'PreTrainedTokenizerFast', bos_token: '<s>', added_tokens_decoder: decoder }),
  );
  writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify({ bos_token: '<s>' }));
  return dir;
}
