// The model families evomerge builds graphs for, as data (as merge/registry.ts treats merge methods): one row per
// config.json architecture, with the defaults of the keys a config.json may leave out and the features that set
// the graph apart. decoder-config.ts reads config.json through a row; the seams of decoder-graph.ts (embedding,
// norm, attention, MLP, head) read its feature fields. A new family is a row here, plus a seam variant where the
// family computes something no row does yet (the literal types below then say where: a switch in the seam).

/** A feature fixed by the family (true/false), or switched by a boolean config.json key (false when absent). */
export type FamilyFlag = boolean | { readonly key: string };

/** Values of config.json keys that a checkpoint's config may leave out (transformers' defaults for the class). */
export interface FamilyDefaults {
  /** The MLP's activation (read from `hidden_act`, or `hidden_activation` for Gemma). */
  readonly hidden_act: 'silu' | 'gelu_pytorch_tanh';
  readonly rms_norm_eps: number;
  readonly rope_theta: number;
  readonly max_position_embeddings: number;
  readonly tie_word_embeddings: boolean;
  /** head_dim when config.json leaves it out; absent: hidden_size / num_attention_heads. */
  readonly head_dim?: number;
  /** Gemma: the attention scale is query_pre_attn_scalar^-0.5. */
  readonly query_pre_attn_scalar?: number;
  /** Gemma: the window of the sliding layers. */
  readonly sliding_window?: number;
  /** Gemma 2: tanh soft-capping of the attention scores and of the final logits (null: none). */
  readonly attn_logit_softcapping?: number | null;
  readonly final_logit_softcapping?: number | null;
  /** Gemma 3: the RoPE base of the sliding (local) layers, and every how many layers one is global. */
  readonly rope_local_base_freq?: number;
  readonly sliding_window_pattern?: number;
}

export interface DecoderFamilySpec {
  /** config.json `architectures[0]`. */
  readonly architecture: string;
  readonly defaults: FamilyDefaults;
  /**
   * The gated MLP down(act(gate(x)) · up(x)): 'silu' (config.json's hidden_act must say silu) or 'gelu_tanh'
   * (Gemma: hidden_activation must say gelu_pytorch_tanh, GELU's tanh approximation).
   */
  readonly activation: 'silu' | 'gelu_tanh';
  /** What multiplies the token embeddings: 'none', or 'sqrt_hidden' (Gemma: √hidden_size in the compute dtype). */
  readonly embeddingScale: 'none' | 'sqrt_hidden';
  /** RMSNorm multiplies by (offset + weight): 0, or 1 (Gemma stores weight − 1; the product is in float32). */
  readonly normWeightOffset: 0 | 1;
  /** How the checkpoint stores the projections: 'separate' q/k/v and gate/up, or 'fused' (Phi-3: qkv_proj, gate_up_proj). */
  readonly projections: 'separate' | 'fused';
  /** Biases on q_proj, k_proj, v_proj. */
  readonly qkvBias: FamilyFlag;
  /** A bias on o_proj. */
  readonly oBias: FamilyFlag;
  /** Biases on gate_proj, up_proj, down_proj. */
  readonly mlpBias: FamilyFlag;
  /** 'per_head_rms': an RMSNorm over each head of q and of k before RoPE (q_norm, k_norm: Qwen3, Gemma 3). */
  readonly qkNorm: 'none' | 'per_head_rms';
  /**
   * The norms of a layer: 'pre' (input_layernorm before attention, post_attention_layernorm before the MLP), or
   * 'sandwich' (Gemma 2/3: input_layernorm and post_attention_layernorm around attention,
   * pre_feedforward_layernorm and post_feedforward_layernorm around the MLP, each before its residual add).
   */
  readonly layerNorms: 'pre' | 'sandwich';
  /** The attention scale: 'head_dim' (head_dim^-0.5) or 'query_pre_attn_scalar' (its ^-0.5: Gemma). */
  readonly attentionScale: 'head_dim' | 'query_pre_attn_scalar';
  /** 'gemma': attn_logit_softcapping and final_logit_softcapping (cap · tanh(x / cap)) when config.json sets them. */
  readonly softcapping: 'none' | 'gemma';
  /**
   * How config.json asks for a sliding attention window. 'none': the family has none. 'sliding_window': every
   * layer hides keys further back than `sliding_window` positions when it is set (Mistral, Phi-3).
   * 'use_sliding_window': only some layers would (Qwen2's max_window_layers), which evomerge does not build:
   * refused when `use_sliding_window` is true. 'alternating': layers 0, 2, 4… slide, the others are global
   * (Gemma 2). 'layer_types': `layer_types` (or every `sliding_window_pattern`-th layer global) says which layers
   * slide; these use RoPE base `rope_local_base_freq` without scaling (Gemma 3).
   */
  readonly slidingWindow: 'none' | 'sliding_window' | 'use_sliding_window' | 'alternating' | 'layer_types';
  /** rope_scaling types beyond default, linear and llama3 that the family's config may ask for. */
  readonly ropeTypes: readonly ('longrope' | 'su')[];
}

/** The defaults the three Llama-shaped families share in transformers. */
const LLAMA_DEFAULTS: FamilyDefaults = {
  hidden_act: 'silu',
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 4096,
  tie_word_embeddings: false,
};

/** The feature fields of a Llama-shaped row (every one the plain decoder's). */
const LLAMA_FEATURES = {
  activation: 'silu',
  embeddingScale: 'none',
  normWeightOffset: 0,
  projections: 'separate',
  qkNorm: 'none',
  layerNorms: 'pre',
  attentionScale: 'head_dim',
  softcapping: 'none',
  ropeTypes: [],
} as const;

/** Gemma 2 and 3: what they share. */
const GEMMA_FEATURES = {
  activation: 'gelu_tanh',
  embeddingScale: 'sqrt_hidden',
  normWeightOffset: 1,
  projections: 'separate',
  qkvBias: { key: 'attention_bias' },
  oBias: { key: 'attention_bias' },
  mlpBias: false,
  layerNorms: 'sandwich',
  attentionScale: 'query_pre_attn_scalar',
  softcapping: 'gemma',
  ropeTypes: [],
} as const;

/** Every family evomerge builds, in the order messages list them. */
export const DECODER_FAMILY_TABLE = [
  {
    architecture: 'LlamaForCausalLM',
    defaults: LLAMA_DEFAULTS,
    ...LLAMA_FEATURES,
    qkvBias: { key: 'attention_bias' },
    oBias: { key: 'attention_bias' },
    mlpBias: { key: 'mlp_bias' },
    slidingWindow: 'none',
  },
  {
    architecture: 'MistralForCausalLM',
    defaults: LLAMA_DEFAULTS,
    ...LLAMA_FEATURES,
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    slidingWindow: 'sliding_window',
  },
  {
    architecture: 'Qwen2ForCausalLM',
    defaults: LLAMA_DEFAULTS,
    ...LLAMA_FEATURES,
    qkvBias: true,
    oBias: false,
    mlpBias: false,
    slidingWindow: 'use_sliding_window',
  },
  {
    // Qwen2 plus an RMSNorm over each head of q and k; biases only when attention_bias says (o_proj's too)
    architecture: 'Qwen3ForCausalLM',
    defaults: { ...LLAMA_DEFAULTS, max_position_embeddings: 32768, head_dim: 128 },
    ...LLAMA_FEATURES,
    qkvBias: { key: 'attention_bias' },
    oBias: { key: 'attention_bias' },
    mlpBias: false,
    qkNorm: 'per_head_rms',
    slidingWindow: 'use_sliding_window',
  },
  {
    // q, k, v in one qkv_proj and gate, up in one gate_up_proj; longrope (short factors) RoPE
    architecture: 'Phi3ForCausalLM',
    defaults: { ...LLAMA_DEFAULTS, rms_norm_eps: 1e-5 },
    ...LLAMA_FEATURES,
    projections: 'fused',
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    slidingWindow: 'sliding_window',
    ropeTypes: ['longrope', 'su'],
  },
  {
    architecture: 'Gemma2ForCausalLM',
    defaults: {
      hidden_act: 'gelu_pytorch_tanh',
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      max_position_embeddings: 8192,
      tie_word_embeddings: true,
      head_dim: 256,
      query_pre_attn_scalar: 256,
      sliding_window: 4096,
      attn_logit_softcapping: 50,
      final_logit_softcapping: 30,
    },
    ...GEMMA_FEATURES,
    qkNorm: 'none',
    slidingWindow: 'alternating',
  },
  {
    // the text decoder of Gemma 3 (gemma-3-1b, or a text-only export): Gemma 2's layer plus q_norm/k_norm
    architecture: 'Gemma3ForCausalLM',
    defaults: {
      hidden_act: 'gelu_pytorch_tanh',
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      max_position_embeddings: 131072,
      tie_word_embeddings: true,
      head_dim: 256,
      query_pre_attn_scalar: 256,
      sliding_window: 4096,
      attn_logit_softcapping: null,
      final_logit_softcapping: null,
      rope_local_base_freq: 10000,
      sliding_window_pattern: 6,
    },
    ...GEMMA_FEATURES,
    qkNorm: 'per_head_rms',
    slidingWindow: 'layer_types',
  },
] as const satisfies readonly DecoderFamilySpec[];

/** A config.json architecture evomerge builds graphs for. */
export type DecoderFamily = (typeof DECODER_FAMILY_TABLE)[number]['architecture'];

/** The architectures of the table, in its order. */
export const DECODER_FAMILIES: readonly DecoderFamily[] = DECODER_FAMILY_TABLE.map((f) => f.architecture);

/** The row of an architecture; undefined when evomerge does not build it. */
export function decoderFamilySpec(architecture: string): (typeof DECODER_FAMILY_TABLE)[number] | undefined {
  return DECODER_FAMILY_TABLE.find((f) => f.architecture === architecture);
}
