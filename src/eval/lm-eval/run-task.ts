// Scores an lm-eval task on a campaign split: builds each doc's prompt, runs the requests its output_type makes
// (greedy generation, or log-likelihoods of continuations), applies each filter pipeline and metric, and returns
// one Estimate per lm-eval metric key (`exact_match,strict-match`, `acc,none`, …).
import { EvomergeError } from '../../errors.ts';
import type { Split } from '../split.ts';
import type { Tokenizer } from '../tokenizers/tokenizer.ts';
import type { Estimate } from '../../estimate.ts';
import { mean, proportion } from '../stats.ts';
import {
  argmaxAt,
  batchesByLength,
  batchesMixed,
  logProbAt,
  type Forward,
  type NextTokenSource,
} from '../tasks/forward.ts';
import { generateGreedy } from '../tasks/generate.ts';
import { buildContext } from './context.ts';
import type { Doc } from './dataset.ts';
import { docToChoice, docToTarget, targetText } from './doc-render.ts';
import { applyPipeline } from './filters.ts';
import { choiceHits, exactMatch } from './metrics.ts';
import { fewshotPool, sampleFewshot, scoredDocs, type LmEvalSettings } from './protocol.ts';
import type { LmEvalTask } from './task-file.ts';

/** lm-eval's result keys of a task: `<metric>,<filter>` (filter `none` where the task has none). */
export function lmEvalMetricNames(task: LmEvalTask): string[] {
  if (task.outputType === 'generate_until')
    return task.filters.flatMap((f) => task.metrics.map((m) => `${m.metric},${f.name}`));
  return task.metrics.map((m) => `${m.metric},none`);
}

export interface LmEvalRequests {
  readonly docs: readonly Doc[];
  /** Where each doc is, for messages: `test doc 12`. */
  readonly where: readonly string[];
  readonly prompts: readonly string[];
}

/** The prompts of a split's docs (few-shot examples and chat template applied), first `limit` docs only. */
export async function buildPrompts(s: LmEvalSettings, split: Split, limit?: number): Promise<LmEvalRequests> {
  const scored = await scoredDocs(s, split);
  const pool = await fewshotPool(s);
  const n = limit === undefined ? scored.docs.length : Math.min(limit, scored.docs.length);
  const docs = scored.docs.slice(0, n);
  const where = scored.indices.slice(0, n).map((i) => `${scored.split} doc ${i}`);
  const prompts = docs.map((doc, k) => buildContext(s, doc, sampleFewshot(s, pool, scored.indices[k]!), where[k]!));
  return { docs, where, prompts };
}

export interface LmEvalRunOptions {
  readonly limit?: number;
  readonly batchTokens: number;
  /** Context + continuation rows of different lengths share a forward pass (padded; default false). */
  readonly mixedLengths?: boolean;
  /** What generate_until decodes through (default: `forward`, rows of equal length, no cache). */
  readonly nextTokens?: NextTokenSource;
}

export async function evaluateLmEvalTask(
  s: LmEvalSettings,
  split: Split,
  tokenizer: Tokenizer,
  forward: Forward,
  opts: LmEvalRunOptions,
): Promise<{ metrics: Record<string, Estimate>; predictions: string[] }> {
  const req = await buildPrompts(s, split, opts.limit);
  const t = s.task;
  if (t.outputType === 'generate_until') {
    const maxPromptTokens = s.maxLength !== undefined ? s.maxLength - s.maxGenToks : undefined;
    const outputs = await generateGreedy(req.prompts, tokenizer, opts.nextTokens ?? forward, {
      maxNewTokens: s.maxGenToks,
      stop: t.until,
      batchTokens: opts.batchTokens,
      ...(maxPromptTokens !== undefined ? { maxPromptTokens } : {}),
    });
    const references = req.docs.map((d, i) => targetText(t, d, req.where[i]!));
    const metrics: Record<string, Estimate> = {};
    for (const f of t.filters) {
      const filtered = outputs.map((o) => applyPipeline(f, [o]));
      for (const m of t.metrics) {
        const hits = filtered.filter((p, i) => exactMatch(m, p, references[i]!)).length;
        metrics[`${m.metric},${f.name}`] = proportion(hits, filtered.length);
      }
    }
    return { metrics, predictions: outputs };
  }

  if (t.outputType === 'multiple_choice') {
    const choices = req.docs.map((d, i) => docToChoice(t, d, req.where[i]!));
    const pairs = req.prompts.flatMap((p, i) =>
      choices[i]!.map((c) => encodePair(tokenizer, p, t.targetDelimiter + c)),
    );
    const scores = await scoreContinuations(pairs, forward, opts.batchTokens, s.maxLength, opts.mixedLengths === true);
    let at = 0;
    let acc = 0;
    let accNorm = 0;
    const predictions = req.docs.map((d, i) => {
      const cs = choices[i]!;
      const lls = scores.slice(at, at + cs.length).map((x) => x.loglik);
      at += cs.length;
      const gold = goldIndex(t, d, cs, req.where[i]!);
      const h = choiceHits(lls, cs, gold);
      if (h.acc) acc++;
      if (h.acc_norm) accNorm++;
      return cs[lls.indexOf(Math.max(...lls))]!;
    });
    const n = req.docs.length;
    const all: Record<string, Estimate> = { 'acc,none': proportion(acc, n), 'acc_norm,none': proportion(accNorm, n) };
    return { metrics: pick(all, lmEvalMetricNames(t)), predictions };
  }

  if (t.outputType === 'loglikelihood') {
    const pairs = req.prompts.map((p, i) =>
      encodePair(tokenizer, p, t.targetDelimiter + targetText(t, req.docs[i]!, req.where[i]!)),
    );
    const scores = await scoreContinuations(pairs, forward, opts.batchTokens, s.maxLength, opts.mixedLengths === true);
    const ll = mean(scores.map((x) => x.loglik));
    // perplexity = exp(−mean log-likelihood), SE by the delta method
    const ppl = Math.exp(-ll.value);
    const all: Record<string, Estimate> = {
      'perplexity,none': { value: ppl, se: ppl * ll.se, n: ll.n },
      'acc,none': proportion(scores.filter((x) => x.greedy).length, scores.length),
    };
    return { metrics: pick(all, lmEvalMetricNames(t)), predictions: [] };
  }

  // loglikelihood_rolling: the whole target text, in windows of the model's length, each predicted from one
  // token of context (lm-eval's get_rolling_token_windows with context_len 1). Without a BOS token the text's
  // first token is context only.
  const texts = req.docs.map((d, i) => targetText(t, d, req.where[i]!));
  const window = s.maxLength ?? Number.MAX_SAFE_INTEGER;
  const pieces: { ctx: number[]; cont: number[]; text: number }[] = [];
  texts.forEach((text, i) => {
    const ids = tokenizer.encode(text);
    for (let start = 1; start < ids.length; start += window)
      pieces.push({ ctx: [ids[start - 1]!], cont: ids.slice(start, start + window), text: i });
  });
  const scores = await scoreContinuations(pieces, forward, opts.batchTokens, s.maxLength, opts.mixedLengths === true);
  const sums = new Array<number>(texts.length).fill(0);
  scores.forEach((x, k) => (sums[pieces[k]!.text]! += x.loglik));
  const total = sums.reduce((a, b) => a + b, 0);
  const words = texts.reduce((a, x) => a + x.split(/\s+/).length, 0);
  const bytes = texts.reduce((a, x) => a + Buffer.byteLength(x, 'utf8'), 0);
  const n = texts.length;
  const nan = Number.NaN;
  const all: Record<string, Estimate> = {
    'word_perplexity,none': { value: Math.exp(-total / words), se: nan, n },
    'byte_perplexity,none': { value: Math.exp(-total / bytes), se: nan, n },
    'bits_per_byte,none': { value: -total / bytes / Math.LN2, se: nan, n },
  };
  return { metrics: pick(all, lmEvalMetricNames(t)), predictions: [] };
}

function pick(all: Record<string, Estimate>, names: readonly string[]): Record<string, Estimate> {
  return Object.fromEntries(names.map((n) => [n, all[n]!]));
}

/** The gold choice's index: doc_to_target as an index, or as one of the choices' texts. */
function goldIndex(t: LmEvalTask, doc: Doc, choices: readonly string[], where: string): number {
  const g = docToTarget(t, doc, where);
  const gold = Array.isArray(g) ? g[0] : g;
  const i = typeof gold === 'number' ? gold : choices.indexOf(String(gold));
  if (!Number.isInteger(i) || i < 0 || i >= choices.length) {
    throw new EvomergeError(
      'lm_eval.bad_target',
      `on ${where}: target ${JSON.stringify(gold)} is not one of the ${choices.length} choices`,
      { file: t.keyFiles.get('doc_to_target') ?? t.file, field: 'doc_to_target' },
    );
  }
  return i;
}

/** lm-eval's HFLM._encode_pair: trailing whitespace of the context moves to the continuation; the continuation's
 *  tokens are those of context + continuation after the context's. */
export function encodePair(
  tokenizer: Tokenizer,
  context: string,
  continuation: string,
): { ctx: number[]; cont: number[] } {
  const trimmed = context.replace(/\s+$/u, '');
  const moved = context.slice(trimmed.length);
  const whole = tokenizer.encode(trimmed + moved + continuation);
  const ctx = tokenizer.encode(trimmed);
  return { ctx, cont: whole.slice(ctx.length) };
}

/**
 * Σ log p(continuation | context) and whether every continuation token is the argmax, per pair. As lm-eval, the
 * sequence is cut to its last maxLength + 1 tokens and the final token is never fed. A continuation token with no
 * token before it (empty context) is not scored.
 */
export async function scoreContinuations(
  pairs: readonly { ctx: readonly number[]; cont: readonly number[] }[],
  forward: Forward,
  batchTokens: number,
  maxLength?: number,
  mixedLengths = false,
): Promise<{ loglik: number; greedy: boolean }[]> {
  const rows = pairs.map((p) => {
    let ids = [...p.ctx, ...p.cont];
    if (maxLength !== undefined && ids.length > maxLength + 1) ids = ids.slice(-(maxLength + 1));
    return { ids, first: Math.max(1, ids.length - p.cont.length) };
  });
  const out = rows.map(() => ({ loglik: 0, greedy: true }));
  const inputs = rows.map((r) => r.ids.slice(0, Math.max(1, r.ids.length - 1)));
  const lengths = inputs.map((x) => x.length);
  for (const batch of mixedLengths ? batchesMixed(lengths, batchTokens) : batchesByLength(lengths, batchTokens)) {
    const logits = await forward(batch.map((b) => inputs[b]!));
    batch.forEach((b, row) => {
      const r = rows[b]!;
      for (let t = r.first; t < r.ids.length; t++) {
        out[b]!.loglik += logProbAt(logits, row, t - 1, r.ids[t]!);
        if (argmaxAt(logits, row, t - 1) !== r.ids[t]) out[b]!.greedy = false;
      }
    });
  }
  return out;
}
