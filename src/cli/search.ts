// Scaffold: replaced by the issue that implements `evomerge search`.
import type { Command } from 'commander';
import { EvomergeError } from '../errors.ts';

export function registerSearchCommand(program: Command): void {
  program
    .command('search')
    .description('(not yet implemented)')
    .action(() => {
      throw new EvomergeError('cli.not_implemented', 'evomerge search is not implemented yet');
    });
}
