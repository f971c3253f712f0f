// `graph: auto`: the decoder graph built from the base model folder (config.json checked, every tensor the
// graph reads checked against the shape the config implies), bound by name to the checkpoint's tensors, and
// the tokenizer.json beside it. What the evaluator needs in place of a user-exported model.onnx.
import { existsSync } from 'node:fs';
import path, { join } from 'node:path';
import { EvomergeError } from '../errors.ts';
import type { TensorSource } from '../checkpoint/tensor-source.ts';
import type { Binding } from './bind.ts';
import { FeedSet, GraphSession, type ExecutionProvider, type WeightMode } from './onnx-session.ts';
import { OnnxGraph } from '../graph/onnx-graph.ts';
import type { ComputeDtypeChoice } from './suite.ts';
import {
  LAYER_INPUT_SCALES_KEY,
  parseDecoderConfig,
  type DecoderConfig,
  type LayerSlot,
} from '../graph/decoder-config.ts';
import { buildDecoderGraph, checkCheckpointShapes, type ComputeDtype, type OpSet } from '../graph/decoder-graph.ts';
import { checkConfigFitsCheckpoint } from '../graph/config-bounds.ts';

export interface AutoGraph {
  readonly graph: OnnxGraph;
  readonly binding: Binding;
  readonly config: DecoderConfig;
  readonly layerPath: readonly number[];
  readonly slots: readonly LayerSlot[];
  readonly computeDtype: ComputeDtype;
}

/** ONNX Runtime's fused CPU kernels on the CPU provider; standard ops on the others. */
export function opSetFor(ep: ExecutionProvider): OpSet {
  return ep === 'cpu' ? 'cpu' : 'plain';
}

/** Builds the graph of `baseDir`'s config.json; `base` holds every tensor it reads (for slots over several
 *  models, a SlotTensors of them all), checked against the shapes the config implies. */
export function buildAutoGraph(
  baseDir: string,
  config: Record<string, unknown>,
  base: TensorSource,
  options: {
    ep: ExecutionProvider;
    layerPath?: readonly number[];
    slots?: readonly LayerSlot[];
    computeDtype?: ComputeDtype;
  },
): AutoGraph {
  const configFile = join(baseDir, 'config.json');
  const parsed = parseDecoderConfig(config, configFile);
  checkConfigFitsCheckpoint(parsed, base);
  const computeDtype = options.computeDtype ?? 'f32';
  const built = buildDecoderGraph(parsed, {
    opSet: opSetFor(options.ep),
    computeDtype,
    pack: true,
    logitPositions: true,
    ...(options.layerPath ? { layerPath: options.layerPath } : {}),
    ...(options.slots ? { slots: options.slots } : {}),
  });
  checkCheckpointShapes(parsed, built.weights, base);
  // a packed q/k/v or gate/up initializer is filled from its parts, copied once per candidate (bindWeights)
  const entries = built.initializers.map((i) => ({
    initializer: i.name,
    tensor: i.parts[0]!.name,
    transpose: false,
    dims: [...i.shape],
    ...(i.parts.length > 1 ? { parts: i.parts.map((p) => ({ tensor: p.name, dims: [...p.shape] })) } : {}),
  }));
  return {
    graph: OnnxGraph.fromModel(built.model, configFile),
    binding: { entries, byContent: 0 },
    config: parsed,
    layerPath: built.layerPath,
    slots: built.slots,
    computeDtype,
  };
}

/** The dtype a built graph computes in, and why (one line). */
export interface ComputeDtypeDecision {
  readonly dtype: ComputeDtype;
  readonly reason: string;
}

/**
 * float16 compute where it helps and runs: on a GPU provider, for a checkpoint stored in 16 bits (every tensor
 * the graph reads is F16 or BF16: float16 then costs the rounding of bf16 mantissas, not of float32 ones), with
 * the weights built into the session (float16 weights cannot be fed as the float32 arrays 'inputs' passes), and
 * when a one-layer float16 decoder runs on the provider (float16Failure). Otherwise float32. `f16` forces it
 * where it can run at all and says in one line why not elsewhere; `f32` always computes in float32.
 */
export async function chooseComputeDtype(
  choice: ComputeDtypeChoice,
  at: { file?: string; field: string },
  ctx: {
    ep: ExecutionProvider;
    weightMode: WeightMode;
    baseDir: string;
    config: Record<string, unknown>;
    base: TensorSource;
    threads?: number;
  },
): Promise<ComputeDtypeDecision> {
  if (choice === 'f32') return { dtype: 'f32', reason: `float32 (${at.field}: f32)` };
  const refuse = (what: string): never => {
    throw new EvomergeError('eval.compute_dtype', what, { ...(at.file ? { file: at.file } : {}), field: at.field });
  };
  const fallback = (why: string): ComputeDtypeDecision | never =>
    choice === 'f16' ? refuse(`float16 cannot be used: ${why}`) : { dtype: 'f32', reason: `float32: ${why}` };
  if (ctx.ep === 'cpu') return fallback('the CPU provider computes in float32 (float16 needs --ep webgpu or cuda)');
  if (ctx.weightMode === 'inputs')
    return fallback('weight mode inputs feeds float32 arrays; float16 weights are built into the session (external)');
  const parsed = parseDecoderConfig(ctx.config, join(ctx.baseDir, 'config.json'));
  checkConfigFitsCheckpoint(parsed, ctx.base);
  const stored = new Set(
    buildDecoderGraph(parsed, { opSet: 'plain' }).weights.map((w) => ctx.base.tensorInfo(w.name).dtype),
  );
  if (choice === 'auto' && stored.has('F32'))
    return { dtype: 'f32', reason: `float32: ${ctx.baseDir} is stored in float32` };
  const failure = await float16Failure(ctx.ep, ctx.threads);
  if (failure) return fallback(failure);
  return { dtype: 'f16', reason: `float16 on ${ctx.ep} (${ctx.baseDir} stored in ${[...stored].join(', ')})` };
}

const probes = new Map<ExecutionProvider, Promise<string | undefined>>();

/** Most a float16 logit of the probe may differ from float32 (its logits are of order 1). */
const PROBE_TOLERANCE = 0.05;

/**
 * Whether a float16 decoder graph runs on `ep` here: a one-layer Llama (prefill of 3 tokens and one cached
 * step) built in float16 and run on `ep`, against the same weights in float32 on the CPU. Undefined when it
 * runs and agrees; else what fails, in one line. Once per provider and process.
 */
export function float16Failure(ep: ExecutionProvider, threads?: number): Promise<string | undefined> {
  let probe = probes.get(ep);
  if (!probe) {
    probe = runFloat16Probe(ep, threads);
    probes.set(ep, probe);
  }
  return probe;
}

async function runFloat16Probe(ep: ExecutionProvider, threads?: number): Promise<string | undefined> {
  const config = parseDecoderConfig(
    {
      architectures: ['LlamaForCausalLM'],
      vocab_size: 32,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      hidden_act: 'silu',
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      max_position_embeddings: 16,
    },
    '<float16 probe>',
  );
  const run = async (dtype: ComputeDtype, on: ExecutionProvider): Promise<Float32Array[]> => {
    const built = buildDecoderGraph(config, { opSet: 'plain', computeDtype: dtype });
    const feeds = new FeedSet();
    built.weights.forEach((w, k) => {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = w.shape.length === 1 ? 1 : 0.3 * Math.sin(0.37 * i + k);
      feeds.set(w.name, data, w.shape);
    });
    const graph = OnnxGraph.fromModel(built.model, '<float16 probe>');
    const session = await GraphSession.createWithExternalWeights(graph, feeds, {
      ep: on,
      ...(threads ? { intraOpThreads: threads } : {}),
    });
    try {
      const first = await session.forwardWithCache(Int32Array.of(1, 5, 9), 1, 3, undefined);
      const next = await session.forwardWithCache(Int32Array.of(7), 1, 1, first.cache);
      return [first.logits.data, next.logits.data];
    } finally {
      await session.close();
    }
  };
  let got: Float32Array[];
  try {
    got = await run('f16', ep);
  } catch (err) {
    return `a float16 graph does not run on ${ep} here (${(err as Error).message})`;
  }
  const want = await run('f32', 'cpu');
  let worst = 0;
  got.forEach((g, k) => g.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - want[k]![i]!)))));
  if (!(worst <= PROBE_TOLERANCE))
    return `float16 logits on ${ep} differ from float32 by ${worst} (more than ${PROBE_TOLERANCE})`;
  return undefined;
}

/** The base model's tokenizer.json, which a built graph needs (there is no graph export to carry one). */
export function baseTokenizerFile(baseDir: string, suiteFile: string): string {
  const file = join(baseDir, 'tokenizer.json');
  if (!existsSync(file)) {
    throw new EvomergeError(
      'eval.no_tokenizer',
      `missing: the graph is built from ${baseDir}, whose tokenizer.json the suite's tokenizer: auto reads (or set ` +
        `tokenizer: in ${suiteFile})`,
      { file, field: 'tokenizer' },
    );
  }
  return file;
}

/**
 * The folder a graph must be built (graph: auto) or bound against to score `modelDir`: the suite's base model,
 * unless the model's layers differ from the base's — another layer count, or per-layer input scales (a
 * data-flow export) — when only its own config.json describes it. Then an exported graph of the base would
 * score the wrong model: refused in one line, unless the graph is auto or lies in the model's folder.
 */
export function graphBaseFor(
  modelDir: string,
  modelConfig: Readonly<Record<string, unknown>>,
  baseDir: string | undefined,
  baseConfig: Readonly<Record<string, unknown>> | undefined,
  graph: string,
): string | undefined {
  const own =
    modelConfig[LAYER_INPUT_SCALES_KEY] !== undefined ||
    (baseConfig !== undefined && modelConfig.num_hidden_layers !== baseConfig.num_hidden_layers);
  if (!own) return baseDir;
  const inside =
    graph !== 'auto' && path.relative(path.resolve(modelDir), path.resolve(graph)).split(path.sep)[0] !== '..';
  if (graph === 'auto' || inside) return modelDir;
  throw new EvomergeError(
    'eval.graph_mismatch',
    `this model's layers differ from the base model's (${String(modelConfig.num_hidden_layers)} layers` +
      `${modelConfig[LAYER_INPUT_SCALES_KEY] !== undefined ? ', with layer input scales' : ''}), so the graph ${graph} ` +
      `does not describe it; use --graph auto or the model.onnx in its folder`,
    { file: path.join(modelDir, 'config.json'), field: 'num_hidden_layers' },
  );
}
