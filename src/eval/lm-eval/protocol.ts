// Which docs of an lm-eval task a campaign scores on its fit and test splits, and where few-shot examples come
// from — the hygiene rules: a search sees only the fit docs, and no few-shot example is a scored doc.
//   fit/test: the suite's `fit_split` (whole) vs the task's eval split (test_split, else validation_split);
//             else validation_split vs test_split when the task has both;
//             else a seeded partition of the eval split (`fit_fraction`, default 0.5; `partition_seed`, default 0).
//   few-shot: inline fewshot_config.samples; else the suite's or task's fewshot_split, else lm-eval's rule
//             (training, validation, test split); refused when that split is one whose docs are scored.
//   sampler:  first_n takes the first docs; default draws from a generator seeded by (fewshot_seed, doc index),
//             so a doc's examples do not depend on which other docs run (lm-eval draws from one random.Random(1234)
//             stream: the same rule, not the same draws).
import { EvomergeError } from '../../errors.ts';
import type { Split } from '../split.ts';
import type { ChatTemplate } from './chat-template.ts';
import { availableSplits, loadSplit, type DatasetFolders, type Doc } from './dataset.ts';
import type { LmEvalTask } from './task-file.ts';

/** What the suite says about one lm-eval task, on top of its task file. */
export interface LmEvalSettings {
  readonly task: LmEvalTask;
  /** The suite file and the task's key in it, for messages. */
  readonly suiteFile: string;
  readonly at: string;
  readonly datasets: DatasetFolders;
  readonly fitSplit?: string;
  readonly fitFraction: number;
  readonly partitionSeed: number;
  readonly fewshotSplit?: string;
  readonly fewshotSeed: number;
  readonly numFewshot: number;
  readonly maxGenToks: number;
  /** Context length of the model (the base model's max_position_embeddings), if known: prompts are cut from the left to fit. */
  readonly maxLength?: number;
  readonly chatTemplate?: ChatTemplate;
}

export interface ScoredDocs {
  readonly docs: readonly Doc[];
  /** Each doc's index in its split (for messages and the few-shot sampler's seed). */
  readonly indices: readonly number[];
  readonly split: string;
}

/** Protocol, in words and as data, recorded with a campaign. */
export function describeProtocol(s: LmEvalSettings): Record<string, string> {
  const plan = splitPlan(s);
  const fit = plan.partition
    ? `${Math.round(s.fitFraction * 100)}% of split "${plan.evalSplit}" (seeded partition, seed ${s.partitionSeed})`
    : `split "${plan.fitSplit}"`;
  const test = plan.partition
    ? `the other ${100 - Math.round(s.fitFraction * 100)}% of split "${plan.evalSplit}"`
    : `split "${plan.evalSplit}"`;
  let fewshot = 'none';
  if (s.numFewshot > 0) {
    const source = s.task.fewshotSamples ? 'fewshot_config.samples (inline)' : `split "${fewshotSource(s)}"`;
    fewshot =
      `${s.numFewshot} from ${source}, sampler ${s.task.fewshotSampler}` +
      `${s.task.fewshotSampler === 'default' ? `, seed ${s.fewshotSeed}` : ''}`;
  }
  return { task_file: s.task.file, fit, test, fewshot, chat_template: s.chatTemplate ? s.chatTemplate.file : 'none' };
}

interface SplitPlan {
  readonly evalSplit: string;
  readonly fitSplit: string;
  readonly partition: boolean;
}

function splitPlan(s: LmEvalSettings): SplitPlan {
  const t = s.task;
  const evalSplit = t.testSplit ?? t.validationSplit;
  if (!evalSplit)
    throw new EvomergeError('lm_eval.no_split', 'the task names neither test_split nor validation_split', {
      file: t.file,
      field: 'test_split',
    });
  if (s.fitSplit !== undefined) {
    if (s.fitSplit === evalSplit)
      throw new EvomergeError(
        'suite.bad_lm_eval',
        `fit_split "${s.fitSplit}" is the split the test scores come from; leave fit_split out to partition it`,
        { file: s.suiteFile, field: `${s.at}.fit_split` },
      );
    return { evalSplit, fitSplit: s.fitSplit, partition: false };
  }
  if (t.validationSplit && t.testSplit && t.validationSplit !== t.testSplit)
    return { evalSplit: t.testSplit, fitSplit: t.validationSplit, partition: false };
  return { evalSplit, fitSplit: evalSplit, partition: true };
}

/** The split few-shot examples come from (when they are not inline). */
function fewshotSource(s: LmEvalSettings): string {
  const t = s.task;
  const src = s.fewshotSplit ?? t.fewshotSplit ?? t.trainingSplit ?? t.validationSplit ?? t.testSplit;
  if (!src)
    throw new EvomergeError('lm_eval.no_split', 'num_fewshot > 0 but no split to draw examples from', {
      file: t.file,
      field: 'fewshot_split',
    });
  return src;
}

/** Checks, without reading the data, that the splits exist and that few-shot examples are never scored docs. */
export function checkProtocol(s: LmEvalSettings): void {
  const plan = splitPlan(s);
  const has = availableSplits(s.task, s.datasets);
  const need = (split: string, file: string, field: string) => {
    if (!has.includes(split))
      throw new EvomergeError(
        'lm_eval.no_split',
        `split "${split}" does not exist (the data has: ${has.join(', ') || 'none'})`,
        { file, field },
      );
  };
  const keyFile = (k: string) => s.task.keyFiles.get(k) ?? s.task.file;
  need(
    plan.evalSplit,
    keyFile(s.task.testSplit ? 'test_split' : 'validation_split'),
    s.task.testSplit ? 'test_split' : 'validation_split',
  );
  if (s.fitSplit !== undefined) need(plan.fitSplit, s.suiteFile, `${s.at}.fit_split`);
  else if (!plan.partition) need(plan.fitSplit, keyFile('validation_split'), 'validation_split');
  if (s.numFewshot > 0 && !s.task.fewshotSamples) {
    const src = fewshotSource(s);
    const field = s.fewshotSplit ? `${s.at}.fewshot_split` : 'fewshot_split';
    const file = s.fewshotSplit
      ? s.suiteFile
      : keyFile(s.task.fewshotSplit ? 'fewshot_split' : s.task.trainingSplit ? 'training_split' : 'validation_split');
    need(src, file, field);
    if (src === plan.evalSplit || src === plan.fitSplit) {
      throw new EvomergeError(
        'suite.fewshot_leak',
        `few-shot examples would come from split "${src}", whose docs are scored; give fewshot_split: <another split> in the suite task`,
        { file: s.suiteFile, field: `${s.at}.fewshot_split` },
      );
    }
  }
}

/** The docs scored on a campaign split. */
export async function scoredDocs(s: LmEvalSettings, split: Split): Promise<ScoredDocs> {
  const plan = splitPlan(s);
  const name = split === 'fit' ? plan.fitSplit : plan.evalSplit;
  const key =
    split === 'test' || plan.partition ? (s.task.testSplit ? 'test_split' : 'validation_split') : 'validation_split';
  const all = await loadSplit(
    s.task,
    name,
    s.fitSplit !== undefined && split === 'fit' ? `${s.at}.fit_split` : key,
    s.datasets,
  );
  let indices = all.map((_, i) => i);
  if (plan.partition) {
    const order = seededPermutation(all.length, s.partitionSeed);
    const nFit = Math.round(all.length * s.fitFraction);
    const chosen = new Set(split === 'fit' ? order.slice(0, nFit) : order.slice(nFit));
    indices = indices.filter((i) => chosen.has(i));
  }
  return { docs: indices.map((i) => all[i]!), indices, split: name };
}

/** The few-shot pool: inline samples, or the docs of the few-shot split. */
export async function fewshotPool(s: LmEvalSettings): Promise<readonly Doc[]> {
  if (s.numFewshot === 0) return [];
  if (s.task.fewshotSamples) return s.task.fewshotSamples;
  return loadSplit(s.task, fewshotSource(s), s.fewshotSplit ? `${s.at}.fewshot_split` : 'fewshot_split', s.datasets);
}

/** The examples shown before the doc at `docIndex`. */
export function sampleFewshot(s: LmEvalSettings, pool: readonly Doc[], docIndex: number): Doc[] {
  const n = s.numFewshot;
  if (n === 0) return [];
  if (pool.length < n)
    throw new EvomergeError(
      'lm_eval.fewshot_short',
      `num_fewshot is ${n} but the few-shot source has ${pool.length} docs`,
      { file: s.task.file, field: 'num_fewshot' },
    );
  if (s.task.fewshotSampler === 'first_n') return pool.slice(0, n);
  const order = seededPermutation(pool.length, (s.fewshotSeed * 1000003 + docIndex) >>> 0, n);
  return order.slice(0, n).map((i) => pool[i]!);
}

/** The first `take` entries of a permutation of 0..n−1 (Fisher–Yates with mulberry32, Tommy Ettinger 2017). */
function seededPermutation(n: number, seed: number, take = n): number[] {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < Math.min(take, n - 1); i++) {
    const j = i + Math.floor(next() * (n - i));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}
