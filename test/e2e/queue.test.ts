// A campaign spread over worker processes through a real Redis (issue "campaigns across machines"): a
// coordinator and three `evomerge worker` processes on the micro zoo; one worker is SIGKILLed mid-candidate,
// the coordinator is SIGKILLed once and resumed, Redis is restarted (empty: no persistence) mid-run. The
// record must equal a single-process run of the same seed: same candidates, scores, verdicts, optimiser
// states and report. Also: a worker refuses a job naming files outside its models root, and the
// coordinator stops with that line.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Queue, Worker as BullWorker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { parseQueueUrl } from '../../src/queue/job.ts';
import { checkQueueReachable } from '../../src/queue/queue-scorer.ts';
import {
  cli,
  errorLines,
  recordSnapshot,
  repoRoot,
  runCli,
  searchCount,
  tinySpace,
  writeSpace,
} from './search-fixtures.ts';
import { privateZoo } from './guard-fixtures.ts';

const REDIS = '/usr/bin/redis-server';
const BUDGET = 16;
let tmp: string;
let space: string;
let port: number;
let queue: string;
let redis: ChildProcess | undefined;
const children: ChildProcess[] = [];

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

/** redis-server on 127.0.0.1:port, no persistence; resolves once it accepts connections. */
async function startRedis(on = port, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn(
    REDIS,
    ['--port', String(on), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 100; i++) {
    if (await canConnect(on)) return child;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not start on port ${on}`);
}

function canConnect(on: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(on, '127.0.0.1');
    s.once('connect', () => (s.end(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A CLI process whose stderr lines are kept (and passed to `onLine` as they come). */
function start(
  args: string[],
  onLine?: (line: string) => void,
): { child: ChildProcess; lines: string[]; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [cli, ...args], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines: string[] = [];
  let rest = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    const parts = (rest + chunk.toString()).split('\n');
    rest = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      onLine?.(l);
    }
  });
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, lines, exited };
}

function startWorker(name: string, onLine?: (line: string) => void, extra: string[] = ['--models-root', repoRoot]) {
  const w = start(['worker', '--queue', queue, '--device', 'cpu', '--stall-seconds', '2', ...extra], onLine);
  return { name, ...w };
}

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-queue-'));
  space = writeSpace(
    tmp,
    'spread.yaml',
    tinySpace({ name: 'spread', budget: { candidates: BUDGET }, eval_limit: 8, seed: 13 }),
  );
  port = await freePort();
  queue = `redis://127.0.0.1:${port}`;
  redis = await startRedis();
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  redis?.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

describe('a campaign on a job queue', () => {
  it('survives a worker and the coordinator killed and Redis restarted, with the single-process result', async () => {
    const straightDb = path.join(tmp, 'straight.sqlite');
    const straight = runCli(tmp, 'search', space, '--db', straightDb, '--device', 'cpu');
    expect(straight.status).toBe(0);

    // worker A dies (SIGKILL) as soon as it starts its first search candidate
    let killedJob: string | undefined;
    const a = startWorker('A', (line) => {
      const m = /^job (\S+) started: \w+ recipe, fit split/.exec(line);
      if (m && !killedJob) {
        killedJob = m[1];
        a.child.kill('SIGKILL');
      }
    });
    const b = startWorker('B');
    const c = startWorker('C');
    const workers = [a, b, c];
    await until(
      'three workers ready',
      () => workers.every((w) => w.lines.some((l) => l.startsWith('worker '))),
      60_000,
    );

    const db = path.join(tmp, 'spread.sqlite');
    const args = ['search', space, '--db', db, '--device', 'cpu', '--queue', queue];
    const first = start(args);
    // the coordinator dies once a third of the budget is recorded (after worker A)
    await until(
      'a third of the budget recorded',
      () => searchCount(db) >= BUDGET / 3 || first.child.exitCode !== null,
      120_000,
    );
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(killedJob).toBeDefined();
    expect((await a.exited).signal).toBe('SIGKILL');
    const atKill = searchCount(db);
    expect(atKill).toBeLessThan(BUDGET);

    // resumed with the same command; Redis dies and comes back empty once two thirds are recorded
    const second = start(args);
    await until(
      'two thirds of the budget recorded',
      () => searchCount(db) >= (2 * BUDGET) / 3 || second.child.exitCode !== null,
      120_000,
    );
    const beforeRestart = searchCount(db);
    redis!.kill('SIGKILL');
    await new Promise((r) => redis!.once('exit', r));
    redis = await startRedis();
    const done = await second.exited;
    expect(errorLines(second.lines.join('\n')).filter((l) => l.startsWith('evomerge:'))).toEqual([]);
    expect(done.code).toBe(0);
    expect(beforeRestart).toBeLessThan(BUDGET);

    // the killed worker's job was handed to another worker (stalled-job detection)
    expect([...b.lines, ...c.lines].some((l) => l.startsWith(`job ${killedJob} started`))).toBe(true);
    // both surviving workers took jobs
    expect(b.lines.some((l) => / answered/.test(l)) && c.lines.some((l) => / answered/.test(l))).toBe(true);

    const want = recordSnapshot(straightDb);
    const got = recordSnapshot(db);
    expect(got.candidates.filter((x) => x.kind === 'search')).toHaveLength(BUDGET);
    expect(new Set(got.candidates.map((x) => x.hash)).size).toBe(got.candidates.length);
    expect(got).toEqual(want);
    expect(JSON.parse(runCli(tmp, 'report', db, '--json').stdout).rows).toEqual(
      JSON.parse(runCli(tmp, 'report', straightDb, '--json').stdout).rows,
    );

    for (const w of [b, c]) w.child.kill('SIGTERM');
    for (const w of [b, c]) expect((await w.exited).code).toBe(0);
  }, 300_000);

  it("stops with the worker's refusal when a job names files outside its models root, recording no candidate", async () => {
    const outside = startWorker('D', undefined, ['--queue-name', 'refusals', '--models-root', tmp]);
    await until('worker ready', () => outside.lines.some((l) => l.startsWith('worker ')), 60_000);
    const db = path.join(tmp, 'refused.sqlite');
    const r = start(['search', space, '--db', db, '--device', 'cpu', '--queue', queue, '--queue-name', 'refusals']);
    const { code } = await r.exited;
    expect(code).toBe(1);
    const errors = errorLines(r.lines.join('\n')).filter((l) => l.startsWith('evomerge:'));
    expect(errors).toHaveLength(1);
    // the first file the job names outside the root: the eval suite (the models live beside it)
    expect(errors[0]).toMatch(
      new RegExp(
        "^evomerge: \\/.*\\/evals\\/micro\\.yaml: outside this worker's models roots \\(.*\\); " +
          'start it with --models-root \\(job refused by worker .*\\)$',
      ),
    );
    expect(existsSync(db)).toBe(true);
    expect(searchCount(db)).toBe(0);
    outside.child.kill('SIGTERM');
    expect((await outside.exited).code).toBe(0);
  }, 120_000);

  it('scores a campaign started after an eval file changed with the new items on the same long-running worker', async () => {
    const dir = path.join(tmp, 'changed');
    mkdirSync(dir);
    const zoo = privateZoo(dir);
    const changedSpace = writeSpace(
      dir,
      'changed.yaml',
      tinySpace({
        name: 'changed',
        base_model: zoo.models.base,
        models: [zoo.models['expert-math'], zoo.models['expert-lang']],
        suite: zoo.suite,
        budget: { candidates: 4 },
        eval_limit: 4,
        seed: 5,
      }),
    );
    const w = startWorker('E', undefined, ['--queue-name', 'changed', '--models-root', dir]);
    await until('worker ready', () => w.lines.some((l) => l.startsWith('worker ')), 60_000);
    const onQueue = async (db: string) => {
      const r = start([
        'search',
        changedSpace,
        '--db',
        db,
        '--device',
        'cpu',
        '--queue',
        queue,
        '--queue-name',
        'changed',
      ]);
      const { code } = await r.exited;
      expect(code, r.lines.join('\n')).toBe(0);
    };
    await onQueue(path.join(dir, 'before.sqlite'));
    // the objective's eval file changes: its first items (eval_limit 4) are others now
    const file = path.join(zoo.evals, 'micro', 'composite.fit.jsonl');
    writeFileSync(file, readFileSync(file, 'utf8').trim().split('\n').reverse().join('\n') + '\n');
    await onQueue(path.join(dir, 'after.sqlite'));
    const embedded = runCli(dir, 'search', changedSpace, '--db', path.join(dir, 'embedded.sqlite'), '--device', 'cpu');
    expect(embedded.status, embedded.stderr).toBe(0);
    const want = recordSnapshot(path.join(dir, 'embedded.sqlite'));
    expect(recordSnapshot(path.join(dir, 'before.sqlite'))).not.toEqual(want); // the change matters
    expect(recordSnapshot(path.join(dir, 'after.sqlite'))).toEqual(want);
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
  }, 240_000);

  it("records a worker's forged or malformed answers as failed candidates naming it, never hanging or crashing", async () => {
    const forgedSpace = writeSpace(
      tmp,
      'forged.yaml',
      tinySpace({ name: 'forged', budget: { candidates: 5 }, eval_limit: 4, seed: 21 }),
    );
    const args = (db: string, budget: string) => [
      'search',
      forgedSpace,
      '--db',
      db,
      '--device',
      'cpu',
      '--queue',
      queue,
      '--queue-name',
      'forged',
      '--budget',
      budget,
      '--workers',
      '1', // one job at a time: no job is asked that the campaign will not wait for
    ];
    // an honest worker answers the sources, the reference and the first candidate (kept in Redis)
    const honest = startWorker('F', undefined, ['--queue-name', 'forged', '--models-root', repoRoot]);
    await until('worker ready', () => honest.lines.some((l) => l.startsWith('worker ')), 60_000);
    const first = start(args(path.join(tmp, 'forged-1.sqlite'), '1'));
    expect((await first.exited).code, first.lines.join('\n')).toBe(0);
    honest.child.kill('SIGTERM');
    expect((await honest.exited).code).toBe(0);
    const leftovers = new Queue('forged', { connection: { host: '127.0.0.1', port } });
    await leftovers.drain();
    await leftovers.close();

    // then a party that can write to the queue answers every new job, each time differently wrong
    const forgeries: ((job: { measures: { task: string; metric: string }[]; split: string }) => unknown)[] = [
      () => null,
      () => ({ ok: true }),
      () => ({ ok: true, worker: 'forger', startedAt: Date.now(), result: { value: 'high', mergeMs: 1, evalMs: 1 } }),
      (job) => ({
        ok: true,
        worker: 'forger',
        startedAt: Date.now(),
        result: {
          mergeMs: 1,
          evalMs: 1,
          value: job.measures.map((m) => ({
            ...m,
            split: job.split,
            value: m.metric === 'exact_match' ? 99 : -0.1,
            se: 0,
            n: 4,
          })),
        },
      }),
    ];
    let answered = 0;
    const forger = new BullWorker(
      'forged',
      async (job) => {
        return forgeries[answered++ % forgeries.length]!(job.data as never);
      },
      { connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null }, name: 'forger' },
    );
    try {
      const db = path.join(tmp, 'forged-2.sqlite');
      const second = start(args(db, '5'));
      const timer = setTimeout(() => second.child.kill('SIGKILL'), 90_000); // a hang fails the test
      const { code } = await second.exited;
      clearTimeout(timer);
      expect(code, second.lines.join('\n')).toBe(0);
      expect(errorLines(second.lines.join('\n')).filter((l) => l.startsWith('evomerge:'))).toEqual([]);
      expect(answered).toBe(4);
      const store = openStore(db, { readonly: true });
      try {
        const [c] = store.listCampaigns();
        const search = store.listCandidates(c!.campaignId, { kind: 'search' });
        expect(search).toHaveLength(5);
        const failed = search.filter((x) => x.status === 'failed');
        expect(failed.map((x) => x.errorCode)).toEqual(Array(4).fill('queue.bad_answer'));
        const messages = failed.map((x) => x.errorMessage).sort();
        for (const m of messages) expect(m).toMatch(/^worker forger answered job \S+ with a bad answer: /);
        expect(messages).toHaveLength(4);
        expect(messages).toEqual(
          expect.arrayContaining([
            expect.stringMatching(/the answer is null, not an object/),
            expect.stringMatching(/"worker" is not a string/),
            expect.stringMatching(/"result\.value" is not a list of scores/),
            expect.stringMatching(/score \d+ \(\w+\/exact_match\): value 99 is outside \[0, 1\]/),
          ]),
        );
        // nothing forged reached the scores
        for (const x of search) for (const sc of store.listScores(x.candidateId)) expect(sc.value).not.toBe(99);
      } finally {
        store.close();
      }
    } finally {
      await forger.close();
    }
  }, 240_000);

  it("refuses, naming both, a job asking for another execution provider than the worker's --ep", async () => {
    const w = startWorker('G', undefined, ['--queue-name', 'providers', '--ep', 'cpu', '--models-root', repoRoot]);
    await until('worker ready', () => w.lines.some((l) => l.startsWith('worker ')), 60_000);
    const db = path.join(tmp, 'providers.sqlite');
    const args = ['search', space, '--db', db, '--device', 'cpu', '--ep', 'webgpu', '--queue', queue];
    const r = start([...args, '--queue-name', 'providers']);
    expect((await r.exited).code).toBe(1);
    expect(errorLines(r.lines.join('\n')).filter((l) => l.startsWith('evomerge:'))).toEqual([
      expect.stringMatching(
        /^evomerge: --ep: the campaign scores on webgpu but this worker was started with --ep cpu; .*\(job refused by worker .*\)$/,
      ),
    ]);
    expect(searchCount(db)).toBe(0);
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
  }, 120_000);

  it('reaches a password-protected Redis with the password in the URL, and names the failure without it', async () => {
    const guarded = await freePort();
    const server = await startRedis(guarded, ['--requirepass', 's3cr:t@x']);
    children.push(server);
    try {
      await checkQueueReachable(parseQueueUrl(`redis://:${encodeURIComponent('s3cr:t@x')}@127.0.0.1:${guarded}`));
      const wrong = await checkQueueReachable(parseQueueUrl(`redis://:nope@127.0.0.1:${guarded}`)).catch(
        (e: Error) => e,
      );
      expect(wrong).toBeInstanceOf(Error);
      expect((wrong as Error).message).toMatch(
        /^--queue: cannot reach the queue's Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/?: .*(WRONGPASS|invalid)/,
      );
      const none = await checkQueueReachable(parseQueueUrl(`redis://127.0.0.1:${guarded}`)).catch((e: Error) => e);
      expect((none as Error).message).toMatch(/NOAUTH/);
    } finally {
      server.kill('SIGKILL');
    }
  });

  // openssl makes the test's certificate (Debian's ca-certificates depends on it)
  it.skipIf(!existsSync('/usr/bin/openssl'))(
    'connects a worker over TLS (rediss://) to a Redis whose certificate it trusts, and names the failure when it does not',
    async () => {
      const certs = path.join(tmp, 'tls');
      mkdirSync(certs);
      const made = spawnSync(
        '/usr/bin/openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          `${certs}/key.pem`,
          '-out',
          `${certs}/cert.pem`,
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=DNS:localhost,IP:127.0.0.1',
        ],
        { stdio: 'ignore' },
      );
      expect(made.status).toBe(0);
      const tlsPort = await freePort();
      const server = spawn(
        REDIS,
        [
          '--port',
          '0',
          '--tls-port',
          String(tlsPort),
          '--bind',
          '127.0.0.1',
          '--tls-cert-file',
          `${certs}/cert.pem`,
          '--tls-key-file',
          `${certs}/key.pem`,
          '--tls-ca-cert-file',
          `${certs}/cert.pem`,
          '--tls-auth-clients',
          'no',
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { stdio: 'ignore' },
      );
      children.push(server);
      try {
        for (let i = 0; i < 100 && !(await canConnect(tlsPort)); i++) await sleep(50);
        const url = `rediss://localhost:${tlsPort}`;
        const untrusted = spawnSync(
          process.execPath,
          [cli, 'worker', '--queue', url, '--device', 'cpu', '--models-root', tmp],
          { cwd: tmp, encoding: 'utf8' },
        );
        expect(untrusted.status).toBe(1);
        expect(errorLines(untrusted.stderr)).toEqual([
          expect.stringMatching(
            /^evomerge: --queue: cannot reach the queue's Redis at rediss:\/\/localhost:\d+\/?: .*certificate/,
          ),
        ]);
        const trusted = spawn(
          process.execPath,
          [cli, 'worker', '--queue', url, '--device', 'cpu', '--models-root', tmp],
          {
            cwd: tmp,
            stdio: ['ignore', 'ignore', 'pipe'],
            env: { ...process.env, NODE_EXTRA_CA_CERTS: `${certs}/cert.pem` },
          },
        );
        children.push(trusted);
        let text = '';
        trusted.stderr!.on('data', (d: Buffer) => (text += d.toString()));
        await until(
          'the TLS worker ready',
          () => /^worker .* ready: .*queue rediss:\/\/localhost/m.test(text) || trusted.exitCode !== null,
          60_000,
        );
        expect(text).toMatch(/^worker .* ready: .*queue rediss:\/\/localhost:\d+/m);
        // a worker signalled right after its ready line stops cleanly (its handlers are in before the line)
        trusted.kill('SIGTERM');
        expect(await new Promise((r) => trusted.once('exit', (code, signal) => r([code, signal])))).toEqual([0, null]);
      } finally {
        server.kill('SIGKILL');
      }
    },
    90_000,
  );
});
