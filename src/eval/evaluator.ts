// The evaluator: one graph and one binding, many weight sets. `evaluate(weights)` binds a candidate's tensors
// (from disk or straight from the merge engine) as the session's weight inputs and scores the suite's tasks.
import pLimit from 'p-limit';
import { EvomergeError, invariant } from '../errors.ts';
import type { TensorSource } from '../checkpoint/tensor-source.ts';
import { openModelDir } from '../checkpoint/model-dir.ts';
import { GraphSession, KvCache, type ExecutionProvider, type FeedSet, type WeightMode } from './onnx-session.ts';
import { OnnxGraph } from '../graph/onnx-graph.ts';
import { bindWeights, boundInitializers, resolveBinding, type Binding } from './bind.ts';
import {
  parseSuiteFile,
  taskMetrics,
  type ComputeDtypeChoice,
  type Split,
  type Suite,
  type TaskSpec,
} from './suite.ts';
import { evaluateLmEvalTask } from './lm-eval/run-task.ts';
import { readEvalFile, type EvalItem } from './eval-file.ts';
import { checkTaskFitsContext, contextOfConfig, type ContextLength } from './context-length.ts';
import type { Tokenizer } from './tokenizers/tokenizer.ts';
import { baseTokenizerFile, buildAutoGraph, chooseComputeDtype, type ComputeDtypeDecision } from './auto-graph.ts';
import type { LayerSlot } from '../graph/decoder-config.ts';
import { SlotTensors } from '../graph/slot-tensors.ts';
import { ByteTokenizer } from './tokenizers/byte.ts';
import { HfTokenizer } from './tokenizers/hf.ts';
import type { BatchLogits, Forward, NextTokenSource } from './tasks/forward.ts';
import { evaluateLoglik } from './tasks/loglik.ts';
import { evaluateAnswerLogprob, evaluateExactMatch, type GenerateItem } from './tasks/generate.ts';
import { evaluateChoice, type ChoiceItem } from './tasks/choice.ts';
import type { Estimate } from '../estimate.ts';
import type { TaskScore } from './stats.ts';

export interface EvaluatorOptions {
  /** A parsed suite, or the path of its YAML. */
  suite: Suite | string;
  /** The ONNX graph, or `auto` (built from the base model's config.json); defaults to the suite's `graph:`,
   * else `auto`. */
  graph?: string;
  /** graph: auto only: the source layers the built graph runs, in order (default: every layer once). */
  layerPath?: readonly number[];
  /** graph: auto only, instead of layerPath: the slots the built graph runs (a data-flow path over the base
   *  model and `slotModels`); evaluate() then takes a SlotTensors of the base model and those models. */
  slots?: readonly LayerSlot[];
  /** The tensors of models 1, 2, … that `slots` name (model 0 is the base model): checked against the graph. */
  slotModels?: readonly TensorSource[];
  /** The base model folder for binding by content; defaults to the suite's `base_model:`. Without one, the
   * binding is built by name against the first weights evaluated. */
  baseModelDir?: string;
  ep?: ExecutionProvider;
  /** ORT intra-op threads per session (default: ORT's choice, one per core). On a busy machine 1 is faster:
   * ORT's spinning worker threads then compete with other processes (measured 2× slower at 16×128 tokens). */
  threads?: number;
  /** Let ORT's worker threads spin-wait between operators (default false: on shared cores spinning workers slow
   * a decode step 1.6–4×, bench/candidate.ts; on an idle machine spinning saves each operator's wake-up;
   * SessionOptions.spinWait). */
  spinWait?: boolean;
  /** Sessions (p-limit); tasks are spread over them. Default 1. onnxruntime-node 1.30 executes each run
   * synchronously on the JS thread, so in one process more sessions add no parallelism (bench/eval.ts): use
   * `threads` for that; sessions pay off with bindings whose runs are asynchronous. */
  sessions?: number;
  /** Most tokens (rows × sequence length) in one forward pass. Default 2048. */
  batchTokens?: number;
  /** JSON file caching the (graph, base) binding between runs (e.g. next to a campaign's database). */
  bindingCacheFile?: string;
  /** 'inputs': one session, weights fed with every run; 'rebuild': a session per candidate with its weights
   * built in (under 2 GB); 'external': the same for any size, through an external-data file. Default:
   * 'external' on GPU providers (a weight fed per run would cross to the device per run), DEFAULT_CPU_WEIGHT_MODE
   * on the CPU. See onnx-session.ts and bench/candidate.ts for the measurements. */
  weightMode?: WeightMode;
  /** Decode one token per step through the graph's KV cache when it has one (default true). */
  useKvCache?: boolean;
  /** Let prompts of different lengths share a batch, padded (default true): greedy generation's prompts, and the
   *  texts of loglik tasks, the prompt + label rows of choice tasks, lm-eval's context + continuation pairs and
   *  answer_logprob's prompt + answer rows (padded on the right); false: only rows of
   *  equal length run together (what bench/generation.ts compares against). */
  padRows?: boolean;
  /** Refuse weights holding NaN or ±Inf (eval.non_finite) instead of scoring them (the eval command does;
   *  a campaign records such a candidate's non-finite scores as a failure and goes on). */
  refuseNonFinite?: boolean;
  /** The model's context in tokens; default: `max_position_embeddings` of the base model's config.json. */
  contextLength?: number;
  /** graph: auto only: compute in float32, float16 or as `auto` decides (chooseComputeDtype); overrides the
   * suite's `compute_dtype:` (default auto). */
  computeDtype?: ComputeDtypeChoice;
}

export interface EvaluateOptions {
  split?: Split;
  /** Task names to run (default: all the suite's tasks, in suite order). */
  tasks?: readonly string[];
  /** Score only the first N items of each file. */
  limit?: number;
  /** task → the items to score (0-based indices into its file, in the order given), before `limit`. With split
   *  `val`, a task without a val file reads these items of its fit file (a campaign's held-out part of fit). */
  items?: Readonly<Record<string, readonly number[]>>;
  /** task → metric, overriding the suite's metric (e.g. `{ math: 'answer_logprob' }` for a smooth fitness). */
  metrics?: Readonly<Record<string, string>>;
  /** Also return each generate/choice item's prediction (for tests and reports). */
  withPredictions?: boolean;
  /** Called as each task finishes, with the items scored so far and in all (over the tasks run). */
  onProgress?: (p: EvalProgress) => void;
}

export interface EvalProgress {
  readonly task: string;
  readonly itemsDone: number;
  readonly itemsTotal: number;
  readonly tasksDone: number;
  readonly tasksTotal: number;
  /** Seconds since evaluate() started. */
  readonly seconds: number;
}

export interface TaskScoreWithPredictions extends TaskScore {
  readonly predictions?: readonly string[];
}

/** On the CPU provider a fed weight is used in place (no copy), so feeding costs only per-run marshalling. */
export const DEFAULT_CPU_WEIGHT_MODE: WeightMode = 'inputs';

export class Evaluator {
  private binding: Binding | undefined;
  private prepared = false;
  private sessions: GraphSession[] = [];
  private readonly items = new Map<string, EvalItem[]>();
  private contextLength: ContextLength | undefined;
  /** Task × split × metric × item count whose sequences were checked against the context (once per evaluator). */
  private readonly contextChecked = new Set<string>();
  private computeDecision: ComputeDtypeDecision = { dtype: 'f32', reason: 'float32 (an exported graph)' };

  private constructor(
    readonly suite: Suite,
    private readonly graph: OnnxGraph,
    private readonly tokenizer: Tokenizer,
    private readonly options: EvaluatorOptions,
  ) {}

  static async create(options: EvaluatorOptions): Promise<Evaluator> {
    const suite = typeof options.suite === 'string' ? parseSuiteFile(options.suite) : options.suite;
    const graphPath = options.graph ?? suite.graph ?? 'auto';
    const baseDir = options.baseModelDir ?? suite.baseModel;
    if (graphPath === 'auto') return Evaluator.createAuto(suite, baseDir, options);
    if (options.layerPath || options.slots)
      throw new EvomergeError(
        'eval.layer_path_needs_auto',
        'a layer path needs the graph evomerge builds (graph: auto), not an exported one',
        { file: graphPath, field: 'layer_path' },
      );
    if ((options.computeDtype ?? suite.computeDtype) === 'f16')
      throw new EvomergeError(
        'eval.compute_dtype',
        'float16 compute applies to the graph evomerge builds (graph: auto); an exported graph runs as exported',
        options.computeDtype ? { field: '--compute-dtype' } : { file: suite.file, field: 'compute_dtype' },
      );
    const graph = OnnxGraph.load(graphPath);
    const tokenizer =
      suite.tokenizer === 'byte' || suite.tokenizer === 'auto'
        ? new ByteTokenizer()
        : HfTokenizer.load(suite.tokenizer);
    const ev = new Evaluator(suite, graph, tokenizer, options);
    if (options.contextLength !== undefined)
      ev.contextLength = { tokens: options.contextLength, from: 'the evaluator options' };
    if (baseDir) {
      const base = openModelDir(baseDir);
      ev.contextLength ??= contextOfConfig(baseDir, base.config);
      try {
        await ev.prepare(base.tensors);
      } finally {
        base.close();
      }
    }
    return ev;
  }

  /** graph: auto: the decoder graph built from the base folder's config.json, its tokenizer.json unless the
   * suite names one; refused in one line before anything runs when either does not fit. */
  private static async createAuto(
    suite: Suite,
    baseDir: string | undefined,
    options: EvaluatorOptions,
  ): Promise<Evaluator> {
    if (!baseDir)
      throw new EvomergeError(
        'eval.no_base_model',
        'graph: auto builds the graph from the base model folder; name it with base_model:',
        { file: suite.file, field: 'base_model' },
      );
    const base = openModelDir(baseDir);
    try {
      const ep = options.ep ?? 'cpu';
      const weights = options.slotModels ? new SlotTensors([base.tensors, ...options.slotModels]) : base.tensors;
      const decision = await chooseComputeDtype(
        options.computeDtype ?? suite.computeDtype ?? 'auto',
        options.computeDtype ? { field: '--compute-dtype' } : { file: suite.file, field: 'compute_dtype' },
        {
          ep,
          weightMode: weightModeOf(options),
          baseDir,
          config: base.config,
          base: base.tensors,
          ...(options.threads ? { threads: options.threads } : {}),
        },
      );
      const auto = buildAutoGraph(baseDir, base.config, weights, {
        ep,
        computeDtype: decision.dtype,
        ...(options.layerPath ? { layerPath: options.layerPath } : {}),
        ...(options.slots ? { slots: options.slots } : {}),
      });
      const tokenizer =
        suite.tokenizer === 'byte'
          ? new ByteTokenizer()
          : HfTokenizer.load(suite.tokenizer === 'auto' ? baseTokenizerFile(baseDir, suite.file) : suite.tokenizer);
      const ev = new Evaluator(suite, auto.graph, tokenizer, options);
      ev.computeDecision = decision;
      ev.contextLength =
        options.contextLength !== undefined
          ? { tokens: options.contextLength, from: 'the evaluator options' }
          : contextOfConfig(baseDir, base.config);
      ev.binding = auto.binding;
      await ev.prepare(weights);
      return ev;
    } finally {
      base.close();
    }
  }

  private weightMode(): WeightMode {
    return weightModeOf(this.options);
  }

  /** The dtype the graph computes in and why, in one line (float32 for an exported graph). */
  computeDtype(): ComputeDtypeDecision {
    return this.computeDecision;
  }

  /** The (graph, base) binding and the sessions, built once. */
  private async prepare(base: TensorSource): Promise<void> {
    if (this.prepared) return;
    this.prepared = true;
    this.binding ??= resolveBinding(this.graph, base, this.options.bindingCacheFile);
    if (this.weightMode() !== 'inputs') return;
    const names = boundInitializers(this.binding);
    for (let i = 0; i < this.sessionCount(); i++)
      this.sessions.push(await GraphSession.create(this.graph, names, this.sessionOptions()));
  }

  private sessionCount(): number {
    return Math.max(1, this.options.sessions ?? 1);
  }

  private sessionOptions() {
    return {
      ep: this.options.ep ?? 'cpu',
      ...(this.options.threads ? { intraOpThreads: this.options.threads } : {}),
      ...(this.options.spinWait ? { spinWait: true } : {}),
    };
  }

  /** Token positions run through the persistent sessions so far (weightMode 'inputs'): a diagnostic. */
  tokensProcessed(): number {
    return this.sessions.reduce((n, s) => n + s.tokensProcessed, 0);
  }

  /** How the graph was bound: entries by name and by content. */
  describeBinding(): Binding | undefined {
    return this.binding;
  }

  /** Binds `weights` to the graph: the per-candidate cost (reads each tensor, transposes where needed). */
  bind(weights: TensorSource): FeedSet {
    if (!this.binding) throw new EvomergeError('internal', 'evaluator not prepared (this is a bug in evomerge)');
    return bindWeights(this.binding, weights, { refuseNonFinite: this.options.refuseNonFinite === true });
  }

  async evaluate(weights: TensorSource, opts: EvaluateOptions = {}): Promise<TaskScoreWithPredictions[]> {
    if (opts.limit !== undefined && !(Number.isSafeInteger(opts.limit) && opts.limit >= 1))
      throw new EvomergeError('eval.bad_limit', `expected a positive integer, got ${String(opts.limit)}`, {
        file: this.suite.file,
        field: 'limit',
      });
    await this.prepare(weights);
    const split = opts.split ?? 'fit';
    const specs = this.selectTasks(opts.tasks);
    let feeds: FeedSet | undefined = this.bind(weights);
    let sessions = this.sessions;
    const mode = this.weightMode();
    if (mode !== 'inputs') {
      sessions = [];
      for (let i = 0; i < this.sessionCount(); i++) {
        sessions.push(
          mode === 'rebuild'
            ? await GraphSession.createWithWeights(this.graph, feeds, this.sessionOptions())
            : await GraphSession.createWithExternalWeights(this.graph, feeds, this.sessionOptions()),
        );
      }
      feeds = undefined; // the weights are inside the sessions now
    }
    const limit = pLimit(sessions.length);
    const free = [...sessions];
    const count = (spec: TaskSpec) => Math.min(this.loadItems(spec, split).length, opts.limit ?? Infinity);
    const itemsTotal = opts.onProgress ? specs.reduce((n, spec) => n + count(spec), 0) : 0;
    let itemsDone = 0;
    let tasksDone = 0;
    const t0 = performance.now();
    try {
      return await Promise.all(
        specs.map((spec) =>
          limit(async () => {
            const session = free.pop()!;
            try {
              const forward: Forward = (rows) => runRows(session, rows, feeds);
              const nextTokens = nextTokenSource(session, feeds, {
                useKvCache: this.options.useKvCache !== false,
                padRows: this.options.padRows !== false,
              });
              const score = await this.runTask(spec, split, forward, opts, nextTokens);
              if (opts.onProgress) {
                itemsDone += count(spec);
                tasksDone++;
                opts.onProgress({
                  task: spec.name,
                  itemsDone,
                  itemsTotal,
                  tasksDone,
                  tasksTotal: specs.length,
                  seconds: (performance.now() - t0) / 1000,
                });
              }
              return score;
            } finally {
              free.push(session);
            }
          }),
        ),
      );
    } finally {
      if (sessions !== this.sessions) for (const s of sessions) await s.close();
    }
  }

  private selectTasks(names?: readonly string[]): TaskSpec[] {
    if (!names) return [...this.suite.tasks];
    return names.map((n) => {
      const spec = this.suite.tasks.find((t) => t.name === n);
      if (!spec)
        throw new EvomergeError(
          'eval.unknown_task',
          `no such task (the suite has ${this.suite.tasks.map((t) => t.name).join(', ')})`,
          { file: this.suite.file, field: n },
        );
      return spec;
    });
  }

  private loadItems(spec: TaskSpec, split: Split): EvalItem[] {
    const key = `${spec.name}\0${split}`;
    let items = this.items.get(key);
    if (!items) {
      items = readEvalFile(fileOf(spec, split), spec.fields);
      if (spec.kind === 'choice') checkChoiceItems(spec, split, items);
      this.items.set(key, items);
    }
    return items;
  }

  private async runTask(
    spec: TaskSpec,
    split: Split,
    forward: Forward,
    opts: EvaluateOptions,
    nextTokens: NextTokenSource,
  ): Promise<TaskScoreWithPredictions> {
    const metric = opts.metrics?.[spec.name] ?? spec.metric;
    if (!taskMetrics(spec).includes(metric)) {
      throw new EvomergeError(
        'eval.unknown_metric',
        `expected one of ${taskMetrics(spec).join(', ')} for ${spec.kind === 'lm_eval' ? 'this lm-eval task' : `kind ${spec.kind}`}`,
        { file: this.suite.file, field: `tasks.${spec.name}.metric` },
      );
    }
    const batchTokens = this.options.batchTokens ?? 2048;
    if (spec.lmEval) {
      if (split === 'val' || opts.items?.[spec.name]) {
        throw new EvomergeError(
          'eval.bad_item',
          'an lm-eval task is scored on its whole fit or test docs (no val split, no item subsets)',
          { file: this.suite.file, field: `tasks.${spec.name}` },
        );
      }
      const t0 = performance.now();
      const r = await evaluateLmEvalTask(spec.lmEval, split, this.tokenizer, forward, {
        batchTokens,
        mixedLengths: this.options.padRows !== false,
        ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
        nextTokens,
      });
      const extra = Object.fromEntries(Object.entries(r.metrics).filter(([k]) => k !== metric));
      return {
        task: spec.name,
        metric,
        ...r.metrics[metric]!,
        seconds: (performance.now() - t0) / 1000,
        extra,
        ...(opts.withPredictions ? { predictions: r.predictions } : {}),
      };
    }
    let items = this.loadItems(spec, split);
    const chosen = opts.items?.[spec.name];
    if (split === 'val' && !spec.files.val && !chosen) {
      throw new EvomergeError(
        'eval.no_val_split',
        'the task has no val file; give the held-out items of its fit file',
        { file: this.suite.file, field: `tasks.${spec.name}.val` },
      );
    }
    if (chosen) {
      const all = items;
      items = chosen.map((i) => {
        if (!Number.isInteger(i) || i < 0 || i >= all.length)
          throw new EvomergeError('eval.bad_item', `item ${i} does not exist (the file has ${all.length})`, {
            file: fileOf(spec, split),
            field: `tasks.${spec.name}`,
          });
        return all[i]!;
      });
    }
    if (opts.limit !== undefined) items = items.slice(0, Math.max(0, opts.limit));
    this.checkContext(spec, split, metric, items);
    const t0 = performance.now();
    let metrics: Record<string, Estimate>;
    let predictions: string[] | undefined;
    if (spec.kind === 'loglik') {
      metrics = await evaluateLoglik(
        items.map((i) => i.values.text as string),
        this.tokenizer,
        forward,
        batchTokens,
        this.options.padRows !== false,
      );
    } else if (spec.kind === 'generate') {
      const gen: GenerateItem[] = items.map((i) => ({
        prompt: i.values.prompt as string,
        answer: i.values.answer as string,
      }));
      if (metric === 'answer_logprob' || metric === 'answer_loglik') {
        metrics = await evaluateAnswerLogprob(gen, this.tokenizer, forward, {
          stop: spec.stop,
          batchTokens,
          mixedLengths: this.options.padRows !== false,
        });
      } else {
        const r = await evaluateExactMatch(gen, this.tokenizer, nextTokens, {
          maxNewTokens: spec.maxNewTokens,
          stop: spec.stop,
          batchTokens,
        });
        metrics = { exact_match: r.exact_match };
        predictions = r.predictions;
      }
    } else {
      const ch: ChoiceItem[] = items.map((i) => ({
        prompt: i.values.prompt as string,
        answer: i.values.answer as string,
        choices: (i.values.choices as readonly string[] | undefined) ?? spec.choices!,
      }));
      const r = await evaluateChoice(ch, this.tokenizer, forward, batchTokens, this.options.padRows !== false);
      if (metric === 'auc' && !r.auc) {
        throw new EvomergeError(
          'eval.unknown_metric',
          'auc needs exactly two choices per item (the first is the positive class)',
          { file: this.suite.file, field: `tasks.${spec.name}.metric` },
        );
      }
      metrics = { accuracy: r.accuracy, ...(r.auc ? { auc: r.auc } : {}) };
      predictions = r.predictions;
    }
    const seconds = (performance.now() - t0) / 1000;
    const main = metrics[metric]!;
    const extra = Object.fromEntries(Object.entries(metrics).filter(([k]) => k !== metric));
    return {
      task: spec.name,
      metric,
      ...main,
      seconds,
      extra,
      ...(opts.withPredictions && predictions ? { predictions } : {}),
    };
  }

  /** Refuses a task whose sequences pass the model's context, once per task × split × metric × item count. */
  private checkContext(spec: TaskSpec, split: Split, metric: string, items: readonly EvalItem[]): void {
    const key = `${spec.name}\0${split}\0${metric}\0${items.length}`;
    if (!this.contextLength || this.contextChecked.has(key)) return;
    checkTaskFitsContext(this.contextLength, this.tokenizer, this.suite.file, { spec, split, metric, items });
    this.contextChecked.add(key);
  }

  async close(): Promise<void> {
    for (const s of this.sessions) await s.close();
    this.sessions = [];
  }
}

/** The file a split reads: val without its own file is the fit file (its items chosen by the caller). */
function fileOf(spec: TaskSpec, split: Split): string {
  return split === 'val' ? (spec.files.val ?? spec.files.fit) : spec.files[split];
}

/** Choice items need labels (their own or the task's) that include the answer. */
function checkChoiceItems(spec: TaskSpec, split: Split, items: EvalItem[]): void {
  for (const it of items) {
    const choices = (it.values.choices as readonly string[] | undefined) ?? spec.choices;
    const place = { file: fileOf(spec, split), line: it.line };
    if (!choices)
      throw new EvomergeError('eval.bad_jsonl', 'missing field (and the task gives no `choices`)', {
        ...place,
        field: spec.fields.choices,
      });
    if (!choices.includes(it.values.answer as string)) {
      throw new EvomergeError('eval.bad_jsonl', `"${it.values.answer as string}" is not one of the choices`, {
        ...place,
        field: spec.fields.answer,
      });
    }
  }
}

/**
 * Greedy generation's view of a session: through its KV cache when it has one (unless `useKvCache` is false),
 * else re-running whole rows; prompts of different lengths share a batch (padded) unless `padRows` is false or
 * the graph's cache cannot take them padded (GraphSession.cachePadSide).
 */
export function nextTokenSource(
  session: GraphSession,
  feeds: FeedSet | undefined,
  opts: { useKvCache: boolean; padRows: boolean },
): NextTokenSource {
  if (session.hasKvCache && opts.useKvCache) {
    return {
      mixedLengths: opts.padRows && session.cachePadSide !== undefined,
      cached: true,
      next: (rows, past) => {
        invariant(past === undefined || past instanceof KvCache, 'a KV state from another session');
        return session.nextTokenLogitsWithCache(rows, past, feeds);
      },
    };
  }
  return {
    mixedLengths: opts.padRows,
    cached: false,
    next: async (rows) => ({ logits: await session.nextTokenLogits(rows, feeds) }),
  };
}

/** Rows of equal length as one [batch, seq] run; rows of different lengths padded on the right (forwardRows). */
function runRows(
  session: GraphSession,
  rows: readonly (readonly number[])[],
  feeds: FeedSet | undefined,
): Promise<BatchLogits> {
  const seq = rows[0]!.length;
  if (rows.some((r) => r.length !== seq)) return session.forwardRows(rows, feeds);
  const ids = new Int32Array(rows.length * seq);
  rows.forEach((r, i) => ids.set(r, i * seq));
  return session.forward(ids, rows.length, seq, feeds);
}

function weightModeOf(options: EvaluatorOptions): WeightMode {
  return options.weightMode ?? ((options.ep ?? 'cpu') === 'cpu' ? DEFAULT_CPU_WEIGHT_MODE : 'external');
}
