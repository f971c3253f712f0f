// The body of each section of the report page, in the order a reader asks: did it climb, what did the gates
// do, what won, does it hold. Each builder either draws its plots or says in a sentence why there is none;
// page.ts puts the sections under their titles.
import type { HtmlReportData } from './data.ts';
import { empty, esc, f3, figure, table } from './markup.ts';
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
} from './specs.ts';

/**
 * The optimiser that learns a distribution over the method gene and saves it (θ) with its state: CMA-ES with
 * categorical genes (search/optimizers/cma.ts). Any other optimiser draws the method without one, so its
 * campaign has no method probabilities at all. The report may not import search, so the optimiser's stored
 * name is restated here; test/unit/report/html-page.test.ts checks it against the optimisers themselves.
 */
export const METHOD_DISTRIBUTION_OPTIMIZER = 'cmaes';

/** What the sections read: the page's data and the sentences several of them share. */
export interface PageContext {
  readonly d: HtmlReportData;
  /** candidates recorded (the search's, not the sources or references) */
  readonly n: number;
  /** every recorded candidate failed, so none has an objective */
  readonly allFailed: boolean;
  /** the failures by code, e.g. `eval.nan × 3 (e.g. “…”)`, joined by '; ' */
  readonly failures: string;
  readonly noCandidate: string;
  readonly allFailedSentence: string;
  readonly noneKept: string;
}

export function pageContext(d: HtmlReportData): PageContext {
  const r = d.report;
  const n = r.counts.evaluated;
  const failures = d.failures.map((x) => `${x.code} × ${x.count} (e.g. “${x.message}”)`).join('; ');
  return {
    d,
    n,
    allFailed: n > 0 && r.counts.failed === n,
    failures,
    noCandidate: 'The campaign was stopped before its first candidate was recorded, so there is nothing to plot yet.',
    allFailedSentence: `Every one of the ${n} candidate(s) failed, so none has an objective: ${failures}.`,
    noneKept: `None of the ${n} candidate(s) cleared every gate, so there is no best kept candidate.`,
  };
}

/** 1. The fit objective of each candidate over time, against the sources and references. */
export async function objectiveBody(c: PageContext): Promise<string> {
  const { d, n } = c;
  const r = d.report;
  const scored = d.points.some((p) => p.objective !== null);
  if (n === 0) return empty('objective', c.noCandidate);
  if (c.allFailed) return empty('objective', c.allFailedSentence);
  if (!scored)
    return empty(
      'objective',
      `None of the ${n} candidate(s) has an objective yet (${r.counts.failed} failed; the rest are still being scored).`,
    );
  const thinned =
    d.points.length < d.totalPoints
      ? ` ${d.points.length} of ${d.totalPoints} candidates drawn: in each of equal bins of candidate numbers, the ` +
        `highest and lowest of each status (so the best is always drawn).`
      : '';
  const failedNote = r.counts.failed
    ? ` Failed candidates (${c.failures}) are drawn as crosses under the lowest score.`
    : '';
  const keptNote = r.counts.kept ? ' The dark line is the best kept objective so far.' : ` ${c.noneKept}`;
  return figure(
    'objective',
    objectiveSpec(d),
    `Fit objective of each candidate in ask order; dashed lines: the sources (blue) and the reference merges ` +
      `(purple).${keptNote}${failedNote}${thinned}`,
  );
}

/** 2. What the gates did: pass rates per generation, rejections per gate, and the totals. */
export async function gatesBody(c: PageContext): Promise<string> {
  const { d, n } = c;
  const r = d.report;
  if (r.gates.length === 0 && n > 0 && c.allFailed)
    return empty('gates', `No gate verdicts: every candidate failed before it could be judged (${c.failures}).`);
  if (n === 0) return empty('gates', c.noCandidate);
  if (d.gateRates.length === 0) return empty('gates', 'This campaign has no gates: every scored candidate is kept.');
  const worst = [...d.gateRejections].sort((a, b) => b.rejected - a.rejected)[0];
  const worstSentence =
    worst && worst.rejected > 0
      ? `${worst.gate} rejected the most candidates: ${worst.rejected} of ` +
        `${r.gates.find((g) => g.gate === worst.gate)?.judged ?? '?'} judged, ${worst.sole} of them by this gate ` +
        `alone.`
      : 'No gate rejected any candidate.';
  return (
    (await figure(
      'gate-rates',
      gateRatesSpec(d),
      'Share of each generation’s scored candidates that passed each gate (fit split).',
    )) +
    (await figure('gate-rejections', gateRejectionsSpec(d), worstSentence)) +
    table(
      ['gate', 'kind', 'task/metric', 'passed', 'judged'],
      r.gates.map((g) => [g.gate, g.kind, `${g.task}/${g.metric}`, String(g.passed), String(g.judged)]),
    )
  );
}

/** The title of section 3: a data-flow campaign has a winning path, a weights campaign a best genome. */
export function genomeTitle(d: HtmlReportData): string {
  return d.winningPath ? 'Winning path' : 'Best genome';
}

/** 3. What won (the winning path, or the best kept genome per parameter) and how the weights moved. */
export async function genomeBody(c: PageContext): Promise<string> {
  const { d, n } = c;
  let genome: string;
  if (n === 0) genome = empty('genome', c.noCandidate);
  else if (d.winningPath) genome = await winningPath(d, d.winningPath);
  else if (!d.bestGenome)
    genome = empty(
      'genome',
      c.allFailed ? c.allFailedSentence : `${c.noneKept} The best kept genome appears here once one does.`,
    );
  else genome = await bestGenomeHeatmaps(d, d.bestGenome);
  if (n > 0 && d.genomeMoves.length) {
    genome += await figure(
      'genome-moves',
      genomeMovesSpec(d),
      `${d.movesParam} of each generation’s best candidate (kept if any, else the best scored), per layer group ` +
        `(colour) and source model (dash).`,
    );
  }
  return genome;
}

async function winningPath(d: HtmlReportData, w: NonNullable<HtmlReportData['winningPath']>): Promise<string> {
  return (
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
    )
  );
}

/** One heatmap per merge parameter of the best kept genome. */
async function bestGenomeHeatmaps(d: HtmlReportData, best: NonNullable<HtmlReportData['bestGenome']>): Promise<string> {
  const params = [...new Set(best.cells.map((c) => c.param))];
  const parts: string[] = [];
  for (const p of params)
    parts.push(
      await figure(
        `genome-${p}`,
        genomeHeatmapSpec(d, p),
        `${p} of the best kept candidate #${best.ordinal} (${best.method}, fit objective ` +
          `${f3(best.objective)}) per source model and layer group.`,
      ),
    );
  return parts.join('');
}

/** 4. The method gene: the optimiser's learned probabilities, or why there are none. */
export async function methodGeneBody(c: PageContext): Promise<string> {
  const { d } = c;
  const optimizer = d.report.campaign.optimizer;
  if (d.methodProbabilities.length)
    return figure(
      'method-probabilities',
      methodProbabilitiesSpec(d),
      'CMA-ES’s categorical distribution over the merge method, as saved after each generation was told.',
    );
  if (optimizer !== METHOD_DISTRIBUTION_OPTIMIZER)
    return empty(
      'method-probabilities',
      `The ${optimizer} optimizer draws the method without a learned distribution, so there are no method ` +
        `probabilities to show.`,
    );
  return empty(
    'method-probabilities',
    'No generation has been completed yet, so no optimiser state with method probabilities is recorded.',
  );
}

/** 5. Does it hold: fit against test, then the report's verdict sentence. */
export async function fitVsTestBody(c: PageContext): Promise<string> {
  const { d } = c;
  const plot =
    d.fitVsTest.length === 0
      ? empty(
          'fit-vs-test',
          'Nothing has been scored on the test split yet: the sources, references and best kept candidates are scored ' +
            'on it when the budget is spent.',
        )
      : await figure(
          'fit-vs-test',
          fitVsTestSpec(d),
          `${d.fitVsTestMeasure} on the fit and test splits, ±1 standard error; points under the dashed line lost on ` +
            `test what they won on fit.`,
        );
  const note = d.report.pickNote ? `<p class="pick-note">${esc(d.report.pickNote)}</p>` : '';
  return plot + note + `<p class="verdict">${esc(d.report.conclusion.sentence)}</p>`;
}

/** 6. Every measure: a plot per measure with any finite score, then the table of all scores. */
export async function perTaskBody(c: PageContext): Promise<string> {
  const { d } = c;
  const r = d.report;
  if (r.rows.length === 0) return empty('tasks', 'No source, reference or candidate has been scored yet.');
  let tasks = '';
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
  return tasks;
}

/** 7. The campaign's facts (config, versions, times) as a definition list. */
export function campaignFactsBody(c: PageContext): string {
  return `<dl>${c.d.facts.map((x) => `<dt>${esc(x.label)}</dt><dd>${esc(x.value)}</dd>`).join('')}</dl>`;
}
