// `graph: auto`: the decoder graph built from the base model folder (config.json checked, every tensor the
// graph reads checked against the shape the config implies), bound by name to the checkpoint's tensors, and
// the tokenizer.json beside it. What the evaluator needs in place of a user-exported model.onnx.
import { existsSync } from 'node:fs';
import path, { join } from 'node:path';
import { EvomergeError } from '../../errors.ts';
import type { TensorSource } from '../../checkpoint/tensor-source.ts';
import type { Binding } from '../bind.ts';
import { OnnxGraph, type ExecutionProvider } from '../onnx-session.ts';
import { LAYER_INPUT_SCALES_KEY, parseDecoderConfig, type DecoderConfig, type LayerSlot } from './decoder-config.ts';
import { buildDecoderGraph, checkCheckpointShapes, type OpSet } from './decoder-graph.ts';

export interface AutoGraph {
  readonly graph: OnnxGraph;
  readonly binding: Binding;
  readonly config: DecoderConfig;
  readonly layerPath: readonly number[];
  readonly slots: readonly LayerSlot[];
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
  options: { ep: ExecutionProvider; layerPath?: readonly number[]; slots?: readonly LayerSlot[] },
): AutoGraph {
  const configFile = join(baseDir, 'config.json');
  const parsed = parseDecoderConfig(config, configFile);
  const built = buildDecoderGraph(parsed, {
    opSet: opSetFor(options.ep),
    ...(options.layerPath ? { layerPath: options.layerPath } : {}),
    ...(options.slots ? { slots: options.slots } : {}),
  });
  checkCheckpointShapes(parsed, built.weights, base);
  const entries = built.weights.map((w) => ({
    initializer: w.name,
    tensor: w.name,
    transpose: false,
    dims: [...w.shape],
  }));
  return {
    graph: OnnxGraph.fromModel(built.model, configFile),
    binding: { entries, byContent: 0 },
    config: parsed,
    layerPath: built.layerPath,
    slots: built.slots,
  };
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
