// Scaffold: replaced by the issue that implements `evomerge inspect`.
import type { Command } from 'commander';
import { EvomergeError } from '../errors.ts';

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description('(not yet implemented)')
    .action(() => {
      throw new EvomergeError('cli.not_implemented', 'evomerge inspect is not implemented yet');
    });
}
