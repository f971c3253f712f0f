// lm-evaluation-harness task files (YAML): loading with `include:`, and the subset of lm-eval's TaskConfig that
// evomerge runs, checked at the door. What needs Python (`!function`, process_docs, process_results), sampling
// and unknown filters or metrics are refused in one line naming the file and the key.
import { dirname, resolve } from 'node:path';
import { EvomergeError } from '../../errors.ts';
import { FUNCTION_TAG, loadWithIncludes, rootsPhrase, underRoots, type FunctionRef } from './task-load.ts';
import { compilePythonRegex, PatternError } from './python-regex.ts';
import { JinjaTemplate, TemplateError } from './jinja.ts';

export type OutputType = 'generate_until' | 'multiple_choice' | 'loglikelihood' | 'loglikelihood_rolling';
const OUTPUT_TYPES: readonly OutputType[] = [
  'generate_until',
  'multiple_choice',
  'loglikelihood',
  'loglikelihood_rolling',
];

/** doc_to_text / doc_to_target / doc_to_choice: a field name or a Jinja template (a string), a literal index, or a literal list. */
export type DocField = string | number | readonly string[];

export type FilterStep =
  | {
      readonly function: 'regex';
      readonly pattern: RegExp;
      readonly source: string;
      readonly groupSelect: number;
      readonly fallback: string;
    }
  | { readonly function: 'take_first' | 'remove_whitespace' | 'lowercase' | 'uppercase' };

export interface FilterPipeline {
  readonly name: string;
  readonly steps: readonly FilterStep[];
}

export interface MetricSpec {
  readonly metric:
    'exact_match' | 'acc' | 'acc_norm' | 'perplexity' | 'word_perplexity' | 'byte_perplexity' | 'bits_per_byte';
  readonly ignoreCase: boolean;
  readonly ignorePunctuation: boolean;
  readonly regexesToIgnore: readonly RegExp[];
}

export interface LmEvalTask {
  /** The task file (the one named in the suite). */
  readonly file: string;
  /** Which file each top-level key came from (the task file or one it includes), for messages. */
  readonly keyFiles: ReadonlyMap<string, string>;
  readonly task: string;
  readonly outputType: OutputType;
  readonly datasetPath: string;
  readonly datasetName: string | null;
  /** dataset_kwargs.data_files, split → absolute paths (relative paths are read from the task file's folder). */
  readonly dataFiles?: Readonly<Record<string, readonly string[]>>;
  readonly trainingSplit?: string;
  readonly validationSplit?: string;
  readonly testSplit?: string;
  readonly fewshotSplit?: string;
  readonly docToText: DocField;
  readonly docToTarget: DocField;
  readonly docToChoice?: DocField;
  readonly description: string;
  readonly targetDelimiter: string;
  readonly fewshotDelimiter: string;
  readonly numFewshot: number;
  readonly fewshotSampler: 'default' | 'first_n';
  /** fewshot_config.samples: inline examples (docs). */
  readonly fewshotSamples?: readonly Record<string, unknown>[];
  readonly until: readonly string[];
  /** Absent: lm-eval's default, 256. */
  readonly maxGenToks?: number;
  readonly filters: readonly FilterPipeline[];
  readonly metrics: readonly MetricSpec[];
}

const KNOWN_KEYS = [
  'task',
  'task_alias',
  'tag',
  'group',
  'include',
  'dataset_path',
  'dataset_name',
  'dataset_kwargs',
  'training_split',
  'validation_split',
  'test_split',
  'fewshot_split',
  'doc_to_text',
  'doc_to_target',
  'doc_to_choice',
  'description',
  'target_delimiter',
  'fewshot_delimiter',
  'fewshot_config',
  'num_fewshot',
  'metric_list',
  'output_type',
  'generation_kwargs',
  'repeats',
  'filter_list',
  'should_decontaminate',
  'doc_to_decontamination_query',
  'metadata',
];
/** Keys lm-eval accepts whose meaning needs Python code or features evomerge does not have. */
const REFUSED_KEYS: Record<string, string> = {
  process_docs:
    'runs Python code on the dataset, which evomerge cannot run; preprocess the data into local files instead',
  process_results: 'scores with Python code, which evomerge cannot run',
  custom_dataset: 'loads data with Python code, which evomerge cannot run',
  doc_to_image: 'multimodal tasks are not supported',
  doc_to_audio: 'multimodal tasks are not supported',
  use_prompt: 'promptsource prompts are not supported',
  gen_prefix: 'not supported',
  multiple_input: 'not supported',
  unsafe_code: 'not supported',
};
/** The metrics evomerge computes per output type; a task file without metric_list gets them all (lm-eval's defaults). */
const METRICS_OF: Record<OutputType, MetricSpec['metric'][]> = {
  generate_until: ['exact_match'],
  multiple_choice: ['acc', 'acc_norm'],
  loglikelihood: ['perplexity', 'acc'],
  loglikelihood_rolling: ['word_perplexity', 'byte_perplexity', 'bits_per_byte'],
};

/**
 * Reads a task file and its includes (the including file's keys win, as lm-eval's load_yaml_config does). Includes
 * and data_files are read only under `roots` (default: the task file's folder; a suite adds its own folder).
 */
export function loadLmEvalTask(file: string, roots: readonly string[] = [dirname(resolve(file))]): LmEvalTask {
  const keyFiles = new Map<string, string>();
  const raw = loadWithIncludes(resolve(file), roots, keyFiles);
  return interpret(resolve(file), raw, keyFiles, roots);
}

/** A task document being read: its keys, where each came from, and the error that names the key's file. */
interface TaskDoc {
  readonly file: string;
  readonly doc: Record<string, unknown>;
  readonly keyFiles: ReadonlyMap<string, string>;
  readonly fail: (key: string, what: string, code?: string, sub?: string) => never;
  /** A string key; absent (or null) is undefined unless required. */
  readonly str: (key: string, required?: boolean) => string | undefined;
  /** The folders data_files may name files under. */
  readonly roots: readonly string[];
}

/** A task document → an LmEvalTask, key group by key group in lm-eval's order; the first problem throws. */
function interpret(
  file: string,
  doc: Record<string, unknown>,
  keyFiles: Map<string, string>,
  roots: readonly string[],
): LmEvalTask {
  const fail = (key: string, what: string, code = 'lm_eval.bad_task', sub = ''): never => {
    throw new EvomergeError(code, what, { file: keyFiles.get(key) ?? file, field: key + sub });
  };
  const str = (key: string, required = false): string | undefined => {
    const v = doc[key];
    if (v === undefined || v === null) return required ? fail(key, 'missing') : undefined;
    if (typeof v !== 'string') return fail(key, 'expected a string');
    return v;
  };
  const t: TaskDoc = { file, doc, keyFiles, fail, str, roots };
  checkTaskKeys(t);
  const outputType = readOutputType(t);
  const data = readData(t);
  const prompt = readPrompt(t, outputType);
  const fewshot = readFewshot(t);
  const generation = readGeneration(t, prompt.fewshotDelimiter);
  const filters = readFilters(t, outputType);
  const metrics = readMetrics(t, outputType);

  const split = (k: string) => str(k);
  return {
    file,
    keyFiles,
    task: str('task') ?? file,
    outputType,
    datasetPath: data.datasetPath,
    datasetName: data.datasetName,
    ...(data.dataFiles ? { dataFiles: data.dataFiles } : {}),
    ...opt('trainingSplit', split('training_split')),
    ...opt('validationSplit', split('validation_split')),
    ...opt('testSplit', split('test_split')),
    ...opt('fewshotSplit', split('fewshot_split')),
    docToText: prompt.docToText,
    docToTarget: prompt.docToTarget,
    ...(prompt.docToChoice !== undefined ? { docToChoice: prompt.docToChoice } : {}),
    description: prompt.description,
    targetDelimiter: prompt.targetDelimiter,
    fewshotDelimiter: prompt.fewshotDelimiter,
    numFewshot: fewshot.numFewshot,
    fewshotSampler: fewshot.fewshotSampler,
    ...(fewshot.fewshotSamples ? { fewshotSamples: fewshot.fewshotSamples } : {}),
    until: generation.until,
    ...(generation.maxGenToks !== undefined ? { maxGenToks: generation.maxGenToks } : {}),
    filters,
    metrics,
  };
}

/** Python code and refused features first: they explain why other keys may look odd. Then unknown keys. */
function checkTaskKeys({ doc, fail }: TaskDoc): void {
  for (const [k, v] of Object.entries(doc)) {
    const fn = findFunction(v);
    if (k in REFUSED_KEYS && v !== null && v !== undefined)
      fail(k, `${fn !== undefined ? `!function ${fn}: ` : ''}${REFUSED_KEYS[k]!}`, 'lm_eval.unsupported');
    if (fn !== undefined) fail(k, `!function ${fn} is Python code, which evomerge cannot run`, 'lm_eval.unsupported');
  }
  for (const k of Object.keys(doc)) {
    if (!KNOWN_KEYS.includes(k) && !(k in REFUSED_KEYS))
      fail(k, 'unknown or unsupported lm-eval task key', 'lm_eval.unsupported');
  }
}

/** output_type (default generate_until), and repeats, which must be 1. */
function readOutputType({ doc, fail }: TaskDoc): OutputType {
  const outputType = (doc.output_type ?? 'generate_until') as OutputType;
  if (!OUTPUT_TYPES.includes(outputType))
    fail('output_type', `expected one of ${OUTPUT_TYPES.join(', ')}`, 'lm_eval.unsupported');
  if (doc.repeats !== undefined && doc.repeats !== 1)
    fail('repeats', 'only 1 is supported (greedy decoding gives the same answer each time)', 'lm_eval.unsupported');
  return outputType;
}

/** Data: dataset_path, dataset_name and dataset_kwargs.data_files (the only keyword supported). */
function readData({ file, doc, keyFiles, fail, str, roots }: TaskDoc): Pick<
  LmEvalTask,
  'datasetPath' | 'datasetName'
> & {
  dataFiles?: Record<string, string[]>;
} {
  const datasetPath = str('dataset_path', true)!;
  const datasetName = str('dataset_name') ?? null;
  let dataFiles: Record<string, string[]> | undefined;
  if (doc.dataset_kwargs !== undefined && doc.dataset_kwargs !== null) {
    if (!isRecord(doc.dataset_kwargs)) fail('dataset_kwargs', 'expected a mapping');
    const kw = doc.dataset_kwargs as Record<string, unknown>;
    for (const k of Object.keys(kw))
      if (k !== 'data_files') fail('dataset_kwargs', 'only data_files is supported', 'lm_eval.unsupported', `.${k}`);
    const dir = dirname(keyFiles.get('dataset_kwargs') ?? file);
    const paths = (v: unknown, at: string): string[] => {
      const list = typeof v === 'string' ? [v] : v;
      if (!Array.isArray(list) || list.length === 0 || list.some((p) => typeof p !== 'string'))
        return fail('dataset_kwargs', 'expected a path or a list of paths', 'lm_eval.bad_task', at);
      return (list as string[]).map((p) => {
        const abs = resolve(dir, p);
        if (!underRoots(abs, roots))
          fail('dataset_kwargs', `${p} lies outside ${rootsPhrase(roots)}`, 'lm_eval.outside_roots', at);
        return abs;
      });
    };
    const df = kw.data_files;
    if (df !== undefined) {
      // load_dataset: a bare path or list is the "train" split
      dataFiles = isRecord(df)
        ? Object.fromEntries(Object.entries(df).map(([split, v]) => [split, paths(v, `.data_files.${split}`)]))
        : { train: paths(df, '.data_files') };
    }
  }
  if (['json', 'csv', 'parquet'].includes(datasetPath) && !dataFiles)
    fail('dataset_kwargs', `dataset_path ${datasetPath} needs dataset_kwargs.data_files`);
  return { datasetPath, datasetName, ...(dataFiles ? { dataFiles } : {}) };
}

/** Prompt: doc_to_text/target/choice (a field, a Jinja template, an integer or a list), description, delimiters. */
function readPrompt(
  { doc, fail, str }: TaskDoc,
  outputType: OutputType,
): Pick<
  LmEvalTask,
  'docToText' | 'docToTarget' | 'docToChoice' | 'description' | 'targetDelimiter' | 'fewshotDelimiter'
> {
  const docField = (key: string, required: boolean): DocField | undefined => {
    const v = doc[key];
    if (v === undefined || v === null) return required ? fail(key, 'missing') : undefined;
    if (typeof v === 'string') {
      checkTemplate(v, (what) => fail(key, what, 'lm_eval.bad_template'));
      return v;
    }
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    if (isRecord(v) && Object.values(v).every((x) => typeof x === 'string')) return Object.values(v) as string[];
    return fail(key, 'expected a field name, a Jinja template, an integer or a list of strings');
  };
  const docToText = docField('doc_to_text', true)!;
  const docToTarget = docField('doc_to_target', true)!;
  const docToChoice = docField('doc_to_choice', outputType === 'multiple_choice');
  const description = str('description') ?? '';
  if (description) checkTemplate(description, (what) => fail('description', what, 'lm_eval.bad_template'));
  const targetDelimiter = str('target_delimiter') ?? ' ';
  const fewshotDelimiter = str('fewshot_delimiter') ?? '\n\n';
  return { docToText, docToTarget, docToChoice, description, targetDelimiter, fewshotDelimiter };
}

/** Few-shot: num_fewshot and fewshot_config (sampler first_n or default; inline samples). */
function readFewshot({ doc, fail }: TaskDoc): Pick<LmEvalTask, 'numFewshot' | 'fewshotSampler' | 'fewshotSamples'> {
  let numFewshot = 0;
  if (doc.num_fewshot !== undefined && doc.num_fewshot !== null) {
    if (!Number.isInteger(doc.num_fewshot) || (doc.num_fewshot as number) < 0)
      fail('num_fewshot', 'expected a non-negative integer');
    numFewshot = doc.num_fewshot as number;
  }
  let fewshotSampler: 'default' | 'first_n' = 'default';
  let fewshotSamples: Record<string, unknown>[] | undefined;
  if (doc.fewshot_config !== undefined && doc.fewshot_config !== null) {
    if (!isRecord(doc.fewshot_config)) fail('fewshot_config', 'expected a mapping');
    const fc = doc.fewshot_config as Record<string, unknown>;
    for (const k of Object.keys(fc))
      if (!['sampler', 'samples'].includes(k))
        fail('fewshot_config', 'unsupported key (sampler and samples are)', 'lm_eval.unsupported', `.${k}`);
    if (fc.sampler !== undefined) {
      if (fc.sampler !== 'first_n' && fc.sampler !== 'default')
        fail('fewshot_config', 'expected first_n or default', 'lm_eval.unsupported', '.sampler');
      fewshotSampler = fc.sampler as 'first_n' | 'default';
    }
    if (fc.samples !== undefined) {
      if (!Array.isArray(fc.samples) || fc.samples.length === 0 || !fc.samples.every(isRecord))
        fail('fewshot_config', 'expected a list of example docs', 'lm_eval.bad_task', '.samples');
      fewshotSamples = fc.samples as Record<string, unknown>[];
    }
  }
  return { numFewshot, fewshotSampler, fewshotSamples };
}

/** Generation: greedy only; generation_kwargs may set until and max_gen_toks, and confirm greedy decoding. */
function readGeneration({ doc, fail }: TaskDoc, fewshotDelimiter: string): Pick<LmEvalTask, 'until' | 'maxGenToks'> {
  // without generation_kwargs lm-eval stops at the few-shot delimiter (ConfigurableTask.__init__)
  let until: string[] = fewshotDelimiter === '' ? [] : [fewshotDelimiter];
  let maxGenToks: number | undefined;
  if (doc.generation_kwargs !== undefined && doc.generation_kwargs !== null) {
    until = [];
    if (!isRecord(doc.generation_kwargs)) fail('generation_kwargs', 'expected a mapping');
    for (const [k, v] of Object.entries(doc.generation_kwargs as Record<string, unknown>)) {
      const sub = `.${k}`;
      if (k === 'until') {
        const list = typeof v === 'string' ? [v] : v;
        if (!Array.isArray(list) || list.some((s) => typeof s !== 'string'))
          fail('generation_kwargs', 'expected a string or a list of strings', 'lm_eval.bad_task', sub);
        until = (list as string[]).filter((s) => s !== '');
      } else if (k === 'max_gen_toks') {
        if (!Number.isInteger(v) || (v as number) < 1)
          fail('generation_kwargs', 'expected a positive integer', 'lm_eval.bad_task', sub);
        maxGenToks = v as number;
      } else if (k === 'do_sample') {
        if (v !== false)
          fail(
            'generation_kwargs',
            'sampling is not supported: evomerge decodes greedily (do_sample: false)',
            'lm_eval.unsupported',
            sub,
          );
      } else if (k === 'temperature') {
        if (v !== 0 && v !== 0.0)
          fail(
            'generation_kwargs',
            'sampling is not supported: evomerge decodes greedily (temperature 0)',
            'lm_eval.unsupported',
            sub,
          );
      } else if (k === 'top_p' || k === 'top_k' || k === 'num_beams') {
        fail(
          'generation_kwargs',
          'sampling and beam search are not supported: evomerge decodes greedily',
          'lm_eval.unsupported',
          sub,
        );
      } else
        fail(
          'generation_kwargs',
          'unsupported generation argument (until, max_gen_toks, do_sample: false, temperature: 0 are)',
          'lm_eval.unsupported',
          sub,
        );
    }
  }
  return { until, maxGenToks };
}

/** Filters: filter_list pipelines; a generate_until task without any takes the first answer ("none"). */
function readFilters({ doc, fail }: TaskDoc, outputType: OutputType): FilterPipeline[] {
  const filters: FilterPipeline[] = [];
  if (doc.filter_list !== undefined && doc.filter_list !== null) {
    if (!Array.isArray(doc.filter_list)) fail('filter_list', 'expected a list of {name, filter}');
    (doc.filter_list as unknown[]).forEach((p, i) => {
      const at = `[${i}]`;
      if (!isRecord(p) || typeof p.name !== 'string' || !Array.isArray(p.filter))
        return fail('filter_list', 'expected {name, filter: [steps]}', 'lm_eval.bad_task', at);
      const steps = (p.filter as unknown[]).map((s, j) =>
        parseFilterStep(s, (what, sub = '') =>
          fail('filter_list', what, 'lm_eval.unsupported', `${at}.filter[${j}]${sub}`),
        ),
      );
      filters.push({ name: p.name, steps });
    });
  }
  if (outputType === 'generate_until' && filters.length === 0)
    filters.push({ name: 'none', steps: [{ function: 'take_first' }] });
  return filters;
}

/** Metrics: metric_list (mean aggregation only; exact_match's options), else every metric of the output type. */
function readMetrics({ doc, fail }: TaskDoc, outputType: OutputType): MetricSpec[] {
  const metrics: MetricSpec[] = [];
  if (doc.metric_list !== undefined && doc.metric_list !== null) {
    if (!Array.isArray(doc.metric_list)) fail('metric_list', 'expected a list');
    (doc.metric_list as unknown[]).forEach((m, i) => {
      const at = `[${i}]`;
      if (!isRecord(m) || typeof m.metric !== 'string')
        return fail('metric_list', 'expected {metric: name, …}', 'lm_eval.bad_task', at);
      if (!METRICS_OF[outputType].includes(m.metric as MetricSpec['metric'])) {
        return fail(
          'metric_list',
          `metric "${m.metric}" is not supported for ${outputType} (supported: ${METRICS_OF[outputType].join(', ')})`,
          'lm_eval.unsupported',
          `${at}.metric`,
        );
      }
      for (const k of Object.keys(m)) {
        const ok =
          ['metric', 'aggregation', 'higher_is_better'].includes(k) ||
          (m.metric === 'exact_match' && ['ignore_case', 'ignore_punctuation', 'regexes_to_ignore'].includes(k));
        if (!ok) fail('metric_list', `unsupported option of ${m.metric}`, 'lm_eval.unsupported', `${at}.${k}`);
      }
      if (
        m.aggregation !== undefined &&
        m.aggregation !== 'mean' &&
        !(typeof m.aggregation === 'string' && m.aggregation === m.metric)
      ) {
        fail('metric_list', 'only the mean aggregation is supported', 'lm_eval.unsupported', `${at}.aggregation`);
      }
      const regexes = m.regexes_to_ignore === undefined ? [] : m.regexes_to_ignore;
      if (!Array.isArray(regexes) || regexes.some((r) => typeof r !== 'string'))
        fail('metric_list', 'expected a list of patterns', 'lm_eval.bad_task', `${at}.regexes_to_ignore`);
      const compiled = (regexes as string[]).map((r, j) => {
        try {
          return compilePythonRegex(r, true);
        } catch (err) {
          return fail('metric_list', (err as Error).message, 'lm_eval.bad_task', `${at}.regexes_to_ignore[${j}]`);
        }
      });
      metrics.push({
        metric: m.metric as MetricSpec['metric'],
        ignoreCase: m.ignore_case === true,
        ignorePunctuation: m.ignore_punctuation === true,
        regexesToIgnore: compiled,
      });
    });
  } else {
    for (const m of METRICS_OF[outputType])
      metrics.push({ metric: m, ignoreCase: false, ignorePunctuation: false, regexesToIgnore: [] });
  }
  return metrics;
}

function parseFilterStep(s: unknown, fail: (what: string, sub?: string) => never): FilterStep {
  if (!isRecord(s) || typeof s.function !== 'string') return fail('expected {function: name, …}');
  const allowed: Record<string, string[]> = {
    regex: ['regex_pattern', 'group_select', 'fallback'],
    take_first: [],
    remove_whitespace: [],
    lowercase: [],
    uppercase: [],
  };
  const keys = allowed[s.function];
  if (!keys)
    return fail(
      `filter "${s.function}" is not supported (regex, take_first, remove_whitespace, lowercase, uppercase are)`,
      '.function',
    );
  for (const k of Object.keys(s))
    if (k !== 'function' && !keys.includes(k)) fail(`unsupported option of ${s.function}`, `.${k}`);
  if (s.function !== 'regex') return { function: s.function as 'take_first' };
  const source = s.regex_pattern ?? '#### (\\-?[0-9\\.\\,]+)';
  if (typeof source !== 'string') return fail('expected a pattern', '.regex_pattern');
  if (s.group_select !== undefined && !Number.isInteger(s.group_select)) fail('expected an integer', '.group_select');
  if (s.fallback !== undefined && typeof s.fallback !== 'string') fail('expected a string', '.fallback');
  let pattern: RegExp;
  try {
    pattern = compilePythonRegex(source, true);
  } catch (err) {
    if (err instanceof PatternError) return fail(err.message, '.regex_pattern');
    throw err;
  }
  return {
    function: 'regex',
    pattern,
    source,
    groupSelect: (s.group_select as number | undefined) ?? 0,
    fallback: (s.fallback as string | undefined) ?? '[invalid]',
  };
}

/** A template that does not parse is refused with its text. */
function checkTemplate(source: string, fail: (what: string) => never): void {
  if (!source.includes('{{') && !source.includes('{%')) return;
  try {
    new JinjaTemplate(source);
  } catch (err) {
    if (err instanceof TemplateError) fail(`Jinja error in ${JSON.stringify(source)}: ${err.message}`);
    throw err;
  }
}

function findFunction(v: unknown): string | undefined {
  if (isRecord(v) && FUNCTION_TAG in v) return (v as unknown as FunctionRef)[FUNCTION_TAG];
  if (Array.isArray(v))
    for (const x of v) {
      const f = findFunction(x);
      if (f !== undefined) return f;
    }
  if (isRecord(v))
    for (const x of Object.values(v)) {
      const f = findFunction(x);
      if (f !== undefined) return f;
    }
  return undefined;
}

function opt<K extends string, V>(key: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
