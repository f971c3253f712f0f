// What ONNX Runtime's fused CPU kernels accept, so that the 'cpu' operator set uses a fused kernel only where it
// computes the config (and the standard-op seam elsewhere), instead of failing at run time with ORT's log line.
// From onnxruntime 1.30's contrib_ops/cpu/bert/group_query_attention_helper.h (CheckInputs), checked against the
// installed runtime (test/unit/graph/decoder-graph.test.ts): GroupQueryAttention with rotary tables (do_rotary)
// needs head_size % 16 == 0 ("head_size shall be a multiple of 16") and cos/sin tables of at most head_size / 2
// columns, a multiple of 8 (head_dim / 2, which the multiple of 16 makes so). FusedMatMul and
// SimplifiedLayerNormalization accept every shape a decoder config allows.
import type { DecoderConfig } from './decoder-config.ts';

/** Why GroupQueryAttention (CPU, with RoPE) cannot compute this config's attention; undefined when it can. */
export function groupQueryAttentionRefusal(c: Pick<DecoderConfig, 'headDim'>): string | undefined {
  if (c.headDim % 16 !== 0)
    return `head_dim ${c.headDim} is not a multiple of 16 (GroupQueryAttention's rotary kernel)`;
  return undefined;
}
