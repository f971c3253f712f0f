// `evomerge worker`'s loop: takes candidate jobs from the queue, checks that everything a job names lies
// under the folders this worker may read and that its model files are the campaign's, merges and scores on
// an evaluator kept resident across jobs (one per campaign setup), and answers the scores. Scoring runs on
// worker threads (CPU) so this thread stays free to renew the job locks that tell BullMQ the job is alive.
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { EvomergeError } from '../errors.ts';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import { parseSuiteFile } from '../eval/suite.ts';
import type { MergeKernel } from '../kernel/kernel.ts';
import { canonicalJson } from '../search/space/genome.ts';
import type { RecipeDoc } from '../search/space/recipe-doc.ts';
import { Scorer, type CandidateScorer } from '../search/scoring/scorer.ts';
import { ThreadedScorer } from '../search/scoring/scorer-threads.ts';
import {
  DEFAULT_QUEUE_NAME,
  redisOptions,
  REFUSED_PREFIX,
  type CandidateJob,
  type CandidateResult,
  type EvaluatorSetup,
  type QueueConnection,
} from './job.ts';
import { fingerprintModelDir, modelFilesDiffer } from './model-files.ts';

export interface QueueWorkerOptions {
  readonly connection: QueueConnection;
  readonly queueName?: string;
  /** The merge kernel (its device is reported); a CPU kernel means scoring on `concurrency` threads. */
  readonly kernel: MergeKernel;
  readonly ep: ExecutionProvider;
  /** Jobs taken at once. */
  readonly concurrency: number;
  /** Folders this worker reads under; a job naming a file elsewhere is refused. */
  readonly modelsRoots: readonly string[];
  /** A job whose worker stops renewing its lock for this long is handed to another worker. */
  readonly stallMs: number;
  /** Shown in logs and on the jobs it answers (host:pid). */
  readonly name: string;
  readonly log: (line: string) => void;
}

export interface RunningWorker {
  readonly device: string;
  /** Stops taking jobs, finishes those in flight, releases the evaluators. */
  close(): Promise<void>;
}

export async function startQueueWorker(options: QueueWorkerOptions): Promise<RunningWorker> {
  const roots = options.modelsRoots.map((r) => {
    try {
      return realpathSync(r);
    } catch {
      throw new EvomergeError('cli.bad_option', `no such folder: ${r}`, { field: '--models-root' }, 2);
    }
  });
  const scorers = new Map<string, Promise<CandidateScorer>>();
  const suiteFiles = new Map<string, string[]>();
  const scorerFor = (setup: EvaluatorSetup): Promise<CandidateScorer> => {
    const key = canonicalJson(setup);
    let s = scorers.get(key);
    if (!s) {
      s = createScorer(setup, options);
      s.catch(() => scorers.delete(key)); // a setup that failed is tried again by the next job
      scorers.set(key, s);
    }
    return s;
  };

  const handle = async (job: Job<CandidateJob, CandidateResult>): Promise<CandidateResult> => {
    const data = job.data;
    const what = data.kind === 'recipe' ? `${data.doc?.merge_method ?? '?'} recipe` : path.basename(data.dir ?? '?');
    options.log(`job ${job.id} started: ${what}, ${data.split} split`);
    const startedAt = Date.now();
    const t0 = performance.now();
    let scorer: CandidateScorer;
    try {
      checkJobInputs(data, roots, suiteFiles);
      scorer = await scorerFor(data.evaluator);
    } catch (err) {
      const line = err instanceof Error ? err.message : String(err);
      options.log(`job ${job.id} refused: ${line}`);
      // Unrecoverable: BullMQ does not retry it; the coordinator stops with this line
      throw new UnrecoverableError(REFUSED_PREFIX + line);
    }
    try {
      const result =
        data.kind === 'recipe'
          ? await scorer.scoreRecipe(data.doc!, data.split, data.measures, data.items)
          : await scorer.scoreModelDir(data.dir!, data.split, data.measures, data.items);
      options.log(`job ${job.id} answered in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
      return { ok: true, result, worker: options.name, startedAt };
    } catch (err) {
      if (err instanceof EvomergeError && err.code === 'internal') throw err;
      // the candidate cannot be merged or scored: that is its result, recorded as failed by the campaign
      const e = err as EvomergeError;
      options.log(`job ${job.id} answered: candidate failed: ${e.message}`);
      return {
        ok: false,
        error: {
          code: err instanceof EvomergeError ? e.code : 'search.candidate_failed',
          message: e.message ?? String(err),
        },
        worker: options.name,
      };
    }
  };

  const worker = new Worker<CandidateJob, CandidateResult>(options.queueName ?? DEFAULT_QUEUE_NAME, handle, {
    connection: redisOptions(options.connection),
    concurrency: options.concurrency,
    name: options.name,
    lockDuration: options.stallMs,
    stalledInterval: options.stallMs,
    // a job whose worker dies is handed on; only one that kills worker after worker is given up
    maxStalledCount: 5,
    removeOnComplete: { age: 7 * 24 * 3600 },
    removeOnFail: { age: 7 * 24 * 3600 },
  });
  worker.on('error', (err) => options.log(`queue: ${err.message}`));
  await worker.waitUntilReady();
  return {
    device: options.kernel.device,
    async close() {
      await worker.close();
      for (const s of scorers.values()) await (await s.catch(() => undefined))?.close();
      await options.kernel.close();
    },
  };
}

/** The evaluator of a campaign setup: on the CPU, one scoring thread per concurrent job; on a GPU kernel,
 *  evaluators in this thread sharing the kernel's resident sources. */
async function createScorer(setup: EvaluatorSetup, options: QueueWorkerOptions): Promise<CandidateScorer> {
  const common = {
    graph: setup.graph,
    baseModelDir: setup.baseModelDir,
    ep: setup.ep,
    workers: options.concurrency,
    limit: setup.limit,
    baseDir: setup.baseDir,
  };
  if (options.kernel.device.startsWith('cpu')) return ThreadedScorer.create({ ...common, suiteFile: setup.suiteFile });
  return Scorer.create({ ...common, suite: parseSuiteFile(setup.suiteFile), kernel: options.kernel });
}

/**
 * Refuses a job (EvomergeError scorer.refused) that names a file outside `roots` — the suite, its graph and
 * eval files, the base and every model of the recipe — or whose model files differ from the campaign's record.
 */
export function checkJobInputs(
  job: CandidateJob,
  roots: readonly string[],
  suiteFiles = new Map<string, string[]>(),
): void {
  const files = [
    job.evaluator.suiteFile,
    job.evaluator.baseModelDir,
    ...(job.evaluator.graph ? [job.evaluator.graph] : []),
    ...(job.dir ? [job.dir] : []),
    ...(job.doc ? recipeModels(job.doc) : []),
    ...job.modelFiles.map((f) => f.modelDir),
  ];
  for (const f of new Set(files)) checkUnderRoots(f, roots);
  // the files the suite names (graph, eval sets), parsed once per suite
  let named = suiteFiles.get(job.evaluator.suiteFile);
  if (!named) {
    const suite = parseSuiteFile(job.evaluator.suiteFile);
    named = [suite.graph, suite.baseModel, ...suite.tasks.flatMap((t) => Object.values(t.files))].filter(
      (f): f is string => f !== undefined,
    );
    suiteFiles.set(job.evaluator.suiteFile, named);
  }
  for (const f of named) checkUnderRoots(f, roots);
  for (const dir of new Set(job.modelFiles.map((f) => f.modelDir))) {
    const differ = modelFilesDiffer(
      job.modelFiles.filter((f) => f.modelDir === dir),
      fingerprintModelDir(dir),
    );
    if (differ) throw differ;
  }
}

function checkUnderRoots(file: string, roots: readonly string[]): void {
  if (!path.isAbsolute(file)) throw new EvomergeError('scorer.refused', 'a job must name absolute paths', { file });
  let real: string;
  try {
    real = realpathSync(file);
  } catch {
    throw new EvomergeError(
      'scorer.refused',
      'does not exist on this worker (put the models at the same paths as on the coordinator)',
      { file },
    );
  }
  if (!roots.some((r) => real === r || real.startsWith(r.endsWith(path.sep) ? r : r + path.sep))) {
    throw new EvomergeError(
      'scorer.refused',
      `outside this worker's models roots (${roots.join(', ')}); start it with --models-root`,
      { file },
    );
  }
}

/** Every model folder a recipe document names. */
function recipeModels(doc: RecipeDoc): string[] {
  const d = doc as {
    base_model?: unknown;
    models?: { model?: unknown }[];
    slices?: { sources?: { model?: unknown }[] }[];
  };
  const out: string[] = [];
  if (typeof d.base_model === 'string') out.push(d.base_model);
  for (const m of d.models ?? []) if (typeof m.model === 'string') out.push(m.model);
  for (const s of d.slices ?? []) for (const m of s.sources ?? []) if (typeof m.model === 'string') out.push(m.model);
  return out;
}
