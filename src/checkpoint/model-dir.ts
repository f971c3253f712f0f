// A Hugging Face model folder: reading (config.json + model.safetensors or an index of shards) and writing
// (streamed shards under a temporary name, config and tokenizer files, one rename when complete).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EvomergeError } from '../errors.ts';
import { SafetensorsFile } from './safetensors.ts';
import { INDEX_FILE, ShardedTensors } from './sharded.ts';
import type { TensorSource } from './tensor-source.ts';

export const SINGLE_FILE = 'model.safetensors';
export const CONFIG_FILE = 'config.json';

/** An opened model folder; `tensors` reads lazily, one tensor at a time. */
export interface ModelDir {
  readonly dir: string;
  readonly config: Record<string, unknown>;
  readonly tensors: TensorSource;
  /** The safetensors files behind `tensors` (one, or the shards in index order). */
  readonly files: readonly SafetensorsFile[];
  close(): void;
}

/**
 * Opens a Hugging Face model folder: `config.json` is required; weights come from `model.safetensors`, or
 * else from `model.safetensors.index.json` and its shards (transformers' own order of preference). Every
 * header is validated here, before any tensor is read.
 */
export function openModelDir(dir: string): ModelDir {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new EvomergeError('checkpoint.not_found', 'model folder not found', { file: dir });
  }
  if (!st.isDirectory()) throw new EvomergeError('checkpoint.not_found', 'not a folder; expected a Hugging Face model folder', { file: dir });
  const config = readConfig(dir);
  const single = path.join(dir, SINGLE_FILE);
  const index = path.join(dir, INDEX_FILE);
  if (fs.existsSync(single)) {
    const file = SafetensorsFile.open(single);
    return { dir, config, tensors: file, files: [file], close: () => file.close() };
  }
  if (fs.existsSync(index)) {
    const sharded = ShardedTensors.open(index);
    return { dir, config, tensors: sharded, files: sharded.shards, close: () => sharded.close() };
  }
  throw new EvomergeError('checkpoint.no_weights', `no ${SINGLE_FILE} or ${INDEX_FILE} in this folder`, { file: dir });
}

/** config.json of a model folder, parsed; a missing or unparseable file is a checkpoint.no_config error. */
export function readConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new EvomergeError('checkpoint.no_config', 'config.json is missing; a model folder needs its Hugging Face config', { file });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new EvomergeError('checkpoint.no_config', `config.json is not valid JSON (${(err as Error).message})`, { file });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new EvomergeError('checkpoint.no_config', 'config.json is not a JSON object', { file });
  }
  return parsed as Record<string, unknown>;
}
