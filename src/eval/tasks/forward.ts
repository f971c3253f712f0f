// What every task kind needs from a forward pass: run rows, read log-probabilities and argmaxes at a position, and
// group variable-length sequences into batches, of one length each (batchesByLength) or of several
// (batchesMixed: loglik and choice rows then run padded on the right, which a causal graph takes even without an
// attention_mask, since a real token never attends to a later one); greedy generation reads next-token logits of
// rows that may differ in length (the session pads them).
import { invariant } from '../../errors.ts';

/** Logits of one batch, row-major [batch, seq, vocab]. */
export interface BatchLogits {
  readonly data: Float32Array;
  readonly batch: number;
  readonly seq: number;
  readonly vocab: number;
}

/** Runs the model (with the candidate's weights already bound) on rows; rows of different lengths only where the
 * caller batched them so (batchesMixed), their logits then [batch, longest row, vocab]. */
export type Forward = (rows: readonly (readonly number[])[]) => Promise<BatchLogits>;

/** The keys/values of a batch's tokens so far, as the graph returned them; `select` keeps some rows. */
export interface KvState {
  readonly batch: number;
  readonly length: number;
  select(rows: readonly number[]): KvState;
}

/**
 * What greedy generation reads from a session: the logits of each row's next token ([batch, 1, vocab]).
 * `cached`: `next` runs only the rows' new tokens after `past` (their whole sequences when it is undefined,
 * then one token each) and returns the cache grown by them; otherwise `past` is never given and every call
 * re-runs the whole rows. `mixedLengths`: rows of different lengths may share a call (the session pads them).
 */
export interface NextTokenSource {
  readonly mixedLengths: boolean;
  readonly cached: boolean;
  next(
    rows: readonly (readonly number[])[],
    past: KvState | undefined,
  ): Promise<{ logits: BatchLogits; cache?: KvState }>;
}

/** A plain Forward as a NextTokenSource: equal-length rows, no cache, the logits of each row's last position. */
export function unpaddedSource(forward: Forward): NextTokenSource {
  return {
    mixedLengths: false,
    cached: false,
    next: async (rows) => {
      const l = await forward(rows);
      if (l.seq === 1) return { logits: l };
      const data = new Float32Array(l.batch * l.vocab);
      for (let b = 0; b < l.batch; b++) {
        const from = (b * l.seq + l.seq - 1) * l.vocab;
        data.set(l.data.subarray(from, from + l.vocab), b * l.vocab);
      }
      return { logits: { data, batch: l.batch, seq: 1, vocab: l.vocab } };
    },
  };
}

/** log_softmax(logits[row, pos])[target] in float64 (max-shifted log-sum-exp). */
export function logProbAt(l: BatchLogits, row: number, pos: number, target: number): number {
  const off = (row * l.seq + pos) * l.vocab;
  const d = l.data;
  let max = -Infinity;
  for (let v = 0; v < l.vocab; v++) if (d[off + v]! > max) max = d[off + v]!;
  let sum = 0;
  for (let v = 0; v < l.vocab; v++) sum += Math.exp(d[off + v]! - max);
  return d[off + target]! - max - Math.log(sum);
}

/** Index of the largest logit at [row, pos]; the first one wins a tie (torch.argmax does the same on CPU). */
export function argmaxAt(l: BatchLogits, row: number, pos: number): number {
  const off = (row * l.seq + pos) * l.vocab;
  let best = 0;
  let max = l.data[off]!;
  for (let v = 1; v < l.vocab; v++) {
    const x = l.data[off + v]!;
    if (x > max) {
      max = x;
      best = v;
    }
  }
  return best;
}

/**
 * Splits item indices into batches whose rows all have the same length, with at most `batchTokens` tokens
 * (rows × length) per batch (and at least one row). Deterministic: lengths ascending, items in input order.
 */
export function batchesByLength(lengths: readonly number[], batchTokens: number): number[][] {
  const groups = new Map<number, number[]>();
  lengths.forEach((len, i) => {
    invariant(len > 0, 'empty token sequence');
    const g = groups.get(len);
    if (g) g.push(i);
    else groups.set(len, [i]);
  });
  const out: number[][] = [];
  for (const len of [...groups.keys()].sort((a, b) => a - b)) {
    const idx = groups.get(len)!;
    const rows = Math.max(1, Math.floor(batchTokens / len));
    for (let i = 0; i < idx.length; i += rows) out.push(idx.slice(i, i + rows));
  }
  return out;
}

/**
 * Splits item indices into batches of rows of any lengths, shortest first (so that a batch's rows are close in
 * length and little is padding), each with at most `batchTokens` tokens counted at its longest row (rows ×
 * longest; at least one row). Deterministic: lengths ascending, equal lengths in input order.
 */
export function batchesMixed(lengths: readonly number[], batchTokens: number): number[][] {
  const order = lengths.map((len, i) => {
    invariant(len > 0, 'empty token sequence');
    return i;
  });
  order.sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const out: number[][] = [];
  let batch: number[] = [];
  for (const i of order) {
    if (batch.length > 0 && (batch.length + 1) * lengths[i]! > batchTokens) {
      out.push(batch);
      batch = [];
    }
    batch.push(i);
  }
  if (batch.length > 0) out.push(batch);
  return out;
}
