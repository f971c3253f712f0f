// The coordinator's side of a campaign spread over machines: a CandidateScorer that puts each candidate on a
// BullMQ queue and waits for a worker's answer. It never writes the record (the campaign does, as with the
// embedded pool); it only makes sure each requested job is answered once, whatever dies meanwhile:
// - a worker killed mid-job: BullMQ's stalled-job check hands the job to another worker;
// - this coordinator killed: the resumed run asks for the same jobs under the same ids, so the queue holds
//   each once and answers already computed are collected, not recomputed;
// - Redis restarted (without persistence, the queue is empty): a periodic sweep finds the job gone and
//   adds it again.
import type { Job, Queue, QueueEvents } from 'bullmq';
import { EvomergeError } from '../errors.ts';
import type { RecipeDoc } from '../search/space/recipe-doc.ts';
import type { Measure, Score } from '../search/space/measures.ts';
import type { CandidateScorer, ItemSubset, Timed } from '../search/scoring/scorer.ts';
import type { Split } from '../eval/split.ts';
import type { ModelFileRecord } from '../store/records.ts';
import type { InputFingerprint } from '../search/campaign/fingerprint.ts';
import { checkAnswer, type ItemCount } from './answer.ts';
import {
  DEFAULT_QUEUE_NAME,
  jobIdOf,
  redisOptions,
  REFUSED_PREFIX,
  type CandidateJob,
  type CandidateResult,
  type EvaluatorSetup,
  type QueueConnection,
} from './job.ts';

export interface QueueScorerOptions {
  readonly connection: QueueConnection;
  readonly queueName?: string;
  /** The campaign's config hash. */
  readonly campaign: string;
  readonly evaluator: EvaluatorSetup;
  readonly modelFiles: readonly ModelFileRecord[];
  /** The campaign's recorded input fingerprints (carried by every job, part of its id). */
  readonly inputs: readonly InputFingerprint[];
  /** How many items a job scores of a task (the answers' n is checked against it; undefined: unknown). */
  readonly itemCount: ItemCount;
  /** How often unanswered jobs are looked up on the queue (answers normally arrive as events). Default 2 s. */
  readonly sweepMs?: number;
  /** Where the one-line notice of how many workers listen goes. */
  readonly log?: (line: string) => void;
  /** Receives the per-job timings when the scorer closes (the bench). */
  readonly onClose?: (timings: readonly JobTiming[]) => void;
}

/** Per answered job: when it was asked for, picked up, answered, and its merge + score time (the bench). */
export interface JobTiming {
  readonly id: string;
  readonly split: Split;
  readonly waitMs: number;
  readonly roundTripMs: number;
  readonly workMs: number;
  readonly worker: string;
}

/** A job that fails this many times without being refused (it stalled past the worker's limit each time). */
const MAX_RETRIES = 5;
/** A look-up of one job on the queue taking longer than this is abandoned (the next sweep tries again). */
const LOOKUP_TIMEOUT_MS = 10_000;
/** Finished jobs are kept a week: a coordinator resumed within it collects their answers. */
const KEEP_SECONDS = 7 * 24 * 3600;

interface Pending {
  readonly data: CandidateJob;
  readonly resolve: (r: Timed<Score[]>) => void;
  readonly reject: (e: Error) => void;
  readonly askedAt: number;
  retries: number;
  busy: boolean;
}

export class QueueScorer implements CandidateScorer {
  private readonly pending = new Map<string, Pending>();
  private readonly sweeper: NodeJS.Timeout;
  readonly timings: JobTiming[] = [];

  private constructor(
    private readonly queue: Queue<CandidateJob, CandidateResult>,
    private readonly events: QueueEvents,
    private readonly jobs: typeof Job,
    private readonly options: QueueScorerOptions,
  ) {
    // the answer rides on the event: no round trip to fetch the job (the sweep catches any missed event)
    this.events.on('completed', ({ jobId, returnvalue }) => {
      const p = this.pending.get(jobId);
      // an answer that does not fit its job is looked up again (to name the worker BullMQ saw take it)
      if (p && 'answer' in checkAnswer(returnvalue, p.data, options.itemCount))
        this.answer(jobId, p, returnvalue, undefined);
      else void this.collect(jobId);
    });
    this.events.on('failed', ({ jobId }) => void this.collect(jobId));
    this.sweeper = setInterval(() => {
      for (const id of this.pending.keys()) void this.collect(id);
    }, options.sweepMs ?? 2000);
  }

  static async create(options: QueueScorerOptions): Promise<QueueScorer> {
    // BullMQ is loaded on first use: importing it takes about a second, which every other command would pay
    const { Queue, QueueEvents, Job } = await import('bullmq');
    const name = options.queueName ?? DEFAULT_QUEUE_NAME;
    const queue = new Queue<CandidateJob, CandidateResult>(name, { connection: redisOptions(options.connection) });
    const events = new QueueEvents(name, { connection: redisOptions(options.connection) });
    // connection errors are retried by ioredis; BullMQ re-emits them here, where they must not crash the process
    queue.on('error', () => {});
    events.on('error', () => {});
    await queue.waitUntilReady();
    await events.waitUntilReady();
    const workers = await queue.getWorkersCount();
    options.log?.(
      workers > 0
        ? `handing candidates to ${workers} worker(s) on queue "${name}" at ${options.connection.display}`
        : `no worker listens on queue "${name}" at ${options.connection.display} yet: jobs wait until one starts ` +
            `(evomerge worker --queue …)`,
    );
    return new QueueScorer(queue, events, Job, options);
  }

  scoreRecipe(doc: RecipeDoc, split: Split, measures: readonly Measure[], items?: ItemSubset): Promise<Timed<Score[]>> {
    return this.submit({ kind: 'recipe', doc, split, measures, ...(items ? { items } : {}) });
  }

  scoreModelDir(dir: string, split: Split, measures: readonly Measure[], items?: ItemSubset): Promise<Timed<Score[]>> {
    return this.submit({ kind: 'model', dir, split, measures, ...(items ? { items } : {}) });
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.options.onClose?.(this.timings);
    for (const p of this.pending.values())
      p.reject(new EvomergeError('scorer.closed', 'the campaign stopped before this job was answered'));
    this.pending.clear();
    await this.events.close();
    await this.queue.close();
  }

  private submit(
    part: Pick<CandidateJob, 'kind' | 'doc' | 'dir' | 'split' | 'measures' | 'items'>,
  ): Promise<Timed<Score[]>> {
    const data: CandidateJob = {
      campaign: this.options.campaign,
      ...part,
      evaluator: this.options.evaluator,
      modelFiles: this.options.modelFiles,
      inputs: this.options.inputs,
    };
    const id = jobIdOf(data);
    return new Promise((resolve, reject) => {
      const p: Pending = { data, resolve, reject, askedAt: Date.now(), retries: 0, busy: true };
      this.pending.set(id, p);
      withTimeout(this.enqueue(id, p), LOOKUP_TIMEOUT_MS).then(
        () => {
          p.busy = false;
          return this.collect(id);
        },
        (err: unknown) => {
          p.busy = false;
          // no answer in time: the sweep looks the job up (and adds it if it is not there)
          if (!(err instanceof TimeoutError)) this.settle(id, () => reject(err as Error));
        },
      );
    });
  }

  /** Adds the job (a no-op when its id is already on the queue). A job that failed before this request —
   *  refused by a worker since fixed, or left by an earlier run — is tried again. */
  private async enqueue(id: string, p: Pending): Promise<void> {
    const job = await this.queue.add('candidate', p.data, {
      jobId: id,
      removeOnComplete: { age: KEEP_SECONDS },
      removeOnFail: { age: KEEP_SECONDS },
    });
    if (job.finishedOn !== undefined && job.finishedOn < p.askedAt && (await job.getState()) === 'failed')
      await job.retry('failed');
  }

  /** Looks the job up and settles its request when it is answered; re-adds it when the queue lost it. */
  private async collect(id: string): Promise<void> {
    const p = this.pending.get(id);
    if (!p || p.busy) return; // not ours (another campaign's, or already settled), or being looked up
    p.busy = true;
    try {
      // bounded: a look-up that never returns (a reply lost in a reconnection) must not stop later sweeps
      await withTimeout(this.lookUp(id, p), LOOKUP_TIMEOUT_MS);
    } catch {
      // Redis unreachable for now, or too slow: the next sweep looks again
    } finally {
      p.busy = false;
    }
  }

  private async lookUp(id: string, p: Pending): Promise<void> {
    const job = await this.jobs.fromId<CandidateJob, CandidateResult>(this.queue, id);
    if (!job) {
      await this.enqueue(id, p); // Redis lost it (restarted without persistence)
      return;
    }
    const state = await job.getState();
    if (state !== 'completed' && state !== 'failed') return;
    // read before it finished (a fast worker): read it again, finished now, with its answer and worker
    const done =
      job.finishedOn !== undefined ? job : await this.jobs.fromId<CandidateJob, CandidateResult>(this.queue, id);
    if (!done) return; // removed meanwhile: the next sweep adds it again
    if (state === 'completed') this.answer(id, p, done.returnvalue, done.processedBy);
    else await this.failed(id, p, done);
  }

  /** Settles a request with a worker's answer, checked against the job first: an answer that does not fit
   *  (null, a wrong type, other measures or item counts, a value outside its metric's range) is the
   *  candidate's failure, naming the worker. */
  private answer(id: string, p: Pending, raw: unknown, processedBy: string | undefined): void {
    const checked = checkAnswer(raw, p.data, this.options.itemCount);
    if ('wrong' in checked) {
      const claimed = (raw as { worker?: unknown } | null)?.worker;
      const worker = processedBy ?? (typeof claimed === 'string' ? claimed.slice(0, 100) : '?');
      this.settle(id, () =>
        p.reject(
          new EvomergeError(
            'queue.bad_answer',
            `worker ${worker} answered job ${id} with a bad answer: ${checked.wrong}; recorded as this candidate's failure`,
          ),
        ),
      );
      return;
    }
    const r = checked.answer;
    this.settle(id, () => {
      if (r.ok) {
        // the worker's clock: exact on one machine (the bench), indicative across hosts
        const waitMs = Math.max(0, r.startedAt - p.askedAt);
        this.timings.push({
          id,
          split: p.data.split,
          waitMs,
          roundTripMs: Date.now() - p.askedAt,
          workMs: r.result.mergeMs + r.result.evalMs,
          worker: r.worker,
        });
        p.resolve(r.result);
      } else {
        // the candidate itself could not be merged or scored: the campaign records it as failed
        const err = new EvomergeError(r.error.code, '');
        err.message = r.error.message;
        p.reject(err);
      }
    });
  }

  private async failed(id: string, p: Pending, job: Job<CandidateJob, CandidateResult>): Promise<void> {
    const reason = job.failedReason ?? 'no reason given';
    if (reason.startsWith(REFUSED_PREFIX)) {
      const err = new EvomergeError('scorer.refused', '');
      err.message = `${reason.slice(REFUSED_PREFIX.length)} (job refused by worker ${job.processedBy ?? '?'})`;
      this.settle(id, () => p.reject(err));
      return;
    }
    if (++p.retries > MAX_RETRIES) {
      this.settle(id, () =>
        p.reject(new EvomergeError('scorer.job_failed', `job ${id} failed ${MAX_RETRIES + 1} times; last: ${reason}`)),
      );
      return;
    }
    await job.retry('failed');
  }

  private settle(id: string, fn: () => void): void {
    if (!this.pending.delete(id)) return;
    fn();
  }
}

/** Checks that a queue's Redis answers (a one-line error otherwise, before anything is recorded). */
export async function checkQueueReachable(connection: QueueConnection, timeoutMs = 5000): Promise<void> {
  const { Redis } = await import('ioredis');
  const client = new Redis({
    ...redisOptions(connection),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
  });
  let cause: Error | undefined; // the socket's own error (ECONNREFUSED…) says more than "Connection is closed"
  client.on('error', (err: Error) => (cause ??= err));
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    throw new EvomergeError(
      'scorer.unreachable',
      `cannot reach the queue's Redis at ${connection.display}: ${(cause ?? (err as Error)).message}`,
      { field: '--queue' },
    );
  } finally {
    client.disconnect();
  }
}

class TimeoutError extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`no answer from Redis in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
