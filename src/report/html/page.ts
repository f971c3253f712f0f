// The HTML report page: one self-contained file (inline CSS, inline SVG, no script, no network) that any
// browser opens offline. Plots are Vega specs rendered to SVG on the server; where a plot would be empty the
// page says why in a sentence instead. Written atomically (temp file in the same folder, then rename), so a
// browser refreshing it during a campaign never reads half a file.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as vega from 'vega';
import { EvomergeError } from '../../errors.ts';
import { openStore } from '../../store/db.ts';
import { htmlReportData, type HtmlReportData } from './data.ts';
import {
  fitVsTestSpec,
  gateRatesSpec,
  gateRejectionsSpec,
  genomeHeatmapSpec,
  genomeMovesSpec,
  measureSpec,
  methodProbabilitiesSpec,
  objectiveSpec,
  pathSpec,
  type VegaSpec,
} from './specs.ts';

/** The report page of the campaign in a database (opened read-only). */
export async function renderHtmlReport(dbFile: string): Promise<string> {
  const store = openStore(dbFile, { readonly: true });
  let data: HtmlReportData;
  try {
    data = htmlReportData(store, dbFile);
  } finally {
    store.close();
  }
  return page(data);
}

/** Writes the report page to `outFile` through a temp file and a rename. Returns the bytes written. */
export async function writeHtmlReport(dbFile: string, outFile: string): Promise<number> {
  const html = await renderHtmlReport(dbFile);
  const tmp = path.join(path.dirname(outFile), `.${path.basename(outFile)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, html);
    renameSync(tmp, outFile);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new EvomergeError('report.write_failed', `cannot write the HTML report: ${(e as Error).message}`, {
      file: outFile,
    });
  }
  return Buffer.byteLength(html);
}

/** `runs/NAME.sqlite` → `runs/NAME.html`. */
export function htmlPathFor(dbFile: string): string {
  const ext = path.extname(dbFile);
  return (ext ? dbFile.slice(0, -ext.length) : dbFile) + '.html';
}

/** Vega's SVG with every data mark's aria-label (its `description`) also as a <title>: hover text without JavaScript. */
async function svgOf(spec: VegaSpec): Promise<string> {
  const view = new vega.View(vega.parse(spec as vega.Spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return (
      svg
        // sub-pixel digits past the first add bytes, not sharpness (thousands of marks in a long campaign)
        .replace(
          /translate\((-?[\d.]+),(-?[\d.]+)\)/g,
          (_, x: string, y: string) =>
            `translate(${Math.round(Number(x) * 10) / 10},${Math.round(Number(y) * 10) / 10})`,
        )
        .replace(
          /<(path|rect|line|circle|text)((?:\s+[\w:-]+="[^"]*")*?\s+aria-label="([^"]*)"(?:\s+[\w:-]+="[^"]*")*)\s*\/>/g,
          '<$1$2><title>$3</title></$1>',
        )
    );
  } finally {
    view.finalize();
  }
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const f3 = (v: number | null | undefined) =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(3);

async function figure(name: string, spec: VegaSpec, caption: string): Promise<string> {
  return `<figure class="plot" data-plot="${esc(name)}">${await svgOf(spec)}<figcaption>${esc(caption)}</figcaption></figure>`;
}

function empty(name: string, sentence: string): string {
  return `<p class="empty" data-plot="${esc(name)}">${esc(sentence)}</p>`;
}

/** The whole page. Sections in the order a reader asks: did it climb, what did the gates do, what won, does it hold. */
export async function page(d: HtmlReportData): Promise<string> {
  const r = d.report;
  const n = r.counts.evaluated;
  const scored = d.points.some((p) => p.objective !== null);
  const allFailed = n > 0 && r.counts.failed === n;
  const failures = d.failures.map((x) => `${x.code} × ${x.count} (e.g. “${x.message}”)`).join('; ');
  const noCandidate =
    'The campaign was stopped before its first candidate was recorded, so there is nothing to plot yet.';
  const allFailedSentence = `Every one of the ${n} candidate(s) failed, so none has an objective: ${failures}.`;
  const noneKept = `None of the ${n} candidate(s) cleared every gate, so there is no best kept candidate.`;
  const sections: string[] = [];

  // 1. objective over time
  let objective: string;
  if (n === 0) objective = empty('objective', noCandidate);
  else if (allFailed) objective = empty('objective', allFailedSentence);
  else if (!scored)
    objective = empty(
      'objective',
      `None of the ${n} candidate(s) has an objective yet (${r.counts.failed} failed; the rest are still being scored).`,
    );
  else {
    const thinned =
      d.points.length < d.totalPoints
        ? ` ${d.points.length} of ${d.totalPoints} candidates drawn: in each of equal bins of candidate numbers, the ` +
          `highest and lowest of each status (so the best is always drawn).`
        : '';
    const failedNote = r.counts.failed
      ? ` Failed candidates (${failures}) are drawn as crosses under the lowest score.`
      : '';
    const keptNote = r.counts.kept ? ' The dark line is the best kept objective so far.' : ` ${noneKept}`;
    objective = await figure(
      'objective',
      objectiveSpec(d),
      `Fit objective of each candidate in ask order; dashed lines: the sources (blue) and the reference merges ` +
        `(purple).${keptNote}${failedNote}${thinned}`,
    );
  }
  sections.push(section('Objective per candidate', objective));

  // 2. gates
  let gates: string;
  if (r.gates.length === 0 && n > 0 && allFailed)
    gates = empty('gates', `No gate verdicts: every candidate failed before it could be judged (${failures}).`);
  else if (n === 0) gates = empty('gates', noCandidate);
  else if (d.gateRates.length === 0)
    gates = empty('gates', 'This campaign has no gates: every scored candidate is kept.');
  else {
    const worst = [...d.gateRejections].sort((a, b) => b.rejected - a.rejected)[0];
    const worstSentence =
      worst && worst.rejected > 0
        ? `${worst.gate} rejected the most candidates: ${worst.rejected} of ` +
          `${r.gates.find((g) => g.gate === worst.gate)?.judged ?? '?'} judged, ${worst.sole} of them by this gate ` +
          `alone.`
        : 'No gate rejected any candidate.';
    gates =
      (await figure(
        'gate-rates',
        gateRatesSpec(d),
        'Share of each generation’s scored candidates that passed each gate (fit split).',
      )) +
      (await figure('gate-rejections', gateRejectionsSpec(d), worstSentence)) +
      table(
        ['gate', 'kind', 'task/metric', 'passed', 'judged'],
        r.gates.map((g) => [g.gate, g.kind, `${g.task}/${g.metric}`, String(g.passed), String(g.judged)]),
      );
  }
  sections.push(section('Gates', gates));

  // 3. best kept genome and how the weights moved
  let genome: string;
  if (n === 0) genome = empty('genome', noCandidate);
  else if (d.winningPath) {
    const w = d.winningPath;
    genome =
      (await figure(
        'winning-path',
        pathSpec(d),
        `The path of ${w.picked ? 'the pick' : 'the best scored candidate (none was kept)'} #${w.ordinal} (fit ` +
          `objective ${f3(w.objective ?? NaN)}), slot by slot: which model, which layer (the number), and the scale ` +
          `on the hidden state entering it (colour; white = 1).`,
      )) +
      table(
        ['step', 'model', 'layer', 'scale'],
        w.steps.map((s) => [String(s.step), s.model, String(s.layer), s.scale.toFixed(4)]),
      );
  } else if (!d.bestGenome)
    genome = empty(
      'genome',
      allFailed ? allFailedSentence : `${noneKept} The best kept genome appears here once one does.`,
    );
  else {
    const params = [...new Set(d.bestGenome.cells.map((c) => c.param))];
    const parts: string[] = [];
    for (const p of params)
      parts.push(
        await figure(
          `genome-${p}`,
          genomeHeatmapSpec(d, p),
          `${p} of the best kept candidate #${d.bestGenome.ordinal} (${d.bestGenome.method}, fit objective ` +
            `${f3(d.bestGenome.objective)}) per source model and layer group.`,
        ),
      );
    genome = parts.join('');
  }
  if (n > 0 && d.genomeMoves.length) {
    genome += await figure(
      'genome-moves',
      genomeMovesSpec(d),
      `${d.movesParam} of each generation’s best candidate (kept if any, else the best scored), per layer group ` +
        `(colour) and source model (dash).`,
    );
  }
  sections.push(section(d.winningPath ? 'Winning path' : 'Best genome', genome));

  // 4. method gene
  let methods: string;
  if (d.methodProbabilities.length)
    methods = await figure(
      'method-probabilities',
      methodProbabilitiesSpec(d),
      'CMA-ES’s categorical distribution over the merge method, as saved after each generation was told.',
    );
  else if (r.campaign.optimizer !== 'cmaes')
    methods = empty(
      'method-probabilities',
      `The ${r.campaign.optimizer} optimizer draws the method without a learned distribution, so there are no method ` +
        `probabilities to show.`,
    );
  else
    methods = empty(
      'method-probabilities',
      'No generation has been completed yet, so no optimiser state with method probabilities is recorded.',
    );
  sections.push(section('Method gene', methods));

  // 5. fit vs test
  let fitTest: string;
  if (d.fitVsTest.length === 0)
    fitTest = empty(
      'fit-vs-test',
      'Nothing has been scored on the test split yet: the sources, references and best kept candidates are scored on ' +
        'it when the budget is spent.',
    );
  else
    fitTest = await figure(
      'fit-vs-test',
      fitVsTestSpec(d),
      `${d.fitVsTestMeasure} on the fit and test splits, ±1 standard error; points under the dashed line lost on test ` +
        `what they won on fit.`,
    );
  fitTest += `<p class="verdict">${esc(r.conclusion.sentence)}</p>`;
  sections.push(section('Fit vs test', fitTest));

  // 6. per task
  let tasks = '';
  if (r.rows.length === 0) tasks = empty('tasks', 'No source, reference or candidate has been scored yet.');
  else {
    for (const m of r.measures) {
      if (
        r.rows.some(
          (row) =>
            Number.isFinite(row.scores[m]?.fit?.value ?? NaN) || Number.isFinite(row.scores[m]?.test?.value ?? NaN),
        )
      )
        tasks += await figure(`task-${m}`, measureSpec(d, m), `${m}: fit and test, ±1 standard error.`);
    }
    const cell = (s?: { value: number; se: number | null }) => (s ? `${f3(s.value)} ± ${f3(s.se)}` : '—');
    tasks += table(
      ['model', 'fit objective', ...r.measures.flatMap((m) => [`${m} fit`, `${m} test`])],
      r.rows.map((row) => [
        row.label,
        f3(row.objective),
        ...r.measures.flatMap((m) => [cell(row.scores[m]?.fit), cell(row.scores[m]?.test)]),
      ]),
    );
  }
  sections.push(section('Per task', tasks));

  // 7. facts
  sections.push(
    section('Campaign', `<dl>${d.facts.map((x) => `<dt>${esc(x.label)}</dt><dd>${esc(x.value)}</dd>`).join('')}</dl>`),
  );

  const summary =
    n === 0
      ? noCandidate
      : `${n} candidate(s) over ${r.counts.generations} generation(s): ${r.counts.kept} kept, ${r.counts.rejected} ` +
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
          : '');
  return (
    `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>evomerge campaign ${esc(r.campaign.name)}</title>
<style>${CSS}</style></head>
<body><header><h1>Campaign “${esc(r.campaign.name)}”</h1>
<p class="summary">${esc(summary)}</p>
<p class="objective">Objective (fit split, maximised): ` +
    `${esc(r.objective.map((t) => `${t.weight} × ${t.task}/${t.metric}`).join(' + '))}</p></header>
${sections.join('\n')}
<footer>Written by evomerge from ${esc(r.db)} at ${esc(new Date().toISOString())}; it reads only the campaign ` +
    `database. Hover over a mark for its values.</footer>
</body></html>
`
  );
}

function section(title: string, body: string): string {
  return `<section><h2>${esc(title)}</h2>${body}</section>`;
}

function table(header: string[], rows: string[][]): string {
  return (
    `<table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}` +
    `</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}` +
    `</tbody></table>`
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
