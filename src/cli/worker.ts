// `evomerge worker --queue redis://…`: a scoring worker for campaigns run with `evomerge search … --queue`.
// Runs until SIGINT/SIGTERM, then finishes the jobs in flight (a second signal quits at once; its jobs are
// handed to other workers by the queue's stalled-job check).
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { EvomergeError } from '../errors.ts';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import { selectKernel, type DeviceChoice } from '../kernel/pick-device.ts';
import { parseQueueUrl } from '../queue/job.ts';
import { checkQueueReachable } from '../queue/queue-scorer.ts';
import { startQueueWorker } from '../queue/worker.ts';
import { deviceOption, epOption } from './options.ts';

interface WorkerCliOptions {
  queue: string;
  queueName?: string;
  device: DeviceChoice;
  ep: ExecutionProvider;
  concurrency: string;
  modelsRoot: string[];
  stallSeconds: string;
}

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description(
      'merge and score candidates for campaigns started with `evomerge search … --queue` (one per GPU or host)',
    )
    .requiredOption('--queue <url>', 'the job queue: redis://[user:password@]host:port[/db] or rediss:// (TLS)')
    .option('--queue-name <name>', 'queue name, to share one Redis between installations (default evomerge-candidates)')
    .addOption(deviceOption())
    .addOption(epOption())
    .option('--concurrency <n>', 'candidates merged and scored at once (one thread each on the CPU)', '1')
    .option(
      '--models-root <dir>',
      'a folder jobs may read under (models, eval suites, graphs); repeatable (default: the current folder)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--stall-seconds <s>',
      'a job whose worker has not renewed its lock for this long goes to another worker',
      '30',
    )
    .action(async (opts: WorkerCliOptions) => {
      const connection = parseQueueUrl(opts.queue);
      const concurrency = positiveInt(opts.concurrency, '--concurrency');
      const stallSeconds = Number(opts.stallSeconds);
      if (!(stallSeconds >= 1 && stallSeconds <= 3600))
        throw new EvomergeError(
          'cli.bad_option',
          `"${opts.stallSeconds}" is not a number of seconds in [1, 3600]`,
          { field: '--stall-seconds' },
          2,
        );
      const roots = (opts.modelsRoot.length ? opts.modelsRoot : ['.']).map((r) => path.resolve(r));
      for (const r of roots)
        if (!existsSync(r))
          throw new EvomergeError('cli.bad_option', `no such folder: ${r}`, { field: '--models-root' }, 2);
      await checkQueueReachable(connection);
      const log = (line: string) => process.stderr.write(`${line}\n`);
      const kernel = await selectKernel(opts.device, { log });
      const name = `${os.hostname()}:${process.pid}`;
      const worker = await startQueueWorker({
        connection,
        ...(opts.queueName ? { queueName: opts.queueName } : {}),
        kernel,
        ep: opts.ep,
        concurrency,
        modelsRoots: roots,
        stallMs: stallSeconds * 1000,
        name,
        log,
      });
      // the handlers go in before the ready line: whoever reads it may signal at once
      const stopped = new Promise<void>((resolve) => {
        const stop = (signal: NodeJS.Signals) => {
          process.once(signal, () => process.exit(130));
          log(`${signal}: finishing the jobs in flight (again to quit now)`);
          resolve();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      log(
        `worker ${name} ready: merges on ${worker.device}, scores on ${opts.ep}, ${concurrency} at once, reads under ` +
          `${roots.join(', ')}; queue ${connection.display}`,
      );
      await stopped;
      await worker.close();
      log(`worker ${name} stopped`);
    });
}

function positiveInt(text: string, field: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1)
    throw new EvomergeError('cli.bad_option', `"${text}" is not an integer ≥ 1`, { field }, 2);
  return n;
}
