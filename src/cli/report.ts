// `evomerge report <db> [--json]`: prints a campaign database's report (read-only). No report logic here.
import type { Command } from 'commander';
import { buildReport, formatReport } from '../report/report.ts';

export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description('sources vs un-optimised merges vs the best kept candidate, per task on fit and test with SE; gate pass rates; best genome per generation')
    .argument('<db>', 'campaign database written by evomerge search')
    .option('--json', 'print the report as JSON')
    .action((db: string, opts: { json?: boolean }) => {
      const report = buildReport(db);
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    });
}
