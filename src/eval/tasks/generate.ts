// The generate task kind: greedy decoding until a stop string or max_new_tokens, scored by exact match of the
// stripped text (zoo README, "generate"); and `answer_logprob`, the continuous fitness a search can climb.
import type { Tokenizer } from '../tokenizers/tokenizer.ts';
import { mean, proportionOf } from '../stats.ts';
import type { Estimate } from '../../estimate.ts';
import {
  argmaxAt,
  batchesByLength,
  batchesMixed,
  logProbAt,
  unpaddedSource,
  type Forward,
  type KvState,
  type NextTokenSource,
} from './forward.ts';

export interface GenerateItem {
  readonly prompt: string;
  readonly answer: string;
}

export interface GenerateOptions {
  readonly maxNewTokens: number;
  readonly stop: readonly string[];
  readonly batchTokens: number;
  /** Keep only the last N prompt tokens (lm-eval cuts a prompt from the left to leave room for the answer). */
  readonly maxPromptTokens?: number;
}

/** Python's str.strip(): str.isspace() characters (JS \s differs: it has U+FEFF, lacks U+001C–U+001F and U+0085). */
const PY_SPACE = '[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const PY_STRIP = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, 'gu');
export function pythonStrip(s: string): string {
  return s.replace(PY_STRIP, '');
}

/**
 * Greedy completions. A batch's rows may differ in prompt length when the source pads (NextTokenSource), else
 * they share one length; every step appends one argmax token to each live row, and a row leaves the batch (and
 * the cache) when its text contains a stop string (cut there, the stop string not kept) — for "\n" with the
 * byte tokenizer that is the reference's "stop on byte 10 without keeping it". Stop strings are looked for in
 * the decoded text of all the row's new tokens, so one that spans token boundaries is found. Through a KV cache
 * each step after the first runs only the new tokens; without one (the zoo graph), each step re-runs the rows.
 * A row's completion does not depend on its batch: the padding is hidden from it (onnx-session.ts, PadSide).
 */
export async function generateGreedy(
  prompts: readonly string[],
  tokenizer: Tokenizer,
  model: Forward | NextTokenSource,
  opts: GenerateOptions,
): Promise<string[]> {
  const source = typeof model === 'function' ? unpaddedSource(model) : model;
  const cut = opts.maxPromptTokens;
  const promptIds = prompts.map((p) =>
    cut !== undefined ? tokenizer.encode(p).slice(-Math.max(1, cut)) : tokenizer.encode(p),
  );
  const outputs = new Array<string>(prompts.length).fill('');
  const lengths = promptIds.map((p) => p.length);
  const batches = source.mixedLengths
    ? batchesMixed(lengths, opts.batchTokens)
    : batchesByLength(lengths, opts.batchTokens);
  for (const batch of batches) {
    let live = batch.map((i) => ({ item: i, seq: [...promptIds[i]!], generated: [] as number[], cacheRow: 0 }));
    let cache: KvState | undefined;
    for (let step = 0; step < opts.maxNewTokens && live.length > 0; step++) {
      const past = cache?.select(live.map((r) => r.cacheRow));
      const r = await source.next(past ? live.map((x) => x.seq.slice(-1)) : live.map((x) => x.seq), past);
      const logits = r.logits;
      if (source.cached) {
        cache = r.cache;
        live.forEach((x, row) => (x.cacheRow = row));
      }
      const next: typeof live = [];
      live.forEach((r, row) => {
        const tok = argmaxAt(logits, row, logits.seq - 1);
        r.seq.push(tok);
        r.generated.push(tok);
        const text = tokenizer.decode(r.generated);
        const cut = firstStop(text, opts.stop);
        if (cut >= 0) {
          outputs[r.item] = text.slice(0, cut);
          return;
        }
        outputs[r.item] = text;
        next.push(r);
      });
      live = next;
    }
  }
  return outputs;
}

function firstStop(text: string, stop: readonly string[]): number {
  let best = -1;
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/** exact_match: the fraction of items whose stripped completion equals the answer (binomial SE). */
export async function evaluateExactMatch(
  items: readonly GenerateItem[],
  tokenizer: Tokenizer,
  model: Forward | NextTokenSource,
  opts: GenerateOptions,
): Promise<{ exact_match: Estimate; predictions: string[] }> {
  const predictions = await generateGreedy(
    items.map((i) => i.prompt),
    tokenizer,
    model,
    opts,
  );
  const hits = predictions.map((p, i) => pythonStrip(p) === items[i]!.answer);
  return { exact_match: proportionOf(hits), predictions };
}

/**
 * answer_logprob: for each item, the mean log-probability per token of answer + the first stop string given
 * the prompt, teacher-forced in one forward pass; averaged over items (sample SE). A smooth version of
 * exact_match for the search: it rises before the argmax flips. answer_loglik, computed alongside: the same
 * log-probabilities summed per item (nats per answer, the zoo-v3 README's "math ans-ll"), averaged over items.
 */
export async function evaluateAnswerLogprob(
  items: readonly GenerateItem[],
  tokenizer: Tokenizer,
  forward: Forward,
  opts: Pick<GenerateOptions, 'stop' | 'batchTokens'> & { mixedLengths?: boolean },
): Promise<{ answer_logprob: Estimate; answer_loglik: Estimate }> {
  const suffix = opts.stop[0] ?? '';
  const seqs = items.map((it) => {
    const prompt = tokenizer.encode(it.prompt);
    const target = tokenizer.encode(it.answer + suffix);
    return { ids: [...prompt, ...target], start: prompt.length };
  });
  const perItem = new Array<number>(items.length).fill(0);
  const sums = new Array<number>(items.length).fill(0);
  const lengths = seqs.map((s) => s.ids.length);
  for (const batch of opts.mixedLengths === true
    ? batchesMixed(lengths, opts.batchTokens)
    : batchesByLength(lengths, opts.batchTokens)) {
    const logits = await forward(batch.map((i) => seqs[i]!.ids));
    batch.forEach((item, row) => {
      const { ids, start } = seqs[item]!;
      let sum = 0;
      // Token t (t ≥ start) is predicted from position t−1; a prompt of 0 tokens leaves the first target unscored.
      const first = Math.max(start, 1);
      for (let t = first; t < ids.length; t++) sum += logProbAt(logits, row, t - 1, ids[t]!);
      perItem[item] = ids.length > first ? sum / (ids.length - first) : 0;
      sums[item] = sum;
    });
  }
  return { answer_logprob: mean(perItem), answer_loglik: mean(sums) };
}
