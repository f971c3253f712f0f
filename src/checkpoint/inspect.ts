// What `evomerge inspect` reports about a model folder: counts read from the validated headers only
// (no tensor data is read).
import { openModelDir } from './model-dir.ts';
import { DTYPE_BYTES, numel, type DType } from './tensor-source.ts';

export interface ModelSummary {
  dir: string;
  tensorCount: number;
  parameterCount: number;
  /** Number of tensors stored in each dtype. */
  dtypes: Record<DType, number>;
  /** Transformer blocks: 1 + the highest `layers.N` / `h.N` / `blocks.N` index (else config num_hidden_layers). */
  layerCount: number;
  /** Bytes of tensor data (headers excluded). */
  totalBytes: number;
  /** Number of safetensors files. */
  shards: number;
  /** config.json `model_type` and `torch_dtype`, when present. */
  modelType?: string;
  torchDtype?: string;
}

const LAYER_INDEX = /(?:^|\.)(?:layers|h|blocks)\.(\d+)\./;

/** Summarises a model folder from its config and safetensors headers. */
export function inspectModel(dir: string): ModelSummary {
  const m = openModelDir(dir);
  try {
    const dtypes: Record<DType, number> = { F32: 0, F16: 0, BF16: 0 };
    let parameterCount = 0;
    let totalBytes = 0;
    let maxLayer = -1;
    const names = m.tensors.tensorNames();
    for (const name of names) {
      const info = m.tensors.tensorInfo(name);
      const n = numel(info.shape);
      dtypes[info.dtype]++;
      parameterCount += n;
      totalBytes += n * DTYPE_BYTES[info.dtype];
      const layer = LAYER_INDEX.exec(name);
      if (layer) maxLayer = Math.max(maxLayer, Number(layer[1]));
    }
    const configLayers = m.config.num_hidden_layers;
    const summary: ModelSummary = {
      dir,
      tensorCount: names.length,
      parameterCount,
      dtypes,
      layerCount: maxLayer >= 0 ? maxLayer + 1 : typeof configLayers === 'number' ? configLayers : 0,
      totalBytes,
      shards: m.files.length,
    };
    if (typeof m.config.model_type === 'string') summary.modelType = m.config.model_type;
    if (typeof m.config.torch_dtype === 'string') summary.torchDtype = m.config.torch_dtype;
    return summary;
  } finally {
    m.close();
  }
}
