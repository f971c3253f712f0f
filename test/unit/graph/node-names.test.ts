// Nodes of the built decoder graph are named by their path in the model (embed/Gather,
// layers.N/attn/q_proj/MatMul, final_norm/…, lm_head/MatMul), so that ONNX Runtime's profiles and errors,
// which name nodes, say where a node sits. Graph layer N is the N-th step of the layer path. Names are unique.
import { describe, expect, it } from 'vitest';
import { parseDecoderConfig } from '../../../src/graph/decoder-config.ts';
import { buildDecoderGraph, type DecoderGraphOptions } from '../../../src/graph/decoder-graph.ts';
import { TINY_CONFIGS, type TinyName } from '../../fixtures/tiny-decoders.ts';

function nodesOf(tiny: TinyName, options: DecoderGraphOptions): { name: string; opType: string; output: string[] }[] {
  const built = buildDecoderGraph(parseDecoderConfig(TINY_CONFIGS[tiny], `/tiny/${tiny}/config.json`), options);
  return (built.model.graph!.node ?? []).map((n) => ({
    name: n.name ?? '',
    opType: n.opType ?? '',
    output: n.output ?? [],
  }));
}

const TOP_LEVEL = new RegExp(
  '^(embed|layers\\.\\d+|final_norm|lm_head|logit_softcap|logits|norm_consts|rope_tables(_local)?|total_length|' +
    'attn_mask(_sliding)?|attn_scale|gqa_inputs(_local)?)/',
);

describe('node names of the built graph', () => {
  it('standard ops (Llama with biases): paths of embedding, norms, projections, RoPE, mask, MLP and head', () => {
    const nodes = nodesOf('llama', { opSet: 'plain' });
    const names = nodes.map((n) => n.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'embed/Gather',
        'layers.0/input_norm/ReduceMean',
        'layers.0/attn/q_proj/Transpose',
        'layers.0/attn/q_proj/MatMul',
        'layers.0/attn/q_proj/Add',
        'layers.2/attn/k_rope/Neg',
        'layers.2/attn/o_proj/MatMul',
        'layers.1/attn/Softmax',
        'layers.1/post_attn_norm/Sqrt',
        'layers.1/mlp/act/Sigmoid',
        'layers.1/mlp/down_proj/MatMul',
        'rope_tables/Cos',
        'attn_mask/Where',
        'final_norm/ReduceMean',
        'lm_head/MatMul',
        'logits/Identity',
      ]),
    );
    expect(new Set(names).size).toBe(names.length);
    expect(names.filter((n) => !TOP_LEVEL.test(n))).toEqual([]);
    // the node named for its place still writes the graph's outputs
    expect(nodes.find((n) => n.name === 'logits/Identity')!.output).toEqual(['logits']);
    expect(nodes.find((n) => n.output[0] === 'present.2.value')!.name).toMatch(/^layers\.2\/attn\/Concat/);
  });

  it("ORT's fused operators (Mistral): GroupQueryAttention and its inputs, FusedMatMul, SimplifiedLayerNormalization", () => {
    const names = nodesOf('mistral', { opSet: 'cpu' }).map((n) => n.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'embed/Gather',
        'layers.0/input_norm/SimplifiedLayerNormalization',
        'layers.0/attn/v_proj/FusedMatMul',
        'layers.1/attn/GroupQueryAttention',
        'gqa_inputs/ReduceSum',
        'final_norm/SimplifiedLayerNormalization',
        'lm_head/FusedMatMul',
      ]),
    );
    expect(new Set(names).size).toBe(names.length);
    expect(names.filter((n) => !TOP_LEVEL.test(n))).toEqual([]);
  });

  it('the new families name their parts the same way (Gemma 3 plain, Phi-3 and Gemma 2 fused)', () => {
    const gemma3 = nodesOf('gemma3', { opSet: 'plain' }).map((n) => n.name);
    expect(gemma3).toEqual(
      expect.arrayContaining([
        'embed/Mul',
        'layers.0/attn/q_rope/q_norm/ReduceMean',
        'layers.0/attn/k_rope/k_norm/Sqrt',
        'layers.0/post_attn_norm/ReduceMean',
        'layers.0/pre_mlp_norm/ReduceMean',
        'layers.0/post_mlp_norm/ReduceMean',
        'layers.1/mlp/act/Tanh',
        'rope_tables/Cos',
        'rope_tables_local/Cos',
        'attn_mask/Where',
        'attn_mask_sliding/Where',
      ]),
    );
    const phi3 = nodesOf('phi3', { opSet: 'cpu' }).map((n) => n.name);
    // the fused qkv_proj goes into GroupQueryAttention packed, unsplit
    expect(phi3.filter((n) => n.includes('qkv_split'))).toEqual([]);
    expect(phi3).toEqual(
      expect.arrayContaining([
        'layers.0/attn/qkv_proj/FusedMatMul',
        'layers.0/attn/GroupQueryAttention',
        'layers.0/mlp/gate_up_proj/FusedMatMul',
        'layers.0/mlp/gate_up_split/Split',
      ]),
    );
    const gemma2 = nodesOf('gemma2', { opSet: 'cpu' }).map((n) => n.name);
    expect(gemma2).toEqual(
      expect.arrayContaining([
        'layers.0/input_norm/weight/Add',
        'layers.1/mlp/act/FastGelu',
        'logit_softcap/Tanh',
        'layers.1/attn/GroupQueryAttention',
      ]),
    );
    for (const names of [gemma3, phi3, gemma2]) {
      expect(new Set(names).size).toBe(names.length);
      expect(names.filter((n) => !TOP_LEVEL.test(n))).toEqual([]);
    }
  });

  it('a layer path names graph layers by their step (layer 0 twice: layers.1 and layers.2), float16 casts the logits', () => {
    const names = nodesOf('qwen2', { opSet: 'plain', computeDtype: 'f16', layerPath: [1, 0, 0] }).map((n) => n.name);
    const perLayer = [0, 1, 2].map((n) => names.filter((x) => x.startsWith(`layers.${n}/`)).length);
    expect(perLayer[0]).toBeGreaterThan(20);
    expect(perLayer).toEqual([perLayer[0], perLayer[0], perLayer[0]]);
    expect(names).not.toContain('layers.3/attn/q_proj/MatMul');
    expect(names).toEqual(expect.arrayContaining(['layers.2/attn/q_proj/MatMul', 'logits/Cast']));
    // tied embeddings: lm_head reads the embedding table
    expect(names).toContain('lm_head/MatMul');
  });
});
