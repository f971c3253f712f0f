// A suite task that points at an lm-eval task file (`lm_eval: path/to/task.yaml`) and the suite keys around it:
// the task's own options (fit_split, fit_fraction, partition_seed, fewshot_split, fewshot_seed, num_fewshot,
// max_gen_toks, apply_chat_template, metric) and the suite-wide `datasets:` map, `apply_chat_template` and
// `chat_template`. Everything is checked here, before any model runs.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { EvomergeError } from '../../errors.ts';
import { ChatTemplate } from './chat-template.ts';
import { checkProtocol, type LmEvalSettings } from './protocol.ts';
import { lmEvalMetricNames } from './run-task.ts';
import { loadLmEvalTask } from './task-file.ts';

export const LM_EVAL_TASK_KEYS = [
  'description',
  'lm_eval',
  'metric',
  'fit_split',
  'fit_fraction',
  'partition_seed',
  'fewshot_split',
  'fewshot_seed',
  'num_fewshot',
  'max_gen_toks',
  'apply_chat_template',
];

/** Suite-wide settings lm-eval tasks read. */
export interface LmEvalSuiteContext {
  readonly suiteFile: string;
  readonly suiteDir: string;
  /** hub dataset name → absolute local folder */
  readonly datasets: ReadonlyMap<string, string>;
  readonly applyChatTemplate: boolean;
  /** tokenizer_config.json holding the chat template (the suite's chat_template, else the base model's). */
  readonly chatTemplateFile?: string;
  /** The base model's max_position_embeddings, if it has one. */
  readonly maxLength?: number;
}

export interface ParsedLmEvalEntry {
  readonly settings: LmEvalSettings;
  readonly metrics: readonly string[];
  readonly metric: string;
}

const LM_EVAL_DEFAULT_MAX_GEN_TOKS = 256;
/** lm-eval's default few-shot seed (evaluator.simple_evaluate fewshot_random_seed). */
const LM_EVAL_FEWSHOT_SEED = 1234;

export function parseLmEvalEntry(raw: Record<string, unknown>, at: string, ctx: LmEvalSuiteContext): ParsedLmEvalEntry {
  const file = ctx.suiteFile;
  const fail = (key: string, what: string, code = 'eval.bad_suite'): never => {
    throw new EvomergeError(code, what, { file, field: `${at}.${key}` });
  };
  for (const k of Object.keys(raw))
    if (!LM_EVAL_TASK_KEYS.includes(k))
      fail(
        k,
        `unknown key for an lm_eval task (expected one of ${LM_EVAL_TASK_KEYS.join(', ')})`,
        'eval.suite_unknown_key',
      );
  if (typeof raw.lm_eval !== 'string' || raw.lm_eval === '')
    return fail('lm_eval', 'expected the path of an lm-eval task YAML (relative to the suite file)');
  const taskFile = resolve(ctx.suiteDir, raw.lm_eval);
  if (!existsSync(taskFile) || !statSync(taskFile).isFile())
    return fail('lm_eval', `${raw.lm_eval} not found`, 'eval.suite_missing_file');
  // a task file reads includes and data files only under its own folder and the suite's (task-load.ts)
  const task = loadLmEvalTask(taskFile, [dirname(taskFile), ctx.suiteDir]);

  const int = (key: string, min: number): number | undefined => {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || (v as number) < min) fail(key, `expected an integer ≥ ${min}`);
    return v as number;
  };
  const str = (key: string): string | undefined => {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') fail(key, 'expected a split name');
    return v as string;
  };
  let fitFraction = 0.5;
  if (raw.fit_fraction !== undefined) {
    if (typeof raw.fit_fraction !== 'number' || !(raw.fit_fraction > 0 && raw.fit_fraction < 1))
      fail('fit_fraction', 'expected a number strictly between 0 and 1');
    fitFraction = raw.fit_fraction as number;
  }
  if (raw.apply_chat_template !== undefined && typeof raw.apply_chat_template !== 'boolean')
    fail('apply_chat_template', 'expected true or false');
  const chat = (raw.apply_chat_template as boolean | undefined) ?? ctx.applyChatTemplate;
  let chatTemplate: ChatTemplate | undefined;
  if (chat) {
    if (!ctx.chatTemplateFile)
      fail(
        'apply_chat_template',
        'needs a chat template: give the suite a base_model with a tokenizer_config.json, or chat_template: path/to/tokenizer_config.json',
      );
    chatTemplate = ChatTemplate.load(ctx.chatTemplateFile!);
  }
  const maxGenToks = int('max_gen_toks', 1) ?? task.maxGenToks ?? LM_EVAL_DEFAULT_MAX_GEN_TOKS;
  if (task.outputType === 'generate_until' && ctx.maxLength !== undefined && maxGenToks >= ctx.maxLength) {
    const where = raw.max_gen_toks !== undefined ? `${at}.max_gen_toks` : `${at}.lm_eval`;
    throw new EvomergeError(
      'eval.bad_suite',
      `max_gen_toks ${maxGenToks} leaves no room for the prompt in the model's ${ctx.maxLength}-token context; set ` +
        `max_gen_toks in the suite task`,
      { file, field: where },
    );
  }
  const fitSplit = str('fit_split');
  const fewshotSplit = str('fewshot_split');
  const settings: LmEvalSettings = {
    task,
    suiteFile: file,
    at,
    datasets: ctx.datasets,
    ...(fitSplit ? { fitSplit } : {}),
    fitFraction,
    partitionSeed: int('partition_seed', 0) ?? 0,
    ...(fewshotSplit ? { fewshotSplit } : {}),
    fewshotSeed: int('fewshot_seed', 0) ?? LM_EVAL_FEWSHOT_SEED,
    numFewshot: int('num_fewshot', 0) ?? task.numFewshot,
    maxGenToks,
    ...(ctx.maxLength !== undefined ? { maxLength: ctx.maxLength } : {}),
    ...(chatTemplate ? { chatTemplate } : {}),
  };
  checkProtocol(settings);
  const metrics = lmEvalMetricNames(task);
  const metric = raw.metric === undefined ? metrics[0]! : raw.metric;
  if (typeof metric !== 'string' || !metrics.includes(metric))
    fail('metric', `expected one of ${metrics.join(', ')} (lm-eval's result keys for this task)`);
  return { settings, metrics, metric: metric as string };
}

/** The suite-wide `datasets:` map: hub dataset name → local folder (relative to the suite file). */
export function parseDatasetFolders(raw: unknown, suiteFile: string): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === undefined) return out;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new EvomergeError('eval.bad_suite', 'expected a mapping of hub dataset name → local folder', {
      file: suiteFile,
      field: 'datasets',
    });
  }
  for (const [name, p] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof p !== 'string' || p === '')
      throw new EvomergeError('eval.bad_suite', 'expected a folder path', {
        file: suiteFile,
        field: `datasets.${name}`,
      });
    const dir = resolve(dirname(resolve(suiteFile)), p);
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      throw new EvomergeError('eval.suite_missing_file', `${p} is not a folder`, {
        file: suiteFile,
        field: `datasets.${name}`,
      });
    out.set(name, dir);
  }
  return out;
}

/** max_position_embeddings of a model folder's config.json, if it says. */
export function modelContextLength(modelDir: string | undefined): number | undefined {
  if (!modelDir) return undefined;
  try {
    const cfg = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as {
      max_position_embeddings?: unknown;
    };
    return Number.isInteger(cfg.max_position_embeddings) ? (cfg.max_position_embeddings as number) : undefined;
  } catch {
    return undefined;
  }
}
