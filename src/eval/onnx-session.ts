// ONNX Runtime for evomerge: the only runtime import of onnxruntime-node. Loads one graph and runs it with any
// weight set, in one of three modes (WeightMode):
// - 'inputs' (the CPU default): the weight initializers become graph inputs once; every run feeds the candidate's
//   Float32Arrays (wrapped, not copied, by the node binding). Binding a candidate costs ~0.05 ms; each run pays
//   ~0.4–0.7 ms more than a session with the weights built in (marshalling 57 feeds; bench/eval.ts, 1 thread:
//   1.2 vs 0.9 ms at 1×20 tokens, 6.4 vs 5.7 ms at 32×6, equal within noise at 16×128). Folding the graph's
//   Transpose(W) nodes into pre-transposed inputs was tried and gained nothing measurable, so it is not done.
//   Works for any model size (weights never pass protobuf's 2 GB limit) and never touches disk.
// - 'rebuild': a session per candidate from the model bytes with the candidate's initializers written in
//   (70–260 ms per candidate on the zoo depending on load: re-encode + ORT graph optimisation); its runs cost
//   what a plain session's do. Meant for GPU providers, where 'inputs' copies every weight host→device on
//   every run; limited to models under 2 GB.
// - 'external': a session per candidate whose weights ORT loads from an external-data file written once
//   (tmpfs when it has room): the 'rebuild' mode for any size, no protobuf, no 2 GB limit; the default on GPU
//   providers (bench/candidate.ts measures it).
// Per zoo candidate (six tasks, ~4.5 s on one core of a busy 2-core machine) the first two modes came out within
// ±25% of each other, either way round, across four bench runs (the machine's load dominated); 'inputs' is
// the CPU default for its scaling to big models and its near-zero per-candidate cost.
import {
  readFileSync,
  openSync,
  readSync,
  closeSync,
  fstatSync,
  existsSync,
  mkdtempSync,
  writeFileSync,
  writeSync,
  rmSync,
  statfsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, resolve, isAbsolute } from 'node:path';
import * as ort from 'onnxruntime-node';
import { EvomergeError, invariant } from '../errors.ts';
import { checkModelFile } from '../checkpoint/paths.ts';
import {
  DATA_LOCATION_EXTERNAL,
  OnnxDataType,
  decodeModel,
  encodeModel,
  int64ToNumber,
  type ModelMessage,
  type TensorMessage,
  type ValueInfoMessage,
} from './onnx-proto.ts';

export type ExecutionProvider = 'cpu' | 'webgpu' | 'cuda';
export type WeightMode = 'inputs' | 'rebuild' | 'external';
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'webgpu', 'cuda'];

/** One initializer of the graph as stored (name, shape, ONNX data type). */
export interface InitializerInfo {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dataType: number;
}

/** An ONNX graph decoded once; hands out initializer values (inline or external) and weight-fed model bytes. */
export class OnnxGraph {
  readonly initializers: readonly InitializerInfo[];
  private readonly byName = new Map<string, TensorMessage>();

  private constructor(
    readonly path: string,
    private readonly model: ModelMessage,
  ) {
    const graph = model.graph;
    if (!graph) throw new EvomergeError('eval.bad_graph', 'the model has no graph', { file: path, field: 'graph' });
    const infos: InitializerInfo[] = [];
    for (const t of graph.initializer ?? []) {
      const name = t.name ?? '';
      this.byName.set(name, t);
      infos.push({ name, dims: (t.dims ?? []).map(int64ToNumber), dataType: t.dataType ?? 0 });
    }
    this.initializers = infos;
  }

  /** A graph built in memory (graph: auto); `label` names it in messages (the config.json it came from). */
  static fromModel(model: ModelMessage, label: string): OnnxGraph {
    return new OnnxGraph(label, model);
  }

  static load(path: string): OnnxGraph {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      throw new EvomergeError(
        'eval.graph_not_found',
        `cannot read the ONNX graph (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        { file: path },
      );
    }
    let model: ModelMessage;
    try {
      model = decodeModel(bytes);
    } catch (err) {
      throw new EvomergeError('eval.bad_graph', `not an ONNX model: ${(err as Error).message}`, { file: path });
    }
    return new OnnxGraph(path, model);
  }

  /** Graph inputs that are not initializers (what a caller must feed besides the weights), with their dims
   * (a number, or the symbolic name of a dynamic axis). */
  dataInputs(): { name: string; elemType: number; dims: (number | string)[] }[] {
    const inits = new Set(this.byName.keys());
    return (this.model.graph!.input ?? [])
      .filter((v) => !inits.has(v.name ?? ''))
      .map((v) => ({
        name: v.name ?? '',
        elemType: v.type?.tensorType?.elemType ?? 0,
        dims: (v.type?.tensorType?.shape?.dim ?? []).map((d) =>
          d.dimValue !== undefined && d.dimValue !== null ? int64ToNumber(d.dimValue) : (d.dimParam ?? '?'),
        ),
      }));
  }

  outputNames(): string[] {
    return (this.model.graph!.output ?? []).map((v) => v.name ?? '');
  }

  /** The value of a float32 initializer, read from the model or from its external data file. */
  initializerData(name: string): Float32Array {
    const t = this.byName.get(name);
    invariant(t, `initializer ${name} looked up but absent`);
    const field = `initializer "${name}"`;
    if (t.dataType !== OnnxDataType.FLOAT) {
      throw new EvomergeError(
        'eval.unsupported_initializer',
        `data type ${t.dataType} (only float32 weights can be bound)`,
        { file: this.path, field },
      );
    }
    const n = numelOf(t);
    const raw = this.rawBytes(t);
    if (raw) {
      if (raw.byteLength !== n * 4) {
        throw new EvomergeError('eval.bad_graph', `holds ${raw.byteLength} bytes, its shape needs ${n * 4}`, {
          file: this.path,
          field,
        });
      }
      // Copy into an aligned buffer: raw_data is a view at an arbitrary offset of the file.
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(raw);
      return out;
    }
    const data = t.floatData ?? [];
    if (data.length !== n) {
      throw new EvomergeError('eval.bad_graph', `holds ${data.length} floats, its shape needs ${n}`, {
        file: this.path,
        field,
      });
    }
    return Float32Array.from(data);
  }

  /** raw_data, or the bytes of an external-data initializer (location/offset/length relative to the .onnx). */
  private rawBytes(t: TensorMessage): Uint8Array | undefined {
    if (t.dataLocation !== DATA_LOCATION_EXTERNAL) return t.rawData && t.rawData.byteLength > 0 ? t.rawData : undefined;
    const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const field = `initializer "${t.name}"`;
    const location = kv.get('location');
    if (!location)
      throw new EvomergeError('eval.bad_graph', 'external data without a location', { file: this.path, field });
    if (isAbsolute(location) || location.split(/[\\/]/).includes('..')) {
      throw new EvomergeError('eval.bad_graph', `external data location "${location}" must stay beside the model`, {
        file: this.path,
        field,
      });
    }
    const file = resolve(dirname(this.path), location);
    checkModelFile(dirname(this.path), file, field);
    const offset = Number(kv.get('offset') ?? '0');
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      throw new EvomergeError('eval.bad_graph', `external data file ${location} not found`, { file: this.path, field });
    }
    try {
      const size = fstatSync(fd).size;
      const length = kv.has('length') ? Number(kv.get('length')) : size - offset;
      if (
        !Number.isSafeInteger(offset) ||
        !Number.isSafeInteger(length) ||
        offset < 0 ||
        length < 0 ||
        offset + length > size
      ) {
        throw new EvomergeError(
          'eval.bad_graph',
          `external data [${offset}, +${length}) outside ${location} (${size} bytes)`,
          { file: this.path, field },
        );
      }
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const got = readSync(fd, buf, done, length - done, offset + done);
        if (got === 0) break;
        done += got;
      }
      return buf;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The model bytes with the named initializers removed and declared as float32 graph inputs instead (their
   * values then come with every run). Remaining external-data initializers are inlined so the bytes load
   * from memory; the weights removed are what make a big model big, so what is left stays small.
   */
  /**
   * The model bytes with the given initializers' values replaced (float32, row-major, same dims) and every
   * external-data initializer inlined: a self-contained model for a session per candidate (under 2 GB).
   */
  bytesWithWeights(weights: ReadonlyMap<string, Float32Array>): Uint8Array {
    const graph = this.model.graph!;
    const initializer = (graph.initializer ?? []).map((t) => {
      const w = weights.get(t.name ?? '');
      if (w)
        return {
          ...t,
          rawData: new Uint8Array(w.buffer, w.byteOffset, w.byteLength),
          floatData: [],
          dataLocation: 0,
          externalData: [],
        };
      if (t.dataLocation === DATA_LOCATION_EXTERNAL)
        return { ...t, rawData: this.rawBytes(t), dataLocation: 0, externalData: [] };
      return t;
    });
    return encodeModel({ ...this.model, graph: { ...graph, initializer } });
  }

  /**
   * The model bytes with the given initializers pointing into an external data file (`location`, beside the
   * model) at the offsets given, and every other external-data initializer inlined.
   */
  bytesWithExternalWeights(
    location: string,
    offsets: ReadonlyMap<string, { offset: number; length: number }>,
  ): Uint8Array {
    const graph = this.model.graph!;
    const initializer = (graph.initializer ?? []).map((t) => {
      const at = offsets.get(t.name ?? '');
      if (at) {
        const externalData = [
          { key: 'location', value: location },
          { key: 'offset', value: String(at.offset) },
          { key: 'length', value: String(at.length) },
        ];
        return { ...t, rawData: new Uint8Array(0), floatData: [], dataLocation: DATA_LOCATION_EXTERNAL, externalData };
      }
      if (t.dataLocation === DATA_LOCATION_EXTERNAL)
        return { ...t, rawData: this.rawBytes(t), dataLocation: 0, externalData: [] };
      return t;
    });
    return encodeModel({ ...this.model, graph: { ...graph, initializer } });
  }

  weightFedBytes(weightNames: readonly string[]): Uint8Array {
    const graph = this.model.graph!;
    const fed = new Set(weightNames);
    const kept: TensorMessage[] = [];
    for (const t of graph.initializer ?? []) {
      if (fed.has(t.name ?? '')) continue;
      if (t.dataLocation === DATA_LOCATION_EXTERNAL) {
        kept.push({ ...t, rawData: this.rawBytes(t), dataLocation: 0, externalData: [] });
      } else kept.push(t);
    }
    const declared = new Set((graph.input ?? []).map((v) => v.name ?? ''));
    const newInputs: ValueInfoMessage[] = [];
    for (const name of weightNames) {
      if (declared.has(name)) continue; // IR < 4 lists initializers among the inputs already
      const info = this.byName.get(name);
      invariant(info, `weight ${name} is not an initializer`);
      newInputs.push({
        name,
        type: {
          tensorType: { elemType: OnnxDataType.FLOAT, shape: { dim: (info.dims ?? []).map((d) => ({ dimValue: d })) } },
        },
      });
    }
    const model: ModelMessage = {
      ...this.model,
      graph: { ...graph, initializer: kept, input: [...(graph.input ?? []), ...newInputs] },
    };
    return encodeModel(model);
  }
}

const CUDA_HINT = 'install the CUDA build of ONNX Runtime and CUDA 12, or use --ep cpu';

/**
 * The npm onnxruntime-node ships the CUDA provider only on linux/x64 when installed with its CUDA option; when
 * its library is absent, say so before ORT tries (and logs a native stack of errors).
 */
function checkCudaInstalled(): void {
  let binDir: string;
  try {
    const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
    binDir = join(dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return;
  }
  const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  if (existsSync(binDir) && !existsSync(join(binDir, lib))) {
    throw new EvomergeError(
      'eval.ep_unavailable',
      `execution provider "cuda" is not available here (${lib} is not installed); ${CUDA_HINT}`,
      { field: '--ep' },
    );
  }
}

const WEIGHT_FILE = 'weights.bin';
/** Offsets in the weight file are page-aligned so that ONNX Runtime may map each tensor directly. */
const WEIGHT_ALIGN = 4096;

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** /dev/shm when it exists and holds `bytes` with room to spare (the weights then never touch a disk), else the OS temp folder. */
function scratchRoot(bytes: number): string {
  try {
    const st = statfsSync('/dev/shm');
    if (st.bavail * st.bsize > bytes * 1.25 + 64 * 2 ** 20) return '/dev/shm';
  } catch {
    /* no tmpfs here */
  }
  return tmpdir();
}

/** Writes each array at a page-aligned offset; returns where each went. */
export function writeWeightFile(
  path: string,
  arrays: ReadonlyMap<string, Float32Array>,
): Map<string, { offset: number; length: number }> {
  const offsets = new Map<string, { offset: number; length: number }>();
  const fd = openSync(path, 'w');
  try {
    let offset = 0;
    for (const [name, a] of arrays) {
      const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      let done = 0;
      while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done, offset + done);
      offsets.set(name, { offset, length: a.byteLength });
      offset = alignUp(offset + a.byteLength, WEIGHT_ALIGN);
    }
  } finally {
    closeSync(fd);
  }
  return offsets;
}

function numelOf(t: TensorMessage): number {
  let n = 1;
  for (const d of t.dims ?? []) n *= int64ToNumber(d);
  return n;
}

/** Float32 tensors ready to feed (wrapping, not copying, their data). Opaque outside this module. */
export class FeedSet {
  /** @internal */
  readonly tensors: Record<string, ort.Tensor> = {};
  /** The same data by initializer name (for a session rebuilt with these weights). */
  readonly arrays = new Map<string, Float32Array>();
  set(name: string, data: Float32Array, dims: readonly number[]): void {
    this.tensors[name] = new ort.Tensor('float32', data, dims);
    this.arrays.set(name, data);
  }
}

const NO_FEEDS = new FeedSet();

export interface SessionOptions {
  ep: ExecutionProvider;
  /** ORT intra-op threads (0 or undefined = ORT's default, one per core). */
  intraOpThreads?: number;
  /** Let ORT re-pack constant weight matrices at load (ORT's default; createWithExternalWeights turns it off
   * unless this says true). */
  prepack?: boolean;
}

/** Logits of one forward pass: row-major [batch, seq, vocab]. */
export interface Logits {
  readonly data: Float32Array;
  readonly batch: number;
  readonly seq: number;
  readonly vocab: number;
}

/** One KV-cache input of a decoder graph and the output that returns its next state. */
interface KvSlot {
  readonly input: string;
  readonly output: string;
  readonly heads: number;
  readonly headDim: number;
}

/**
 * The keys and values of a batch after a forward pass with cache: per slot a [batch, heads, length, headDim]
 * float32 tensor. `select` keeps some batch rows (rows that stopped generating leave the batch).
 */
export class KvCache {
  constructor(
    readonly batch: number,
    readonly length: number,
    /** @internal */
    readonly tensors: ReadonlyMap<string, Float32Array>,
    private readonly slots: readonly KvSlot[],
  ) {}

  select(rows: readonly number[]): KvCache {
    if (rows.length === this.batch && rows.every((r, i) => r === i)) return this;
    const out = new Map<string, Float32Array>();
    for (const slot of this.slots) {
      const data = this.tensors.get(slot.input)!;
      const rowSize = slot.heads * this.length * slot.headDim;
      const picked = new Float32Array(rows.length * rowSize);
      rows.forEach((r, i) => picked.set(data.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
      out.set(slot.input, picked);
    }
    return new KvCache(rows.length, this.length, out, this.slots);
  }
}

const KV_INPUT = /^past_key_values\.(\d+)\.(key|value)$/;

/**
 * One ORT session of a causal LM graph: `forward(tokens, weights)` → logits. Feeds `input_ids` (int64
 * [batch, seq]) and, when the graph declares them, `attention_mask` (all ones) and `position_ids` (positions
 * counted from 0, or from the cached length). A decoder exported with a KV cache (optimum's layout:
 * `past_key_values.N.key|value` in [batch, kv_heads, past, head_dim], `present.N.key|value` out) gets empty
 * pasts in `forward`, and `forwardWithCache` carries the cache from one decoding step to the next. Any other
 * non-weight input is refused by name.
 */
export class GraphSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly idsName: string,
    private readonly maskName: string | undefined,
    private readonly positionsName: string | undefined,
    private readonly logitsName: string,
    private readonly kvSlots: readonly KvSlot[],
  ) {}

  /** A session whose bound weights are inputs (WeightMode 'inputs'); pass the FeedSet to every forward. */
  static create(graph: OnnxGraph, weightNames: readonly string[], options: SessionOptions): Promise<GraphSession> {
    return GraphSession.open(graph, weightNames, () => graph.weightFedBytes(weightNames), options);
  }

  /** A session with these weights built in (WeightMode 'rebuild'); forward then takes no FeedSet. */
  static createWithWeights(graph: OnnxGraph, weights: FeedSet, options: SessionOptions): Promise<GraphSession> {
    return GraphSession.open(graph, [], () => graph.bytesWithWeights(weights.arrays), options);
  }

  /**
   * A session with these weights built in, for any model size (WeightMode 'external'): the weights are written
   * once to a scratch file (tmpfs when it has room) that the model references as external data, ONNX Runtime
   * loads them from there straight into the session's device memory, and the files are removed as soon as the
   * session exists. Nothing passes through protobuf, so there is no 2 GB limit.
   */
  static async createWithExternalWeights(
    graph: OnnxGraph,
    weights: FeedSet,
    options: SessionOptions,
  ): Promise<GraphSession> {
    let bytes = 0;
    for (const a of weights.arrays.values()) bytes += alignUp(a.byteLength, WEIGHT_ALIGN);
    const dir = mkdtempSync(join(scratchRoot(bytes), 'evomerge-weights-'));
    try {
      const offsets = writeWeightFile(join(dir, WEIGHT_FILE), weights.arrays);
      const modelPath = join(dir, 'model.onnx');
      writeFileSync(modelPath, graph.bytesWithExternalWeights(WEIGHT_FILE, offsets));
      // ORT maps the external file and uses it in place; re-packing every weight matrix for MLAS (its default)
      // would copy the whole model again per candidate (a 0.5 B session: 63.8 s with it, 6.2 s without, and no
      // faster per run; bench/candidate.ts), so it is turned off for these sessions.
      return await GraphSession.open(graph, [], () => modelPath, { prepack: false, ...options });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private static async open(
    graph: OnnxGraph,
    weightNames: readonly string[],
    encode: () => Uint8Array | string,
    options: SessionOptions,
  ): Promise<GraphSession> {
    const inputs = graph.dataInputs().filter((i) => !weightNames.includes(i.name));
    const find = (n: string) => inputs.find((i) => i.name === n)?.name;
    const idsName = find('input_ids') ?? (inputs.length === 1 ? inputs[0]!.name : undefined);
    if (!idsName) {
      throw new EvomergeError('eval.unsupported_graph_input', 'the graph has no input_ids input', {
        file: graph.path,
        field: 'graph.input',
      });
    }
    const maskName = find('attention_mask');
    const positionsName = find('position_ids');
    const outputs = graph.outputNames();
    const kvSlots: KvSlot[] = [];
    for (const i of inputs) {
      const m = KV_INPUT.exec(i.name);
      if (!m) continue;
      const output = `present.${m[1]}.${m[2]}`;
      const [, heads, , headDim] = i.dims;
      if (
        i.dims.length !== 4 ||
        typeof heads !== 'number' ||
        typeof headDim !== 'number' ||
        !outputs.includes(output)
      ) {
        throw new EvomergeError(
          'eval.unsupported_graph_input',
          `a KV-cache input needs dims [batch, heads, past, head_dim] with fixed heads and head_dim, and a ${output} output`,
          { file: graph.path, field: `graph.input ${i.name}` },
        );
      }
      kvSlots.push({ input: i.name, output, heads, headDim });
    }
    const fed = new Set([idsName, maskName, positionsName, ...kvSlots.map((s) => s.input)]);
    const other = inputs.filter((i) => !fed.has(i.name)).map((i) => i.name);
    if (other.length > 0) {
      throw new EvomergeError('eval.unsupported_graph_input', `inputs evomerge cannot feed: ${other.join(', ')}`, {
        file: graph.path,
        field: 'graph.input',
      });
    }
    const logitsName = outputs.includes('logits') ? 'logits' : outputs[0];
    if (!logitsName)
      throw new EvomergeError('eval.bad_graph', 'the graph has no output', { file: graph.path, field: 'graph.output' });
    if (options.ep === 'cuda') checkCudaInstalled();
    const bytes = encode();
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: [options.ep],
      logSeverityLevel: 3,
      ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
      ...(options.prepack === false ? { extra: { session: { disable_prepacking: '1' } } } : {}),
    };
    let session: ort.InferenceSession;
    try {
      session =
        typeof bytes === 'string'
          ? await ort.InferenceSession.create(bytes, sessionOptions)
          : await ort.InferenceSession.create(bytes, sessionOptions);
    } catch (err) {
      const msg = (err as Error).message.split('\n')[0]!.slice(0, 300);
      if (options.ep !== 'cpu') {
        throw new EvomergeError(
          'eval.ep_unavailable',
          `execution provider "${options.ep}" is not available here (${msg})${options.ep === 'cuda' ? `; ${CUDA_HINT}` : ''}`,
          { field: '--ep' },
        );
      }
      throw new EvomergeError('eval.bad_graph', `ONNX Runtime cannot load the graph: ${msg}`, { file: graph.path });
    }
    return new GraphSession(session, idsName, maskName, positionsName, logitsName, kvSlots);
  }

  /** Token positions run through this session so far (batch × new tokens, summed over runs): a diagnostic. */
  tokensProcessed = 0;

  /** Whether the graph takes a KV cache (then `forwardWithCache` can decode one token per step). */
  get hasKvCache(): boolean {
    return this.kvSlots.length > 0;
  }

  /** Runs `batch` rows of `seq` token ids each (row-major) with the given weights, from position 0. */
  async forward(ids: Int32Array, batch: number, seq: number, weights: FeedSet = NO_FEEDS): Promise<Logits> {
    const { logits } = await this.run(ids, batch, seq, undefined, weights, false);
    return logits;
  }

  /** Runs `seq` new tokens per row after the cached ones (none when `past` is undefined); returns the cache grown by them. */
  async forwardWithCache(
    ids: Int32Array,
    batch: number,
    seq: number,
    past: KvCache | undefined,
    weights: FeedSet = NO_FEEDS,
  ): Promise<{ logits: Logits; cache: KvCache }> {
    invariant(this.hasKvCache, 'forwardWithCache on a graph without KV-cache inputs');
    const r = await this.run(ids, batch, seq, past, weights, true);
    return { logits: r.logits, cache: r.cache! };
  }

  private async run(
    ids: Int32Array,
    batch: number,
    seq: number,
    past: KvCache | undefined,
    weights: FeedSet,
    keep: boolean,
  ): Promise<{ logits: Logits; cache?: KvCache }> {
    invariant(ids.length === batch * seq, 'forward: ids length != batch*seq');
    invariant(!past || past.batch === batch, 'forward: cache batch != batch');
    const pastLength = past?.length ?? 0;
    const feeds: Record<string, ort.Tensor> = { ...weights.tensors };
    const big = new BigInt64Array(ids.length);
    for (let i = 0; i < ids.length; i++) big[i] = BigInt(ids[i]!);
    feeds[this.idsName] = new ort.Tensor('int64', big, [batch, seq]);
    if (this.maskName)
      feeds[this.maskName] = new ort.Tensor('int64', new BigInt64Array(batch * (pastLength + seq)).fill(1n), [
        batch,
        pastLength + seq,
      ]);
    if (this.positionsName) {
      const pos = new BigInt64Array(batch * seq);
      for (let b = 0; b < batch; b++) for (let t = 0; t < seq; t++) pos[b * seq + t] = BigInt(pastLength + t);
      feeds[this.positionsName] = new ort.Tensor('int64', pos, [batch, seq]);
    }
    for (const slot of this.kvSlots) {
      const data = past?.tensors.get(slot.input) ?? new Float32Array(0);
      feeds[slot.input] = new ort.Tensor('float32', data, [batch, slot.heads, pastLength, slot.headDim]);
    }
    const fetches = keep ? [this.logitsName, ...this.kvSlots.map((s) => s.output)] : [this.logitsName];
    const out = await this.session.run(feeds, fetches);
    this.tokensProcessed += batch * seq;
    const logits = out[this.logitsName]!;
    const dims = logits.dims;
    invariant(dims.length === 3 && dims[0] === batch && dims[1] === seq, `logits dims ${dims.join('x')}`);
    const result = { data: logits.data as Float32Array, batch, seq, vocab: dims[2]! };
    if (!keep) return { logits: result };
    const tensors = new Map(this.kvSlots.map((s) => [s.input, out[s.output]!.data as Float32Array]));
    return { logits: result, cache: new KvCache(batch, pastLength + seq, tensors, this.kvSlots) };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
