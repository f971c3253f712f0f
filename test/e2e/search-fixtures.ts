// Shared fixtures of the search e2e tests: a tiny search space over the vendored micro zoo (few items per
// task, few candidates) written into a temp folder, and a runner for the real CLI (node bin/evomerge.js).
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  cpSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { openStore } from '../../src/store/db.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const cli = path.join(repoRoot, 'bin/evomerge.js');
const zoo = path.join(repoRoot, 'models/micro');

/** A small but real campaign: 2 experts, 2 layer groups, TA or DARE-TIES, 12 items per task. */
export function tinySpace(
  overrides: Record<string, unknown> = {},
  genome: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    name: 'tiny',
    base_model: `${zoo}/base`,
    models: [`${zoo}/expert-math`, `${zoo}/expert-lang`],
    suite: path.join(repoRoot, 'evals/micro.yaml'),
    genome: {
      layer_groups: 2,
      methods: ['task_arithmetic', 'dare_ties'],
      parameters: { weight: { min: 0, max: 1.2 }, density: { min: 0.2, max: 1 } },
      ...genome,
    },
    objective: [{ task: 'composite', metric: 'answer_logprob', weight: 1 }],
    gates: [
      { name: 'lang_floor', kind: 'floor', task: 'lang', value: -3.0 },
      { name: 'math_words_floor', kind: 'floor', task: 'math_words', value: 0.05 },
    ],
    references: [{ name: 'ties d=0.5', method: 'ties', weight: 1, density: 0.5 }],
    optimizer: 'cmaes',
    population_size: 4,
    budget: { candidates: 8 },
    seed: 7,
    workers: 2,
    eval_limit: 12,
    ...overrides,
  };
}

export function writeSpace(dir: string, name: string, doc: Record<string, unknown>): string {
  const file = path.join(dir, name);
  writeFileSync(file, YAML.stringify(doc));
  return file;
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(cwd: string, ...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * runCli without blocking the test worker's event loop: long campaigns run back to back through spawnSync starve
 * vitest's worker RPC (it reports "Timeout calling onTaskUpdate").
 */
export function runCliAsync(cwd: string, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** stderr without the Dawn adapter notices some machines print when --device auto probes for a GPU. */
export function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('Warning: '));
}

/** Everything two runs of one campaign must agree on: every candidate (by kind and content hash), its
 *  scores and verdicts, and the optimiser states. Candidates sorted by identity (recording order may differ). */
export function recordSnapshot(db: string) {
  const s = openStore(db, { readonly: true });
  try {
    const [c] = s.listCampaigns();
    const all = s.listCandidates(c!.campaignId).map((x) => ({
      kind: x.kind,
      label: x.label,
      ordinal: x.ordinal,
      generation: x.generation,
      hash: x.contentHash,
      status: x.status,
      objective: x.objective,
      genome: x.genomeJson,
      error: x.errorCode,
      scores: s.listScores(x.candidateId).map((sc) => [sc.task, sc.metric, sc.split, sc.value, sc.se, sc.n]),
      verdicts: s.listVerdicts(x.candidateId).map((v) => [v.gate, v.split, v.value, v.threshold, v.pass]),
    }));
    const key = (x: { kind: string; hash: string }) => `${x.kind}:${x.hash}`;
    return {
      candidates: all.sort((p, q) => key(p).localeCompare(key(q))),
      states: s.listOptimizerStates(c!.campaignId).map((st) => [st.generation, st.toldCount, st.stateJson]),
    };
  } finally {
    s.close();
  }
}

/** Search candidates recorded so far (0 while the database does not exist yet). */
export function searchCount(db: string): number {
  try {
    const s = openStore(db, { readonly: true });
    try {
      const [c] = s.listCampaigns();
      return c ? s.countCandidates(c.campaignId, { kind: 'search' }) : 0;
    } finally {
      s.close();
    }
  } catch {
    return 0;
  }
}

/** Copies a zoo model and writes NaN into the first element of one of its tensors. */
export function poisonedCopy(tmp: string, model: string, tensor: string): string {
  const dir = path.join(tmp, `${model}-nan`);
  cpSync(path.join(repoRoot, 'models/micro', model), dir, { recursive: true });
  for (const f of readdirSync(dir)) chmodSync(path.join(dir, f), 0o644);
  const file = path.join(dir, 'model.safetensors');
  const fd = openSync(file, 'r+');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const header = JSON.parse(
      readFileSync(file)
        .subarray(8, 8 + n)
        .toString('utf8'),
    ) as Record<string, { data_offsets: [number, number] }>;
    const nan = Buffer.alloc(4);
    nan.writeFloatLE(Number.NaN, 0);
    writeSync(fd, nan, 0, 4, 8 + n + header[tensor]!.data_offsets[0]);
  } finally {
    closeSync(fd);
  }
  return dir;
}

/**
 * Starts `evomerge search SPACE --db DB` in `cwd` and SIGKILLs it: `afterMs` after the start, or — when
 * `afterNewMs` is given — that long after this run has recorded its first new candidate (so the kill lands
 * mid-search, not during start-up). With `atMost`, the kill comes no later than the poll that sees the database
 * hold that many search candidates: a schedule in milliseconds alone lands after the budget's end on a faster (or
 * a busier) machine, where the run records candidates in pairs sooner than the poll sees them.
 * Resolves whether the kill (rather than a normal exit) ended it, and the end of its stderr.
 */
export function runAndKill(
  cwd: string,
  space: string,
  db: string,
  when: { afterMs?: number; afterNewMs?: number; atMost?: number },
): Promise<{ killed: boolean; stderr: string }> {
  return new Promise((resolve) => {
    const before = searchCount(db);
    const child = spawn(process.execPath, [cli, 'search', space, '--db', db, '--device', 'cpu'], {
      cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // the end of its stderr, to say why a run ended on its own
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    let timer: NodeJS.Timeout | undefined;
    let poll: NodeJS.Timeout | undefined;
    if (when.afterMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), when.afterMs);
    else {
      poll = setInterval(() => {
        const n = searchCount(db);
        if (when.atMost !== undefined && n >= when.atMost) {
          clearInterval(poll);
          child.kill('SIGKILL');
        } else if (n > before && timer === undefined) {
          if (when.atMost === undefined) clearInterval(poll);
          timer = setTimeout(() => child.kill('SIGKILL'), when.afterNewMs);
        }
      }, 25);
    }
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      clearInterval(poll);
      resolve({ killed: signal === 'SIGKILL', stderr });
    });
  });
}
