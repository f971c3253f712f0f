// k-th largest magnitude selection without sorting the tensor (mergekit's `argsort(|τ|)[:k]` cut, O(n)):
// a sampled bracket plus one counting pass, falling back to a two-level 16-bit radix histogram.
// Owns only the selection; what is kept and how it is rescaled lives in kernel/cpu/sparsify.ts.

/**
 * A magnitude cut over the flattened tensor. Element e is in the top k iff `absBits(e) > bits`, or
 * `absBits(e) === bits` and e is among the first `keepEqual` elements (lowest index first) with that value.
 *
 * `absBits` is the IEEE-754 bit pattern of |v| (`bits & 0x7fffffff`). For non-negative floats the integer
 * order is the numeric order, and NaN sorts above +Inf, as in torch.sort (NaN is the largest).
 * Ties at the cut: torch leaves the choice to its sort (unspecified); evomerge keeps the lowest indices, so
 * the order is the total order (|v| descending, index ascending) and top-k sets are nested in k.
 */
export interface MagnitudeCut {
  readonly bits: number;
  readonly keepEqual: number;
}

/** The cut that keeps nothing (k = 0). */
export const KEEP_NONE: MagnitudeCut = { bits: 0xffffffff, keepEqual: 0 };

/**
 * Streams the float32 values of a virtual tensor in chunks, so a selection can run over `x − base` without
 * materialising it. `fill` writes values [start, start + count) into out[0..count).
 */
export interface ValueSource {
  readonly length: number;
  fill(start: number, count: number, out: Float32Array): void;
  /** Writes values start, start + stride, … (count of them) into out[0..count): the bracket's sample. */
  gather(start: number, stride: number, count: number, out: Float32Array): void;
}

/** A source over a stored Float32Array. */
export function valuesSource(values: Float32Array): ValueSource {
  return {
    length: values.length,
    fill(start, count, out) {
      out.set(values.subarray(start, start + count));
    },
    gather(start, stride, count, out) {
      for (let j = 0; j < count; j++) out[j] = values[start + j * stride];
    },
  };
}

/** A source over the float32 difference `fround(x − base)` (mergekit's task vector, torch float32 sub). */
export function differenceSource(x: Float32Array, base: Float32Array): ValueSource {
  return {
    length: x.length,
    fill(start, count, out) {
      // Float32Array stores round to nearest: double subtraction of two floats then one rounding is the
      // correctly rounded float32 difference.
      for (let j = 0; j < count; j++) out[j] = x[start + j] - base[start + j];
    },
    gather(start, stride, count, out) {
      for (let j = 0; j < count; j++) out[j] = x[start + j * stride] - base[start + j * stride];
    },
  };
}

export interface SelectOptions {
  /** 'auto' (sampled bracket, histogram fallback) or force the full two-pass histogram (tests). */
  readonly strategy?: 'auto' | 'histogram';
}

const CHUNK = 8192;
/** Below this many elements the magnitudes are copied out and selected directly. */
const SMALL = 1 << 18;
const SAMPLE = 1 << 16;

/**
 * The cut keeping the k largest |v| of `src` (0 ≤ k ≤ n).
 * @example selectTopK(valuesSource(new Float32Array([3, -5, 1])), 2) // keeps -5 and 3: { bits: bits(3), keepEqual: 1 }
 */
export function selectTopK(src: ValueSource, k: number, options: SelectOptions = {}): MagnitudeCut {
  const n = src.length;
  if (!(k > 0)) return KEEP_NONE;
  if (k > n) k = n;
  const strategy = options.strategy ?? 'auto';
  if (strategy === 'auto' && n <= SMALL) {
    const all = new Uint32Array(n);
    copyAbsBits(src, all);
    return cutFromCandidates(all, n, k);
  }
  if (strategy === 'auto') {
    const plan = planBracket(src, k);
    const { above, count } = runBracket(src, plan);
    const cut = finishBracket(plan, above, count);
    if (cut !== null) return cut;
  }
  return histogramSelect(src, k);
}

/** Whether selectTopK(src, k) on n elements goes through the sampled bracket (plan, pass, finish). */
export function usesBracket(n: number, k: number): boolean {
  return k > 0 && n > SMALL;
}

function copyAbsBits(src: ValueSource, out: Uint32Array): void {
  const n = src.length;
  const f = new Float32Array(CHUNK);
  const u = new Uint32Array(f.buffer);
  for (let start = 0; start < n; start += CHUNK) {
    const count = Math.min(CHUNK, n - start);
    src.fill(start, count, f);
    for (let j = 0; j < count; j++) out[start + j] = u[j] & 0x7fffffff;
  }
}

/** The cut at the kk-th largest of the candidates (everything above the candidates is kept anyway). */
function cutFromCandidates(cand: Uint32Array, len: number, kk: number): MagnitudeCut {
  const { value, greater } = kthLargestU32(cand, len, kk);
  return { bits: value, keepEqual: kk - greater };
}

/**
 * Radix select on unsigned 32-bit keys: the kk-th largest (1-based) of arr[0..len), and how many are greater.
 * Two histogram passes of 16 bits each; no sort.
 */
export function kthLargestU32(arr: Uint32Array, len: number, kk: number): { value: number; greater: number } {
  const hist = new Uint32Array(65536);
  for (let i = 0; i < len; i++) hist[arr[i] >>> 16]++;
  let cum = 0;
  let hi = 65535;
  for (; hi > 0; hi--) {
    if (cum + hist[hi] >= kk) break;
    cum += hist[hi];
  }
  hist.fill(0);
  for (let i = 0; i < len; i++) {
    const v = arr[i];
    if (v >>> 16 === hi) hist[v & 0xffff]++;
  }
  let lo = 65535;
  for (; lo > 0; lo--) {
    if (cum + hist[lo] >= kk) break;
    cum += hist[lo];
  }
  return { value: ((hi << 16) | lo) >>> 0, greater: cum };
}

/**
 * A sampled bracket (Floyd–Rivest style) around the cut of the k largest: [lo, hi] in |v| bits, estimated from
 * a strided sample of up to 65536 magnitudes (no sort) with a ±4σ margin, and the buffer for the magnitudes inside it.
 */
export interface BracketPlan {
  readonly k: number;
  readonly lo: number;
  readonly hi: number;
  readonly cand: Uint32Array;
}

/** Phase 1: sample and place the bracket. `allocate` may hand out a reused buffer for the candidates. */
export function planBracket(
  src: ValueSource,
  k: number,
  allocate: (length: number) => Uint32Array = (length) => new Uint32Array(length),
): BracketPlan {
  const n = src.length;
  // Every stride-th element, up to 65536 of them; stride ≥ 32 so the sample touches at most every other
  // cache line (on mid-size tensors the sample is smaller and the bracket wider).
  const stride = Math.max(32, Math.ceil(n / SAMPLE));
  const m = Math.floor((n - 1) / stride) + 1;
  const values = new Float32Array(m);
  src.gather(0, stride, m, values);
  const sample = new Uint32Array(values.buffer);
  for (let j = 0; j < m; j++) sample[j] &= 0x7fffffff;
  const q = k / n;
  const at = m - q * m; // ascending index of the cut within the sample
  const margin = Math.ceil(4 * Math.sqrt(m * q * (1 - q))) + 16; // a miss costs a fallback, not correctness
  const loIdx = Math.floor(at - margin);
  const hiIdx = Math.ceil(at + margin);
  // The two order statistics of the sample by radix select (no sort): ascending index i is the (m − i)-th largest.
  const lo = loIdx <= 0 ? 0 : kthLargestInRange(sample, m, m - loIdx, 0, 0x7fffffff).value;
  const hi = hiIdx >= m ? 0xffffffff : kthLargestInRange(sample, m, m - hiIdx, 0, 0x7fffffff).value;
  // The share of the sample inside [lo, hi], counted rather than taken from the index range: with many equal
  // magnitudes (task vectors between bf16 checkpoints take few distinct values) the bracket holds far more than
  // its 2·margin sample positions, and an estimate from those would overflow into the full histogram fallback.
  let inside = 0;
  for (let j = 0; j < m; j++) {
    const v = sample[j];
    if (v >= lo && v <= hi) inside++;
  }
  const expected = inside / m;
  const capacity = Math.min(n, Math.ceil(n * expected * 1.5) + 4096);
  return { k, lo, hi, cand: allocate(capacity) };
}

/**
 * Phase 2, plain loop: counts |v|bits > hi and appends lo ≤ |v|bits ≤ hi to plan.cand (up to its length) in
 * index order; `count` may exceed the capacity (overflow). kernel/cpu has a SIMD version of this pass.
 */
export function runBracket(src: ValueSource, plan: BracketPlan): { above: number; count: number } {
  const n = src.length;
  const { lo, hi, cand } = plan;
  const capacity = cand.length;
  const f = new Float32Array(CHUNK);
  const u = new Uint32Array(f.buffer);
  let above = 0;
  let c = 0;
  for (let start = 0; start < n; start += CHUNK) {
    const count = Math.min(CHUNK, n - start);
    src.fill(start, count, f);
    for (let j = 0; j < count; j++) {
      const v = (u[j] & 0x7fffffff) >>> 0;
      if (v > hi) above++;
      else if (v >= lo) {
        if (c < capacity) cand[c] = v;
        c++;
      }
    }
    if (c > capacity) break;
  }
  return { above, count: c };
}

/** Phase 3: the exact cut from the pass's counts, or null when the bracket missed or overflowed. */
export function finishBracket(plan: BracketPlan, above: number, count: number): MagnitudeCut | null {
  const { k, cand } = plan;
  if (count > cand.length || !(above < k && k <= above + count)) return null;
  const kk = k - above;
  const { value, greater } = kthLargestInRange(cand, count, kk, plan.lo, Math.min(plan.hi, 0x7fffffff));
  return { bits: value, keepEqual: kk - greater };
}

/**
 * kthLargestU32 for keys known to lie in [lo, hi]: radix select on (key − lo), 12 bits per round, each round
 * keeping only the chosen bucket's keys. Small histograms, so cheap on a few thousand candidates too.
 */
export function kthLargestInRange(
  arr: Uint32Array,
  len: number,
  kk: number,
  lo: number,
  hi: number,
): { value: number; greater: number } {
  let keys = arr;
  let n = len;
  let base = lo >>> 0;
  let span = (hi >>> 0) - base; // all keys are in [base, base + span]
  let greater = 0;
  const hist = new Uint32Array(4097);
  for (;;) {
    const shift = Math.max(0, 32 - Math.clz32(span) - 12);
    const width = 2 ** shift;
    const top = span >>> shift;
    hist.fill(0, 0, top + 1);
    // key − base is an integer in [0, 2³²), so >>> is exact
    for (let i = 0; i < n; i++) hist[(keys[i] - base) >>> shift]++;
    let bucket = top;
    for (; bucket > 0; bucket--) {
      if (greater + hist[bucket] >= kk) break;
      greater += hist[bucket];
    }
    if (shift === 0) return { value: base + bucket, greater };
    // Keep the chosen bucket's keys and narrow the range to it.
    const from = base + bucket * width;
    const next = new Uint32Array(hist[bucket]);
    let c = 0;
    for (let i = 0; i < n; i++) {
      const v = keys[i];
      if ((v - base) >>> shift === bucket) next[c++] = v;
    }
    keys = next;
    n = c;
    base = from;
    span = Math.min(span - bucket * width, width - 1);
  }
}

/** Exact two-pass radix histogram over the whole source (16 high bits, then 16 low bits in one bucket). */
function histogramSelect(src: ValueSource, k: number): MagnitudeCut {
  const n = src.length;
  const hist = new Uint32Array(65536);
  const f = new Float32Array(CHUNK);
  const u = new Uint32Array(f.buffer);
  for (let start = 0; start < n; start += CHUNK) {
    const count = Math.min(CHUNK, n - start);
    src.fill(start, count, f);
    for (let j = 0; j < count; j++) hist[(u[j] & 0x7fffffff) >>> 16]++;
  }
  let cum = 0;
  let hi = 65535;
  for (; hi > 0; hi--) {
    if (cum + hist[hi] >= k) break;
    cum += hist[hi];
  }
  hist.fill(0);
  for (let start = 0; start < n; start += CHUNK) {
    const count = Math.min(CHUNK, n - start);
    src.fill(start, count, f);
    for (let j = 0; j < count; j++) {
      const v = u[j] & 0x7fffffff;
      if (v >>> 16 === hi) hist[v & 0xffff]++;
    }
  }
  let lo = 65535;
  for (; lo > 0; lo--) {
    if (cum + hist[lo] >= k) break;
    cum += hist[lo];
  }
  return { bits: ((hi << 16) | lo) >>> 0, keepEqual: k - cum };
}

/**
 * Applies a cut to a stream of magnitudes in index order. Stateful: it counts the elements equal to the cut.
 * Hot loops inline the same test; this is the readable reference used by tests and cold paths.
 */
export class CutCursor {
  private equalSeen = 0;
  constructor(private readonly cut: MagnitudeCut) {}
  /** Whether the next element (in index order) with magnitude bits `absBits` is in the top k. */
  next(absBits: number): boolean {
    if (absBits > this.cut.bits) return true;
    if (absBits === this.cut.bits) return this.equalSeen++ < this.cut.keepEqual;
    return false;
  }
}
