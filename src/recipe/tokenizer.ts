// The tokenizer settings of a recipe: mergekit's legacy `tokenizer_source:` and its `tokenizer:` block
// (mergekit config.py MergeConfiguration, tokenizer/config.py TokenizerConfig / TokenEmbeddingConfig), parsed
// and written back. What they do to the vocabulary and the embeddings is merge/tokenizer/'s business.
import type { RecipeTokenizer, TokenEmbedding, TokenEmbeddingSource, TokenizerSource } from './recipe.ts';

/** What the recipe parser lends: its one-line failure, its model-folder check and its key check. */
export interface TokenizerParseContext {
  fail(code: string, field: string | undefined, what: string): never;
  /** An existing model folder, resolved against the recipe's folder. */
  modelPath(value: unknown, key: string): string;
  checkKeys(obj: Record<string, unknown>, known: readonly string[], prefix: string): void;
  describe(v: unknown): string;
}

const BLOCK_KEYS = ['source', 'tokens', 'pad_to_multiple_of'];
const TOKEN_KEYS = ['source', 'force'];
const ZERO_KEYS = ['kind'];
const MODEL_TOKEN_KEYS = ['kind', 'model', 'token', 'token_id'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * `base`, `union`, or a model folder: today's mergekit takes a bare path (a ModelReference), mergekit before
 * its July 2024 tokenizer overhaul wrote `model:<path>`; both are accepted.
 */
export function parseTokenizerSource(value: unknown, key: string, ctx: TokenizerParseContext): TokenizerSource {
  if (value === 'base' || value === 'union') return value;
  if (typeof value !== 'string' || value.length === 0)
    ctx.fail('recipe.bad_value', key, `expected base, union or a model folder, got ${ctx.describe(value)}`);
  const p = value.startsWith('model:') ? value.slice('model:'.length) : value;
  return { model: ctx.modelPath(p, key) };
}

/** The `tokenizer:` block; `source` defaults to `union`, as in mergekit. */
export function parseTokenizerBlock(value: unknown, ctx: TokenizerParseContext): RecipeTokenizer {
  if (!isPlainObject(value))
    ctx.fail(
      'recipe.bad_value',
      'tokenizer',
      `expected {source, tokens, pad_to_multiple_of}, got ${ctx.describe(value)}`,
    );
  ctx.checkKeys(value, BLOCK_KEYS, 'tokenizer');
  const source =
    value.source === undefined || value.source === null
      ? 'union'
      : parseTokenizerSource(value.source, 'tokenizer.source', ctx);
  const tokens: TokenEmbedding[] = [];
  if (value.tokens !== undefined && value.tokens !== null) {
    if (!isPlainObject(value.tokens))
      ctx.fail(
        'recipe.bad_value',
        'tokenizer.tokens',
        `expected a mapping of tokens to {source, force}, got ${ctx.describe(value.tokens)}`,
      );
    for (const [token, cfg] of Object.entries(value.tokens)) tokens.push(tokenEmbedding(token, cfg, ctx));
  }
  let padToMultipleOf: number | undefined;
  const pad = value.pad_to_multiple_of;
  if (pad !== undefined && pad !== null) {
    if (typeof pad !== 'number' || !Number.isSafeInteger(pad) || pad < 1)
      ctx.fail(
        'recipe.bad_value',
        'tokenizer.pad_to_multiple_of',
        `expected a positive integer, got ${ctx.describe(pad)}`,
      );
    padToMultipleOf = pad;
  }
  return { source, tokens, ...(padToMultipleOf !== undefined ? { padToMultipleOf } : {}) };
}

function tokenEmbedding(token: string, cfg: unknown, ctx: TokenizerParseContext): TokenEmbedding {
  const key = `tokenizer.tokens.${token}`;
  if (token.length === 0) ctx.fail('recipe.bad_value', 'tokenizer.tokens', 'a token may not be the empty string');
  if (!isPlainObject(cfg)) ctx.fail('recipe.bad_value', key, `expected {source, force}, got ${ctx.describe(cfg)}`);
  ctx.checkKeys(cfg, TOKEN_KEYS, key);
  // mergekit computes a default row for every configured token, and fails (NotImplementedError) without a source.
  if (cfg.source === undefined || cfg.source === null)
    ctx.fail(
      'recipe.missing_key',
      `${key}.source`,
      'required: a model folder, {kind: zero} or {kind: model_token, model, token | token_id}',
    );
  let force = false;
  if (cfg.force !== undefined && cfg.force !== null) {
    if (typeof cfg.force !== 'boolean')
      ctx.fail('recipe.bad_value', `${key}.force`, `expected true or false, got ${ctx.describe(cfg.force)}`);
    force = cfg.force;
  }
  return { token, source: embeddingSource(cfg.source, `${key}.source`, ctx), force };
}

function embeddingSource(value: unknown, key: string, ctx: TokenizerParseContext): TokenEmbeddingSource {
  if (typeof value === 'string') return { kind: 'model', model: ctx.modelPath(value, key) };
  if (!isPlainObject(value))
    ctx.fail('recipe.bad_value', key, `expected a model folder or {kind: …}, got ${ctx.describe(value)}`);
  if (value.kind === 'zero') {
    ctx.checkKeys(value, ZERO_KEYS, key);
    return { kind: 'zero' };
  }
  if (value.kind !== 'model_token')
    ctx.fail('recipe.bad_value', `${key}.kind`, `expected zero or model_token, got ${ctx.describe(value.kind)}`);
  ctx.checkKeys(value, MODEL_TOKEN_KEYS, key);
  if (value.model === undefined || value.model === null)
    ctx.fail('recipe.missing_key', `${key}.model`, 'required: the model whose row is taken');
  const model = ctx.modelPath(value.model, `${key}.model`);
  const hasToken = value.token !== undefined && value.token !== null;
  const hasId = value.token_id !== undefined && value.token_id !== null;
  // mergekit ModelTokenEmbedding.validate_token: exactly one of the two.
  if (hasToken === hasId)
    ctx.fail('recipe.bad_value', key, hasToken ? 'give token or token_id, not both' : 'needs token or token_id');
  if (hasToken) {
    if (typeof value.token !== 'string' || value.token.length === 0)
      ctx.fail('recipe.bad_value', `${key}.token`, `expected a token, got ${ctx.describe(value.token)}`);
    return { kind: 'model_token', model, token: value.token };
  }
  const id = value.token_id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)
    ctx.fail('recipe.bad_value', `${key}.token_id`, `expected a non-negative integer, got ${ctx.describe(id)}`);
  return { kind: 'model_token', model, tokenId: id };
}

/** A tokenizer source as YAML, model paths through `rel`. */
export function tokenizerSourceToPlain(s: TokenizerSource, rel: (abs: string) => string): string {
  return typeof s === 'string' ? s : rel(s.model);
}

/** The `tokenizer:` block as YAML, model paths through `rel`. */
export function tokenizerToPlain(t: RecipeTokenizer, rel: (abs: string) => string): Record<string, unknown> {
  const out: Record<string, unknown> = { source: tokenizerSourceToPlain(t.source, rel) };
  if (t.tokens.length > 0) {
    const tokens: Record<string, unknown> = {};
    for (const e of t.tokens) {
      const s = e.source;
      const source =
        s.kind === 'zero'
          ? { kind: 'zero' }
          : s.kind === 'model'
            ? rel(s.model)
            : {
                kind: 'model_token',
                model: rel(s.model),
                ...(s.token !== undefined ? { token: s.token } : { token_id: s.tokenId }),
              };
      tokens[e.token] = e.force ? { source, force: true } : { source };
    }
    out.tokens = tokens;
  }
  if (t.padToMultipleOf !== undefined) out.pad_to_multiple_of = t.padToMultipleOf;
  return out;
}
