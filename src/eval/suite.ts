// Eval suites: the YAML under evals/ that names the graph, the base checkpoint, the tokenizer and the tasks
// (kind, metric, fit/test JSONL files, generation limits, field names). Parsing and validation only.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { EvomergeError } from '../errors.ts';
import { modelContextLength, parseDatasetFolders, parseLmEvalEntry } from './lm-eval/suite-entry.ts';
import type { LmEvalSettings } from './lm-eval/protocol.ts';
import type { Split } from './split.ts';

export type { Split } from './split.ts';

export type TaskKind = 'generate' | 'choice' | 'loglik' | 'lm_eval';

/** The metrics each kind computes; the first is the default. */
export const KIND_METRICS: Record<TaskKind, readonly string[]> = {
  generate: ['exact_match', 'answer_logprob', 'answer_loglik'],
  choice: ['accuracy', 'auc'],
  loglik: ['loglik', 'bits_per_byte', 'next_token_accuracy'],
  lm_eval: [], // lm-eval's result keys, per task file: TaskSpec.metrics
};

/** The JSONL fields each kind reads, by role; `fields:` in a task renames them. */
export const KIND_FIELDS: Record<TaskKind, readonly string[]> = {
  generate: ['prompt', 'answer'],
  choice: ['prompt', 'answer', 'choices'],
  loglik: ['text'],
  lm_eval: [],
};

export interface TaskSpec {
  readonly name: string;
  readonly kind: TaskKind;
  readonly metric: string;
  /** Absolute paths of the JSONL files; `val` is optional (a campaign then holds out part of fit). */
  readonly files: Readonly<Record<'fit' | 'test', string>> & { readonly val?: string };
  readonly maxNewTokens: number;
  /** Generation stops at the first of these strings, which is not kept. */
  readonly stop: readonly string[];
  /** role → JSONL field name. */
  readonly fields: Readonly<Record<string, string>>;
  /** choice: the labels, when the items do not carry their own `choices`. */
  readonly choices?: readonly string[];
  /** lm_eval: the task file and the suite's settings around it. */
  readonly lmEval?: LmEvalSettings;
  /** lm_eval: the metrics the task file defines (`exact_match,strict-match`, `acc,none`…). */
  readonly metrics?: readonly string[];
}

/** The metrics a task can be scored with: its kind's, or an lm-eval task file's result keys. */
export function taskMetrics(spec: TaskSpec): readonly string[] {
  return spec.metrics ?? KIND_METRICS[spec.kind];
}

export interface Suite {
  readonly file: string;
  /** Absolute path of the ONNX graph, or `auto` (evomerge builds it from the base model's config.json; the
   * default when the suite names no graph). */
  readonly graph?: string;
  /** Absolute path of the base model folder (binding by content), if named. */
  readonly baseModel?: string;
  /** `byte`, the absolute path of a tokenizer.json, or `auto` (the default): the base model's tokenizer.json
   * with a graph evomerge builds, `byte` with a user-exported graph (as before graphs were built). */
  readonly tokenizer: string;
  /** Compute dtype of a graph evomerge builds (`compute_dtype:`; default auto: float16 on a GPU provider for a
   * 16-bit checkpoint, else float32). */
  readonly computeDtype?: ComputeDtypeChoice;
  readonly tasks: readonly TaskSpec[];
}

export type ComputeDtypeChoice = 'auto' | 'f32' | 'f16';
export const COMPUTE_DTYPE_CHOICES: readonly ComputeDtypeChoice[] = ['auto', 'f32', 'f16'];

const SUITE_KEYS = [
  'description',
  'graph',
  'base_model',
  'tokenizer',
  'tasks',
  'datasets',
  'apply_chat_template',
  'chat_template',
  'compute_dtype',
];
const TASK_KEYS = [
  'description',
  'kind',
  'metric',
  'fit',
  'val',
  'test',
  'max_new_tokens',
  'stop',
  'fields',
  'choices',
];

export function parseSuiteFile(file: string): Suite {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new EvomergeError('eval.suite_not_found', 'eval suite not found', { file });
  }
  return parseSuite(text, file);
}

/** Parses suite YAML; `file` locates relative paths and names errors. */
export function parseSuite(text: string, file: string): Suite {
  const fail = (field: string, what: string, code = 'eval.bad_suite'): never => {
    throw new EvomergeError(code, what, { file, field });
  };
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new EvomergeError('eval.bad_suite', `not valid YAML: ${(err as Error).message.split('\n')[0]}`, { file });
  }
  if (!isRecord(doc)) return fail('(top level)', 'expected a mapping with a `tasks` key');
  for (const k of Object.keys(doc))
    if (!SUITE_KEYS.includes(k))
      fail(k, `unknown key (expected one of ${SUITE_KEYS.join(', ')})`, 'eval.suite_unknown_key');
  const dir = dirname(resolve(file));
  const pathKey = (key: string, value: unknown, kind: 'file' | 'dir'): string => {
    if (typeof value !== 'string' || value === '') return fail(key, 'expected a path (relative to the suite file)');
    const p = resolve(dir, value);
    if (!existsSync(p)) return fail(key, `${value} not found`, 'eval.suite_missing_file');
    if (kind === 'dir' ? !statSync(p).isDirectory() : !statSync(p).isFile())
      return fail(key, `${value} is not a ${kind === 'dir' ? 'folder' : 'file'}`, 'eval.suite_missing_file');
    return p;
  };
  const graph =
    doc.graph === undefined ? undefined : doc.graph === 'auto' ? 'auto' : pathKey('graph', doc.graph, 'file');
  const baseModel = doc.base_model === undefined ? undefined : pathKey('base_model', doc.base_model, 'dir');
  let tokenizer = 'auto';
  if (doc.tokenizer !== undefined)
    tokenizer =
      doc.tokenizer === 'byte' || doc.tokenizer === 'auto'
        ? doc.tokenizer
        : pathKey('tokenizer', doc.tokenizer, 'file');

  const computeDtype = doc.compute_dtype as ComputeDtypeChoice | undefined;
  if (computeDtype !== undefined && !COMPUTE_DTYPE_CHOICES.includes(computeDtype))
    fail('compute_dtype', `expected one of ${COMPUTE_DTYPE_CHOICES.join(', ')}, got ${JSON.stringify(computeDtype)}`);
  if (!isRecord(doc.tasks) || Object.keys(doc.tasks).length === 0)
    return fail('tasks', 'expected a mapping of task name → task');
  if (doc.apply_chat_template !== undefined && typeof doc.apply_chat_template !== 'boolean')
    fail('apply_chat_template', 'expected true or false');
  const chatTemplateFile =
    doc.chat_template !== undefined
      ? pathKey('chat_template', doc.chat_template, 'file')
      : baseModel && existsSync(resolve(baseModel, 'tokenizer_config.json'))
        ? resolve(baseModel, 'tokenizer_config.json')
        : undefined;
  const lmEvalContext = {
    suiteFile: file,
    suiteDir: dir,
    datasets: parseDatasetFolders(doc.datasets, file),
    applyChatTemplate: doc.apply_chat_template === true,
    ...(chatTemplateFile ? { chatTemplateFile } : {}),
    ...(modelContextLength(baseModel) !== undefined ? { maxLength: modelContextLength(baseModel)! } : {}),
  };
  const tasks: TaskSpec[] = [];
  for (const [name, raw] of Object.entries(doc.tasks)) {
    const at = `tasks.${name}`;
    if (!isRecord(raw)) return fail(at, 'expected a mapping');
    if (raw.lm_eval !== undefined) {
      const e = parseLmEvalEntry(raw, at, lmEvalContext);
      const taskFile = e.settings.task.file;
      tasks.push({
        name,
        kind: 'lm_eval',
        metric: e.metric,
        files: { fit: taskFile, test: taskFile },
        maxNewTokens: e.settings.maxGenToks,
        stop: e.settings.task.until,
        fields: {},
        lmEval: e.settings,
        metrics: e.metrics,
      });
      continue;
    }
    for (const k of Object.keys(raw))
      if (!TASK_KEYS.includes(k))
        fail(`${at}.${k}`, `unknown key (expected one of ${TASK_KEYS.join(', ')})`, 'eval.suite_unknown_key');
    const kind = raw.kind;
    if (kind !== 'generate' && kind !== 'choice' && kind !== 'loglik')
      return fail(`${at}.kind`, 'expected generate, choice or loglik (or an lm_eval: task file)');
    const metric = raw.metric === undefined ? KIND_METRICS[kind][0]! : raw.metric;
    if (typeof metric !== 'string' || !KIND_METRICS[kind].includes(metric)) {
      return fail(`${at}.metric`, `expected one of ${KIND_METRICS[kind].join(', ')} for kind ${kind}`);
    }
    if (raw.fit === undefined) fail(`${at}.fit`, 'missing (the JSONL file a search may use)');
    if (raw.test === undefined) fail(`${at}.test`, 'missing (the held-out JSONL file)');
    const files = {
      fit: pathKey(`${at}.fit`, raw.fit, 'file'),
      test: pathKey(`${at}.test`, raw.test, 'file'),
      ...(raw.val !== undefined ? { val: pathKey(`${at}.val`, raw.val, 'file') } : {}),
    };
    let maxNewTokens = 0;
    if (kind === 'generate') {
      if (!Number.isInteger(raw.max_new_tokens) || (raw.max_new_tokens as number) < 1)
        fail(`${at}.max_new_tokens`, 'expected a positive integer');
      maxNewTokens = raw.max_new_tokens as number;
    } else if (raw.max_new_tokens !== undefined) fail(`${at}.max_new_tokens`, `only for kind generate`);
    let stop: string[] = [];
    if (raw.stop !== undefined) {
      const s = typeof raw.stop === 'string' ? [raw.stop] : raw.stop;
      if (!Array.isArray(s) || s.some((x) => typeof x !== 'string' || x === ''))
        fail(`${at}.stop`, 'expected a non-empty string or a list of them');
      if (kind !== 'generate') fail(`${at}.stop`, 'only for kind generate');
      stop = s as string[];
    }
    const fields: Record<string, string> = Object.fromEntries(KIND_FIELDS[kind].map((r) => [r, r]));
    if (raw.fields !== undefined) {
      if (!isRecord(raw.fields)) fail(`${at}.fields`, 'expected a mapping of role → JSONL field name');
      for (const [role, f] of Object.entries(raw.fields as Record<string, unknown>)) {
        if (!KIND_FIELDS[kind].includes(role))
          fail(
            `${at}.fields.${role}`,
            `unknown role (expected one of ${KIND_FIELDS[kind].join(', ')})`,
            'eval.suite_unknown_key',
          );
        if (typeof f !== 'string' || f === '') fail(`${at}.fields.${role}`, 'expected a field name');
        fields[role] = f as string;
      }
    }
    let choices: string[] | undefined;
    if (raw.choices !== undefined) {
      if (kind !== 'choice') fail(`${at}.choices`, 'only for kind choice');
      if (
        !Array.isArray(raw.choices) ||
        raw.choices.length < 2 ||
        raw.choices.some((c) => typeof c !== 'string' || c === '')
      ) {
        fail(`${at}.choices`, 'expected a list of at least two non-empty labels');
      }
      choices = raw.choices as string[];
    }
    tasks.push({ name, kind, metric, files, maxNewTokens, stop, fields, ...(choices ? { choices } : {}) });
  }
  return {
    file,
    ...(graph ? { graph } : {}),
    ...(baseModel ? { baseModel } : {}),
    tokenizer,
    ...(computeDtype ? { computeDtype } : {}),
    tasks,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
