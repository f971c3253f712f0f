// The HTML report page: one self-contained file (inline CSS, inline SVG, no script, no network) that any
// browser opens offline. Plots are Vega specs rendered to SVG on the server; where a plot would be empty the
// page says why in a sentence instead. Written atomically (temp file in the same folder, then rename), so a
// browser refreshing it during a campaign never reads half a file. This file reads the data, puts the
// sections (sections.ts) under their titles inside the header and footer, and writes the page.
import { closeSync, openSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { EvomergeError } from '../../errors.ts';
import { openStore, type Store } from '../../store/db.ts';
import { lockFileOf } from '../../store/lock.ts';
import { htmlReportData, type HtmlReportData } from './data.ts';
import { esc, f3, section } from './markup.ts';
import { paretoBody } from './pareto.ts';
import {
  campaignFactsBody,
  fitVsTestBody,
  gatesBody,
  genomeBody,
  genomeTitle,
  methodGeneBody,
  objectiveBody,
  pageContext,
  perTaskBody,
  type PageContext,
} from './sections.ts';

/** The report page of the campaign in a database (opened read-only). */
export async function renderHtmlReport(dbFile: string): Promise<string> {
  return page(readReportData(dbFile));
}

/** What a page may be written over: given the page path and the campaign's files (the database and what it
 *  recorded), throws when the page may not go there. The CLI passes the output-path rules (checkOutputFile). */
export type PageOutputGuard = (outFile: string, campaignFiles: readonly { path: string; role: string }[]) => void;

function readReportData(
  dbFile: string,
  out?: { readonly file: string; readonly guard: PageOutputGuard },
): HtmlReportData {
  const store = openStore(dbFile, { readonly: true });
  try {
    if (out) out.guard(out.file, campaignFiles(store));
    return htmlReportData(store, dbFile);
  } finally {
    store.close();
  }
}

/**
 * Writes the report page to `outFile` through a temp file and a rename. Returns the bytes written. `guard` is
 * asked first, with the campaign's files (the database with its -wal, -shm, -journal and .lock, and every input
 * the campaign recorded: checkpoints, graph, suite, eval files, tokenizer), before anything is rendered.
 */
export async function writeHtmlReport(dbFile: string, outFile: string, guard: PageOutputGuard): Promise<number> {
  const html = await page(readReportData(dbFile, { file: outFile, guard }));
  const tmp = path.join(path.dirname(outFile), `.${path.basename(outFile)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, html);
    renameSync(tmp, outFile);
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was made
    }
    throw new EvomergeError('report.write_failed', `cannot write the HTML report: ${(e as Error).message}`, {
      file: outFile,
    });
  }
  return Buffer.byteLength(html);
}

/** The files a report page must never replace: the database (and the files beside it) and the recorded inputs. */
function campaignFiles(store: Store): { path: string; role: string }[] {
  const db = store.path;
  return [
    { path: db, role: 'campaign database' },
    ...['-wal', '-shm', '-journal'].map((s) => ({ path: db + s, role: 'campaign database' })),
    { path: lockFileOf(db), role: "campaign database's lock" },
    ...store
      .listCampaigns()
      .flatMap((c) => store.listInputFingerprints(c.campaignId))
      .map((f) => ({ path: f.path, role: f.role })),
  ];
}

/** Whether a file begins as every page evomerge writes does: `<!doctype html>` … `<title>evomerge campaign`. */
export function isReportPage(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const head = Buffer.alloc(512);
    const n = readSync(fd, head, 0, head.length, 0);
    const text = head.subarray(0, n).toString('utf8');
    return text.startsWith('<!doctype html>\n<html') && text.includes('<title>evomerge campaign ');
  } finally {
    closeSync(fd);
  }
}

/** `runs/NAME.sqlite` → `runs/NAME.html`. */
export function htmlPathFor(dbFile: string): string {
  const ext = path.extname(dbFile);
  return (ext ? dbFile.slice(0, -ext.length) : dbFile) + '.html';
}

/** The whole page. Sections in the order a reader asks: did it climb, what did the gates do, what won, does it hold. */
export async function page(d: HtmlReportData): Promise<string> {
  const c = pageContext(d);
  const sections = [
    section('Objective per candidate', await objectiveBody(c)),
    section('Gates', await gatesBody(c)),
    section(genomeTitle(d), await genomeBody(c)),
    section('Method gene', await methodGeneBody(c)),
    ...(d.paretoFront ? [section('Pareto front', await paretoBody(d.paretoFront))] : []),
    section('Fit vs test', await fitVsTestBody(c)),
    section('Per task', await perTaskBody(c)),
    section('Campaign', campaignFactsBody(c)),
  ];
  return htmlDocument(d, summary(c), sections);
}

/** The header's one-paragraph summary: how many candidates and how they ended, and the best against its rivals. */
function summary(c: PageContext): string {
  const r = c.d.report;
  if (c.n === 0) return c.noCandidate;
  return (
    `${c.n} candidate(s) over ${r.counts.generations} generation(s): ${r.counts.kept} kept, ${r.counts.rejected} ` +
    `rejected, ${r.counts.failed} failed.` +
    (r.fitObjective.best !== undefined
      ? ` Best kept fit objective ${f3(r.fitObjective.best)}` +
        `${
          r.fitObjective.bestRival
            ? ` against ${f3(r.fitObjective.bestRival.value)}` +
              ` for the best source or reference (${r.fitObjective.bestRival.label})`
            : ''
        }` +
        `.`
      : '')
  );
}

/** The page around the sections: head with the inline CSS, the header (name, summary, objective), the footer. */
function htmlDocument(d: HtmlReportData, summaryText: string, sections: readonly string[]): string {
  const r = d.report;
  return (
    `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>evomerge campaign ${esc(r.campaign.name)}</title>
<style>${CSS}</style></head>
<body><header><h1>Campaign “${esc(r.campaign.name)}”</h1>
<p class="summary">${esc(summaryText)}</p>
<p class="objective">Objective (fit split, maximised): ` +
    `${esc(r.objective.map((t) => `${t.weight} × ${t.task}/${t.metric}`).join(' + '))}</p></header>
${sections.join('\n')}
<footer>Written by evomerge from ${esc(r.db)} at ${esc(new Date().toISOString())}; it reads only the campaign ` +
    `database. Hover over a mark for its values.</footer>
</body></html>
`
  );
}

const CSS =
  `body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 ` +
  `auto;max-width:1100px;padding:1em 1.5em;color:#222}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;border-bottom:1px solid ` +
  `#ddd;padding-bottom:.2em;margin-top:1.6em}
figure.plot{display:inline-block;margin:.5em 1em .8em 0;vertical-align:top}figure.plot svg{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555;max-width:700px}.empty{color:#8a4b00;background:#fff7e6;border-left:3px solid ` +
  `#f0a020;padding:.5em .8em}
.verdict{font-weight:600}table{border-collapse:collapse;font-size:.82em;margin:.6em 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:right;white-space:nowrap}th:first-child,td:first-child{text-a` +
  `lign:left}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em ` +
  `1em;font-size:.9em}dt{font-weight:600}dd{margin:0;word-break:break-all}
footer{margin-top:2em;font-size:.8em;color:#777}`;
