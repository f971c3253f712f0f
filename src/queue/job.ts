// The candidate job of a campaign spread over machines: what the coordinator puts on the queue (a recipe or
// a source folder, the split and measures to score, how to build the evaluator, the input models' files as
// the campaign recorded them) and what a worker answers. Plain JSON both ways.
import { createHash } from 'node:crypto';
import { EvomergeError } from '../errors.ts';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import { canonicalJson } from '../search/space/genome.ts';
import type { RecipeDoc } from '../search/space/recipe-doc.ts';
import type { Measure, Score } from '../search/space/measures.ts';
import type { ItemSubset, Timed } from '../search/scoring/scorer.ts';
import type { Split } from '../eval/split.ts';
import type { ModelFileRecord } from '../store/records.ts';
import type { InputFingerprint } from '../search/campaign/fingerprint.ts';

/** The one queue every coordinator and worker of an installation shares (a Redis can host several: --queue-name). */
export const DEFAULT_QUEUE_NAME = 'evomerge-candidates';

/** How a worker builds the evaluator of a campaign (the same for all its jobs, so it stays resident). */
export interface EvaluatorSetup {
  readonly suiteFile: string;
  readonly graph?: string;
  readonly baseModelDir: string;
  readonly ep: ExecutionProvider;
  readonly limit?: number;
  /** Folder recipe paths are relative to (messages only; the search's recipes hold absolute paths). */
  readonly baseDir: string;
}

export interface CandidateJob {
  /** The campaign's config hash: jobs of two campaigns never share an id. */
  readonly campaign: string;
  readonly kind: 'recipe' | 'model';
  readonly doc?: RecipeDoc;
  readonly dir?: string;
  readonly split: Split;
  readonly measures: readonly Measure[];
  /** task → the items to score (a val part held out of fit, a successive-halving rung); absent: every item. */
  readonly items?: ItemSubset;
  readonly evaluator: EvaluatorSetup;
  /** The input models' safetensors files as the campaign recorded them: a worker whose copy differs refuses. */
  readonly modelFiles: readonly ModelFileRecord[];
  /** Every input as the campaign recorded it (checkpoints, graph, suite, eval files, tokenizer: path, role,
   *  digest): part of the job id, of the key of a worker's resident evaluator, and checked by the worker against
   *  its own files, so that scores of other weights or other items are never answered or collected. */
  readonly inputs: readonly InputFingerprint[];
}

/** A worker's answer. A candidate that cannot be merged or scored is an answer too (ok: false); a worker that
 *  refuses the job (inputs outside its roots, different model files) fails the job instead. */
export type CandidateResult =
  | {
      readonly ok: true;
      readonly result: Timed<Score[]>;
      readonly worker: string;
      /** Date.now() when the worker took the job. */ readonly startedAt: number;
    }
  | {
      readonly ok: false;
      readonly error: { readonly code: string; readonly message: string };
      readonly worker: string;
    };

/** The most a job or an answer may weigh as JSON. A campaign's own jobs and answers are far smaller (a recipe, the
 *  recorded input and model-file fingerprints, item lists, one score per measure and per-item values): past it,
 *  a worker refuses the job and the coordinator records the answer as bad, before either acts on it. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** How many bytes `value` weighs as JSON (UTF-8), or undefined when it is more than `MAX_MESSAGE_BYTES`. */
export function messageBytes(value: unknown): number | undefined {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    return undefined; // a cycle cannot come from JSON; a string past V8's limit is past ours
  }
  const bytes = Buffer.byteLength(text ?? 'null', 'utf8');
  return bytes > MAX_MESSAGE_BYTES ? undefined : bytes;
}

/** A failed job whose reason starts with this was refused by a worker (not lost): the coordinator stops. */
export const REFUSED_PREFIX = 'refused: ';

/** One digest of a campaign's recorded inputs (order-free): two campaigns whose eval files or weights differ
 *  never share a job id or a resident evaluator. */
export function inputsDigest(inputs: readonly InputFingerprint[]): string {
  const rows = inputs.map((f) => `${f.path}\0${f.digest}`).sort();
  return createHash('sha256').update(rows.join('\n')).digest('hex');
}

/**
 * The job id: the campaign, its recorded inputs (inputsDigest) and the content of what is scored (recipe or
 * folder, split, measures, items). A job
 * re-added after a coordinator restart gets the same id, so the queue holds it once and its result, if a
 * worker already produced it, is picked up instead of scored again.
 */
export function jobIdOf(
  job: Pick<CandidateJob, 'campaign' | 'kind' | 'doc' | 'dir' | 'split' | 'measures' | 'items' | 'inputs'>,
): string {
  const what = canonicalJson({
    inputs: inputsDigest(job.inputs),
    kind: job.kind,
    doc: job.doc ?? null,
    dir: job.dir ?? null,
    split: job.split,
    measures: job.measures,
    ...(job.items ? { items: job.items } : {}),
  });
  return `${job.campaign.slice(0, 16)}-${job.split}-${createHash('sha256').update(what).digest('hex').slice(0, 32)}`;
}

/** Connection options parsed from `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). */
export interface QueueConnection {
  readonly host: string;
  readonly port: number;
  readonly db?: number;
  readonly username?: string;
  readonly password?: string;
  readonly tls?: { servername: string };
  /** The URL without its password, for messages. */
  readonly display: string;
}

export function parseQueueUrl(text: string, field = '--queue'): QueueConnection {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new EvomergeError(
      'cli.bad_option',
      `"${text}" is not a URL; expected redis://host:port or rediss://host:port`,
      { field },
      2,
    );
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new EvomergeError(
      'cli.bad_option',
      `unsupported scheme "${url.protocol}"; expected redis:// or rediss:// (TLS)`,
      { field },
      2,
    );
  }
  if (!url.hostname) throw new EvomergeError('cli.bad_option', `"${url.protocol}//" names no host`, { field }, 2);
  const port = url.port ? Number(url.port) : 6379;
  const dbText = url.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText))
    throw new EvomergeError('cli.bad_option', `"/${dbText}" is not a Redis database number`, { field }, 2);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const shown = new URL(text);
  if (shown.password) shown.password = '***';
  return {
    host,
    port,
    ...(dbText !== '' ? { db: Number(dbText) } : {}),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: { servername: host } } : {}),
    display: shown.toString(),
  };
}

/** ioredis options for BullMQ: commands wait through a Redis restart instead of failing (BullMQ requires
 *  maxRetriesPerRequest null for workers), and reconnection backs off to at most one try a second. */
export function redisOptions(c: QueueConnection) {
  return {
    host: c.host,
    port: c.port,
    ...(c.db !== undefined ? { db: c.db } : {}),
    ...(c.username ? { username: c.username } : {}),
    ...(c.password ? { password: c.password } : {}),
    ...(c.tls ? { tls: c.tls } : {}),
    maxRetriesPerRequest: null,
    retryStrategy: (times: number) => Math.min(100 * times, 1000),
  };
}
