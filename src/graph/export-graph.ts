// The ONNX graph of a model folder as a file beside it: the decoder graph evomerge builds from the folder's
// config.json (standard ops, so any ONNX runtime runs it; the layer input scales of a data-flow export applied),
// its weights in an external data file, so a model of any size fits.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { openModelDir } from '../checkpoint/model-dir.ts';
import { OnnxGraph } from './onnx-graph.ts';
import { writeWeightFile } from './weight-file.ts';
import { parseDecoderConfig } from './decoder-config.ts';
import { buildDecoderGraph, checkCheckpointShapes } from './decoder-graph.ts';
import { checkConfigFitsCheckpoint } from './config-bounds.ts';

export const EXPORTED_GRAPH = 'model.onnx';
export const EXPORTED_GRAPH_DATA = 'model.onnx.data';

/** Writes `dir`/model.onnx and model.onnx.data for the checkpoint in `dir`. */
export function writeDecoderOnnx(dir: string): void {
  const model = openModelDir(dir);
  try {
    const configFile = path.join(dir, 'config.json');
    const config = parseDecoderConfig(model.config, configFile);
    checkConfigFitsCheckpoint(config, model.tensors);
    const built = buildDecoderGraph(config, { opSet: 'plain' });
    checkCheckpointShapes(config, built.weights, model.tensors);
    const arrays = new Map(built.weights.map((w) => [w.name, model.tensors.readTensor(w.name).data]));
    const offsets = writeWeightFile(path.join(dir, EXPORTED_GRAPH_DATA), arrays);
    const graph = OnnxGraph.fromModel(built.model, configFile);
    writeFileSync(path.join(dir, EXPORTED_GRAPH), graph.bytesWithExternalWeights(EXPORTED_GRAPH_DATA, offsets));
  } finally {
    model.close();
  }
}
