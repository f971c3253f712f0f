// The loglik task kind: mean log-likelihood of each text, the first token being context only (zoo README,
// "loglik": Σ log p(x_{t+1} | x_{≤t}) over t = 1..n−1, pooled over the file, divided by the predicted count).
import type { Tokenizer } from '../tokenizers/tokenizer.ts';
import { proportion, ratio, scaled } from '../stats.ts';
import type { Estimate } from '../../estimate.ts';
import { argmaxAt, batchesByLength, batchesMixed, logProbAt, type Forward } from './forward.ts';

export const LOGLIK_METRICS = ['loglik', 'bits_per_byte', 'next_token_accuracy'] as const;

const utf8 = new TextEncoder();

/**
 * Scores texts. `loglik`: nats per predicted token, pooled (Σ log-probs / Σ predicted tokens; per byte for the
 * byte tokenizer), SE by the ratio estimator over texts. `bits_per_byte`: −Σ log-probs / (ln 2 · Σ predicted
 * UTF-8 bytes). `next_token_accuracy`: fraction of predicted positions where the argmax is the true next token
 * (binomial SE over positions, which understates the SE since positions of one text are correlated).
 */
export async function evaluateLoglik(
  texts: readonly string[],
  tokenizer: Tokenizer,
  forward: Forward,
  batchTokens: number,
  mixedLengths = false,
): Promise<Record<string, Estimate>> {
  const seqs = texts.map((t) => tokenizer.encode(t));
  const counts = seqs.map((s) => s.length - 1);
  const predictedBytes = texts.map(
    (t, i) => utf8.encode(t).length - utf8.encode(tokenizer.decode(seqs[i]!.slice(0, 1))).length,
  );
  const { sums, hits, positions } = await textLogliks(seqs, forward, batchTokens, mixedLengths);
  const loglik = ratio(sums, counts);
  const perByte = ratio(sums, predictedBytes);
  return {
    loglik,
    bits_per_byte: scaled(perByte, -1 / Math.LN2),
    next_token_accuracy: proportion(hits, positions),
  };
}

/**
 * Σ log p(x_{t+1} | x_{≤t}) per token sequence (0 for a one-token sequence), and over all of them the predicted
 * positions and those whose argmax is the true next token. `mixedLengths`: sequences of different lengths share a
 * forward pass (the Forward pads them); otherwise each pass holds one length.
 */
export async function textLogliks(
  seqs: readonly (readonly number[])[],
  forward: Forward,
  batchTokens: number,
  mixedLengths: boolean,
): Promise<{ sums: number[]; hits: number; positions: number }> {
  const sums = new Array<number>(seqs.length).fill(0);
  let hits = 0;
  let positions = 0;
  // A one-token text predicts nothing; it still counts as an item with 0 predicted tokens.
  const scorable = seqs.map((s, i) => (s.length >= 2 ? i : -1)).filter((i) => i >= 0);
  const lengths = scorable.map((i) => seqs[i]!.length);
  for (const batch of mixedLengths ? batchesMixed(lengths, batchTokens) : batchesByLength(lengths, batchTokens)) {
    const items = batch.map((b) => scorable[b]!);
    const logits = await forward(items.map((i) => seqs[i]!));
    items.forEach((item, row) => {
      const s = seqs[item]!;
      let sum = 0;
      for (let t = 0; t + 1 < s.length; t++) {
        sum += logProbAt(logits, row, t, s[t + 1]!);
        if (argmaxAt(logits, row, t) === s[t + 1]) hits++;
      }
      positions += s.length - 1;
      sums[item] = sum;
    });
  }
  return { sums, hits, positions };
}
