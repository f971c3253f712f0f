// `evomerge export <db> [--candidate ID|best] -o <dir> [--force]`: parses the options and calls the export;
// no export logic here.
import type { Command } from 'commander';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import { selectKernel } from '../kernel/pick-device.ts';
import { exportCandidate } from '../release/export.ts';
import { deviceOption, epOption } from './options.ts';

interface ExportCliOptions {
  candidate: string;
  out: string;
  force?: boolean;
  device: 'auto' | 'cpu' | 'gpu';
  ep: ExecutionProvider;
  acceptChangedInputs?: boolean;
}

export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description(
      'write a campaign candidate as a checkpoint with its mergekit recipe and scores, after re-checking every gate on the test split',
    )
    .argument('<db>', 'campaign database written by evomerge search')
    .option(
      '--candidate <id>',
      'best (the best kept candidate) or a candidate number as the report shows it (#N)',
      'best',
    )
    .requiredOption('-o, --out <dir>', 'output model folder')
    .option(
      '--force',
      'export even if a gate fails on the test split, and replace an existing non-empty output folder (never an input)',
    )
    .addOption(deviceOption())
    .addOption(epOption('ONNX Runtime execution provider for test scoring'))
    .option(
      '--accept-changed-inputs',
      'export although an input changed since the campaign recorded it (the change is recorded)',
    )
    .action(async (db: string, opts: ExportCliOptions) => {
      const r = await exportCandidate({
        db,
        candidate: opts.candidate,
        outDir: opts.out,
        force: opts.force === true,
        acceptChangedInputs: opts.acceptChangedInputs === true,
        kernel: () => selectKernel(opts.device),
        ep: opts.ep,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      const gates = r.verdicts.map((v) => `${v.gate} ${v.pass ? 'pass' : 'FAIL'}`).join(', ');
      process.stdout.write(
        `exported ${r.what} to ${r.outDir} (checkpoint, ${r.files.join(', ')}); test-split gates: ` +
          `${gates || 'none'}${r.forced ? ' (forced)' : ''}\n`,
      );
    });
}
