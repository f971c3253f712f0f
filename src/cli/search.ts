// `evomerge search <space.yaml>`: runs or resumes a campaign, shows progress on stderr (one rewritten line on a
// terminal, one line per generation otherwise) and ends by printing the report. Ctrl-C stops cleanly.
import { Option, type Command } from 'commander';
import { realPathOf } from '../checkpoint/paths.ts';
import { EvomergeError } from '../errors.ts';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import { selectKernel, type DeviceChoice } from '../kernel/pick-device.ts';
import { runCampaign, type CampaignProgress } from '../search/campaign/campaign.ts';
import { estimateCampaign, formatEstimate } from '../search/campaign/estimate.ts';
import { buildReport, formatReport } from '../report/report.ts';
import { changedSinceRecorded } from '../search/campaign/fingerprint.ts';
import { queueScorerFactory } from '../queue/coordinator.ts';
import { reportPageGuard } from './report.ts';
import { parseQueueUrl } from '../queue/job.ts';
import { checkQueueReachable } from '../queue/queue-scorer.ts';
import { deviceOption, epOption } from './options.ts';

interface SearchCliOptions {
  db?: string;
  budget?: string;
  workers?: string;
  seed?: string;
  device: DeviceChoice;
  ep: ExecutionProvider;
  queue?: string;
  queueName?: string;
  acceptChangedInputs?: boolean;
  estimate?: boolean;
}

export function registerSearchCommand(program: Command): void {
  program
    .command('search')
    .description(
      'run (or resume) a merge-recipe search campaign described by a search-space YAML; ends with its report',
    )
    .argument('<space>', 'search space YAML (e.g. search-spaces/micro-evollm.yaml)')
    .option(
      '--db <file>',
      'campaign database (default: runs/<space name>.sqlite); the same command on the same database resumes',
    )
    .option('--budget <n>', 'candidates to evaluate in all (overrides budget.candidates)')
    .option('--workers <n>', 'candidates merged and scored side by side (overrides workers)')
    .option('--seed <n>', 'campaign seed (overrides seed)')
    .addOption(deviceOption())
    .addOption(epOption())
    .option(
      '--queue <url>',
      'hand candidates to `evomerge worker` processes through this Redis (redis://host:port or rediss://); this ' +
        'process runs the optimiser and writes the database',
    )
    .option('--queue-name <name>', 'queue name (default evomerge-candidates; the workers must use the same)')
    .option(
      '--accept-changed-inputs',
      'resume although a checkpoint, the graph, an eval file or the tokenizer changed since the campaign recorded it ' +
        '(the change is recorded)',
    )
    .option(
      '--estimate',
      'measure one candidate (merge, weights to session, each task on fit) and print the time per candidate and ' +
        'per generation, candidates per hour and when the budget finishes; opens no database, records nothing',
    )
    .action(async (space: string, opts: SearchCliOptions) => {
      if (opts.estimate === true) return printEstimate(space, opts);
      if (opts.db !== undefined) await checkPageBesideDatabase(opts.db);
      const connection = opts.queue !== undefined ? parseQueueUrl(opts.queue) : undefined;
      if (connection) await checkQueueReachable(connection);
      const controller = new AbortController();
      let interrupts = 0;
      const onSigint = () => {
        interrupts++;
        if (interrupts > 1) process.exit(130);
        process.stderr.write(
          '\ninterrupted: finishing the candidates in flight (Ctrl-C again to quit now); run the same command to resume\n',
        );
        controller.abort();
      };
      process.on('SIGINT', onSigint);
      const progress = new ProgressLine();
      try {
        const result = await runCampaign({
          spaceFile: space,
          ...(opts.db ? { db: opts.db } : {}),
          ...(opts.budget !== undefined ? { budget: positiveInt(opts.budget, '--budget') } : {}),
          ...(opts.workers !== undefined ? { workers: positiveInt(opts.workers, '--workers') } : {}),
          ...(opts.seed !== undefined ? { seed: positiveInt(opts.seed, '--seed', 0) } : {}),
          kernel: () => selectKernel(opts.device),
          // with a queue, a whole generation is handed out at once (--workers caps it); the workers decide
          // how many run side by side
          ...(connection
            ? {
                scorer: queueScorerFactory({
                  connection,
                  ep: opts.ep,
                  log: (line) => process.stderr.write(`${line}\n`),
                  ...(opts.queueName ? { queueName: opts.queueName } : {}),
                }),
                inFlight: opts.workers !== undefined ? positiveInt(opts.workers, '--workers') : Infinity,
              }
            : {}),
          ep: opts.ep,
          signal: controller.signal,
          acceptChangedInputs: opts.acceptChangedInputs === true,
          onProgress: (p) => progress.update(p),
          onGenerationEnd: (db) => refreshHtmlReport(db),
        });
        progress.done();
        await refreshHtmlReport(result.db);
        if (result.stop === 'aborted') {
          process.stderr.write(
            `stopped after ${result.evaluated} candidates; resume with the same command (database ${result.db})\n`,
          );
          process.exitCode = 130;
          return;
        }
        process.stderr.write(`search finished (${result.stop}): ${result.evaluated} candidates in ${result.db}\n`);
        process.stdout.write(formatReport(buildReport(result.db, changedSinceRecorded)));
      } finally {
        progress.done();
        process.off('SIGINT', onSigint);
      }
    });
}

/** `--estimate`: one candidate measured in this process, the campaign projected from it; no database. */
async function printEstimate(space: string, opts: SearchCliOptions): Promise<void> {
  if (opts.queue !== undefined)
    throw new EvomergeError(
      'cli.bad_option',
      'measures one candidate in this process; run it without --queue (on a worker host, to time that host)',
      { field: '--estimate' },
      2,
    );
  const kernel = await selectKernel(opts.device);
  try {
    const estimate = await estimateCampaign(
      space,
      {
        ...(opts.budget !== undefined ? { budget: positiveInt(opts.budget, '--budget') } : {}),
        ...(opts.workers !== undefined ? { workers: positiveInt(opts.workers, '--workers') } : {}),
        ...(opts.seed !== undefined ? { seed: positiveInt(opts.seed, '--seed', 0) } : {}),
      },
      kernel,
      opts.ep,
    );
    process.stdout.write(formatEstimate(estimate));
  } finally {
    await kernel.close();
  }
}

/** The report page beside the database (its path with .html) must not be the database itself: refused before
 *  anything is opened, since every generation would overwrite the campaign with its page. */
async function checkPageBesideDatabase(db: string): Promise<void> {
  const { htmlPathFor } = await import('../report/html/page.ts');
  if (realPathOf(htmlPathFor(db)) === realPathOf(db))
    throw new EvomergeError(
      'search.db_is_page',
      'the HTML report page beside the database is the database path with .html, which is this database; name ' +
        'it with another extension (e.g. .sqlite)',
      { file: db, field: '--db' },
    );
}

/** Rewrites runs/NAME.html next to the database; a report that cannot be written costs a warning, never the
 *  campaign. The page obeys report --html's rules without --force: never the database or a recorded input, and
 *  an existing file that is not an evomerge report page is left alone (with a warning). */
async function refreshHtmlReport(db: string): Promise<void> {
  // loaded on first use: vega takes a while to load, and the other commands never need it
  const { htmlPathFor, writeHtmlReport } = await import('../report/html/page.ts');
  try {
    await writeHtmlReport(db, htmlPathFor(db), await reportPageGuard(false));
  } catch (err) {
    process.stderr.write(
      `evomerge: warning: ${htmlPathFor(db)}: the HTML report was not written: ${(err as Error).message}\n`,
    );
  }
}

function positiveInt(text: string, field: string, min = 1): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new EvomergeError('cli.bad_option', `"${text}" is not an integer ≥ ${min}`, { field }, 2);
  }
  return n;
}

/** Progress on stderr: a rewritten line on a terminal; otherwise one line per phase (the database path first)
 *  and one at the end of each generation. */
class ProgressLine {
  private readonly tty = process.stderr.isTTY === true;
  private lastGeneration = -1;
  private shown = false;

  update(p: CampaignProgress): void {
    const best = p.bestKept === undefined ? 'none kept yet' : `best kept ${p.bestKept.toFixed(4)}`;
    const rate = p.rate === undefined ? '' : `, ${p.rate.toFixed(1)}/min`;
    const eta = p.etaSeconds === undefined ? '' : `, ETA ${formatDuration(p.etaSeconds)}`;
    const budget = Number.isFinite(p.budget) ? `/${p.budget}` : '';
    const line =
      p.phase === 'search'
        ? `gen ${p.generation}: ${p.done}${budget} candidates, ${best}${rate}${eta}`
        : `${p.message ?? p.phase}`;
    if (this.tty) {
      const cols = process.stderr.columns ?? 100;
      process.stderr.write(`\r${line.slice(0, cols - 1)}\x1b[K`);
      this.shown = true;
      if (p.phase !== 'search') {
        process.stderr.write('\n');
        this.shown = false;
      }
      return;
    }
    if (p.phase !== 'search') {
      process.stderr.write(`${line}\n`);
      return;
    }
    // one line per generation, when its last candidate is recorded (so the line says how it ended)
    if (p.generationDone && p.generation !== this.lastGeneration) {
      this.lastGeneration = p.generation;
      process.stderr.write(`${line}\n`);
    }
  }

  done(): void {
    if (this.shown) process.stderr.write('\n');
    this.shown = false;
  }
}

function formatDuration(s: number): string {
  if (s < 90) return `${Math.round(s)}s`;
  if (s < 5400) return `${Math.round(s / 60)}min`;
  return `${(s / 3600).toFixed(1)}h`;
}
