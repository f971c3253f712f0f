// The part of a Hugging Face config.json that decides the shape of a Llama-family decoder graph, read and
// checked once. Only what evomerge builds exactly is accepted: the families of decoder-families.ts (Llama,
// Mistral, Qwen2, Qwen3, Phi-3, Gemma 2, Gemma 3's text decoder) with RoPE of type default, linear or llama3
// (longrope for Phi-3), each key read as its family's row says. Anything else is refused in one line naming config.json and
// the key, because a graph that silently ignores a setting scores the wrong model.
import { EvomergeError } from '../errors.ts';
import {
  DECODER_FAMILIES,
  decoderFamilySpec,
  type DecoderFamily,
  type DecoderFamilySpec,
  type FamilyDefaults,
  type FamilyFlag,
} from './decoder-families.ts';

export type RopeScaling =
  | { readonly type: 'default' }
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositions: number;
    }
  | {
      /** Phi-3's longrope ('su'): per-frequency divisors, the short ones (sequences ≤ originalMaxPositions). */
      readonly type: 'longrope';
      readonly shortFactor: readonly number[];
      /** What cos and sin are multiplied by (√(1 + ln s / ln original) for s = max / original, or given). */
      readonly attentionFactor: number;
      readonly originalMaxPositions: number;
    };

export interface DecoderConfig {
  /** config.json, for error messages. */
  readonly file: string;
  readonly family: DecoderFamily;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  /** Biases on q/k/v projections (the family's qkvBias: always for Qwen2; `attention_bias` for Llama). */
  readonly qkvBias: boolean;
  /** Bias on o_proj (the family's oBias: Llama's `attention_bias`; never for Qwen2 or Mistral). */
  readonly oBias: boolean;
  /** Biases on gate/up/down (the family's mlpBias: Llama's `mlp_bias`). */
  readonly mlpBias: boolean;
  /** lm_head shares embed_tokens' weight. */
  readonly tiedEmbeddings: boolean;
  /**
   * max_position_embeddings: the model's context, a limit on what tasks run (no table is sized by it; with
   * longrope, original_max_position_embeddings: past it transformers switches to the long factors, not built).
   */
  readonly maxPositions: number;
  /** Keys further back than this many positions are hidden (Mistral's sliding window); undefined = none. */
  readonly slidingWindow?: number;
  /** Which source layers the window applies to (Gemma: some layers are global); absent: every layer. */
  readonly slidingLayers?: readonly boolean[];
  /** The RoPE base of the sliding layers, without rope_scaling (Gemma 3's rope_local_base_freq). */
  readonly localRopeTheta?: number;
  /** What the attention scores are multiplied by: head_dim^-0.5, or query_pre_attn_scalar^-0.5 (Gemma). */
  readonly attentionScale: number;
  /** Attention scores become cap · tanh(scores / cap) (Gemma 2's attn_logit_softcapping). */
  readonly attnSoftcap?: number;
  /** Logits become cap · tanh(logits / cap) (Gemma 2's final_logit_softcapping). */
  readonly finalSoftcap?: number;
  /** evomerge_layer_input_scales: layer i's input hidden state is multiplied by entry i (a data-flow export). */
  readonly layerInputScales?: readonly number[];
}

/** config.json key of a data-flow export: one factor per layer, applied to the hidden state entering it. */
export const LAYER_INPUT_SCALES_KEY = 'evomerge_layer_input_scales';

/** Parses a decoded config.json; `file` names it in errors. */
export function parseDecoderConfig(raw: Record<string, unknown>, file: string): DecoderConfig {
  const fail = (field: string, what: string, code = 'graph.unsupported_config'): never => {
    throw new EvomergeError(code, what, { file, field });
  };
  const archs = raw.architectures;
  if (!Array.isArray(archs) || archs.length !== 1 || typeof archs[0] !== 'string') {
    return fail('architectures', `expected one architecture among ${DECODER_FAMILIES.join(', ')}`);
  }
  const spec = decoderFamilySpec(archs[0]);
  if (!spec) {
    return fail(
      'architectures',
      `${archs[0]} is not supported; evomerge builds graphs for ${DECODER_FAMILIES.join(', ')} (or give the suite a ` +
        `graph: exported with optimum)`,
    );
  }
  const posInt = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (!Number.isSafeInteger(v) || (v as number) < 1)
      return fail(
        key,
        v === undefined ? 'missing (a positive integer)' : `expected a positive integer, got ${JSON.stringify(v)}`,
      );
    return v as number;
  };
  const posNum = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      return fail(
        key,
        v === undefined ? 'missing (a positive number)' : `expected a positive number, got ${JSON.stringify(v)}`,
      );
    return v;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'boolean') return fail(key, `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const flag = (f: FamilyFlag): boolean => (typeof f === 'boolean' ? f : bool(f.key, false));
  const defaults: FamilyDefaults = spec.defaults;

  if (raw.quantization_config !== undefined && raw.quantization_config !== null) {
    fail(
      'quantization_config',
      'quantized checkpoints (fp8, int8, int4…) cannot be merged or scored; use the float32, float16 or bfloat16 release',
    );
  }
  const dtype = raw.torch_dtype ?? raw.dtype;
  if (dtype !== undefined && dtype !== null && !['float32', 'float16', 'bfloat16'].includes(dtype as string)) {
    fail(
      raw.torch_dtype !== undefined ? 'torch_dtype' : 'dtype',
      `${JSON.stringify(dtype)} is not supported; expected float32, float16 or bfloat16`,
    );
  }
  const actKey = spec.activation === 'gelu_tanh' ? 'hidden_activation' : 'hidden_act';
  const act = raw[actKey] ?? defaults.hidden_act;
  if (act !== defaults.hidden_act)
    fail(
      actKey,
      `${JSON.stringify(act)} is not supported (only ${defaults.hidden_act}, the gated MLP of ${spec.architecture})`,
    );

  const hiddenSize = posInt('hidden_size');
  const heads = posInt('num_attention_heads');
  const kvHeads = posInt('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) fail('num_key_value_heads', `${kvHeads} does not divide num_attention_heads ${heads}`);
  const headDim =
    raw.head_dim === undefined || raw.head_dim === null
      ? (defaults.head_dim ?? hiddenSize / heads)
      : posInt('head_dim');
  if (!Number.isInteger(headDim))
    fail('num_attention_heads', `${heads} does not divide hidden_size ${hiddenSize}; give head_dim`);
  if (headDim % 2 !== 0) fail('head_dim', `${headDim} is odd; rotary embeddings need an even head size`);
  const partial = raw.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1)
    fail('partial_rotary_factor', `${JSON.stringify(partial)} is not supported (only 1)`);

  const qkvBias = flag(spec.qkvBias);
  const oBias = flag(spec.oBias);
  const layers = posInt('num_hidden_layers');
  const slidingWindow = parseSlidingWindow(spec, raw, layers, { posInt, bool, fail });
  const layerInputScales = parseLayerInputScales(raw[LAYER_INPUT_SCALES_KEY], layers, fail);
  const maxPositions = posInt('max_position_embeddings', defaults.max_position_embeddings);
  const ropeScaling = parseRopeScaling(raw.rope_scaling, fail, spec, { raw, headDim, maxPositions, posInt });
  const optionalPos = (key: string, fallback: number | null | undefined): number | undefined => {
    const v = raw[key] === undefined ? fallback : raw[key];
    return v === undefined || v === null ? undefined : posNum(key, v as number);
  };
  const attentionScale =
    spec.attentionScale === 'query_pre_attn_scalar'
      ? 1 / Math.sqrt(posNum('query_pre_attn_scalar', defaults.query_pre_attn_scalar))
      : 1 / Math.sqrt(headDim);
  const attnSoftcap =
    spec.softcapping === 'gemma' ? optionalPos('attn_logit_softcapping', defaults.attn_logit_softcapping) : undefined;
  const finalSoftcap =
    spec.softcapping === 'gemma' ? optionalPos('final_logit_softcapping', defaults.final_logit_softcapping) : undefined;
  return {
    file,
    family: spec.architecture,
    vocabSize: posInt('vocab_size'),
    hiddenSize,
    intermediateSize: posInt('intermediate_size'),
    layers,
    heads,
    kvHeads,
    headDim,
    rmsNormEps: posNum('rms_norm_eps', defaults.rms_norm_eps),
    maxPositions:
      ropeScaling.type === 'longrope' ? Math.min(maxPositions, ropeScaling.originalMaxPositions) : maxPositions,
    ropeTheta: posNum('rope_theta', defaults.rope_theta),
    ropeScaling,
    attentionScale,
    ...(attnSoftcap !== undefined ? { attnSoftcap } : {}),
    ...(finalSoftcap !== undefined ? { finalSoftcap } : {}),
    qkvBias,
    oBias,
    mlpBias: flag(spec.mlpBias),
    tiedEmbeddings: bool('tie_word_embeddings', defaults.tie_word_embeddings),
    ...(slidingWindow?.window !== undefined ? { slidingWindow: slidingWindow.window } : {}),
    ...(slidingWindow?.layers ? { slidingLayers: slidingWindow.layers } : {}),
    ...(spec.slidingWindow === 'layer_types'
      ? { localRopeTheta: posNum('rope_local_base_freq', defaults.rope_local_base_freq) }
      : {}),
    ...(layerInputScales ? { layerInputScales } : {}),
  };
}

/**
 * The window the sliding layers' attention keeps (undefined: full attention everywhere), and which layers slide
 * (undefined: all), as the family's row reads config.json.
 */
function parseSlidingWindow(
  spec: DecoderFamilySpec,
  raw: Record<string, unknown>,
  layers: number,
  read: {
    posInt: (key: string, fallback?: number) => number;
    bool: (key: string, fallback: boolean) => boolean;
    fail: (field: string, what: string) => never;
  },
): { window: number; layers?: boolean[] } | undefined {
  switch (spec.slidingWindow) {
    case 'none':
      return undefined;
    case 'sliding_window':
      return raw.sliding_window !== undefined && raw.sliding_window !== null
        ? { window: read.posInt('sliding_window') }
        : undefined;
    case 'use_sliding_window':
      if (read.bool('use_sliding_window', false))
        read.fail(
          'use_sliding_window',
          'true is not supported (a sliding window on only some layers); evomerge builds full attention',
        );
      return undefined;
    case 'alternating':
    case 'layer_types': {
      const window = read.posInt('sliding_window', spec.defaults.sliding_window);
      const types = raw.layer_types;
      if (types !== undefined && types !== null) {
        if (!Array.isArray(types) || types.length !== layers)
          return read.fail('layer_types', `expected a list of ${layers} layer types (num_hidden_layers)`);
        return {
          window,
          layers: types.map((t, i) =>
            t === 'sliding_attention'
              ? true
              : t === 'full_attention'
                ? false
                : read.fail(
                    `layer_types[${i}]`,
                    `${JSON.stringify(t)} is not supported (sliding_attention, full_attention)`,
                  ),
          ),
        };
      }
      if (spec.slidingWindow === 'alternating')
        return { window, layers: Array.from({ length: layers }, (_, i) => i % 2 === 0) };
      const pattern = read.posInt('sliding_window_pattern', spec.defaults.sliding_window_pattern);
      return { window, layers: Array.from({ length: layers }, (_, i) => (i + 1) % pattern !== 0) };
    }
  }
}

function parseLayerInputScales(
  raw: unknown,
  layers: number,
  fail: (field: string, what: string) => never,
): readonly number[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw) || raw.length !== layers)
    return fail(LAYER_INPUT_SCALES_KEY, `expected a list of ${layers} numbers (one per layer, num_hidden_layers)`);
  raw.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v))
      fail(`${LAYER_INPUT_SCALES_KEY}[${i}]`, `expected a finite number, got ${JSON.stringify(v)}`);
  });
  return raw as number[];
}

function parseRopeScaling(
  raw: unknown,
  fail: (field: string, what: string) => never,
  spec: DecoderFamilySpec,
  model: {
    raw: Record<string, unknown>;
    headDim: number;
    maxPositions: number;
    posInt: (key: string, fallback?: number) => number;
  },
): RopeScaling {
  if (raw === undefined || raw === null) return { type: 'default' };
  if (typeof raw !== 'object' || Array.isArray(raw)) return fail('rope_scaling', 'expected an object or null');
  const r = raw as Record<string, unknown>;
  const typeKey = r.rope_type !== undefined ? 'rope_type' : 'type';
  const type = r[typeKey] ?? 'default';
  const num = (key: string): number => {
    const v = r[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      return fail(
        `rope_scaling.${key}`,
        v === undefined ? 'missing (a positive number)' : `expected a positive number, got ${JSON.stringify(v)}`,
      );
    return v;
  };
  switch (type) {
    case 'default':
      return { type: 'default' };
    case 'linear':
      return { type: 'linear', factor: num('factor') };
    case 'llama3': {
      const s = {
        type: 'llama3' as const,
        factor: num('factor'),
        lowFreqFactor: num('low_freq_factor'),
        highFreqFactor: num('high_freq_factor'),
        originalMaxPositions: num('original_max_position_embeddings'),
      };
      if (s.highFreqFactor <= s.lowFreqFactor)
        fail('rope_scaling.high_freq_factor', `${s.highFreqFactor} must exceed low_freq_factor ${s.lowFreqFactor}`);
      return s;
    }
    default: {
      if ((spec.ropeTypes as readonly unknown[]).includes(type)) return parseLongRope(r, fail, model);
      const types = ['default', 'linear', 'llama3', ...spec.ropeTypes].join(', ');
      return fail(`rope_scaling.${typeKey}`, `${JSON.stringify(type)} is not supported (${types})`);
    }
  }
}

/**
 * Phi-3's longrope as transformers' _compute_longrope_parameters: the short factors (the sequences evomerge
 * runs stay within original_max_position_embeddings, see maxPositions), and the attention factor on cos/sin.
 */
function parseLongRope(
  r: Record<string, unknown>,
  fail: (field: string, what: string) => never,
  model: {
    raw: Record<string, unknown>;
    headDim: number;
    maxPositions: number;
    posInt: (key: string, fallback?: number) => number;
  },
): RopeScaling {
  const half = model.headDim / 2;
  const factors = (key: string): number[] => {
    const v = r[key];
    if (!Array.isArray(v) || v.length !== half || v.some((f) => typeof f !== 'number' || !Number.isFinite(f) || f <= 0))
      return fail(`rope_scaling.${key}`, `expected ${half} positive numbers (head_dim / 2)`);
    return v as number[];
  };
  const shortFactor = factors('short_factor');
  factors('long_factor');
  for (const key of ['short_mscale', 'long_mscale'])
    if (r[key] !== undefined && r[key] !== null) fail(`rope_scaling.${key}`, 'is not supported (Phi-3.5-MoE scaling)');
  // Phi-3 keeps the pretrained context at the top level, newer configs inside rope_scaling
  const inner = r.original_max_position_embeddings;
  if (inner !== undefined && (!Number.isSafeInteger(inner) || (inner as number) < 1))
    fail('rope_scaling.original_max_position_embeddings', `expected a positive integer, got ${JSON.stringify(inner)}`);
  const original =
    model.raw.original_max_position_embeddings !== undefined
      ? model.posInt('original_max_position_embeddings')
      : ((inner as number | undefined) ?? model.maxPositions);
  const factor = model.maxPositions / original;
  let attentionFactor: number;
  if (r.attention_factor !== undefined && r.attention_factor !== null) {
    const a = r.attention_factor;
    if (typeof a !== 'number' || !Number.isFinite(a) || a <= 0)
      return fail('rope_scaling.attention_factor', `expected a positive number, got ${JSON.stringify(a)}`);
    attentionFactor = a;
  } else attentionFactor = factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(original));
  return { type: 'longrope', shortFactor, attentionFactor, originalMaxPositions: original };
}

/** One weight tensor of the checkpoint the graph reads, with the shape the config implies. */
export interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/** The tensors of source layer `layer`, under their Hugging Face names (as the family's row stores them). */
export function layerWeights(c: DecoderConfig, layer: number): WeightSpec[] {
  const spec = decoderFamilySpec(c.family)!;
  const p = `model.layers.${layer}`;
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const h = c.hiddenSize;
  const inter = c.intermediateSize;
  const out: WeightSpec[] = [{ name: `${p}.input_layernorm.weight`, shape: [h] }];
  if (spec.projections === 'fused') out.push({ name: `${p}.self_attn.qkv_proj.weight`, shape: [q + 2 * kv, h] });
  else
    out.push(
      { name: `${p}.self_attn.q_proj.weight`, shape: [q, h] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, h] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, h] },
    );
  if (spec.qkNorm === 'per_head_rms')
    out.push(
      { name: `${p}.self_attn.q_norm.weight`, shape: [c.headDim] },
      { name: `${p}.self_attn.k_norm.weight`, shape: [c.headDim] },
    );
  out.push(
    { name: `${p}.self_attn.o_proj.weight`, shape: [h, q] },
    { name: `${p}.post_attention_layernorm.weight`, shape: [h] },
  );
  if (spec.layerNorms === 'sandwich')
    out.push(
      { name: `${p}.pre_feedforward_layernorm.weight`, shape: [h] },
      { name: `${p}.post_feedforward_layernorm.weight`, shape: [h] },
    );
  if (spec.projections === 'fused') out.push({ name: `${p}.mlp.gate_up_proj.weight`, shape: [2 * inter, h] });
  else
    out.push(
      { name: `${p}.mlp.gate_proj.weight`, shape: [inter, h] },
      { name: `${p}.mlp.up_proj.weight`, shape: [inter, h] },
    );
  out.push({ name: `${p}.mlp.down_proj.weight`, shape: [h, inter] });
  if (c.qkvBias) {
    out.push(
      { name: `${p}.self_attn.q_proj.bias`, shape: [q] },
      { name: `${p}.self_attn.k_proj.bias`, shape: [kv] },
      { name: `${p}.self_attn.v_proj.bias`, shape: [kv] },
    );
  }
  if (c.oBias) out.push({ name: `${p}.self_attn.o_proj.bias`, shape: [h] });
  if (c.mlpBias) {
    out.push(
      { name: `${p}.mlp.gate_proj.bias`, shape: [inter] },
      { name: `${p}.mlp.up_proj.bias`, shape: [inter] },
      { name: `${p}.mlp.down_proj.bias`, shape: [h] },
    );
  }
  return out;
}

/** The tensors outside the layers: embeddings, final norm and (untied) lm_head. */
export function outerWeights(c: DecoderConfig): WeightSpec[] {
  const out: WeightSpec[] = [
    { name: 'model.embed_tokens.weight', shape: [c.vocabSize, c.hiddenSize] },
    { name: 'model.norm.weight', shape: [c.hiddenSize] },
  ];
  if (!c.tiedEmbeddings) out.push({ name: 'lm_head.weight', shape: [c.vocabSize, c.hiddenSize] });
  return out;
}

/**
 * One step of a data-flow path: layer `layer` of model `source` (0, the default: the model of the config; k ≥ 1:
 * the k-th other model, of the same shape, whose tensors the graph names with sourceTensorName), with its
 * input hidden state multiplied by `scale` (default 1).
 */
export interface LayerSlot {
  readonly source?: number;
  readonly layer: number;
  readonly scale?: number;
}

/** The graph's name for a tensor of model `source`: the checkpoint's own name for 0, prefixed for the others. */
export function sourceTensorName(source: number, name: string): string {
  return source === 0 ? name : `source${source}/${name}`;
}

/** Checks a slot list: at least one slot, layers of the config's range, sources and scales well formed. */
export function checkLayerSlots(c: DecoderConfig, slots: readonly LayerSlot[]): void {
  checkLayerPath(
    c,
    slots.map((s) => s.layer),
  );
  slots.forEach((s, i) => {
    const source = s.source ?? 0;
    if (!Number.isInteger(source) || source < 0)
      throw new EvomergeError('graph.bad_layer_path', `source ${source} is not a model index (0, 1, …)`, {
        field: `layer_path[${i}].source`,
      });
    if (s.scale !== undefined && !Number.isFinite(s.scale))
      throw new EvomergeError('graph.bad_layer_path', `scale ${s.scale} is not a finite number`, {
        field: `layer_path[${i}].scale`,
      });
  });
}

/** Checks a layer path (source layer indices, in the order the graph runs them) against the config. */
export function checkLayerPath(c: DecoderConfig, path: readonly number[]): void {
  if (path.length === 0)
    throw new EvomergeError('graph.bad_layer_path', 'empty: a decoder runs at least one layer', {
      field: 'layer_path',
    });
  path.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l >= c.layers) {
      throw new EvomergeError(
        'graph.bad_layer_path',
        `${l} is not a layer of this model (0..${c.layers - 1}, num_hidden_layers in ${c.file})`,
        { field: `layer_path[${i}]` },
      );
    }
  });
}
