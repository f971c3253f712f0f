// Scaffold: replaced by the issue that implements `evomerge report`.
import type { Command } from 'commander';
import { EvomergeError } from '../errors.ts';

export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description('(not yet implemented)')
    .action(() => {
      throw new EvomergeError('cli.not_implemented', 'evomerge report is not implemented yet');
    });
}
