// A data-flow candidate as a release: a checkpoint folder whose layers follow the path (layer k of the output
// is the k-th step's layer of A or B; embeddings, final norm and lm_head from A), config.json with
// num_hidden_layers = the path's length and, when a hop is scaled, `evomerge_layer_input_scales` (entry k
// multiplies the hidden state entering layer k; `evomerge eval` with graph: auto applies it), an ONNX graph
// that applies the scales, and the path itself (data_flow.yaml). When every scale is 1 the model is a plain
// layer splice, and recipe.yaml holds the mergekit `passthrough` slices that rebuild it.
import path from 'node:path';
import YAML from 'yaml';
import { CheckpointWriter, openModelDir, type ModelDir } from '../checkpoint/model-dir.ts';
import type { InputPath } from '../checkpoint/paths.ts';
import type { DType } from '../checkpoint/tensor-source.ts';
import { LAYER_INPUT_SCALES_KEY } from '../graph/decoder-config.ts';
import { writeDecoderOnnx } from '../graph/export-graph.ts';
import { dataFlowRecipe, type DataFlowPath } from '../search/space/data-flow.ts';
import type { RecipeDoc } from '../search/space/recipe-doc.ts';

const LAYER = /^model\.layers\.(\d+)\.(.*)$/;

/** The mergekit passthrough recipe of an unscaled path: one slice per run of consecutive layers of one model. */
export function passthroughRecipe(flow: DataFlowPath, relativeTo: string): RecipeDoc | undefined {
  if (flow.path.some((s) => s.scale !== 1)) return undefined;
  const slices: { model: number; from: number; to: number }[] = [];
  for (const s of flow.path) {
    const last = slices[slices.length - 1];
    if (last && last.model === s.model && last.to === s.layer) last.to++;
    else slices.push({ model: s.model, from: s.layer, to: s.layer + 1 });
  }
  const rel = (dir: string) => path.relative(relativeTo, dir).split(path.sep).join('/');
  return {
    merge_method: 'passthrough',
    dtype: 'float32',
    slices: slices.map((s) => ({ sources: [{ model: rel(flow.models[s.model]!), layer_range: [s.from, s.to] }] })),
  };
}

export interface DataFlowExportOptions {
  readonly outDir: string;
  readonly force: boolean;
  readonly inputs: readonly InputPath[];
  /** Written beside the checkpoint (scores.json). */
  readonly extraFiles: Readonly<Record<string, string>>;
  /** A header line for data_flow.yaml and recipe.yaml. */
  readonly note: string;
}

/** Writes the path's checkpoint, config, ONNX graph, data_flow.yaml and (unscaled) recipe.yaml; one rename. */
export function writeDataFlowExport(flow: DataFlowPath, options: DataFlowExportOptions): void {
  const models = flow.models.map((dir) => openModelDir(dir));
  try {
    const A = models[0]!;
    const entries: { name: string; from: string; model: ModelDir }[] = [];
    const outer = A.tensors.tensorNames().filter((n) => !LAYER.test(n));
    // embeddings first, the path's layers in order, then A's other non-layer tensors (final norm, lm_head)
    for (const n of outer.filter((n) => n.includes('embed'))) entries.push({ name: n, from: n, model: A });
    flow.path.forEach((step, k) => {
      const m = models[step.model]!;
      for (const n of m.tensors.tensorNames()) {
        const match = LAYER.exec(n);
        if (match && Number(match[1]) === step.layer)
          entries.push({ name: `model.layers.${k}.${match[2]}`, from: n, model: m });
      }
    });
    for (const n of outer.filter((n) => !n.includes('embed'))) entries.push({ name: n, from: n, model: A });
    const plan = entries.map((e) => ({ name: e.name, shape: [...e.model.tensors.tensorInfo(e.from).shape] }));
    const scaled = flow.path.some((s) => s.scale !== 1);
    const config = {
      ...A.config,
      num_hidden_layers: flow.path.length,
      ...(scaled ? { [LAYER_INPUT_SCALES_KEY]: flow.path.map((s) => s.scale) } : {}),
    };
    const outDir = path.resolve(options.outDir);
    const relDoc = dataFlowRecipe(
      flow.models.map((m) => path.relative(outDir, m).split(path.sep).join('/')),
      flow.path,
    );
    const recipe = passthroughRecipe(flow, outDir);
    const extraFiles: Record<string, string> = {
      ...options.extraFiles,
      'data_flow.yaml':
        `# ${options.note}: the path through A's and B's layers (model 0 = A, 1 = B; folders relative to this ` +
        `one); layer k of this checkpoint is step k, its input hidden state times scale\n${YAML.stringify(relDoc)}`,
      ...(recipe
        ? {
            'recipe.yaml':
              `# ${options.note}; every scale is 1, so mergekit's passthrough rebuilds this checkpoint: evomerge ` +
              `merge recipe.yaml -o <dir>\n${YAML.stringify(recipe)}`,
          }
        : {}),
    };
    const writer = new CheckpointWriter({
      outDir: options.outDir,
      dtype: A.tensors.tensorInfo(entries[0]!.from).dtype as DType,
      shardSizeBytes: 5e9,
      plan,
      config,
      copyFilesFrom: A.dir,
      force: options.force,
      inputs: options.inputs,
      extraFiles,
      beforePublish: (tmpDir) => writeDecoderOnnx(tmpDir),
    });
    try {
      for (const e of entries) writer.writeTensor(e.name, e.model.tensors.readTensor(e.from));
      writer.finish();
    } catch (err) {
      writer.abort();
      throw err;
    }
  } finally {
    for (const m of models) m.close();
  }
}
