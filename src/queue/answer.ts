// What the coordinator accepts from a worker: an answer is checked against the job it answers before anything
// reaches the campaign's record. A worker (or anyone who can write to the queue) that answers `null`, a
// wrong type, another task or metric, another item count, or a value outside its metric's range gets a failed
// candidate naming it, never a hang or a crash; a forged answer within the ranges cannot be told from a real
// one (docs/campaigns-across-machines.md).
import { readEvalFile } from '../eval/eval-file.ts';
import { scoredDocs } from '../eval/lm-eval/protocol.ts';
import type { Suite } from '../eval/suite.ts';
import type { Split } from '../eval/split.ts';
import type { ItemSubset } from '../search/scoring/scorer.ts';
import { MAX_MESSAGE_BYTES, messageBytes, type CandidateJob, type CandidateResult } from './job.ts';

/** The range a metric's value lies in; a metric not named here must only be finite. */
const METRIC_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  exact_match: [0, 1],
  accuracy: [0, 1],
  auc: [0, 1],
  next_token_accuracy: [0, 1],
  loglik: [-Infinity, 0],
  answer_logprob: [-Infinity, 0],
  answer_loglik: [-Infinity, 0],
  bits_per_byte: [0, Infinity],
  // lm-eval's metrics (their result keys are `<metric>,<filter>`)
  acc: [0, 1],
  acc_norm: [0, 1],
  perplexity: [0, Infinity],
  word_perplexity: [0, Infinity],
  byte_perplexity: [0, Infinity],
};

/** The range of a metric: by its name, else (an lm-eval result key `acc,none`) by the name before the comma. */
function rangeOf(metric: string): readonly [number, number] {
  for (const name of [metric, metric.split(',')[0]!])
    if (Object.hasOwn(METRIC_RANGES, name)) return METRIC_RANGES[name]!;
  return [-Infinity, Infinity];
}

/** How many items a job scores of a task on a split (undefined: not known here). */
export type ItemCount = (task: string, split: Split, items?: ItemSubset) => number | undefined;

/** The docs an lm-eval task scores on each split, keyed `task/split` (lm-eval tasks have no val split). */
export type LmEvalDocCounts = ReadonlyMap<string, number>;

/** How many docs each lm-eval task of a suite scores on fit and on test, read from its data files as the
 *  evaluator reads them (a split that cannot be read is left out: the worker's answer says why). */
export async function lmEvalDocCounts(suite: Suite): Promise<LmEvalDocCounts> {
  const counts = new Map<string, number>();
  for (const spec of suite.tasks) {
    if (!spec.lmEval) continue;
    for (const split of ['fit', 'test'] as const) {
      try {
        counts.set(`${spec.name}/${split}`, (await scoredDocs(spec.lmEval, split)).docs.length);
      } catch {
        // unknown here
      }
    }
  }
  return counts;
}

/** The item counts of a suite's tasks as an evaluator scores them: the chosen items, else the split's file
 *  (an lm-eval task: its docs on the split, `lmEval`), then at most `limit`. Each file is read once. */
export function suiteItemCount(suite: Suite, limit: number | undefined, lmEval?: LmEvalDocCounts): ItemCount {
  const lengths = new Map<string, number>();
  return (task, split, items) => {
    const spec = suite.tasks.find((t) => t.name === task);
    if (!spec) return undefined;
    if (spec.lmEval || spec.kind === 'lm_eval') {
      const docs = lmEval?.get(`${task}/${split}`);
      return docs === undefined ? undefined : Math.min(docs, limit ?? Infinity);
    }
    const chosen = items?.[task];
    let n: number;
    if (chosen) n = chosen.length;
    else {
      const file = spec.files[split];
      if (!file) return undefined;
      let len = lengths.get(file);
      if (len === undefined) {
        len = readEvalFile(file, spec.fields).length;
        lengths.set(file, len);
      }
      n = len;
    }
    return Math.min(n, limit ?? Infinity);
  };
}

/**
 * The answer if it fits the job, else what is wrong with it (one phrase). Values a JSON answer cannot carry
 * (NaN: a metric the scorer could not compute) arrive as null and are let through as the embedded run records them.
 */
export function checkAnswer(
  r: unknown,
  job: Pick<CandidateJob, 'split' | 'measures' | 'items'>,
  itemCount: ItemCount,
): { readonly answer: CandidateResult } | { readonly wrong: string } {
  const wrong = (what: string) => ({ wrong: what });
  if (r === null || typeof r !== 'object' || Array.isArray(r))
    return wrong(`the answer is ${kindOf(r)}, not an object`);
  if (messageBytes(r) === undefined) return wrong(`the answer weighs more than ${MAX_MESSAGE_BYTES / 1024 / 1024} MiB`);
  const a = r as Record<string, unknown>;
  if (typeof a.worker !== 'string') return wrong('"worker" is not a string');
  if (a.ok === false) {
    const e = a.error as Record<string, unknown> | null | undefined;
    if (!e || typeof e !== 'object' || typeof e.code !== 'string' || typeof e.message !== 'string')
      return wrong('a failed answer without an error code and message');
    if (!/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/.test(e.code))
      return wrong(`error code ${JSON.stringify(e.code).slice(0, 60)} is not an evomerge error code`);
    const message = e.message.replace(/[\r\n]+/g, ' ');
    return { answer: { ok: false, error: { code: e.code, message }, worker: a.worker } };
  }
  if (a.ok !== true) return wrong('"ok" is neither true nor false');
  if (!isFiniteNumber(a.startedAt)) return wrong('"startedAt" is not a finite number');
  const t = a.result as Record<string, unknown> | null | undefined;
  if (!t || typeof t !== 'object') return wrong('"result" is not an object');
  for (const k of ['mergeMs', 'evalMs'] as const)
    if (!isFiniteNumber(t[k]) || (t[k] as number) < 0) return wrong(`"result.${k}" is not a finite number ≥ 0`);
  const scores = t.value;
  if (!Array.isArray(scores)) return wrong('"result.value" is not a list of scores');
  if (scores.length !== job.measures.length)
    return wrong(`${scores.length} score(s) for the job's ${job.measures.length} measure(s)`);
  for (let i = 0; i < scores.length; i++) {
    const m = job.measures[i]!;
    const s = scores[i] as Record<string, unknown> | null;
    const at = `score ${i} (${m.task}/${m.metric})`;
    if (!s || typeof s !== 'object') return wrong(`${at} is not an object`);
    if (s.task !== m.task || s.metric !== m.metric)
      return wrong(`${at} is for ${String(s.task).slice(0, 40)}/${String(s.metric).slice(0, 40)}`);
    if (s.split !== job.split) return wrong(`${at} is on split ${String(s.split).slice(0, 20)}, not ${job.split}`);
    const n = s.n;
    const want = itemCount(m.task, job.split, job.items);
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return wrong(`${at}: n is not an item count`);
    if (want !== undefined && n !== want) return wrong(`${at}: n = ${n}, but the job scores ${want} item(s)`);
    if (s.value !== null) {
      if (!isFiniteNumber(s.value)) return wrong(`${at}: value is not a finite number`);
      const [lo, hi] = rangeOf(m.metric);
      if (s.value < lo || s.value > hi) return wrong(`${at}: value ${s.value} is outside [${lo}, ${hi}]`);
    }
    if (s.se !== null && (!isFiniteNumber(s.se) || s.se < 0)) return wrong(`${at}: se is not a finite number ≥ 0`);
    if (s.pseudo !== undefined) {
      if (!Array.isArray(s.pseudo) || s.pseudo.length !== n)
        return wrong(`${at}: pseudo is not a list of ${n} per-item value(s)`);
      if (!s.pseudo.every((v) => v === null || isFiniteNumber(v)))
        return wrong(`${at}: pseudo holds something other than finite numbers`);
    }
  }
  return { answer: r as CandidateResult };
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'string' ? 'a string' : `a ${typeof v}`;
}
