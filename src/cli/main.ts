// The command line: the only place that prints an error and sets the exit code. Each command lives in its
// own file, parses its options and calls one domain function.
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
    .description('Find model-merge recipes automatically: mergekit-compatible merges, ONNX Runtime evaluation, CMA-ES campaigns with release gates.')
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

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
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
}
