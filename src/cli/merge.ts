// Scaffold: replaced by the issue that implements `evomerge merge`.
import type { Command } from 'commander';
import { EvomergeError } from '../errors.ts';

export function registerMergeCommand(program: Command): void {
  program
    .command('merge')
    .description('(not yet implemented)')
    .action(() => {
      throw new EvomergeError('cli.not_implemented', 'evomerge merge is not implemented yet');
    });
}
