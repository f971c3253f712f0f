// ONNX Runtime for evomerge: the only runtime import of onnxruntime-node. Loads one graph (an OnnxGraph of
// graph/onnx-graph.ts, which owns the model bytes) and runs it with any weight set, in one of three modes
// (WeightMode):
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
import { existsSync, mkdtempSync, writeFileSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { EvomergeError, invariant } from '../errors.ts';
import type { OnnxGraph } from '../graph/onnx-graph.ts';
import { weightFileBytes, writeWeightFile } from '../graph/weight-file.ts';
import { LOGIT_POSITIONS } from '../graph/decoder-graph.ts';

export type ExecutionProvider = 'cpu' | 'webgpu' | 'cuda';
export type WeightMode = 'inputs' | 'rebuild' | 'external';
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'webgpu', 'cuda'];

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
  /** Let ORT's intra-op worker threads spin-wait between operators (ORT's default). Off unless this says true:
   * a decode step runs ~170 small matrix products, and on a machine whose cores are shared, spinning workers
   * take the cores from the thread doing the work (0.2 B decode, 2 threads, load average ~11 on 2 cores: a
   * step took 54–78 ms median without spinning and 183–335 ms with it; bench/candidate.ts). */
  spinWait?: boolean;
}

/** The options ORT's InferenceSession.create receives: intra-op spinning is "0" unless `spinWait`, then "1". */
export function ortSessionOptions(options: SessionOptions): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [options.ep],
    logSeverityLevel: 3,
    ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    extra: {
      session: {
        ...(options.prepack === false ? { disable_prepacking: '1' } : {}),
        'intra_op.allow_spinning': options.spinWait === true ? '1' : '0',
      },
    },
  };
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
 * Where a batch's shorter rows are padded so that rows of different lengths run together. 'right': a row's
 * tokens come first, padding after; with no KV cache any causal graph takes it, mask or not (a token never
 * attends to later positions, so the padding after it cannot change its logits), and GroupQueryAttention caches
 * are laid out so (each row's keys are its first seqlens_k + 1 positions). 'left': padding first; a cache that
 * concatenates every new key at the end (optimum's exports, the standard-op graph evomerge builds) needs it,
 * so that all rows' new tokens land at the same index and no row has a hole of padding in the middle of its
 * keys, which a sliding window counted in indices would get wrong.
 */
export type PadSide = 'left' | 'right';

/**
 * The keys and values of a batch after a forward pass with cache: per slot a [batch, heads, length, headDim]
 * float32 tensor, of which row r's tokens fill `filled[r]` positions (its last ones when padded on the left, its
 * first ones when padded on the right; the rest is padding). `select` keeps some batch rows (rows that stopped
 * generating leave the batch) and drops the positions that only the rows left behind used.
 */
export class KvCache {
  constructor(
    readonly batch: number,
    readonly length: number,
    /** @internal */
    readonly tensors: ReadonlyMap<string, Float32Array>,
    private readonly slots: readonly KvSlot[],
    readonly filled: readonly number[],
    readonly padSide: PadSide,
  ) {}

  select(rows: readonly number[]): KvCache {
    const filled = rows.map((r) => this.filled[r]!);
    const length = Math.max(...filled);
    if (length === this.length && rows.length === this.batch && rows.every((r, i) => r === i)) return this;
    const from = this.padSide === 'left' ? this.length - length : 0;
    const out = new Map<string, Float32Array>();
    for (const slot of this.slots) {
      const data = this.tensors.get(slot.input)!;
      const picked = new Float32Array(rows.length * slot.heads * length * slot.headDim);
      rows.forEach((r, i) => {
        for (let h = 0; h < slot.heads; h++) {
          const src = ((r * slot.heads + h) * this.length + from) * slot.headDim;
          const dst = (i * slot.heads + h) * length * slot.headDim;
          picked.set(data.subarray(src, src + length * slot.headDim), dst);
        }
      });
      out.set(slot.input, picked);
    }
    return new KvCache(rows.length, length, out, this.slots, filled, this.padSide);
  }
}

const KV_INPUT = /^past_key_values\.(\d+)\.(key|value)$/;

/**
 * One ORT session of a causal LM graph: `forward(tokens, weights)` → logits. Feeds `input_ids` (int64
 * [batch, seq]) and, when the graph declares them, `attention_mask` (1 at each row's tokens, 0 at padding) and
 * `position_ids` (each token's index among its row's tokens). A decoder exported with a KV cache (optimum's
 * layout: `past_key_values.N.key|value` in [batch, kv_heads, past, head_dim], `present.N.key|value` out) gets
 * empty pasts in `forward`, and `forwardWithCache` carries the cache from one decoding step to the next. Any
 * other non-weight input is refused by name. `nextTokenLogits*` take rows of different lengths, padded (PadSide).
 */
export class GraphSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly idsName: string,
    private readonly maskName: string | undefined,
    private readonly positionsName: string | undefined,
    /** `logit_positions` (graph/decoder-graph.ts): the graph computes the logits of the positions fed there. */
    private readonly logitPositionsName: string | undefined,
    private readonly logitsName: string,
    private readonly kvSlots: readonly KvSlot[],
    /** How rows of different lengths share a batch through the KV cache; undefined: they cannot. */
    readonly cachePadSide: PadSide | undefined,
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
    // A float16 graph's weights are written as float16: half the bytes to write, map and upload.
    const half = graph.float16Initializers();
    const bytes = weightFileBytes(weights.arrays, half);
    const dir = mkdtempSync(join(scratchRoot(bytes), 'evomerge-weights-'));
    try {
      const offsets = writeWeightFile(join(dir, WEIGHT_FILE), weights.arrays, half);
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
    const logitPositionsName = find(LOGIT_POSITIONS);
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
    const fed = new Set([idsName, maskName, positionsName, logitPositionsName, ...kvSlots.map((s) => s.input)]);
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
    const sessionOptions = ortSessionOptions(options);
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
    return new GraphSession(
      session,
      idsName,
      maskName,
      positionsName,
      logitPositionsName,
      logitsName,
      kvSlots,
      cachePadSide(graph, kvSlots.length > 0, maskName, positionsName),
    );
  }

  /** Token positions run through this session so far (batch × new tokens, summed over runs): a diagnostic. */
  tokensProcessed = 0;

  /** Whether the graph takes a KV cache (then `forwardWithCache` can decode one token per step). */
  get hasKvCache(): boolean {
    return this.kvSlots.length > 0;
  }

  /** Runs `batch` rows of `seq` token ids each (row-major) with the given weights, from position 0. */
  async forward(ids: Int32Array, batch: number, seq: number, weights: FeedSet = NO_FEEDS): Promise<Logits> {
    const { logits } = await this.run(rowsOf(ids, batch, seq), undefined, weights, false, 'right');
    return logits;
  }

  /**
   * Runs rows of any lengths from position 0 without a cache, the shorter ones padded on the right (every causal
   * graph takes that: a real token never attends to a later one): logits [batch, longest, vocab], a row's real
   * positions first.
   */
  async forwardRows(rows: readonly (readonly number[])[], weights: FeedSet = NO_FEEDS): Promise<Logits> {
    const { logits } = await this.run(rows, undefined, weights, false, 'right');
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
    const r = await this.run(rowsOf(ids, batch, seq), past, weights, true, this.cachePadSide ?? 'left');
    return { logits: r.logits, cache: r.cache! };
  }

  /**
   * The logits of each row's next token ([batch, 1, vocab]) for rows of any lengths, run from position 0
   * without a cache: padded on the right, which every causal graph takes (PadSide).
   */
  async nextTokenLogits(rows: readonly (readonly number[])[], weights: FeedSet = NO_FEEDS): Promise<Logits> {
    const r = await this.run(rows, undefined, weights, false, 'right', true);
    return lastTokens(r.logits, r.last);
  }

  /**
   * The logits of each row's next token ([batch, 1, vocab]) after running its new tokens through the cache:
   * whole rows of any lengths when `past` is undefined (rows of different lengths only when `cachePadSide` is
   * set), then the same number of new tokens for every row. Returns the cache grown by them.
   */
  async nextTokenLogitsWithCache(
    rows: readonly (readonly number[])[],
    past: KvCache | undefined,
    weights: FeedSet = NO_FEEDS,
  ): Promise<{ logits: Logits; cache: KvCache }> {
    invariant(this.hasKvCache, 'nextTokenLogitsWithCache on a graph without KV-cache inputs');
    const side = this.cachePadSide;
    invariant(side || rows.every((r) => r.length === rows[0]!.length), 'rows of different lengths, unpaddable graph');
    const r = await this.run(rows, past, weights, true, side ?? 'left', true);
    return { logits: lastTokens(r.logits, r.last), cache: r.cache! };
  }

  /**
   * Runs each row's new tokens, the shorter rows padded on `side` (padding id 0, attention_mask 0, position 0).
   * A row's positions continue from its tokens in `past`; with a past, every row brings the same count.
   * Returns the logits at every position (`lastOnly` with a graph that takes logit_positions: at each row's last
   * new token only, [batch, 1, vocab]), the index of each row's last new token, and the grown cache.
   */
  private async run(
    rows: readonly (readonly number[])[],
    past: KvCache | undefined,
    weights: FeedSet,
    keep: boolean,
    side: PadSide,
    lastOnly = false,
  ): Promise<{ logits: Logits; last: number[]; cache?: KvCache }> {
    const batch = rows.length;
    const seq = Math.max(...rows.map((r) => r.length));
    invariant(batch > 0 && rows.every((r) => r.length > 0), 'forward: an empty batch or row');
    invariant(!past || past.batch === batch, 'forward: cache batch != batch');
    invariant(!past || rows.every((r) => r.length === seq), 'forward: rows after a cache add different counts');
    invariant(!past || past.padSide === side, 'forward: cache padded on the other side');
    const pastLength = past?.length ?? 0;
    const before = past?.filled ?? new Array<number>(batch).fill(0);
    const total = pastLength + seq;
    const ids = new BigInt64Array(batch * seq);
    const mask = this.maskName ? new BigInt64Array(batch * total) : undefined;
    const pos = this.positionsName ? new BigInt64Array(batch * seq) : undefined;
    const last: number[] = [];
    rows.forEach((row, b) => {
      const shift = side === 'left' ? seq - row.length : 0;
      row.forEach((tok, t) => {
        ids[b * seq + shift + t] = BigInt(tok);
        if (pos) pos[b * seq + shift + t] = BigInt(before[b]! + t);
      });
      last.push(shift + row.length - 1);
      const filled = before[b]! + row.length;
      if (mask)
        mask.fill(
          1n,
          b * total + (side === 'left' ? total - filled : 0),
          b * total + (side === 'left' ? total : filled),
        );
    });
    const feeds: Record<string, ort.Tensor> = { ...weights.tensors };
    feeds[this.idsName] = new ort.Tensor('int64', ids, [batch, seq]);
    if (mask) feeds[this.maskName!] = new ort.Tensor('int64', mask, [batch, total]);
    if (pos) feeds[this.positionsName!] = new ort.Tensor('int64', pos, [batch, seq]);
    // the positions whose logits the graph computes: each row's last new token, or all of them
    const logitSeq = this.logitPositionsName && lastOnly ? 1 : seq;
    if (this.logitPositionsName) {
      const at = new BigInt64Array(batch * logitSeq);
      if (lastOnly) last.forEach((t, b) => (at[b] = BigInt(t)));
      else for (let i = 0; i < at.length; i++) at[i] = BigInt(i % seq);
      feeds[this.logitPositionsName] = new ort.Tensor('int64', at, [batch, logitSeq]);
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
    invariant(dims.length === 3 && dims[0] === batch && dims[1] === logitSeq, `logits dims ${dims.join('x')}`);
    const result = { data: logits.data as Float32Array, batch, seq: logitSeq, vocab: dims[2]! };
    if (!keep) return { logits: result, last };
    const tensors = new Map(this.kvSlots.map((s) => [s.input, out[s.output]!.data as Float32Array]));
    for (const s of this.kvSlots) {
      const d = out[s.output]!.dims;
      invariant(d[0] === batch && d[2] === total, `${s.output} dims ${d.join('x')}, expected ${batch}×·×${total}×·`);
    }
    const filled = rows.map((r, b) => before[b]! + r.length);
    return { logits: result, last, cache: new KvCache(batch, total, tensors, this.kvSlots, filled, side) };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** Equal-length rows from a row-major id array. */
function rowsOf(ids: Int32Array, batch: number, seq: number): number[][] {
  invariant(ids.length === batch * seq, 'forward: ids length != batch*seq');
  return Array.from({ length: batch }, (_, b) => Array.from(ids.subarray(b * seq, (b + 1) * seq)));
}

/** The logits at one position of each row, as [batch, 1, vocab]. */
function lastTokens(l: Logits, last: readonly number[]): Logits {
  if (l.seq === 1) return l;
  const data = new Float32Array(l.batch * l.vocab);
  last.forEach((t, b) =>
    data.set(l.data.subarray((b * l.seq + t) * l.vocab, (b * l.seq + t + 1) * l.vocab), b * l.vocab),
  );
  return { data, batch: l.batch, seq: 1, vocab: l.vocab };
}

/**
 * How a graph's KV cache takes rows of different lengths. GroupQueryAttention reads each row's length from
 * the mask (seqlens_k, onnxruntime-genai's rule) and keeps the cache right-padded; other graphs concatenate new
 * keys at the end and need the mask to hide a row's padding and position_ids to place its tokens (left
 * padding, what transformers' generate does). Without those inputs, only rows of equal length run together.
 */
function cachePadSide(
  graph: OnnxGraph,
  hasCache: boolean,
  maskName: string | undefined,
  positionsName: string | undefined,
): PadSide | undefined {
  if (!hasCache || !maskName) return undefined;
  if (graph.hasOperator('GroupQueryAttention')) return 'right';
  return positionsName ? 'left' : undefined;
}
