// Scores weights for a campaign: merges a recipe in memory (never through disk) and runs the suite's tasks
// on one of a pool of evaluators, one per worker, so a generation's members are scored side by side.
import { EvomergeError } from '../../errors.ts';
import { ArrayPool, MemoryTensors, type TensorSource } from '../../checkpoint/tensor-source.ts';
import { openModelDir } from '../../checkpoint/model-dir.ts';
import { Evaluator } from '../../eval/evaluator.ts';
import type { ExecutionProvider } from '../../eval/onnx-session.ts';
import type { Suite } from '../../eval/suite.ts';
import type { Split } from '../../eval/split.ts';
import type { MergeKernel } from '../../kernel/kernel.ts';
import { mergeRecipe } from '../../merge/engine.ts';
import { parseRecipe } from '../../recipe/parse.ts';
import { evaluationRounds, type Measure, type Score } from '../space/measures.ts';
import { isDataFlowDoc, type DataFlowDoc, type RecipeDoc } from '../space/recipe-doc.ts';
import { parseDataFlowDoc } from '../space/data-flow.ts';
import { SlotTensors } from '../../graph/slot-tensors.ts';

/** task → the items of its eval file to score (0-based indices); absent tasks score every item. */
export type ItemSubset = Readonly<Record<string, readonly number[]>>;

export interface ScorerOptions {
  readonly suite: Suite;
  readonly graph?: string;
  readonly baseModelDir: string;
  readonly kernel: MergeKernel;
  readonly ep: ExecutionProvider;
  /** Candidates scored at once (one evaluator each). */
  readonly workers: number;
  /** Items per eval file (absent = all). */
  readonly limit?: number;
  /** ONNX Runtime intra-op threads per evaluator. Default 1: a score must not depend on the machine's core
   *  count (same seed, same scores anywhere); campaigns get their parallelism from ThreadedScorer instead. */
  readonly threads?: number;
  /** Folder recipe paths are relative to (for messages; the search's recipes hold absolute paths). */
  readonly baseDir: string;
}

export interface Timed<T> {
  readonly value: T;
  readonly mergeMs: number;
  readonly evalMs: number;
}

/** Error codes of a scorer's own faults (`scorer.*`: a remote worker refused a job, a job was lost for good),
 *  as opposed to a candidate that cannot be merged or scored: they stop the campaign instead of being
 *  recorded as the candidate's failure. */
export function isScorerFault(err: EvomergeError): boolean {
  return err.code.startsWith('scorer.');
}

/** What a campaign needs from a scorer: in this thread (Scorer), spread over threads (ThreadedScorer), or
 *  handed to workers through a job queue (src/queue). */
export interface CandidateScorer {
  scoreRecipe(doc: RecipeDoc, split: Split, measures: readonly Measure[], items?: ItemSubset): Promise<Timed<Score[]>>;
  scoreModelDir(dir: string, split: Split, measures: readonly Measure[], items?: ItemSubset): Promise<Timed<Score[]>>;
  close(): Promise<void>;
}

export class Scorer implements CandidateScorer {
  private readonly free: Evaluator[];
  /** The float32 arrays of the last candidate scored, reused by the next merge (no fresh pages per candidate). */
  private readonly pool = new ArrayPool();

  private constructor(
    private readonly evaluators: Evaluator[],
    private readonly options: ScorerOptions,
  ) {
    this.free = [...evaluators];
  }

  static async create(options: ScorerOptions): Promise<Scorer> {
    const threads = options.threads ?? 1;
    const evaluators: Evaluator[] = [];
    try {
      for (let i = 0; i < options.workers; i++) {
        evaluators.push(
          await Evaluator.create({
            suite: options.suite,
            graph: options.graph,
            baseModelDir: options.baseModelDir,
            ep: options.ep,
            threads,
            sessions: 1,
          }),
        );
      }
    } catch (err) {
      for (const e of evaluators) await e.close();
      throw err;
    }
    return new Scorer(evaluators, options);
  }

  /** Merges a recipe document in memory, then scores it. A merge error propagates (the caller records it).
   *  A data-flow path is not merged: its graph is built and bound to its models' own tensors. */
  async scoreRecipe(
    doc: RecipeDoc,
    split: Split,
    measures: readonly Measure[],
    items?: ItemSubset,
  ): Promise<Timed<Score[]>> {
    if (isDataFlowDoc(doc)) return this.scoreDataFlow(doc, split, measures, items);
    const t0 = performance.now();
    const recipe = parseRecipe(doc, { file: '<candidate>', baseDir: this.options.baseDir });
    const weights = new MemoryTensors('<candidate>', this.pool);
    await mergeRecipe(recipe, weights, { kernel: this.options.kernel });
    const mergeMs = performance.now() - t0;
    const t1 = performance.now();
    const value = await this.score(weights, split, measures, items);
    // Scored, nothing reads the candidate any more: its arrays become the next merge's outputs.
    weights.release();
    return { value, mergeMs, evalMs: performance.now() - t1 };
  }

  /** A data-flow path: a graph of its slots (built per path: the path is the graph's structure) on an evaluator
   *  of its own, its weights read from both models' checkpoints as they lie. "mergeMs" is the graph's build. */
  private async scoreDataFlow(
    doc: RecipeDoc,
    split: Split,
    measures: readonly Measure[],
    items?: ItemSubset,
  ): Promise<Timed<Score[]>> {
    const t0 = performance.now();
    const flow = parseDataFlowDoc(doc, '<candidate>');
    const models = flow.models.map((dir) => openModelDir(dir));
    try {
      const ev = await Evaluator.create({
        suite: this.options.suite,
        graph: 'auto',
        baseModelDir: flow.models[0]!,
        slots: flow.path.map((s) => ({ source: s.model, layer: s.layer, scale: s.scale })),
        slotModels: models.slice(1).map((m) => m.tensors),
        ep: this.options.ep,
        threads: this.options.threads ?? 1,
        sessions: 1,
      });
      try {
        const mergeMs = performance.now() - t0;
        const t1 = performance.now();
        const weights = new SlotTensors(models.map((m) => m.tensors));
        const value = await this.scoreOn(ev, weights, split, measures, items);
        return { value, mergeMs, evalMs: performance.now() - t1 };
      } finally {
        await ev.close();
      }
    } finally {
      for (const m of models) m.close();
    }
  }

  /** Scores a model folder as it is (a source). */
  async scoreModelDir(
    dir: string,
    split: Split,
    measures: readonly Measure[],
    items?: ItemSubset,
  ): Promise<Timed<Score[]>> {
    const model = openModelDir(dir);
    try {
      const t1 = performance.now();
      const value = await this.score(model.tensors, split, measures, items);
      return { value, mergeMs: 0, evalMs: performance.now() - t1 };
    } finally {
      model.close();
    }
  }

  private async score(
    weights: TensorSource,
    split: Split,
    measures: readonly Measure[],
    items?: ItemSubset,
  ): Promise<Score[]> {
    const ev = this.free.pop();
    if (!ev)
      throw new EvomergeError('internal', 'more candidates in flight than evaluators (this is a bug in evomerge)');
    try {
      return await this.scoreOn(ev, weights, split, measures, items);
    } finally {
      this.free.push(ev);
    }
  }

  private async scoreOn(
    ev: Evaluator,
    weights: TensorSource,
    split: Split,
    measures: readonly Measure[],
    items?: ItemSubset,
  ): Promise<Score[]> {
    const out: Score[] = [];
    for (const round of evaluationRounds(measures)) {
      const results = await ev.evaluate(weights, {
        split,
        tasks: round.map((m) => m.task),
        metrics: Object.fromEntries(round.map((m) => [m.task, m.metric])),
        ...(this.options.limit !== undefined ? { limit: this.options.limit } : {}),
        ...(items ? { items } : {}),
      });
      for (const r of results)
        out.push({
          task: r.task,
          metric: r.metric,
          split,
          value: r.value,
          se: r.se,
          n: r.n,
          ...(r.pseudo ? { pseudo: r.pseudo } : {}),
        });
    }
    // stable order: the measures' order
    return measures.map((m) => out.find((s) => s.task === m.task && s.metric === m.metric)!);
  }

  async close(): Promise<void> {
    for (const e of this.evaluators) await e.close();
  }
}
