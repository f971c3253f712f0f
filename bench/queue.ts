// The job queue's cost on one machine: the demo campaign's search throughput (candidates per minute) with the
// embedded pool (worker threads in the campaign's process) against `evomerge worker` processes on a queue in
// a Redis started here, and the queue's own overhead per job: enqueue → answer, minus the time the job waited
// for a free worker, minus its merge + score time, as a fraction of a candidate's merge + score time. Also
// the generation barrier's cost: CMA-ES needs a whole generation's results before it can ask for the next,
// so slots sit idle while the last candidates of a generation finish (idle = 1 − busy / (wall × slots)).
// `npm run bench -- queue [--space search-spaces/micro-evollm.yaml] [--budget 56] [--seed 1]
//   [--configs embedded,1x2,2x1] [--dir runs/bench-queue]`   (PxC = P worker processes of concurrency C)
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CpuKernel } from '../src/kernel/cpu/cpu-kernel.ts';
import { queueScorerFactory } from '../src/queue/coordinator.ts';
import { parseQueueUrl } from '../src/queue/job.ts';
import type { JobTiming } from '../src/queue/queue-scorer.ts';
import { runCampaign } from '../src/search/campaign/campaign.ts';
import { openStore } from '../src/store/db.ts';

const root = path.resolve(import.meta.dirname, '..');

interface Row {
  config: string;
  slots: number;
  candidates: number;
  perMinute: number;
  workMs: number;
  idle: number;
  overheadMs?: number;
  overheadFraction?: number;
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      space: { type: 'string', default: 'search-spaces/micro-evollm.yaml' },
      budget: { type: 'string', default: '56' },
      seed: { type: 'string', default: '1' },
      configs: { type: 'string', default: 'embedded,1x2,2x1' },
      dir: { type: 'string', default: 'runs/bench-queue' },
    },
  });
  const budget = Number(values.budget);
  const seed = Number(values.seed);
  const port = await freePort();
  const redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const connection = parseQueueUrl(`redis://127.0.0.1:${port}`);
  const rows: Row[] = [];
  try {
    await waitForPort(port);
    for (const config of values.configs.split(',')) {
      const db = path.join(values.dir, `${config}.sqlite`);
      rmSync(db, { force: true });
      rmSync(`${db}-wal`, { force: true });
      rmSync(`${db}-shm`, { force: true });
      const finishes: number[] = [];
      const onProgress = (p: { phase: string }) => {
        if (p.phase === 'search') finishes.push(performance.now());
      };
      if (config === 'embedded') {
        await runCampaign({
          spaceFile: values.space,
          db,
          budget,
          seed,
          kernel: new CpuKernel(),
          testTop: 0,
          onProgress,
        });
        rows.push(summarise(config, 2, db, finishes));
      } else {
        const m = /^(\d+)x(\d+)$/.exec(config);
        if (!m) throw new Error(`--configs: "${config}" is neither embedded nor PxC (processes x concurrency)`);
        const [processes, concurrency] = [Number(m[1]), Number(m[2])];
        // each configuration on its own queue: the same campaign's answers from the previous one are not reused
        const queueName = `bench-${config}-${Date.now()}`;
        const workers = await startWorkers(processes, concurrency, port, queueName);
        let timings: readonly JobTiming[] = [];
        try {
          await runCampaign({
            spaceFile: values.space,
            db,
            budget,
            seed,
            kernel: new CpuKernel(),
            testTop: 0,
            onProgress,
            scorer: queueScorerFactory({ connection, queueName, ep: 'cpu', onTimings: (t) => (timings = t) }),
            inFlight: Infinity,
          });
        } finally {
          for (const w of workers) w.kill('SIGTERM');
          await Promise.all(
            workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.once('exit', r)))),
          );
        }
        const row = summarise(config, processes * concurrency, db, finishes);
        // overhead of the search candidates' jobs (the sources' first jobs also build the workers' evaluators)
        // (all fit-split jobs of the sources and references are answered before the search starts)
        const search = timings.filter((t) => t.split === 'fit').slice(baselineCount(db));
        const overheads = search.map((t) => t.roundTripMs - t.waitMs - t.workMs);
        row.overheadMs = median(overheads);
        row.overheadFraction = median(search.map((t, i) => overheads[i]! / t.workMs));
        rows.push(row);
      }
      process.stderr.write(`${config}: ${rows[rows.length - 1]!.candidates} candidates (${db})\n`);
    }
  } finally {
    redis.kill('SIGTERM');
  }

  console.log(
    `\n${values.space}, ${budget} candidates, seed ${seed}; search phase only (sources and references excluded)\n`,
  );
  console.log(
    '| scorer | slots | candidates/min | merge + score per candidate | idle slots (generation barrier) | queue ' +
      'overhead per job (median) | overhead / candidate |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const label =
      r.config === 'embedded'
        ? 'embedded pool (2 threads)'
        : `${r.config.split('x')[0]} worker process(es) × ${r.config.split('x')[1]}`;
    const oh = r.overheadMs === undefined ? '—' : `${r.overheadMs.toFixed(1)} ms`;
    const ohf = r.overheadFraction === undefined ? '—' : `${(100 * r.overheadFraction).toFixed(2)} %`;
    console.log(
      `| ${label} | ${r.slots} | ${r.perMinute.toFixed(1)} | ${r.workMs.toFixed(0)} ms | ${(100 * r.idle).toFixed(1)} % | ${oh} | ${ohf} |`,
    );
  }
  const base = rows.find((r) => r.config === 'embedded');
  if (base)
    for (const r of rows)
      if (r !== base)
        console.log(
          `${r.config}: ${((100 * r.perMinute) / base.perMinute).toFixed(1)} % of the embedded pool's throughput`,
        );
}

/** Throughput over the search phase: candidates finished after the first, per minute between first and last. */
function summarise(config: string, slots: number, db: string, finishes: number[]): Row {
  const store = openStore(db, { readonly: true });
  try {
    const [c] = store.listCampaigns();
    const search = store.listCandidates(c!.campaignId, { kind: 'search' });
    const work = search.map((x) => (x.mergeMs ?? 0) + (x.evalMs ?? 0));
    const wallMs = finishes[finishes.length - 1]! - finishes[0]!;
    const perMinute = ((finishes.length - 1) / wallMs) * 60000;
    // busy slot time over the same span (the first candidate's own time lies before it)
    const busy = work.reduce((a, b) => a + b, 0) - work[0]!;
    return {
      config,
      slots,
      candidates: search.length,
      perMinute,
      workMs: median(work),
      idle: Math.max(0, 1 - busy / (wallMs * slots)),
    };
  } finally {
    store.close();
  }
}

function baselineCount(db: string): number {
  const store = openStore(db, { readonly: true });
  try {
    const [c] = store.listCampaigns();
    return store.listCandidates(c!.campaignId).filter((x) => x.kind !== 'search').length;
  } finally {
    store.close();
  }
}

async function startWorkers(
  processes: number,
  concurrency: number,
  port: number,
  queueName: string,
): Promise<ChildProcess[]> {
  const out: ChildProcess[] = [];
  const ready: Promise<void>[] = [];
  for (let i = 0; i < processes; i++) {
    const w = spawn(
      process.execPath,
      [
        path.join(root, 'bin/evomerge.js'),
        'worker',
        '--queue',
        `redis://127.0.0.1:${port}`,
        '--queue-name',
        queueName,
        '--device',
        'cpu',
        '--concurrency',
        String(concurrency),
        '--models-root',
        root,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    out.push(w);
    ready.push(
      new Promise((resolve, reject) => {
        let text = '';
        w.stderr!.on('data', (d: Buffer) => {
          text += d.toString();
          if (/^worker .* ready/m.test(text)) resolve();
        });
        w.once('exit', (code) => reject(new Error(`a worker exited (${code}) before it was ready: ${text.trim()}`)));
      }),
    );
  }
  await Promise.all(ready);
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2 : NaN;
}

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

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.end(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not start on port ${port}`);
}
