// A model's vocabulary as transformers' fast tokenizer gives it (`get_vocab()`: the model's own vocabulary
// plus the added tokens), read as plain JSON from its tokenizer.json, and mergekit's "stripped" tokenizer
// (tokenizer/build.py get_stripped_tokenizer: tokens at or past config.json's vocab_size removed).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EvomergeError } from '../../errors.ts';

export const TOKENIZER_JSON = 'tokenizer.json';

/** One entry of tokenizer.json `added_tokens` (id, content, single_word, lstrip, rstrip, normalized, special). */
export interface AddedToken {
  readonly id: number;
  readonly content: string;
  /** The entry as written, every field kept. */
  readonly entry: Readonly<Record<string, unknown>>;
}

export interface ModelVocab {
  readonly dir: string;
  /** The tokenizer.json read, as named in messages. */
  readonly file: string;
  /** The tokenizer.json document (stripped when asked and needed); never modified after reading. */
  readonly json: Record<string, unknown>;
  /** token → id: the model's own vocabulary, then the added tokens over it (transformers get_vocab()). */
  readonly vocab: ReadonlyMap<string, number>;
  /** Added tokens in id order (transformers added_tokens_decoder). */
  readonly added: readonly AddedToken[];
  /** Size of the model's own vocabulary, added tokens excluded (transformers `tokenizer.vocab_size`). */
  readonly modelVocabSize: number;
  /** config.json vocab_size, when known: rows past it are padding (mergekit get_vocab_size). */
  readonly configVocabSize?: number;
  /** Whether stripping removed anything. */
  readonly stripped: boolean;
}

/** Where a failure is reported: the recipe key that asked for the tokenizer (e.g. `tokenizer_source`). */
export interface VocabPlace {
  readonly field: string;
  readonly why: string;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Reads `<dir>/tokenizer.json`. `strip` removes the tokens whose id is ≥ config vocab_size (mergekit does this
 * to the base model's tokenizer only, and only for BPE models). Missing or malformed: one-line error.
 */
export function readModelVocab(
  dir: string,
  config: Record<string, unknown> | undefined,
  place: VocabPlace,
  strip: boolean,
): ModelVocab {
  const file = path.join(dir, TOKENIZER_JSON);
  const fail = (what: string): never => {
    throw new EvomergeError('merge.tokenizer', what, { file, field: place.field });
  };
  if (!existsSync(file))
    fail(`missing; ${place.why} reads every model's tokenizer.json (evomerge reads fast tokenizers only)`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (!isPlainObject(json) || !isPlainObject(json.model)) fail('not a tokenizer.json: no "model" object');
  const doc = json as Record<string, unknown>;
  const cfgSize = config?.vocab_size;
  const configVocabSize =
    typeof cfgSize === 'number' && Number.isSafeInteger(cfgSize) && cfgSize > 0 ? cfgSize : undefined;
  let vocab = parseVocab(doc, fail);
  if (strip && configVocabSize !== undefined) {
    const unused = [...vocab.vocab].filter(([, id]) => id >= configVocabSize).map(([t]) => t);
    if (unused.length > 0) {
      const stripped = stripTokens(doc, new Set(unused), configVocabSize, fail);
      vocab = parseVocab(stripped, fail);
      return { dir, file, json: stripped, ...vocab, configVocabSize, stripped: true };
    }
  }
  return {
    dir,
    file,
    json: doc,
    ...vocab,
    ...(configVocabSize !== undefined ? { configVocabSize } : {}),
    stripped: false,
  };
}

function parseVocab(
  doc: Record<string, unknown>,
  fail: (what: string) => never,
): Pick<ModelVocab, 'vocab' | 'added' | 'modelVocabSize'> {
  const model = doc.model as Record<string, unknown>;
  const vocab = new Map<string, number>();
  const raw = model.vocab;
  if (Array.isArray(raw)) {
    // Unigram: [[piece, score], …], the id being the position.
    raw.forEach((e, i) => {
      if (!Array.isArray(e) || typeof e[0] !== 'string') fail(`model.vocab[${i}] is not a [piece, score] pair`);
      vocab.set(e[0], i);
    });
  } else if (isPlainObject(raw)) {
    for (const [tok, id] of Object.entries(raw)) {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)
        fail(`model.vocab[${JSON.stringify(tok)}] is not a token id`);
      vocab.set(tok, id);
    }
  } else {
    fail(`model.vocab is missing (model type ${JSON.stringify(model.type)})`);
  }
  const modelVocabSize = vocab.size;
  const added: AddedToken[] = [];
  const list = doc.added_tokens ?? [];
  if (!Array.isArray(list)) fail('added_tokens is not a list');
  (list as unknown[]).forEach((e, i) => {
    if (!isPlainObject(e) || typeof e.content !== 'string' || typeof e.id !== 'number' || !Number.isSafeInteger(e.id))
      fail(`added_tokens[${i}] has no id and content`);
    added.push({ id: e.id as number, content: e.content as string, entry: e });
  });
  added.sort((a, b) => a.id - b.id);
  for (const a of added) vocab.set(a.content, a.id);
  return { vocab, added, modelVocabSize };
}

/** mergekit get_stripped_tokenizer: drop the tokens past vocab_size from added_tokens, the BPE vocab and merges. */
function stripTokens(
  doc: Record<string, unknown>,
  unused: ReadonlySet<string>,
  vocabSize: number,
  fail: (what: string) => never,
): Record<string, unknown> {
  const model = doc.model as Record<string, unknown>;
  if (model.type !== 'BPE')
    fail(
      `holds tokens at ids ≥ config vocab_size ${vocabSize}, which mergekit strips only from BPE tokenizers; ` +
        `this one is ${JSON.stringify(model.type)}`,
    );
  const vocab: Record<string, unknown> = {};
  for (const [t, id] of Object.entries(model.vocab as Record<string, unknown>)) if (!unused.has(t)) vocab[t] = id;
  const merges = Array.isArray(model.merges) ? model.merges : [];
  const keep = merges.filter((m: unknown, i: number) => {
    const parts = typeof m === 'string' && m.split(' ').length === 2 ? m.split(' ') : Array.isArray(m) ? m : undefined;
    if (parts === undefined) fail(`model.merges[${i}] is neither "a b" nor [a, b]`);
    return !parts!.some((p) => unused.has(String(p)));
  });
  const added = ((doc.added_tokens ?? []) as Record<string, unknown>[]).filter((e) => (e.id as number) < vocabSize);
  return { ...doc, added_tokens: added, model: { ...model, vocab, merges: keep } };
}
