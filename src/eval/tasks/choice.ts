// The choice task kind: pick the label with the highest summed log-probability given the prompt; accuracy, and
// for two labels the AUC of their log-probability margin.
import type { Tokenizer } from '../tokenizers/tokenizer.ts';
import { proportionOf } from '../stats.ts';
import type { Estimate } from '../../estimate.ts';
import { auc } from './auc.ts';
import { batchesByLength, batchesMixed, logProbAt, type Forward } from './forward.ts';

/** One item; the evaluator has checked that `answer` is one of `choices`. */
export interface ChoiceItem {
  readonly prompt: string;
  readonly answer: string;
  readonly choices: readonly string[];
}

/**
 * accuracy: the fraction of items whose best-scoring label (Σ log p(label tokens | prompt), the prompt and the
 * label tokenized separately and concatenated; ties go to the earlier label) equals `answer`. Binomial SE.
 */
export async function evaluateChoice(
  items: readonly ChoiceItem[],
  tokenizer: Tokenizer,
  forward: Forward,
  batchTokens: number,
  mixedLengths = false,
): Promise<{ accuracy: Estimate; auc?: Estimate; predictions: string[] }> {
  const scores = await choiceLogliks(items, tokenizer, forward, batchTokens, mixedLengths);
  const hits: boolean[] = [];
  const predictions = items.map((it, i) => {
    const s = scores[i]!;
    let best = 0;
    for (let k = 1; k < s.length; k++) if (s[k]! > s[best]!) best = k;
    hits.push(it.choices[best] === it.answer);
    return it.choices[best]!;
  });
  // auc: the margin Σ log p(first label) − Σ log p(second label), the first label being the positive class
  // (two-label tasks only).
  const twoLabels = items.every((it) => it.choices.length === 2);
  const margins = twoLabels ? scores.map((s) => s[0]! - s[1]!) : [];
  return {
    accuracy: proportionOf(hits),
    ...(twoLabels
      ? {
          auc: auc(
            margins,
            items.map((it) => it.answer === it.choices[0]),
          ),
        }
      : {}),
    predictions,
  };
}

/**
 * Σ log p(label tokens | prompt) per item and label. `mixedLengths`: prompt + label rows of different lengths
 * share a forward pass (the Forward pads them); otherwise each pass holds one length.
 */
export async function choiceLogliks(
  items: readonly ChoiceItem[],
  tokenizer: Tokenizer,
  forward: Forward,
  batchTokens: number,
  mixedLengths: boolean,
): Promise<number[][]> {
  const rows: { item: number; choice: number; ids: number[]; start: number }[] = [];
  items.forEach((it, i) => {
    const prompt = tokenizer.encode(it.prompt);
    it.choices.forEach((c, k) =>
      rows.push({ item: i, choice: k, ids: [...prompt, ...tokenizer.encode(c)], start: Math.max(1, prompt.length) }),
    );
  });
  const scores = items.map((it) => new Array<number>(it.choices.length).fill(-Infinity));
  const lengths = rows.map((r) => r.ids.length);
  for (const batch of mixedLengths ? batchesMixed(lengths, batchTokens) : batchesByLength(lengths, batchTokens)) {
    const logits = await forward(batch.map((b) => rows[b]!.ids));
    batch.forEach((b, row) => {
      const r = rows[b]!;
      let sum = 0;
      for (let t = r.start; t < r.ids.length; t++) sum += logProbAt(logits, row, t - 1, r.ids[t]!);
      scores[r.item]![r.choice] = sum;
    });
  }
  return scores;
}
