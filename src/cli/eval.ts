// Scaffold: replaced by the issue that implements `evomerge eval`.
import type { Command } from 'commander';
import { EvomergeError } from '../errors.ts';

export function registerEvalCommand(program: Command): void {
  program
    .command('eval')
    .description('(not yet implemented)')
    .action(() => {
      throw new EvomergeError('cli.not_implemented', 'evomerge eval is not implemented yet');
    });
}
