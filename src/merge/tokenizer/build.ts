// The output vocabulary of a merge with a tokenizer setting, each model's permutation onto it, and the
// tokenizer files written beside the merged weights (mergekit tokenizer/build.py build_tokenizer,
// build_union_tokenizer; merge.py _update_config_vocab and tokenizer.save_pretrained).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { EvomergeError } from '../../errors.ts';
import { isTokenizerFile } from '../../checkpoint/model-dir.ts';
import type { Recipe, TokenEmbedding, TokenizerSource } from '../../recipe/recipe.ts';
import { readModelVocab, TOKENIZER_JSON, type ModelVocab } from './vocab.ts';

/** The tokenizer files of the output: copied verbatim from `from`, or written (`write`, name → text). */
export interface TokenizerFiles {
  readonly from: string;
  readonly copy: readonly string[];
  readonly write: Readonly<Record<string, string>>;
}

export interface TokenizerPlan {
  /** The recipe key of the setting (`tokenizer_source` or `tokenizer`), for messages. */
  readonly key: string;
  /** Output vocabulary: id → token (ids 0..n−1). */
  readonly vocab: readonly string[];
  /** Embedding rows: the vocabulary size rounded up to pad_to_multiple_of. */
  readonly rows: number;
  /** Per model folder: output id → the model's row of that token, or −1 where it lacks it. */
  readonly perms: ReadonlyMap<string, Int32Array>;
  /** Each model's vocabulary as mergekit's original_vocabs (the base's stripped). */
  readonly vocabs: ReadonlyMap<string, ModelVocab>;
  /** `tokenizer.tokens`, by token. */
  readonly tokens: ReadonlyMap<string, TokenEmbedding>;
  /** The recipe's base_model (PermutedEmbeddings prefers its row); absent without one. */
  readonly baseModel?: string;
  readonly files: TokenizerFiles;
}

/** Every model folder of a recipe, in first-mention order, the base last unless listed (engine.ts's order). */
function recipeDirs(recipe: Recipe): string[] {
  const dirs = [
    ...(recipe.models ?? []).map((m) => m.model),
    ...(recipe.slices ?? []).flatMap((s) => s.sources.map((x) => x.model)),
    ...(recipe.baseModel !== undefined ? [recipe.baseModel] : []),
  ];
  return [...new Set(dirs)];
}

/**
 * Plans the tokenizer of a merge, or undefined when the recipe has no tokenizer setting (embeddings of different
 * sizes are then cropped, mergekit's behaviour without one) or `tokenizer_source: base` where no model has a
 * tokenizer.json (the micro zoo's byte-level models): evomerge then copies the base's files, as before.
 */
export function planTokenizer(
  recipe: Recipe,
  configOf: (dir: string) => Record<string, unknown>,
): TokenizerPlan | undefined {
  const block = recipe.tokenizer;
  const source: TokenizerSource | undefined = block?.source ?? recipe.tokenizerSource;
  if (source === undefined) return undefined;
  const key = block !== undefined ? 'tokenizer' : 'tokenizer_source';
  const dirs = recipeDirs(recipe);
  const tokens = new Map((block?.tokens ?? []).map((t) => [t.token, t]));
  const has = (dir: string) => statSync(path.join(dir, TOKENIZER_JSON), { throwIfNoEntry: false })?.isFile() === true;
  if (source === 'base' && tokens.size === 0 && block?.padToMultipleOf === undefined && !dirs.some(has))
    return undefined;

  const fail = (what: string, field = key): never => {
    throw new EvomergeError('merge.tokenizer', what, { file: recipe.file, field });
  };
  const why = `${key}: ${typeof source === 'string' ? source : 'a model'}`;
  // mergekit: without a base_model, the first referenced model plays the base for the vocabulary.
  const base = recipe.baseModel ?? dirs[0]!;
  const vocabs = new Map<string, ModelVocab>();
  for (const dir of [base, ...dirs.filter((d) => d !== base)])
    vocabs.set(dir, readModelVocab(dir, configOf(dir), { field: key, why }, dir === base));
  for (const t of tokens.values()) {
    if (t.source.kind !== 'zero' && !vocabs.has(t.source.model))
      fail(`${t.source.model} is not one of the models merged`, `tokenizer.tokens.${t.token}.source`);
  }

  let out: OutputVocab;
  if (source === 'base') out = new OutputVocab(vocabs.get(base)!);
  else if (source === 'union') out = unionVocab(vocabs.get(base)!, [...vocabs.values()]);
  else
    out = new OutputVocab(
      readModelVocab(source.model, undefined, { field: `${key}${block ? '.source' : ''}`, why }, false),
    );
  // mergekit build_tokenizer: every token named under tokenizer.tokens is added when absent (add_tokens).
  for (const t of tokens.keys()) out.add(t);

  const vocab = out.tokensById(fail);
  const pad = block?.padToMultipleOf;
  const rows =
    pad !== undefined && vocab.length % pad !== 0 ? (Math.floor(vocab.length / pad) + 1) * pad : vocab.length;
  const perms = new Map<string, Int32Array>();
  for (const [dir, mv] of vocabs) {
    // mergekit: a token at an id ≥ the model's vocab_size is padding, not the model's (build.py warns and
    // leaves it unmapped, which then fails with a KeyError); evomerge treats the model as lacking it.
    const size = mv.configVocabSize ?? mv.vocab.size;
    const p = new Int32Array(vocab.length);
    vocab.forEach((tok, id) => {
      const row = mv.vocab.get(tok);
      p[id] = row !== undefined && row < size ? row : -1;
    });
    perms.set(dir, p);
  }
  return {
    key,
    vocab,
    rows,
    perms,
    vocabs,
    tokens,
    ...(recipe.baseModel !== undefined ? { baseModel: recipe.baseModel } : {}),
    files: outputFiles(out),
  };
}

/** A tokenizer.json being extended as transformers' add_tokens does (tokenizers AddedVocabulary::add_tokens). */
class OutputVocab {
  readonly ids: Map<string, number>;
  readonly added: Record<string, unknown>[];
  private readonly addedContent: Set<string>;
  private nextId: number;
  changed: boolean;

  constructor(readonly donor: ModelVocab) {
    this.ids = new Map(donor.vocab);
    this.added = donor.added.map((a) => ({ ...a.entry }));
    this.addedContent = new Set(donor.added.map((a) => a.content));
    const maxAdded = donor.added.reduce((m, a) => Math.max(m, a.id), -1);
    this.nextId = Math.max(donor.modelVocabSize, maxAdded + 1);
    this.changed = donor.stripped;
  }

  /** A token (a plain one: not special, normalized) or an added-token entry of another model. */
  add(content: string, entry?: Readonly<Record<string, unknown>>): void {
    const known = this.ids.get(content);
    if (known !== undefined) {
      // An existing token keeps its id; one of the model's own vocabulary becomes an added token too.
      if (entry !== undefined && !this.addedContent.has(content)) {
        this.added.push({ ...entry, id: known });
        this.addedContent.add(content);
        this.changed = true;
      }
      return;
    }
    const id = this.nextId++;
    this.ids.set(content, id);
    this.added.push(
      entry !== undefined
        ? { ...entry, id }
        : { id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
    );
    this.addedContent.add(content);
    this.changed = true;
  }

  /** id → token; the ids must be 0..n−1 (mergekit sizes the embeddings by the number of tokens). */
  tokensById(fail: (what: string) => never): string[] {
    const out: string[] = new Array(this.ids.size);
    for (const [tok, id] of this.ids) {
      if (id >= out.length || out[id] !== undefined)
        fail(
          `the output vocabulary's ids are not 0..${out.length - 1} (token ${JSON.stringify(tok)} has id ${id}); ` +
            `${this.donor.file} cannot size the embeddings`,
        );
      out[id] = tok;
    }
    return out;
  }
}

/**
 * mergekit build_union_tokenizer: the base's (stripped) tokenizer, then every other model's tokens it lacks as
 * plain added tokens, then every model's added tokens (the first model's settings win). evomerge takes the
 * models base first then in recipe order, and each vocabulary in id order; mergekit iterates a Python set of
 * models and a hash map of tokens, so the ids it gives the new tokens are not reproducible.
 */
function unionVocab(base: ModelVocab, models: readonly ModelVocab[]): OutputVocab {
  const seen = new Set<string>();
  const order: string[] = [];
  const addedInfo = new Map<string, Readonly<Record<string, unknown>>>();
  for (const mv of models) {
    // build.py: `get_vocab_size(model) or tokenizer.vocab_size` (the latter excludes the added tokens).
    const size = mv.configVocabSize ?? mv.modelVocabSize;
    const byId = [...mv.vocab].sort((a, b) => a[1] - b[1]);
    for (const [tok, id] of byId) {
      if (id >= size || seen.has(tok)) continue;
      seen.add(tok);
      order.push(tok);
    }
    for (const a of mv.added) if (a.id < size && !addedInfo.has(a.content)) addedInfo.set(a.content, a.entry);
  }
  const out = new OutputVocab(base);
  for (const tok of order) if (!addedInfo.has(tok) && !base.vocab.has(tok)) out.add(tok);
  for (const [content, entry] of addedInfo) out.add(content, entry);
  return out;
}

/** Chat templates and the special-token map are kept from the donor; the slow tokenizer's files are not. */
const KEPT_WHEN_CHANGED = /^(special_tokens_map\.json|chat_template\.(json|jinja))$/;

/**
 * The donor's tokenizer files verbatim when the vocabulary is the donor's own; otherwise tokenizer.json and
 * tokenizer_config.json rewritten (added tokens), the special-token map and chat template copied, and the slow
 * tokenizer's files (tokenizer.model, vocab.json, merges.txt, added_tokens.json) left out: they would disagree.
 */
function outputFiles(out: OutputVocab): TokenizerFiles {
  const from = out.donor.dir;
  const names = readdirSync(from)
    .filter((n) => isTokenizerFile(n) && statSync(path.join(from, n)).isFile())
    .sort();
  if (!out.changed) return { from, copy: names, write: {} };
  const json = { ...out.donor.json, added_tokens: [...out.added].sort((a, b) => (a.id as number) - (b.id as number)) };
  const write: Record<string, string> = { [TOKENIZER_JSON]: JSON.stringify(json, null, 2) + '\n' };
  if (names.includes('tokenizer_config.json')) {
    const file = path.join(from, 'tokenizer_config.json');
    let cfg: Record<string, unknown>;
    try {
      cfg = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new EvomergeError('merge.tokenizer', `not valid JSON (${(err as Error).message.split('\n')[0]})`, { file });
    }
    const decoder: Record<string, unknown> = {};
    for (const a of json.added_tokens) {
      const { id, ...rest } = a;
      decoder[String(id)] = rest;
    }
    write['tokenizer_config.json'] = JSON.stringify({ ...cfg, added_tokens_decoder: decoder }, null, 2) + '\n';
  }
  return { from, copy: names.filter((n) => KEPT_WHEN_CHANGED.test(n)), write };
}
