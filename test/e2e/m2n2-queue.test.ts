// M2N2 across processes: a campaign with `optimizer: m2n2` scored by two `evomerge worker` processes through a
// real Redis (`search --queue`) records what the single-process run of the same seed records — candidates,
// scores, the per-item fit values the archive competes on (they travel back with each job's scores) and every
// optimiser state with its archive.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { cli, recordSnapshot, repoRoot, runCli, tinySpace, writeSpace } from './search-fixtures.ts';

const REDIS = '/usr/bin/redis-server';
let tmp: string;
let redis: ChildProcess | undefined;
const workers: ChildProcess[] = [];

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

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.end(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (up) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not start on port ${port}`);
}

function fitItems(db: string): unknown[] {
  const s = openStore(db, { readonly: true });
  try {
    const c = s.listCampaigns()[0]!;
    return s
      .listCandidates(c.campaignId, { kind: 'search' })
      .map((x) => [x.contentHash, s.listItemValues(x.candidateId, 'fit').map((r) => r.values)])
      .sort((p, q) => String(p[0]).localeCompare(String(q[0])));
  } finally {
    s.close();
  }
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-m2n2-queue-'));
});
afterAll(() => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  redis?.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

describe('optimizer: m2n2 on a job queue', () => {
  it('two worker processes record what one process records', async () => {
    const space = writeSpace(
      tmp,
      'm2n2-queue.yaml',
      tinySpace({ name: 'm2n2-queue', optimizer: 'm2n2', budget: { candidates: 12 }, eval_limit: 8, seed: 5 }),
    );
    const port = await freePort();
    redis = await startRedis(port);
    const queue = `redis://127.0.0.1:${port}`;
    for (let i = 0; i < 2; i++)
      workers.push(
        spawn(process.execPath, [cli, 'worker', '--queue', queue, '--device', 'cpu', '--models-root', repoRoot], {
          cwd: tmp,
          stdio: 'ignore',
        }),
      );
    const spreadDb = path.join(tmp, 'spread.sqlite');
    const spread = runCli(tmp, 'search', space, '--db', spreadDb, '--device', 'cpu', '--queue', queue);
    expect(spread.status, spread.stderr).toBe(0);
    const localDb = path.join(tmp, 'local.sqlite');
    const local = runCli(tmp, 'search', space, '--db', localDb, '--device', 'cpu');
    expect(local.status, local.stderr).toBe(0);

    const a = recordSnapshot(localDb);
    const b = recordSnapshot(spreadDb);
    expect(b.candidates).toEqual(a.candidates);
    expect(b.states).toEqual(a.states);
    const items = fitItems(localDb);
    expect(items.length).toBe(12);
    expect(fitItems(spreadDb)).toEqual(items);
  }, 300_000);
});
