// Sharded checkpoints: `model.safetensors.index.json` ({metadata: {total_size}, weight_map}) parsed and
// checked against its shards, one TensorSource over all of them; and the index the writer emits.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EvomergeError } from '../errors.ts';
import { checkModelFile } from './paths.ts';
import { SafetensorsFile } from './safetensors.ts';
import type { Tensor, TensorInfo, TensorSource } from './tensor-source.ts';

export const INDEX_FILE = 'model.safetensors.index.json';

/** Shard file name as transformers writes it: `model-00001-of-00003.safetensors`. */
export function shardFileName(index: number, count: number): string {
  const w = Math.max(5, String(count).length);
  return `model-${String(index + 1).padStart(w, '0')}-of-${String(count).padStart(w, '0')}.safetensors`;
}

/** The index.json text for shards holding `weightMap` (tensor → shard file), with its total data size. */
export function encodeIndex(totalSize: number, weightMap: Record<string, string>): string {
  return JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n';
}

/** Tensors spread over several safetensors files, found through the index's weight_map. */
export class ShardedTensors implements TensorSource {
  readonly location: string;
  readonly shards: readonly SafetensorsFile[];
  private readonly byName: Map<string, SafetensorsFile>;
  private readonly order: string[];

  private constructor(location: string, shards: SafetensorsFile[], byName: Map<string, SafetensorsFile>) {
    this.location = location;
    this.shards = shards;
    this.byName = byName;
    this.order = shards.flatMap((s) => s.tensorNames());
  }

  /**
   * Opens every shard the index names (each header validated) and checks the index against them: each
   * tensor lives in exactly one shard, and it is the shard the weight_map says.
   */
  static open(indexPath: string): ShardedTensors {
    const dir = path.dirname(indexPath);
    const weightMap = parseIndex(indexPath);
    const shardNames = [...new Set(Object.values(weightMap))];
    const shards: SafetensorsFile[] = [];
    try {
      for (const shardName of shardNames) {
        const shardPath = path.join(dir, shardName);
        if (!fs.existsSync(shardPath)) {
          const first = Object.keys(weightMap).find((t) => weightMap[t] === shardName)!;
          throw new EvomergeError(
            'checkpoint.missing_shard',
            `shard "${shardName}" named in weight_map is missing (${shardPath})`,
            { file: indexPath, field: `weight_map["${first}"]` },
          );
        }
        checkModelFile(dir, shardPath, `weight_map shard "${shardName}"`);
        shards.push(SafetensorsFile.open(shardPath));
      }
      const byName = new Map<string, SafetensorsFile>();
      for (const shard of shards) {
        for (const t of shard.tensorNames()) {
          const other = byName.get(t);
          if (other) {
            throw new EvomergeError(
              'checkpoint.duplicate_tensor',
              `tensor is stored in two shards: ${path.basename(other.location)} and ${path.basename(shard.location)}`,
              { file: indexPath, field: `tensor "${t}"` },
            );
          }
          byName.set(t, shard);
        }
      }
      for (const [t, shardName] of Object.entries(weightMap)) {
        const holder = byName.get(t);
        if (!holder) {
          throw new EvomergeError(
            'checkpoint.missing_tensor',
            `tensor is in weight_map but not in its shard "${shardName}"`,
            {
              file: indexPath,
              field: `tensor "${t}"`,
            },
          );
        }
        if (path.basename(holder.location) !== shardName) {
          throw new EvomergeError(
            'checkpoint.bad_index',
            `weight_map says shard "${shardName}" but the tensor is in "${path.basename(holder.location)}"`,
            { file: indexPath, field: `tensor "${t}"` },
          );
        }
      }
      for (const [t, holder] of byName) {
        if (!(t in weightMap)) {
          throw new EvomergeError(
            'checkpoint.bad_index',
            `tensor is in shard "${path.basename(holder.location)}" but not in weight_map`,
            { file: indexPath, field: `tensor "${t}"` },
          );
        }
      }
      return new ShardedTensors(dir, shards, byName);
    } catch (err) {
      for (const s of shards) s.close();
      throw err;
    }
  }

  tensorNames(): string[] {
    return [...this.order];
  }

  hasTensor(name: string): boolean {
    return this.byName.has(name);
  }

  /** The shard file holding a tensor. */
  shardOf(name: string): SafetensorsFile {
    const s = this.byName.get(name);
    if (!s)
      throw new EvomergeError('checkpoint.missing_tensor', 'no such tensor in this checkpoint', {
        file: this.location,
        field: `tensor "${name}"`,
      });
    return s;
  }

  tensorInfo(name: string): TensorInfo {
    return this.shardOf(name).tensorInfo(name);
  }

  readTensor(name: string): Tensor {
    return this.shardOf(name).readTensor(name);
  }

  readTensorInto(name: string, out: Float32Array): void {
    this.shardOf(name).readTensorInto(name, out);
  }

  readStoredInto(name: string, dest: Uint8Array): void {
    this.shardOf(name).readStoredInto(name, dest);
  }

  readTensorBytes(name: string): Uint8Array {
    return this.shardOf(name).readTensorBytes(name);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}

/** index.json → weight_map (tensor → shard file name), validated: plain file names inside the folder. */
function parseIndex(indexPath: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (err) {
    throw new EvomergeError('checkpoint.bad_index', `cannot parse JSON (${(err as Error).message})`, {
      file: indexPath,
    });
  }
  const wm = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new EvomergeError('checkpoint.bad_index', 'weight_map is missing or not an object', {
      file: indexPath,
      field: 'weight_map',
    });
  }
  const out: Record<string, string> = {};
  for (const [t, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (
      typeof shard !== 'string' ||
      shard === '' ||
      shard !== path.basename(shard) ||
      shard === '.' ||
      shard === '..'
    ) {
      throw new EvomergeError(
        'checkpoint.bad_index',
        `shard ${JSON.stringify(shard)} is not a file name in this folder`,
        {
          file: indexPath,
          field: `weight_map["${t}"]`,
        },
      );
    }
    out[t] = shard;
  }
  return out;
}
