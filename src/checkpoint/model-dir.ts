// A Hugging Face model folder: reading (config.json + model.safetensors or an index of shards) and writing
// (streamed shards under a temporary name, config and tokenizer files, one rename when complete).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EvomergeError, invariant, type ErrorPlace } from '../errors.ts';
import { encodeFromF32, HOST_LE, torchDTypeName } from './dtype.ts';
import { SafetensorsFile, encodeHeader } from './safetensors.ts';
import { INDEX_FILE, ShardedTensors, encodeIndex, shardFileName } from './sharded.ts';
import { makeFolder } from '../folders.ts';
import { checkModelFile, checkOutputAvoidsInputs, checkOutputReplaceable, type InputPath } from './paths.ts';
import { DTYPE_BYTES, numel, type DType, type Tensor, type TensorSink, type TensorSource } from './tensor-source.ts';

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
  if (!st.isDirectory())
    throw new EvomergeError('checkpoint.not_found', 'not a folder; expected a Hugging Face model folder', {
      file: dir,
    });
  const config = readConfig(dir);
  const single = path.join(dir, SINGLE_FILE);
  const index = path.join(dir, INDEX_FILE);
  checkModelFile(dir, single);
  checkModelFile(dir, index);
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
  checkModelFile(dir, file);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new EvomergeError(
      'checkpoint.no_config',
      'config.json is missing; a model folder needs its Hugging Face config',
      { file },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new EvomergeError('checkpoint.no_config', `config.json is not valid JSON (${(err as Error).message})`, {
      file,
    });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new EvomergeError('checkpoint.no_config', 'config.json is not a JSON object', { file });
  }
  return parsed as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------------------
// Writing

/** One tensor the writer will receive, in order. */
export interface CheckpointPlanEntry {
  name: string;
  shape: readonly number[];
}

export interface CheckpointWriterOptions {
  outDir: string;
  /** Storage dtype of every tensor written (F16/BF16 rounded to nearest even). */
  dtype: DType;
  /** A shard is closed before a tensor that would take it past this many bytes of tensor data. */
  shardSizeBytes: number;
  /** Every tensor, in the order writeTensor will receive them. */
  plan: CheckpointPlanEntry[];
  /** config.json to write; `torch_dtype` is set from `dtype`. */
  config: Record<string, unknown>;
  /** A model folder whose tokenizer and generation files are copied (tokenizer*, generation_config.json, …). */
  copyFilesFrom?: string;
  /**
   * The tokenizer files, when they are not simply the copyFilesFrom folder's (a merged vocabulary): the named
   * files of `from` are copied and `write` (name → text) written; copyFilesFrom then gives only the other files.
   */
  tokenizer?: {
    readonly from: string;
    readonly copy: readonly string[];
    readonly write: Readonly<Record<string, string>>;
  };
  /** Extra `__metadata__` entries for every shard header (`format: pt` is always there). */
  metadata?: Record<string, string>;
  /** Replace an existing non-empty output folder (one holding only files evomerge writes); default false. */
  force?: boolean;
  /** What the command reads besides `copyFilesFrom` (the models, a recipe, a graph…): the output may not be,
   *  hold or lie inside any of them, whatever `force` says. */
  inputs?: readonly InputPath[];
  /** Small text files (name → content) written beside the checkpoint before the rename (export's recipe). */
  extraFiles?: Readonly<Record<string, string>>;
  /** Called with the temporary folder once the checkpoint, config.json and extra files are in it, before the
   *  rename: files it writes there (an ONNX graph of the checkpoint) are published with the rest. */
  beforePublish?: (tmpDir: string) => void;
}

/** Files copied from the base model folder: tokenizers (HF and the zoo's byte tokenizer) and generation settings. */
const COPIED_FILE = new RegExp(
  '^(tokenizer.*|special_tokens_map\\.json|generation_config\\.json|byte_tokenizer\\.json|added_tokens\\.json|' +
    'vocab\\.(json|txt)|merges\\.txt|chat_template\\.(json|jinja))$',
);

/** Whether a file name is one of a tokenizer's files (those copied, generation_config.json excepted). */
export function isTokenizerFile(name: string): boolean {
  return COPIED_FILE.test(name) && name !== 'generation_config.json';
}
/** Files a previous evomerge output may hold (export adds its recipe and scores): only such a folder (or an
 *  empty one) is ever replaced. */
const OUTPUT_FILE = new RegExp(
  '^(config\\.json|model\\.safetensors|model\\.safetensors\\.index\\.json|model-\\d+-of-\\d+\\.safetensors|recipe\\.yaml|' +
    'scores\\.json|data_flow\\.yaml|model\\.onnx|model\\.onnx\\.data)$',
);

/** Whether a file name is one an evomerge checkpoint folder holds. */
export function isCheckpointOutputFile(name: string): boolean {
  return OUTPUT_FILE.test(name) || COPIED_FILE.test(name);
}

interface PlannedShard {
  file: string;
  entries: { name: string; shape: readonly number[] }[];
  dataBytes: number;
}

/**
 * Streams a checkpoint to disk: shard headers are computed from the plan up front, each tensor is encoded
 * and written straight to its shard as it arrives (in plan order), so nothing beyond one tensor is held.
 * Everything goes to `<outDir>.evomerge-tmp-<pid>`, renamed to `outDir` by finish(); abort(), a thrown
 * error inside the writer, or process exit before finish() removes the temporary folder.
 */
export class CheckpointWriter implements TensorSink {
  /** Each tensor is encoded and written before writeTensor returns: callers may reuse their arrays. */
  readonly retainsTensors = false;
  readonly outDir: string;
  readonly tmpDir: string;
  private readonly opts: CheckpointWriterOptions;
  private readonly shards: PlannedShard[];
  private readonly shardOf: number[];
  private next = 0;
  private openShard = -1;
  private fd: number | undefined;
  private state: 'writing' | 'finished' | 'aborted' = 'writing';
  private readonly onExit = (): void => this.removeTemp();
  /** F16/BF16 output: one encode buffer for every tensor, sized once to the largest planned (no per-tensor garbage). */
  private encoded: Uint8Array | undefined;

  constructor(opts: CheckpointWriterOptions) {
    this.opts = opts;
    this.outDir = path.resolve(opts.outDir);
    this.tmpDir = `${this.outDir}.evomerge-tmp-${process.pid}`;
    const place: ErrorPlace = { file: opts.outDir };
    if (!(Number.isFinite(opts.shardSizeBytes) && opts.shardSizeBytes > 0)) {
      throw new EvomergeError(
        'checkpoint.bad_size',
        `shard size ${opts.shardSizeBytes} must be a positive number of bytes`,
        place,
      );
    }
    invariant(opts.dtype in DTYPE_BYTES, `CheckpointWriter: unknown dtype ${String(opts.dtype)}`);
    const seen = new Set<string>();
    for (const e of opts.plan) {
      invariant(!seen.has(e.name), `CheckpointWriter: tensor "${e.name}" planned twice`);
      invariant(
        e.shape.every((d) => Number.isSafeInteger(d) && d >= 0),
        `CheckpointWriter: tensor "${e.name}" has shape ${JSON.stringify(e.shape)}`,
      );
      seen.add(e.name);
    }
    checkOutputAvoidsInputs(opts.outDir, this.inputs());
    checkOutputReplaceable(opts.outDir, { force: opts.force === true, ours: isCheckpointOutputFile });
    for (const name of Object.keys(opts.extraFiles ?? {}))
      invariant(OUTPUT_FILE.test(name), `CheckpointWriter: extra file "${name}" is not an output file`);
    for (const name of [...(opts.tokenizer?.copy ?? []), ...Object.keys(opts.tokenizer?.write ?? {})])
      invariant(isTokenizerFile(name), `CheckpointWriter: tokenizer file "${name}" is not a tokenizer file`);

    // Shard assignment by cumulative tensor bytes (as transformers' shard_checkpoint: a tensor larger than
    // the limit gets a shard of its own).
    const size = DTYPE_BYTES[opts.dtype];
    const groups: { name: string; shape: readonly number[] }[][] = [[]];
    let current = 0;
    for (const e of opts.plan) {
      const bytes = numel(e.shape) * size;
      if (groups[groups.length - 1].length > 0 && current + bytes > opts.shardSizeBytes) {
        groups.push([]);
        current = 0;
      }
      groups[groups.length - 1].push({ name: e.name, shape: e.shape });
      current += bytes;
    }
    this.shards = groups.map((entries, i) => ({
      file: groups.length === 1 ? SINGLE_FILE : shardFileName(i, groups.length),
      entries,
      dataBytes: entries.reduce((a, e) => a + numel(e.shape) * size, 0),
    }));
    this.shardOf = this.shards.flatMap((s, i) => s.entries.map(() => i));

    try {
      makeFolder(path.dirname(this.outDir));
    } catch (err) {
      throw new EvomergeError('checkpoint.write_failed', `cannot make the output folder (${(err as Error).message})`, {
        file: this.outDir,
      });
    }
    sweepDeadTemps(this.outDir);
    fs.rmSync(this.tmpDir, { recursive: true, force: true }); // a leftover of an earlier crash with our pid
    fs.mkdirSync(this.tmpDir);
    process.on('exit', this.onExit);
  }

  private inputs(): InputPath[] {
    return [
      ...(this.opts.copyFilesFrom !== undefined ? [{ path: this.opts.copyFilesFrom, role: 'base model' }] : []),
      ...(this.opts.tokenizer !== undefined ? [{ path: this.opts.tokenizer.from, role: 'tokenizer' }] : []),
      ...(this.opts.inputs ?? []),
    ];
  }

  /** Number of shard files this writer produces. */
  get shardCount(): number {
    return this.shards.length;
  }

  /** Writes the next planned tensor; a name or shape out of plan aborts the write and throws. */
  writeTensor(name: string, tensor: Tensor): void {
    if (this.state !== 'writing') {
      throw new EvomergeError(
        'internal',
        `CheckpointWriter: writeTensor("${name}") after ${this.state} (this is a bug in evomerge)`,
      );
    }
    try {
      const want = this.opts.plan[this.next];
      invariant(
        want !== undefined,
        `CheckpointWriter: tensor "${name}" is beyond the plan of ${this.opts.plan.length} tensors`,
      );
      invariant(want.name === name, `CheckpointWriter: got tensor "${name}" but the plan expects "${want.name}" next`);
      invariant(
        tensor.shape.length === want.shape.length &&
          tensor.shape.every((d, i) => d === want.shape[i]) &&
          tensor.data.length === numel(want.shape),
        `CheckpointWriter: tensor "${name}" has shape ${JSON.stringify(tensor.shape)} (${tensor.data.length} values), ` +
          `plan says ${JSON.stringify(want.shape)}`,
      );
      this.enterShard(this.shardOf[this.next]);
      // F32 on a little-endian host: the tensor's own bytes go to disk, no encoded copy.
      const bytes =
        this.opts.dtype === 'F32' && HOST_LE
          ? new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)
          : encodeFromF32(this.opts.dtype, tensor.data, this.encodeBuffer(tensor.data.length));
      this.writeAll(bytes, `tensor "${name}"`);
      this.next++;
      const s = this.shardOf[this.next - 1];
      if (this.next === this.opts.plan.length || this.shardOf[this.next] !== s) this.closeShard();
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Writes index, config and copied files, then renames the temporary folder to outDir. */
  finish(): void {
    invariant(this.state === 'writing', `CheckpointWriter: finish() after ${this.state}`);
    try {
      invariant(
        this.next === this.opts.plan.length,
        `CheckpointWriter: finish() after ${this.next} of ${this.opts.plan.length} planned tensors`,
      );
      if (this.opts.plan.length === 0) {
        this.enterShard(0); // an empty checkpoint is still a valid file with a header
        this.closeShard();
      }
      if (this.shards.length > 1) {
        const weightMap: Record<string, string> = {};
        for (const s of this.shards) for (const e of s.entries) weightMap[e.name] = s.file;
        const total = this.shards.reduce((a, s) => a + s.dataBytes, 0);
        fs.writeFileSync(path.join(this.tmpDir, INDEX_FILE), encodeIndex(total, weightMap));
      }
      const tok = this.opts.tokenizer;
      if (this.opts.copyFilesFrom !== undefined)
        copyModelFiles(
          this.opts.copyFilesFrom,
          this.tmpDir,
          tok !== undefined ? (n) => !isTokenizerFile(n) : undefined,
        );
      if (tok !== undefined) {
        copyModelFiles(tok.from, this.tmpDir, (n) => tok.copy.includes(n));
        for (const [name, text] of Object.entries(tok.write)) fs.writeFileSync(path.join(this.tmpDir, name), text);
      }
      const config = { ...this.opts.config, torch_dtype: torchDTypeName(this.opts.dtype) };
      fs.writeFileSync(path.join(this.tmpDir, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
      for (const [name, text] of Object.entries(this.opts.extraFiles ?? {}))
        fs.writeFileSync(path.join(this.tmpDir, name), text);
      this.opts.beforePublish?.(this.tmpDir);
      this.moveIntoPlace();
      this.state = 'finished';
      process.off('exit', this.onExit);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Stops writing and removes the temporary folder; outDir is left as it was. Safe to call twice. */
  abort(): void {
    if (this.state === 'finished') return;
    this.state = 'aborted';
    if (this.fd !== undefined) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already closed or the disk is gone: nothing more to release
      }
      this.fd = undefined;
    }
    this.removeTemp();
    process.off('exit', this.onExit);
  }

  private encodeBuffer(n: number): Uint8Array {
    const size = DTYPE_BYTES[this.opts.dtype];
    this.encoded ??= new Uint8Array(this.opts.plan.reduce((m, e) => Math.max(m, numel(e.shape)), 0) * size);
    return this.encoded.subarray(0, n * size);
  }

  private removeTemp(): void {
    fs.rmSync(this.tmpDir, { recursive: true, force: true });
  }

  private enterShard(i: number): void {
    if (this.openShard === i) return;
    invariant(this.fd === undefined, 'CheckpointWriter: previous shard still open');
    const shard = this.shards[i];
    const file = path.join(this.tmpDir, shard.file);
    this.fd = fs.openSync(file, 'wx');
    this.openShard = i;
    const metadata = { format: 'pt', ...(this.opts.metadata ?? {}) };
    const header = encodeHeader(
      shard.entries.map((e) => ({ ...e, dtype: this.opts.dtype })),
      metadata,
    );
    this.writeAll(header.bytes, 'header');
  }

  private closeShard(): void {
    if (this.fd !== undefined) {
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }

  private writeAll(bytes: Uint8Array, what: string): void {
    invariant(this.fd !== undefined, 'CheckpointWriter: no shard open');
    const file = path.join(this.opts.outDir, this.shards[this.openShard].file);
    let done = 0;
    try {
      while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
    } catch (err) {
      throw new EvomergeError('checkpoint.write_failed', `cannot write (${(err as Error).message})`, {
        file,
        field: what,
      });
    }
  }

  /** tmp → outDir; a previous output is moved aside first and deleted only once the new one is in place. */
  private moveIntoPlace(): void {
    // again: the folder may have appeared, or been filled, while the tensors were written
    checkOutputAvoidsInputs(this.opts.outDir, this.inputs());
    checkOutputReplaceable(this.opts.outDir, { force: this.opts.force === true, ours: isCheckpointOutputFile });
    if (!fs.existsSync(this.outDir)) {
      fs.renameSync(this.tmpDir, this.outDir);
      return;
    }
    const old = `${this.outDir}.evomerge-old-${process.pid}`;
    fs.rmSync(old, { recursive: true, force: true });
    fs.renameSync(this.outDir, old);
    try {
      fs.renameSync(this.tmpDir, this.outDir);
    } catch (err) {
      fs.renameSync(old, this.outDir);
      throw err;
    }
    fs.rmSync(old, { recursive: true, force: true });
  }
}

/**
 * Removes the temporary folders of earlier writes to the same output whose process is gone (killed before
 * it could clean up), and puts back a previous output such a write had set aside; those of a live process
 * are left alone.
 */
function sweepDeadTemps(outDir: string): void {
  const base = path.basename(outDir);
  const pattern = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.evomerge-(tmp|old)-(\\d+)$`);
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(outDir));
  } catch {
    return;
  }
  for (const n of names) {
    const m = pattern.exec(n);
    if (!m || processAlive(Number(m[2]))) continue;
    const leftover = path.join(path.dirname(outDir), n);
    // a previous output set aside by a write killed before its rename: the only copy, so it goes back
    if (m[1] === 'old' && !fs.existsSync(outDir)) fs.renameSync(leftover, outDir);
    else fs.rmSync(leftover, { recursive: true, force: true });
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Copies the base model's tokenizer and generation files (regular files only; `only` narrows the names) into `dest`. */
export function copyModelFiles(fromDir: string, dest: string, only?: (name: string) => boolean): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(fromDir);
  } catch {
    throw new EvomergeError('checkpoint.not_found', 'model folder not found (copying tokenizer files)', {
      file: fromDir,
    });
  }
  const copied: string[] = [];
  for (const n of names.sort()) {
    if (!COPIED_FILE.test(n) || (only !== undefined && !only(n))) continue;
    const src = path.join(fromDir, n);
    if (!fs.statSync(src).isFile()) continue;
    checkModelFile(fromDir, src);
    fs.copyFileSync(src, path.join(dest, n));
    copied.push(n);
  }
  return copied;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/**
 * A size as `--shard-size` takes it: "5GB", "500MB", "1.5GB", "100KB", "2GiB" or plain bytes. Decimal units
 * are powers of 1000 and binary units (GiB) powers of 1024, as transformers' convert_file_size_to_int.
 */
export function parseSize(text: string, where: ErrorPlace): number {
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$/.exec(String(text));
  const unit = m ? SIZE_UNITS[m[2].toUpperCase()] : undefined;
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!(bytes >= 1) || !Number.isSafeInteger(bytes)) {
    throw new EvomergeError(
      'checkpoint.bad_size',
      `${JSON.stringify(text)} is not a size; expected e.g. 5GB, 500MB, 1.5GB, 2GiB or a number of bytes`,
      where,
    );
  }
  return bytes;
}
