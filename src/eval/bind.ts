// Binding checkpoint tensors to a graph's weight initializers: by name where the names match, otherwise by
// content against the base checkpoint (equal, or equal to the transpose of a 2-D tensor). Built once per
// (graph, base), cached; then any candidate's tensors become the session's weight feeds.
import { statSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { resolve } from 'node:path';
import { EvomergeError, invariant } from '../errors.ts';
import type { TensorSource } from '../checkpoint/tensor-source.ts';
import { FeedSet } from './onnx-session.ts';
import type { OnnxGraph } from '../graph/onnx-graph.ts';
import { OnnxDataType } from '../graph/onnx-proto.ts';

/** One weight initializer of the graph and the checkpoint tensor that fills it. */
export interface WeightBinding {
  readonly initializer: string;
  readonly tensor: string;
  /** The initializer stores the tensor transposed (2-D only): feed Wᵀ. */
  readonly transpose: boolean;
  /** The initializer's dims (the tensor's, reversed when transposed). */
  readonly dims: readonly number[];
  /**
   * A packed initializer (a built graph's q/k/v or gate/up, graph/graph-context.ts InitializerSpec): these
   * tensors concatenated along their first axis, copied into one array per candidate; `tensor` is then the
   * first of them. Never with `transpose`.
   */
  readonly parts?: readonly { readonly tensor: string; readonly dims: readonly number[] }[];
}

export interface Binding {
  readonly entries: readonly WeightBinding[];
  /** How many entries were found by content rather than by name. */
  readonly byContent: number;
}

const memoryCache = new Map<string, Binding>();

/** The cache key: the graph file (path, size, mtime) and the base checkpoint's location. */
function cacheKey(graph: OnnxGraph, base: TensorSource): string {
  let stamp = '';
  try {
    const st = statSync(graph.path);
    stamp = `${st.size}:${st.mtimeMs}`;
  } catch {
    /* a graph that was read can be stat'ed; an in-memory one gets no stamp */
  }
  return `${resolve(graph.path)}|${stamp}|${base.location}`;
}

/**
 * The mapping for (graph, base), from the in-memory cache, the optional JSON cache file, or built here.
 * Float initializers whose shape matches no base tensor (nor its transpose) are graph constants and stay in
 * the graph; every other float initializer must match a base tensor, and every base tensor must reach the
 * graph, else `eval.unbound_initializer` lists what is left over.
 */
export function resolveBinding(graph: OnnxGraph, base: TensorSource, cacheFile?: string): Binding {
  const key = cacheKey(graph, base);
  const hit = memoryCache.get(key);
  if (hit) return hit;
  if (cacheFile) {
    try {
      const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as { key?: string; binding?: Binding };
      if (cached.key === key && cached.binding && Array.isArray(cached.binding.entries)) {
        memoryCache.set(key, cached.binding);
        return cached.binding;
      }
    } catch {
      /* no cache yet, or an unreadable one: rebuild it */
    }
  }
  const binding = buildBinding(graph, base);
  memoryCache.set(key, binding);
  if (cacheFile) {
    const tmp = `${cacheFile}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ key, binding }));
    renameSync(tmp, cacheFile);
  }
  return binding;
}

/** Builds the mapping: names first, then 64-bit content hashes (direct and transposed) verified by one compare. */
export function buildBinding(graph: OnnxGraph, base: TensorSource): Binding {
  const baseNames = base.tensorNames();
  const baseShapes = new Map(baseNames.map((n) => [n, base.tensorInfo(n).shape]));
  const entries: WeightBinding[] = [];
  const mappedTensors = new Set<string>();
  const pending: { name: string; dims: readonly number[] }[] = [];

  for (const init of graph.initializers) {
    if (init.dataType !== OnnxDataType.FLOAT) continue;
    const shape = baseShapes.get(init.name);
    if (shape && sameDims(shape, init.dims)) {
      entries.push({ initializer: init.name, tensor: init.name, transpose: false, dims: [...init.dims] });
      mappedTensors.add(init.name);
    } else pending.push(init);
  }
  if (pending.length === 0) return checkComplete(graph, base, entries, [], baseNames, mappedTensors, 0);

  // Shapes a weight can have: a base tensor's, or a 2-D base tensor's transpose.
  const weightShapes = new Set<string>();
  for (const shape of baseShapes.values()) {
    weightShapes.add(shape.join('x'));
    if (shape.length === 2) weightShapes.add(`${shape[1]}x${shape[0]}`);
  }
  const candidates = pending.filter((p) => weightShapes.has(p.dims.join('x')));
  if (candidates.length === 0) return checkComplete(graph, base, entries, [], baseNames, mappedTensors, 0);

  // Index every base tensor that could match a pending shape by (shape, hash) of its storage and its transpose.
  const wanted = new Set(candidates.map((p) => p.dims.join('x')));
  const index = new Map<string, { tensor: string; transpose: boolean }[]>();
  const add = (k: string, v: { tensor: string; transpose: boolean }) => {
    const list = index.get(k);
    if (list) list.push(v);
    else index.set(k, [v]);
  };
  for (const name of baseNames) {
    const shape = baseShapes.get(name)!;
    const direct = shape.join('x');
    const transposedKey = shape.length === 2 ? `${shape[1]}x${shape[0]}` : undefined;
    if (!wanted.has(direct) && !(transposedKey && wanted.has(transposedKey))) continue;
    const data = base.readTensor(name).data;
    if (wanted.has(direct)) add(`${direct}#${hashFloats(data)}`, { tensor: name, transpose: false });
    if (transposedKey && wanted.has(transposedKey) && shape[0] !== 1 && shape[1] !== 1) {
      add(`${transposedKey}#${hashFloats(transpose2d(data, shape[0]!, shape[1]!))}`, { tensor: name, transpose: true });
    }
  }

  const unmatched: string[] = [];
  let byContent = 0;
  for (const init of candidates) {
    const data = graph.initializerData(init.name);
    const list = index.get(`${init.dims.join('x')}#${hashFloats(data)}`) ?? [];
    // Several base tensors with identical content (e.g. untrained norm weights all ones) all fit; take the first
    // one not bound yet, so exporters that keep module order (torch.onnx, optimum) bind each to its own.
    const verified = list.filter((c) => {
      const t = base.readTensor(c.tensor);
      const stored = c.transpose ? transpose2d(t.data, t.shape[0]!, t.shape[1]!) : t.data;
      return sameBits(stored, data);
    });
    const pick = verified.find((c) => !mappedTensors.has(c.tensor)) ?? verified[0];
    if (!pick) {
      unmatched.push(init.name);
      continue;
    }
    entries.push({ initializer: init.name, tensor: pick.tensor, transpose: pick.transpose, dims: [...init.dims] });
    mappedTensors.add(pick.tensor);
    byContent++;
  }
  return checkComplete(graph, base, entries, unmatched, baseNames, mappedTensors, byContent);
}

function checkComplete(
  graph: OnnxGraph,
  base: TensorSource,
  entries: WeightBinding[],
  unmatched: string[],
  baseNames: string[],
  mapped: Set<string>,
  byContent: number,
): Binding {
  const unusedTensors = baseNames.filter((n) => !mapped.has(n));
  if (unmatched.length > 0 || unusedTensors.length > 0) {
    const parts: string[] = [];
    if (unmatched.length > 0)
      parts.push(`initializers matching no tensor of ${base.location}: ${listNames(unmatched)}`);
    if (unusedTensors.length > 0)
      parts.push(`tensors of ${base.location} matching no initializer: ${listNames(unusedTensors)}`);
    const lowPrecision = graph.initializers.filter(
      (i) => i.dataType === OnnxDataType.FLOAT16 || i.dataType === OnnxDataType.BFLOAT16,
    );
    if (lowPrecision.length > 0)
      parts.push(`the graph stores ${lowPrecision.length} initializers in 16-bit floats; export it in float32`);
    throw new EvomergeError(
      'eval.unbound_initializer',
      `cannot bind the checkpoint to the graph; ${parts.join('; ')}`,
      {
        file: graph.path,
        field: 'initializers',
      },
    );
  }
  return { entries, byContent };
}

function listNames(names: string[]): string {
  const shown = names.slice(0, 12).join(', ');
  return names.length > 12 ? `${shown} (+${names.length - 12} more)` : shown;
}

/**
 * The weight feeds of one candidate: each bound tensor read from `weights` (float32, upcast by the source),
 * transposed where the binding says so, shape-checked against the base. Reuses the tensors' memory when no
 * transpose is needed.
 */
export function bindWeights(
  binding: Binding,
  weights: TensorSource,
  options: { refuseNonFinite?: boolean } = {},
): FeedSet {
  const feeds = new FeedSet();
  const cache = new Map<string, Float32Array>();
  for (const e of binding.entries) {
    if (e.parts) {
      feeds.set(e.initializer, packParts(e, weights, options), e.dims);
      continue;
    }
    const t = readChecked(weights, e.tensor, e.transpose ? [e.dims[1]!, e.dims[0]!] : e.dims, options);
    let data = t.data;
    if (e.transpose) {
      const k = e.tensor;
      data = cache.get(k) ?? transpose2d(t.data, t.shape[0]!, t.shape[1]!);
      cache.set(k, data);
    }
    feeds.set(e.initializer, data, e.dims);
  }
  return feeds;
}

/** A packed entry's data: its parts read (each checked) and copied end to end into one new array. */
function packParts(e: WeightBinding, weights: TensorSource, options: { refuseNonFinite?: boolean }): Float32Array {
  const out = new Float32Array(e.dims.reduce((a, b) => a * b, 1));
  let at = 0;
  for (const part of e.parts!) {
    const t = readChecked(weights, part.tensor, part.dims, options);
    out.set(t.data, at);
    at += t.data.length;
  }
  invariant(at === out.length, `packed ${e.initializer}: parts of ${at} values for ${out.length}`);
  return out;
}

/** One bound tensor, read as float32: present, of the expected shape and (when asked) finite, else one line. */
function readChecked(
  weights: TensorSource,
  name: string,
  expected: readonly number[],
  options: { refuseNonFinite?: boolean },
): { data: Float32Array; shape: readonly number[] } {
  if (!weights.hasTensor(name)) {
    throw new EvomergeError('eval.missing_tensor', 'the graph needs this tensor but the checkpoint lacks it', {
      file: weights.location,
      field: `tensor "${name}"`,
    });
  }
  const t = weights.readTensor(name);
  if (!sameDims(t.shape, expected)) {
    throw new EvomergeError(
      'eval.shape_mismatch',
      `shape [${t.shape.join(', ')}] but the graph needs [${expected.join(', ')}]`,
      {
        file: weights.location,
        field: `tensor "${name}"`,
      },
    );
  }
  const bad = options.refuseNonFinite ? firstNonFinite(t.data) : -1;
  if (bad !== -1) {
    // scores of such weights are NaN or meaningless, never a result: refused as the merge refuses them
    throw new EvomergeError(
      'eval.non_finite',
      `holds ${t.data[bad]} at element ${bad}; a checkpoint with NaN or Inf weights cannot be scored`,
      {
        file: weights.location,
        field: `tensor "${name}"`,
      },
    );
  }
  return t;
}

/** Names of the initializers a binding feeds (they become graph inputs). */
export function boundInitializers(binding: Binding): string[] {
  return binding.entries.map((e) => e.initializer);
}

function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) return i; // NaN and ±Inf
  }
  return -1;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** [rows, cols] row-major → [cols, rows] row-major. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[base + c]!;
  }
  return out;
}

/** Two independent 32-bit multiplicative hashes (FNV-1a and a murmur3-style mix) of the float bits. */
function hashFloats(data: Float32Array): string {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let i = 0; i < bits.length; i++) {
    const w = bits[i]!;
    h1 = Math.imul(h1 ^ w, 0x01000193);
    let k = Math.imul(w, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h2 = Math.imul(h2 ^ Math.imul(k, 0x1b873593), 5) + 0xe6546b64;
  }
  return `${(h1 >>> 0).toString(16)}${(h2 >>> 0).toString(16)}`;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
