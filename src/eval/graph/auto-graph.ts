// `graph: auto`: the decoder graph built from the base model folder (config.json checked, every tensor the
// graph reads checked against the shape the config implies), bound by name to the checkpoint's tensors, and
// the tokenizer.json beside it. What the evaluator needs in place of a user-exported model.onnx.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { EvomergeError } from '../../errors.ts';
import type { TensorSource } from '../../checkpoint/tensor-source.ts';
import type { Binding } from '../bind.ts';
import { OnnxGraph, type ExecutionProvider } from '../onnx-session.ts';
import { parseDecoderConfig, type DecoderConfig, type LayerSlot } from './decoder-config.ts';
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
