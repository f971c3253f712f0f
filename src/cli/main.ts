// The command line: the only place that prints an error and sets the exit code. Each command lives in its
// own file, parses its options and calls one domain function.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EvomergeError } from '../errors.ts';
import { registerMergeCommand } from './merge.ts';
import { registerInspectCommand } from './inspect.ts';
import { registerEvalCommand } from './eval.ts';
import { registerSearchCommand } from './search.ts';
import { registerReportCommand } from './report.ts';
import { registerExportCommand } from './export.ts';
import { registerWorkerCommand } from './worker.ts';

export function buildProgram(): Command {
  const program = new Command('evomerge')
    .description(
      'Find model-merge recipes automatically: mergekit-compatible merges, ONNX Runtime evaluation, CMA-ES campaigns with release gates.',
    )
    .version(packageVersion(), '-V, --version', 'print the version of evomerge')
    .option('--verbose', 'print stack traces of errors')
    .exitOverride();
  registerMergeCommand(program);
  registerInspectCommand(program);
  registerEvalCommand(program);
  registerSearchCommand(program);
  registerReportCommand(program);
  registerExportCommand(program);
  registerWorkerCommand(program);
  return program;
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
    .version;
}

/** After an error is printed, the process ends even if something (a thread, a socket) would keep it alive. */
const EXIT_GRACE_MS = 2000;

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    report(err, program);
    const code = typeof process.exitCode === 'number' ? process.exitCode : 1;
    if (code !== 0) setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
  }
}

/** Prints an error as one line and sets the exit status: 2 for usage errors, the error's own, else 1. */
function report(err: unknown, program: Command): void {
  if (err instanceof CommanderError) {
    // --help and --version exit 0; usage errors were already printed by commander.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
    return;
  }
  if (err instanceof EvomergeError) {
    process.stderr.write(`evomerge: ${err.message}\n`);
    if (program.opts().verbose) process.stderr.write(`${err.stack}\n`);
    process.exitCode = err.exitCode;
    return;
  }
  process.stderr.write(`evomerge: ${(err as Error).message ?? String(err)}\n`);
  if (program.opts().verbose) process.stderr.write(`${(err as Error).stack}\n`);
  process.exitCode = 1;
}
