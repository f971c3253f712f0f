// Fingerprints of everything a campaign reads — each checkpoint, the graph, the suite, every eval file, the
// tokenizer — so that a campaign never mixes scores of different weights or different items: a resume, an
// export or a report compares the inputs as they are now with what the campaign recorded.
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EvomergeError } from '../../errors.ts';
import { baseTokenizerFile } from '../../eval/auto-graph.ts';
import type { Suite } from '../../eval/suite.ts';
import type { Store } from '../../store/db.ts';
import type { SearchSpace } from '../space/space.ts';

export interface InputFingerprint {
  readonly path: string;
  readonly role: string;
  readonly digest: string;
}

export interface InputChange {
  readonly path: string;
  readonly role: string;
  readonly oldDigest: string;
  readonly newDigest: string;
}

/** Files up to this size are hashed whole; a larger safetensors file by its header and size (the header
 *  names every tensor's dtype, shape and byte range, so a re-export or a truncation shows there). */
const WHOLE_FILE_BYTES = 64 * 2 ** 20;
const MISSING = 'missing';

/** The inputs of a campaign (as its space and suite name them) and their digests now. */
export function campaignInputs(
  space: Pick<SearchSpace, 'baseModel' | 'models' | 'graph' | 'suite'>,
  suite: Suite,
): InputFingerprint[] {
  const out: InputFingerprint[] = [];
  for (const m of [space.baseModel, ...space.models])
    out.push({ path: m.path, role: `checkpoint ${m.name}`, digest: checkpointDigest(m.path) });
  // graph: auto is built from the base's config.json, which the base checkpoint's digest covers
  const graph = space.graph ?? suite.graph;
  if (graph && graph !== 'auto') out.push({ path: graph, role: 'graph', digest: fileDigest(graph) });
  out.push({ path: suite.file, role: 'eval suite', digest: fileDigest(suite.file) });
  for (const t of suite.tasks)
    for (const f of Object.values(t.files))
      out.push({ path: f, role: `eval file of task ${t.name}`, digest: fileDigest(f) });
  // tokenizer: auto is the base's tokenizer.json beside a built graph, and bytes beside an exported one
  const builtGraph = !graph || graph === 'auto';
  const tokenizer =
    suite.tokenizer === 'byte'
      ? undefined
      : suite.tokenizer !== 'auto'
        ? suite.tokenizer
        : builtGraph
          ? baseTokenizerFile(space.baseModel.path, suite.file)
          : undefined;
  if (tokenizer) out.push({ path: tokenizer, role: 'tokenizer', digest: fileDigest(tokenizer) });
  const seen = new Set<string>();
  return out.filter((f) => !seen.has(f.path) && seen.add(f.path));
}

/** Inputs whose digest differs from the recorded one (an input recorded and now gone counts; a new one does not). */
export function changedInputs(recorded: readonly InputFingerprint[], now: readonly InputFingerprint[]): InputChange[] {
  const current = new Map(now.map((f) => [f.path, f]));
  const out: InputChange[] = [];
  for (const r of recorded) {
    const c = current.get(r.path);
    const digest = c?.digest ?? (fs.existsSync(r.path) ? r.digest : MISSING);
    if (digest !== r.digest) out.push({ path: r.path, role: r.role, oldDigest: r.digest, newDigest: digest });
  }
  return out;
}

/** The refusal for changed inputs: one line naming the first changed file. */
export function inputsChangedError(changes: readonly InputChange[], what: string): EvomergeError {
  const first = changes[0]!;
  const more =
    changes.length > 1
      ? ` (and ${changes.length - 1} more input(s): ${changes
          .slice(1, 4)
          .map((c) => path.basename(c.path))
          .join(', ')})`
      : '';
  return new EvomergeError(
    'search.inputs_changed',
    `${first.role} ${first.newDigest === MISSING ? 'is gone' : 'changed'} since the campaign recorded it${more}; ` +
      `${what} would mix results of different inputs — restore it, use another --db, or pass --accept-changed-inputs ` +
      `(recorded in the campaign)`,
    { file: first.path },
  );
}

/** A model folder: config.json and index whole, each safetensors file by header + size (whole when small). */
export function checkpointDigest(dir: string): string {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    return MISSING;
  }
  const h = createHash('sha256');
  for (const n of names) {
    if (n !== 'config.json' && !n.endsWith('.safetensors') && n !== 'model.safetensors.index.json') continue;
    h.update(`${n}\0`);
    const file = path.join(dir, n);
    if (n.endsWith('.safetensors')) safetensorsDigest(file, h);
    else h.update(readOrEmpty(file));
  }
  return h.digest('hex');
}

function safetensorsDigest(file: string, h: Hash): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    h.update(MISSING);
    return;
  }
  try {
    const size = fs.fstatSync(fd).size;
    h.update(`size ${size}\0`);
    if (size <= WHOLE_FILE_BYTES) {
      h.update(fs.readFileSync(fd));
      return;
    }
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const n = Math.min(Number(len.readBigUInt64LE(0)), size - 8);
    const header = Buffer.alloc(n);
    fs.readSync(fd, header, 0, n, 8);
    h.update(header);
  } finally {
    fs.closeSync(fd);
  }
}

/** A file's sha256 (streamed), or `missing`. */
export function fileDigest(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return MISSING;
  }
  try {
    const h = createHash('sha256');
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}

function readOrEmpty(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch {
    return Buffer.from(MISSING);
  }
}

/**
 * Compares a campaign's recorded inputs with `now`: refuses a change (naming the file) unless `accept`, in
 * which case the change is recorded in the campaign and the new digests become the recorded ones. A
 * campaign recorded before fingerprints existed gets them now. Read-only stores only compare.
 */
export function verifyCampaignInputs(
  store: Store,
  campaignId: number,
  now: readonly InputFingerprint[],
  options: { readonly accept: boolean; readonly what: string; readonly log?: (line: string) => void },
): InputChange[] {
  const recorded = store.listInputFingerprints(campaignId);
  const changes = changedInputs(recorded, now);
  if (changes.length && !options.accept) throw inputsChangedError(changes, options.what);
  for (const c of changes)
    options.log?.(
      `${c.role} ${c.path} changed since the campaign recorded it; accepted (--accept-changed-inputs), recorded in the campaign`,
    );
  if (!store.readonly) {
    if (changes.length) store.acceptInputChanges(campaignId, changes);
    const known = new Set(recorded.map((r) => r.path));
    const fresh = now.filter((f) => !known.has(f.path));
    if (fresh.length) store.saveInputFingerprints(campaignId, fresh);
  }
  return changes;
}

/** The recorded inputs that differ now, each re-digested as its role says (no suite needed: for a report). */
export function changedSinceRecorded(recorded: readonly InputFingerprint[]): InputChange[] {
  const now = recorded.map((r) => ({
    ...r,
    digest: r.role.startsWith('checkpoint ') ? checkpointDigest(r.path) : fileDigest(r.path),
  }));
  return changedInputs(recorded, now);
}
