// `evomerge worker`'s loop: takes candidate jobs from the queue, checks that everything a job names lies
// under the folders this worker may read and that its model files are the campaign's, merges and scores on
// an evaluator kept resident across jobs (one per campaign setup), and answers the scores. Scoring runs on
// worker threads (CPU) so this thread stays free to renew the job locks that tell BullMQ the job is alive.
import { readdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Job, UnrecoverableError } from 'bullmq';
import { EvomergeError } from '../errors.ts';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import { parseSuiteFile } from '../eval/suite.ts';
import type { MergeKernel } from '../kernel/kernel.ts';
import { checkpointDigest, fileDigest, type InputFingerprint } from '../search/campaign/fingerprint.ts';
import { canonicalJson } from '../search/space/genome.ts';
import { isDataFlowDoc, type RecipeDoc } from '../search/space/recipe-doc.ts';
import { Scorer, type CandidateScorer } from '../search/scoring/scorer.ts';
import { ThreadedScorer } from '../search/scoring/scorer-threads.ts';
import {
  DEFAULT_QUEUE_NAME,
  inputsDigest,
  MAX_MESSAGE_BYTES,
  messageBytes,
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
  // BullMQ is loaded on first use: importing it takes about a second, which every other command would pay
  const bullmq = await import('bullmq');
  const roots = options.modelsRoots.map((r) => {
    try {
      return realpathSync(r);
    } catch {
      throw new EvomergeError('cli.bad_option', `no such folder: ${r}`, { field: '--models-root' }, 2);
    }
  });
  // Resident evaluators, one per campaign setup AND recorded inputs: a campaign whose eval files or weights
  // differ gets a fresh evaluator; the one it replaces (same setup, older inputs) is closed once idle.
  const residents = new Map<string, Resident>();
  const closing: Promise<void>[] = [];
  const retire = (r: Resident) => {
    closing.push(r.scorer.then((s) => s.close()).catch(() => undefined));
  };
  const acquire = (job: CandidateJob): Resident => {
    const setupKey = canonicalJson(job.evaluator);
    const key = `${setupKey}\0${inputsDigest(job.inputs)}`;
    let r = residents.get(key);
    if (!r) {
      for (const [k, old] of residents) {
        if (old.setupKey !== setupKey) continue;
        residents.delete(k);
        old.stale = true;
        if (old.inFlight === 0) retire(old);
      }
      const made: Resident = { scorer: createScorer(job.evaluator, options), setupKey, inFlight: 0, stale: false };
      // a setup that failed is tried again by the next job
      made.scorer.catch(() => residents.get(key) === made && residents.delete(key));
      residents.set(key, made);
      r = made;
    }
    r.inFlight++;
    return r;
  };
  const release = (r: Resident) => {
    if (--r.inFlight === 0 && r.stale) retire(r);
  };
  const suiteFiles = new Map<string, string[]>();
  const digests = new LocalDigests();

  const handle = async (job: Job<CandidateJob, CandidateResult>): Promise<CandidateResult> => {
    const data = job.data;
    const what =
      data.kind !== 'recipe'
        ? path.basename(data.dir ?? '?')
        : data.doc && isDataFlowDoc(data.doc)
          ? 'data-flow path'
          : `${data.doc?.merge_method ?? '?'} recipe`;
    options.log(`job ${job.id} started: ${what}, ${data.split} split`);
    const startedAt = Date.now();
    const t0 = performance.now();
    let resident: Resident;
    let scorer: CandidateScorer;
    try {
      checkJobSize(data);
      checkJobProvider(data, options.ep);
      checkJobInputs(data, roots, suiteFiles, digests);
      resident = acquire(data);
    } catch (err) {
      throw refuse(job, err, options, bullmq.UnrecoverableError);
    }
    try {
      scorer = await resident.scorer;
    } catch (err) {
      release(resident);
      throw refuse(job, err, options, bullmq.UnrecoverableError);
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
    } finally {
      release(resident);
    }
  };

  const worker = new bullmq.Worker<CandidateJob, CandidateResult>(options.queueName ?? DEFAULT_QUEUE_NAME, handle, {
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
      for (const r of residents.values()) retire(r);
      residents.clear();
      await Promise.all(closing);
      await options.kernel.close();
    },
  };
}

interface Resident {
  readonly scorer: Promise<CandidateScorer>;
  readonly setupKey: string;
  inFlight: number;
  /** Replaced by the evaluator of newer inputs: closed when its last job ends. */
  stale: boolean;
}

/** A refusal: Unrecoverable, so BullMQ does not retry it; the coordinator stops with this line. */
function refuse(
  job: Job<CandidateJob, CandidateResult>,
  err: unknown,
  options: QueueWorkerOptions,
  Unrecoverable: typeof UnrecoverableError,
): Error {
  const line = err instanceof Error ? err.message : String(err);
  options.log(`job ${job.id} refused: ${line}`);
  return new Unrecoverable(REFUSED_PREFIX + line);
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

/** Refuses a job heavier than any a campaign asks (MAX_MESSAGE_BYTES as JSON) before anything reads it further. */
export function checkJobSize(job: unknown): void {
  if (messageBytes(job) === undefined)
    throw new EvomergeError(
      'scorer.refused',
      `the job weighs more than ${MAX_MESSAGE_BYTES / 1024 / 1024} MiB as JSON (a campaign's jobs are far smaller)`,
    );
}

/**
 * Refuses a job whose campaign scores on another ONNX Runtime execution provider than this worker was started
 * with (`--ep`): the campaign records which provider its scores come from, and a worker never swaps it (nor
 * takes up a provider its operator did not choose). The refusal names both.
 */
export function checkJobProvider(job: CandidateJob, ep: ExecutionProvider): void {
  if (job.evaluator.ep !== ep)
    throw new EvomergeError(
      'scorer.refused',
      `the campaign scores on ${String(job.evaluator.ep)} but this worker was started with --ep ${ep}; start a worker ` +
        `with --ep ${String(job.evaluator.ep)} (or the campaign with --ep ${ep})`,
      { field: '--ep' },
    );
}

/**
 * Refuses a job (EvomergeError scorer.refused) that names a file outside `roots` — the suite, its graph and
 * eval files, the base and every model of the recipe — or whose model files differ from the campaign's record.
 */
export function checkJobInputs(
  job: CandidateJob,
  roots: readonly string[],
  suiteFiles = new Map<string, string[]>(),
  digests = new LocalDigests(),
): void {
  if (!Array.isArray(job.inputs))
    throw new EvomergeError(
      'scorer.refused',
      "the job carries no input fingerprints (its coordinator is older than this worker); update the coordinator's " +
        'evomerge',
    );
  const models = job.doc ? recipeModels(job.doc) : [];
  const files = [
    job.evaluator.suiteFile,
    job.evaluator.baseModelDir,
    // graph: auto names no file (built from the base's config.json, or per path for a data-flow candidate)
    ...(job.evaluator.graph && job.evaluator.graph !== 'auto' ? [job.evaluator.graph] : []),
    ...(job.dir ? [job.dir] : []),
    ...models,
    ...job.modelFiles.map((f) => f.modelDir),
  ];
  for (const f of new Set(files)) checkUnderRoots(f, roots);
  // every model the candidate reads is one of the campaign's recorded checkpoints, so its digest is checked below
  const recorded = new Set(job.inputs.filter((f) => f.role.startsWith('checkpoint ')).map((f) => path.resolve(f.path)));
  for (const m of models)
    if (!recorded.has(path.resolve(m)))
      throw new EvomergeError(
        'scorer.refused',
        "not among the campaign's recorded checkpoints (its digest cannot be checked)",
        { file: m },
      );
  // every input the campaign recorded, under the roots and with the recorded digest here too
  for (const f of job.inputs) checkUnderRoots(f.path, roots);
  for (const f of job.inputs) {
    const here = digests.of(f);
    if (here !== f.digest)
      throw new EvomergeError(
        'scorer.refused',
        `${f.role} differs from the campaign's copy: sha256 ${here.slice(0, 12)}… here, ${f.digest.slice(0, 12)}… ` +
          'recorded (give this worker the same files as the coordinator)',
        { file: f.path },
      );
  }
  // the files the suite names (graph, eval sets), parsed once per suite and recorded inputs
  const suiteKey = `${job.evaluator.suiteFile}\0${inputsDigest(job.inputs)}`;
  let named = suiteFiles.get(suiteKey);
  if (!named) {
    const suite = parseSuiteFile(job.evaluator.suiteFile);
    named = [suite.graph, suite.baseModel, ...suite.tasks.flatMap((t) => Object.values(t.files))].filter(
      (f): f is string => f !== undefined && f !== 'auto',
    );
    suiteFiles.set(suiteKey, named);
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

/**
 * This worker's digests of the inputs a job names, as the campaign computes them (a checkpoint folder by its
 * config, index and safetensors files; any other file whole), recomputed only when a file's inode, size, mtime
 * or ctime changed since the last job.
 */
export class LocalDigests {
  private readonly known = new Map<string, { readonly stamp: string; readonly digest: string }>();

  of(f: InputFingerprint): string {
    const checkpoint = f.role.startsWith('checkpoint ');
    const stamp = stampOf(f.path, checkpoint);
    const k = `${checkpoint ? 'dir' : 'file'}\0${f.path}`;
    const hit = this.known.get(k);
    if (hit && hit.stamp === stamp) return hit.digest;
    const digest = checkpoint ? checkpointDigest(f.path) : fileDigest(f.path);
    this.known.set(k, { stamp, digest });
    return digest;
  }
}

function stampOf(p: string, folder: boolean): string {
  const one = (file: string) => {
    const st = statSync(file, { throwIfNoEntry: false });
    return st ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}` : 'none';
  };
  if (!folder) return one(p);
  let names: string[];
  try {
    names = readdirSync(p).sort();
  } catch {
    return 'none';
  }
  return names.map((n) => `${n}=${one(path.join(p, n))}`).join('|');
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

/** Every model folder a candidate's document names: a merge recipe's base, models and slice sources, or a
 *  data-flow path's models (A first). */
function recipeModels(doc: RecipeDoc): string[] {
  const d = doc as {
    data_flow?: { models?: unknown };
    base_model?: unknown;
    models?: { model?: unknown }[];
    slices?: { sources?: { model?: unknown }[] }[];
  };
  const out: string[] = [];
  if (d.data_flow !== undefined) {
    const models = d.data_flow?.models;
    if (!Array.isArray(models) || models.length === 0 || !models.every((m) => typeof m === 'string'))
      throw new EvomergeError('scorer.refused', 'a data-flow job must name its models (data_flow.models: paths)');
    out.push(...(models as string[]));
  }
  if (typeof d.base_model === 'string') out.push(d.base_model);
  for (const m of d.models ?? []) if (typeof m.model === 'string') out.push(m.model);
  for (const s of d.slices ?? []) for (const m of s.sources ?? []) if (typeof m.model === 'string') out.push(m.model);
  return out;
}
