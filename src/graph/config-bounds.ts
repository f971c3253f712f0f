// config.json against the checkpoint it describes, checked before any graph is built: every size the graph
// allocates by (layers, hidden, heads × head_dim, intermediate, vocab) is then bounded by tensors that exist,
// so a config.json with num_hidden_layers: 1e6 or a huge hidden_size is refused in one line instead of building
// for minutes. The layers must agree exactly: a config.json with fewer layers than the checkpoint would score a
// truncated model, with more it names tensors that do not exist, and a layer tensor the graph does not read (a
// bias the config's attention_bias / mlp_bias leaves out) would score another model than the checkpoint's.
import { EvomergeError } from '../errors.ts';
import { layerWeights, outerWeights, type DecoderConfig } from './decoder-config.ts';
import { checkCheckpointShapes } from './decoder-graph.ts';

/** What the check reads of a checkpoint (a TensorSource; for several models, model 0's unprefixed names). */
export interface CheckpointTensors {
  readonly location: string;
  tensorNames(): string[];
  hasTensor(name: string): boolean;
  tensorInfo(name: string): { shape: readonly number[] };
}

/** Buffers transformers saves with some Llama checkpoints, which no graph reads and which change nothing. */
const IGNORED_LAYER_TENSORS = new Set(['self_attn.rotary_emb.inv_freq']);

const LAYER_TENSOR = /^model\.layers\.(\d+)\.(.+)$/;

/** Refuses, in one line, a config.json that does not describe `checkpoint` layer for layer and tensor for tensor. */
export function checkConfigFitsCheckpoint(c: DecoderConfig, checkpoint: CheckpointTensors): void {
  const names = checkpoint.tensorNames();
  let stored = 0;
  for (const name of names) {
    const m = LAYER_TENSOR.exec(name);
    if (m) stored = Math.max(stored, Number(m[1]) + 1);
  }
  if (c.layers !== stored) {
    const held = `model.layers.0..${stored - 1}`;
    const left = stored - c.layers === 1 ? `layer ${c.layers}` : `layers ${c.layers}..${stored - 1}`;
    const what =
      c.layers < stored
        ? `${c.layers} but ${checkpoint.location} holds ${stored} layers (${held}): ${left} would be left out, ` +
          'scoring a truncated model'
        : `${c.layers} but ${checkpoint.location} holds ${stored === 0 ? 'no layers' : `only ${stored} layers (${held})`}`;
    throw new EvomergeError('graph.layer_count', what, { file: c.file, field: 'num_hidden_layers' });
  }
  const wanted = outerWeights(c);
  for (let l = 0; l < c.layers; l++) wanted.push(...layerWeights(c, l));
  checkCheckpointShapes(c, wanted, checkpoint);
  const read = new Set(wanted.map((w) => w.name));
  for (const name of names) {
    const m = LAYER_TENSOR.exec(name);
    if (!m || read.has(name) || IGNORED_LAYER_TENSORS.has(m[2]!)) continue;
    const key = /\.(q|k|v|o)_proj\.bias$/.test(name)
      ? ' (attention_bias?)'
      : /^mlp\..*\.bias$/.test(m[2]!)
        ? ' (mlp_bias?)'
        : '';
    throw new EvomergeError(
      'graph.unused_tensor',
      `the checkpoint holds this tensor, which ${c.family} with ${c.file} does not read${key}: the graph would ` +
        `score another model than this checkpoint`,
      { file: checkpoint.location, field: `tensor "${name}"` },
    );
  }
}
