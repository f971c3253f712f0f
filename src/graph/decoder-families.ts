// The model families evomerge builds graphs for, as data (as merge/registry.ts treats merge methods): one row per
// config.json architecture, with the defaults of the keys a config.json may leave out and the features that set
// the graph apart. decoder-config.ts reads config.json through a row; the seams of decoder-graph.ts (embedding,
// norm, attention, MLP, head) read its feature fields. A new family is a row here, plus a seam variant where the
// family computes something no row does yet (the literal types below then say where: a switch in the seam).

/** A feature fixed by the family (true/false), or switched by a boolean config.json key (false when absent). */
export type FamilyFlag = boolean | { readonly key: string };

/** Values of config.json keys that a checkpoint's config may leave out (transformers' defaults for the class). */
export interface FamilyDefaults {
  readonly hidden_act: 'silu';
  readonly rms_norm_eps: number;
  readonly rope_theta: number;
  readonly max_position_embeddings: number;
  readonly tie_word_embeddings: boolean;
}

export interface DecoderFamilySpec {
  /** config.json `architectures[0]`. */
  readonly architecture: string;
  readonly defaults: FamilyDefaults;
  /** The MLP: 'silu', the SiLU-gated MLP down(silu(gate(x)) · up(x)); config.json's hidden_act must say it. */
  readonly activation: 'silu';
  /** What multiplies the token embeddings: 'none' (Gemma would scale them by √hidden_size). */
  readonly embeddingScale: 'none';
  /** RMSNorm multiplies by (offset + weight): 0 (Gemma would store weight − 1, offset 1). */
  readonly normWeightOffset: 0;
  /** How the checkpoint stores the projections: 'separate' q/k/v and gate/up (Phi-3 would fuse qkv_proj, gate_up_proj). */
  readonly projections: 'separate';
  /** Biases on q_proj, k_proj, v_proj. */
  readonly qkvBias: FamilyFlag;
  /** A bias on o_proj. */
  readonly oBias: FamilyFlag;
  /** Biases on gate_proj, up_proj, down_proj. */
  readonly mlpBias: FamilyFlag;
  /**
   * How config.json asks for a sliding attention window. 'none': the family has none. 'sliding_window': every
   * layer hides keys further back than `sliding_window` positions when it is set (Mistral). 'use_sliding_window':
   * only some layers would (Qwen2's max_window_layers), which evomerge does not build: refused when
   * `use_sliding_window` is true.
   */
  readonly slidingWindow: 'none' | 'sliding_window' | 'use_sliding_window';
}

/** The defaults the three Llama-shaped families share in transformers. */
const LLAMA_DEFAULTS: FamilyDefaults = {
  hidden_act: 'silu',
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 4096,
  tie_word_embeddings: false,
};

/** Every family evomerge builds, in the order messages list them. */
export const DECODER_FAMILY_TABLE = [
  {
    architecture: 'LlamaForCausalLM',
    defaults: LLAMA_DEFAULTS,
    activation: 'silu',
    embeddingScale: 'none',
    normWeightOffset: 0,
    projections: 'separate',
    qkvBias: { key: 'attention_bias' },
    oBias: { key: 'attention_bias' },
    mlpBias: { key: 'mlp_bias' },
    slidingWindow: 'none',
  },
  {
    architecture: 'MistralForCausalLM',
    defaults: LLAMA_DEFAULTS,
    activation: 'silu',
    embeddingScale: 'none',
    normWeightOffset: 0,
    projections: 'separate',
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    slidingWindow: 'sliding_window',
  },
  {
    architecture: 'Qwen2ForCausalLM',
    defaults: LLAMA_DEFAULTS,
    activation: 'silu',
    embeddingScale: 'none',
    normWeightOffset: 0,
    projections: 'separate',
    qkvBias: true,
    oBias: false,
    mlpBias: false,
    slidingWindow: 'use_sliding_window',
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
