// What every task kind needs from a forward pass: run rows of equal length, read log-probabilities and argmaxes
// at a position, and group variable-length sequences into equal-length batches (the zoo graph has no
// attention_mask, so rows are never padded).
import { invariant } from '../../errors.ts';

/** Logits of one batch, row-major [batch, seq, vocab]. */
export interface BatchLogits {
  readonly data: Float32Array;
  readonly batch: number;
  readonly seq: number;
  readonly vocab: number;
}

/** Runs the model (with the candidate's weights already bound) on rows of equal length. */
export type Forward = (rows: readonly (readonly number[])[]) => Promise<BatchLogits>;

/** The keys/values of a batch's tokens so far, as the graph returned them; `select` keeps some rows. */
export interface KvState {
  readonly batch: number;
  readonly length: number;
  select(rows: readonly number[]): KvState;
}

/** For graphs with a KV cache: runs only the new tokens of each row after `past` (undefined: from scratch). */
export type ForwardCached = (
  rows: readonly (readonly number[])[],
  past: KvState | undefined,
) => Promise<{ logits: BatchLogits; cache: KvState }>;

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
