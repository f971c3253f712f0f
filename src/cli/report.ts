// `evomerge report <db> [--json] [--html [out.html]]`: prints a campaign database's report (read-only), or
// writes it as a self-contained HTML page. No report logic here.
import type { Command } from 'commander';
import { checkOutputFile } from '../checkpoint/paths.ts';
import type { PageOutputGuard } from '../report/html/page.ts';
import { buildReport, formatReport } from '../report/report.ts';
import { changedSinceRecorded } from '../search/campaign/fingerprint.ts';

export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description(
      'sources vs un-optimised merges vs the best kept candidate, per task on fit and test with SE; gate pass rates; ' +
        'best genome per generation',
    )
    .argument('<db>', 'campaign database written by evomerge search')
    .option('--json', 'print the report as JSON')
    .option(
      '--html [file]',
      'write the report as one self-contained HTML page with plots (default: the database path with .html); never ' +
        'onto the database or an input the campaign recorded; an existing file that is not an evomerge report ' +
        'page needs --force',
    )
    .option('--force', 'replace an existing file at the --html path that is not an evomerge report page')
    .action(async (db: string, opts: { json?: boolean; html?: string | true; force?: boolean }) => {
      if (opts.html !== undefined) {
        // loaded on demand: vega takes a while to load, and the text report never needs it
        const { htmlPathFor, writeHtmlReport } = await import('../report/html/page.ts');
        const guard = await reportPageGuard(opts.force === true);
        const out = opts.html === true ? htmlPathFor(db) : opts.html;
        const bytes = await writeHtmlReport(db, out, guard);
        process.stderr.write(`wrote ${out} (${(bytes / 1e6).toFixed(2)} MB)\n`);
        return;
      }
      const report = buildReport(db, changedSinceRecorded);
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    });
}

/**
 * The output-path rules for a report page (docs/never-destroys.md): never onto or into the database or an input
 * the campaign recorded, even with `force`; an existing file only when it is an evomerge report page, or with
 * `force`; a folder never. `search` uses it without force for the page beside its database.
 */
export async function reportPageGuard(force: boolean): Promise<PageOutputGuard> {
  const { isReportPage } = await import('../report/html/page.ts');
  return (outFile, campaignFiles) =>
    checkOutputFile(outFile, {
      inputs: campaignFiles,
      force,
      ours: isReportPage,
      field: '--html',
      what: 'HTML report page',
    });
}
