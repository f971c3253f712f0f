// Scaffold: replaced by the issue that implements `evomerge export`.
import type { Command } from 'commander';
import { EvomergeError } from '../errors.ts';

export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description('(not yet implemented)')
    .action(() => {
      throw new EvomergeError('cli.not_implemented', 'evomerge export is not implemented yet');
    });
}
