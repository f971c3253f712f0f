// Every kind of campaign that runs in one process runs on the job queue with the same records (issue 23): a
// data-flow campaign (candidates are layer paths scored through a graph built per path, read from both
// models' checkpoints), successive halving (jobs score a rung's items) and the val pick (jobs score the val
// part held out of fit). Each is run embedded and through `--queue` with one `evomerge worker` on a real
// Redis; the candidates, their scores and verdicts, the optimiser states and the final pick must be equal.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { cli, errorLines, recordSnapshot, repoRoot, runCli, tinySpace, writeSpace } from './search-fixtures.ts';

const zoo = path.join(repoRoot, 'models/micro');
let tmp: string;
let queue: string;
const children: ChildProcess[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.end(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** An `evomerge worker` on `queueName` whose log goes to a file (read back by `log()`). */
async function startWorker(queueName: string) {
  const file = path.join(tmp, `${queueName}.worker.log`);
  const fd = openSync(file, 'w');
  const child = spawn(
    process.execPath,
    [cli, 'worker', '--queue', queue, '--queue-name', queueName, '--device', 'cpu', '--concurrency', '2'],
    { cwd: repoRoot, stdio: ['ignore', 'ignore', fd] },
  );
  closeSync(fd);
  children.push(child);
  const log = () => readFileSync(file, 'utf8');
  for (let i = 0; i < 1200 && !/^worker .* ready/m.test(log()); i++) {
    if (child.exitCode !== null) throw new Error(`worker exited: ${log()}`);
    await sleep(50);
  }
  expect(log()).toMatch(/^worker .* ready/m);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { log, stop: async () => (child.kill('SIGTERM'), await exited) };
}

/** The record of a campaign (recordSnapshot) and its final pick. */
function snapshot(db: string) {
  const s = openStore(db, { readonly: true });
  let pick: unknown;
  try {
    const id = s.listCampaigns()[0]!.campaignId;
    const p = s.finalPick(id);
    pick = p && [s.getCandidate(p.candidateId).contentHash, p.rule, p.detailJson];
  } finally {
    s.close();
  }
  return { ...recordSnapshot(db), pick };
}

/** Runs the space embedded and on the queue (one worker), and returns both records. */
async function bothWays(name: string, doc: Record<string, unknown>) {
  const space = writeSpace(tmp, `${name}.yaml`, doc);
  const embedded = path.join(tmp, `${name}-embedded.sqlite`);
  const r1 = runCli(tmp, 'search', space, '--db', embedded, '--device', 'cpu');
  expect(r1.status, r1.stderr).toBe(0);
  const worker = await startWorker(name);
  const queued = path.join(tmp, `${name}-queue.sqlite`);
  const r2 = runCli(tmp, 'search', space, '--db', queued, '--device', 'cpu', '--queue', queue, '--queue-name', name);
  expect(
    errorLines(r2.stderr).filter((l) => l.startsWith('evomerge:')),
    worker.log(),
  ).toEqual([]);
  expect(r2.status, r2.stderr).toBe(0);
  expect(worker.log()).toMatch(/^job \S+ answered in /m);
  expect(worker.log()).not.toMatch(/refused/);
  expect(await worker.stop()).toBe(0);
  return { want: snapshot(embedded), got: snapshot(queued), log: worker.log() };
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-queue-kinds-'));
  const port = await freePort();
  queue = `redis://127.0.0.1:${port}`;
  const redis = spawn(
    '/usr/bin/redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  children.push(redis);
  for (let i = 0; i < 100 && !(await canConnect(port)); i++) await sleep(50);
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

describe('every kind of campaign on the job queue, with the embedded run’s records', () => {
  it('a data-flow (DFS) campaign: layer paths scored by a worker', async () => {
    const { want, got, log } = await bothWays('dfs', {
      name: 'dfs',
      base_model: `${zoo}/base`,
      models: [`${zoo}/expert-math`, `${zoo}/expert-lang`],
      suite: path.join(repoRoot, 'evals/micro.yaml'),
      genome: { kind: 'data_flow', repeats: 2, scales: { min: 0.5, max: 1.5 } },
      objective: [{ task: 'composite', metric: 'answer_logprob', weight: 1 }],
      gates: [{ name: 'lang_floor', kind: 'floor', task: 'lang', value: -3.5 }],
      optimizer: 'cmaes',
      population_size: 4,
      budget: { candidates: 8 },
      seed: 3,
      workers: 2,
      eval_limit: 6,
    });
    expect(log).toMatch(/started: data-flow path, fit split/);
    expect(got.candidates.filter((c) => c.kind === 'search')).toHaveLength(8);
    expect(got.candidates.filter((c) => c.kind === 'search' && c.status !== 'failed').length).toBeGreaterThan(0);
    expect(got).toEqual(want);
  }, 300_000);

  it('successive halving with the val pick: jobs score rung items and the held-out val part', async () => {
    const { want, got } = await bothWays(
      'halving',
      tinySpace(
        {
          name: 'halving',
          selection: { val_fraction: 0.3, top_k: 2, lcb_z: 1, halving: { min_items: 4, eta: 2 } },
          budget: { items: 160 },
          eval_limit: 16,
          seed: 11,
        },
        { methods: ['task_arithmetic'], parameters: { weight: { min: 0, max: 1.2 } } },
      ),
    );
    // rungs: the same candidate scored on fewer items first, so some scores count fewer items than others
    const fitN = new Set(got.candidates.flatMap((c) => c.scores.filter((s) => s[2] === 'fit').map((s) => s[5])));
    expect(fitN.size).toBeGreaterThan(1);
    expect(got.candidates.some((c) => c.scores.some((s) => s[2] === 'val'))).toBe(true);
    expect(got.pick).toBeTruthy();
    expect(got).toEqual(want);
  }, 300_000);

  it('the val pick alone (no halving): top candidates rescored on val by a worker', async () => {
    const { want, got } = await bothWays(
      'valpick',
      tinySpace(
        {
          name: 'valpick',
          // one gate the search's candidates pass, so there are kept ones to pick among on val
          gates: [{ name: 'lang_floor', kind: 'floor', task: 'lang', value: -3.0 }],
          selection: { val_fraction: 0.3, top_k: 2, lcb_z: 1 },
          budget: { candidates: 4 },
          seed: 17,
        },
        { methods: ['task_arithmetic'], parameters: { weight: { min: 0, max: 1.2 } } },
      ),
    );
    expect(got.candidates.some((c) => c.scores.some((s) => s[2] === 'val'))).toBe(true);
    expect(got.pick).toBeTruthy();
    expect(got).toEqual(want);
  }, 300_000);
});
