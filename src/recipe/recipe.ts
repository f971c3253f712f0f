// The recipe types: a mergekit YAML after validation, with model paths made absolute. What each method
// means and which parameters it takes is merge/'s business (merge/registry.ts); this module only holds data.

/** A parameter value after parsing (mergekit config.py `ParameterSetting`). */
export type Setting = number | boolean | string | GradientSetting | FilterSetting;

/** A list of numbers: piecewise-linear over the layers (mergekit config.py `evaluate_setting`). */
export interface GradientSetting {
  readonly kind: 'gradient';
  readonly values: readonly number[];
}

/** A list of `{filter, value}`: the first entry whose filter is absent, `*` or a substring of the tensor name wins. */
export interface FilterSetting {
  readonly kind: 'filters';
  readonly entries: readonly { readonly filter?: string; readonly value: Setting }[];
}

/** Parameters at one level of the precedence, by mergekit name (`weight`, `density`, `t`, …). */
export type ParameterMap = Readonly<Record<string, Setting>>;

/**
 * Every parameter name a recipe may use, whatever the method (mergekit's names). Which method takes which
 * is merge/registry.ts's table; a test checks that this list is exactly the union of that table.
 */
export const PARAMETER_NAMES: readonly string[] = [
  'weight',
  'density',
  'gamma',
  'epsilon',
  'scale',
  't',
  'normalize',
  'lambda',
  'rescale',
  'int8_mask',
  'filter_wise',
  // The methods added to mergekit since 2024 (merge/newer-methods.ts).
  'select_topk',
  'nuslerp_flatten',
  'nuslerp_row_wise',
  'normalize_weights',
  'eps',
  'max_iter',
  'tol',
];

/** Storage dtype names as mergekit writes them in a recipe. */
export type RecipeDType = 'float32' | 'float16' | 'bfloat16';

export const RECIPE_DTYPES: readonly RecipeDType[] = ['float32', 'float16', 'bfloat16'];

/**
 * The output vocabulary (mergekit tokenizer/build.py build_tokenizer): the base model's, the union of every
 * model's, or one model's (an absolute folder; written `model:<path>` or a bare path in the YAML).
 */
export type TokenizerSource = 'base' | 'union' | { readonly model: string };

/** Where a token's fallback (or forced) embedding row comes from (mergekit tokenizer/config.py). */
export type TokenEmbeddingSource =
  | { readonly kind: 'zero' }
  /** That model's own row of the same token. */
  | { readonly kind: 'model'; readonly model: string }
  /** That model's row of another token, by text or by id (`kind: model_token`). */
  | { readonly kind: 'model_token'; readonly model: string; readonly token?: string; readonly tokenId?: number };

/** One entry of `tokenizer.tokens`: `<token>: {source, force}`. */
export interface TokenEmbedding {
  readonly token: string;
  readonly source: TokenEmbeddingSource;
  /** Every model takes the source row, even one that has the token. */
  readonly force: boolean;
}

export interface RecipeTokenizer {
  /** mergekit's default is `union`. */
  readonly source: TokenizerSource;
  /** In recipe order; a token not in the output vocabulary is added to it. */
  readonly tokens: readonly TokenEmbedding[];
  /** Rows (and config vocab_size) rounded up to a multiple of this. */
  readonly padToMultipleOf?: number;
}

/** One input model of a slice (or of `models:`), with its own parameters. */
export interface RecipeSource {
  /** Absolute folder of the model. */
  readonly model: string;
  /** Half-open `[start, end)` of input layers; absent = all layers (only with `models:`). */
  readonly layerRange?: readonly [number, number];
  readonly parameters: ParameterMap;
  /** Where this source sits in the recipe, e.g. `models[1]` or `slices[0].sources[1]`. */
  readonly key: string;
}

export interface RecipeSlice {
  readonly sources: readonly RecipeSource[];
  readonly parameters: ParameterMap;
  /** e.g. `slices[0]`. */
  readonly key: string;
}

/** A validated recipe. Exactly one of `models` and `slices` is set. */
export interface Recipe {
  /** The recipe file, as named in messages (`recipe.yaml`, or `<search>` for built recipes). */
  readonly file: string;
  /** Folder that relative model paths were resolved against. */
  readonly baseDir: string;
  /** mergekit method name; checked against merge/registry.ts by the planner. */
  readonly mergeMethod: string;
  /** Absolute folder of the base model. */
  readonly baseModel?: string;
  readonly models?: readonly RecipeSource[];
  readonly slices?: readonly RecipeSlice[];
  /** Global `parameters:`. */
  readonly parameters: ParameterMap;
  readonly dtype?: RecipeDType;
  readonly outDtype?: RecipeDType;
  /** mergekit's legacy `tokenizer_source:` (exclusive with `tokenizer`). */
  readonly tokenizerSource?: TokenizerSource;
  /** mergekit's `tokenizer:` block (mergekit tokenizer/config.py TokenizerConfig). */
  readonly tokenizer?: RecipeTokenizer;
  /** evomerge extension: seed of the DARE / DELLA random masks (`--seed` overrides it). */
  readonly randomSeed?: number;
}
