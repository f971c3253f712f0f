// Scores candidates on worker threads, one Scorer per thread: onnxruntime-node runs each inference on the
// calling JS thread, so evaluators in one thread take turns; threads give a campaign every core. Each thread
// merges on its own CPU kernel and evaluates with one intra-op thread, so a score never depends on how many
// cores the machine has (determinism across machines), and the parallelism is between candidates.
import { Worker } from 'node:worker_threads';
import { EvomergeError } from '../../errors.ts';
import type { ExecutionProvider } from '../../eval/onnx-session.ts';
import type { RecipeDoc } from '../space/recipe-doc.ts';
import type { Measure, Score } from '../space/measures.ts';
import type { ItemSubset, Timed } from './scorer.ts';
import type { Split } from '../../eval/split.ts';

export interface ThreadedScorerOptions {
  /** The suite YAML file; each thread parses it again. */
  readonly suiteFile: string;
  readonly graph?: string;
  readonly baseModelDir: string;
  readonly ep: ExecutionProvider;
  /** Worker threads: candidates scored at once. */
  readonly workers: number;
  readonly limit?: number;
  readonly baseDir: string;
}

/** What a thread is asked to do. */
export type ScoreRequest =
  | {
      readonly id: number;
      readonly kind: 'recipe';
      readonly doc: RecipeDoc;
      readonly split: Split;
      readonly measures: readonly Measure[];
      readonly items?: ItemSubset;
    }
  | {
      readonly id: number;
      readonly kind: 'model';
      readonly dir: string;
      readonly split: Split;
      readonly measures: readonly Measure[];
      readonly items?: ItemSubset;
    };

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** What a thread answers: the timed scores, or the error to re-throw in the campaign's thread. */
export type ScoreReply =
  | { readonly id: number; readonly ok: true; readonly result: Timed<Score[]> }
  | {
      readonly id: number;
      readonly ok: false;
      readonly error: {
        code?: string;
        message: string;
        file?: string;
        field?: string;
        line?: number;
        exitCode?: number;
        isEvomerge: boolean;
      };
    };

/** The same surface as Scorer (scoreRecipe, scoreModelDir, close), spread over threads. */
export class ThreadedScorer {
  private readonly idle: Worker[] = [];
  private readonly waiting: ((w: Worker) => void)[] = [];
  private readonly pending = new Map<number, { resolve: (r: Timed<Score[]>) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private fatal: Error | undefined;

  private constructor(private readonly workers: Worker[]) {
    for (const w of workers) {
      w.on('message', (reply: ScoreReply) => this.settle(w, reply));
      w.on('error', (err) => this.fail(err));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new EvomergeError('search.worker_exit', `a scoring thread exited with code ${code}`));
      });
      this.idle.push(w);
    }
  }

  static async create(options: ThreadedScorerOptions): Promise<ThreadedScorer> {
    const workers: Worker[] = [];
    const boot = new URL('./scorer-thread-boot.mjs', import.meta.url);
    for (let i = 0; i < options.workers; i++) {
      workers.push(new Worker(boot, { workerData: options }));
    }
    // Each thread says 'ready' once its evaluator is built (or the error that stopped it).
    try {
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              w.once('message', (m: ScoreReply | 'ready') =>
                m === 'ready' ? resolve() : reject(reviveError((m as Extract<ScoreReply, { ok: false }>).error)),
              );
              w.once('error', reject);
            }),
        ),
      );
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    }
    return new ThreadedScorer(workers);
  }

  scoreRecipe(doc: RecipeDoc, split: Split, measures: readonly Measure[], items?: ItemSubset): Promise<Timed<Score[]>> {
    return this.request({ kind: 'recipe', doc, split, measures, ...(items ? { items } : {}) });
  }

  scoreModelDir(dir: string, split: Split, measures: readonly Measure[], items?: ItemSubset): Promise<Timed<Score[]>> {
    return this.request({ kind: 'model', dir, split, measures, ...(items ? { items } : {}) });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private async request(body: WithoutId<ScoreRequest>): Promise<Timed<Score[]>> {
    if (this.fatal) throw this.fatal;
    const worker = this.idle.pop() ?? (await new Promise<Worker>((resolve) => this.waiting.push(resolve)));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...body, id } as ScoreRequest);
    });
  }

  private settle(worker: Worker, reply: ScoreReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    const next = this.waiting.shift();
    if (next) next(worker);
    else this.idle.push(worker);
    if (reply.ok) p.resolve(reply.result);
    else p.reject(reviveError(reply.error));
  }

  private fail(err: Error): void {
    this.fatal ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/** Rebuilds the thread's error in this thread, keeping its code, file and field for the one-line message. */
export function reviveError(e: Extract<ScoreReply, { ok: false }>['error']): Error {
  if (!e.isEvomerge) return new Error(e.message);
  const err = new EvomergeError(e.code ?? 'internal', '', { file: e.file, field: e.field, line: e.line }, e.exitCode);
  err.message = e.message; // the thread already formatted the whole line
  return err;
}
