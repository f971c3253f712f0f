// The report's plots as Vega specifications (data inlined): one function per plot, each a pure function of
// the extracted data, assembled from the building blocks in vega-spec.ts. Every data mark carries a
// `description`, which Vega writes as the mark's aria-label; page.ts turns it into an SVG <title>, the
// browser's hover text (no JavaScript needed).
import type { HtmlReportData } from './data.ts';
import {
  atBandCentre,
  atXY,
  axis,
  bandCell,
  bandScale,
  centredText,
  dataDomain,
  formatted,
  frame,
  generationAxis,
  hoverText,
  linearScale,
  linesWithDots,
  mark,
  ordinalScale,
  plusMinus,
  scaled,
  signal,
  value,
  type VegaSpec,
} from './vega-spec.ts';

export type { VegaSpec } from './vega-spec.ts';

const WIDTH = 640;
const HEIGHT = 260;
const STATUS_COLORS = { kept: '#2e8b57', rejected: '#9aa5b1', failed: '#d62728', unfinished: '#c9a227' };
// the dashed yardsticks of the objective plot: references purple, sources blue (the caption says so)
const YARDSTICK_COLOR = "datum.kind === 'reference' ? '#7b3294' : '#1f5fa8'";
const REJECTED_WITH_OTHERS_COLOR = '#f4a582';
const REJECTED_ALONE_COLOR = '#b2182b';

/** Objective per candidate (kept, rejected, failed at the floor), running best kept, sources and references. */
export function objectiveSpec(d: HtmlReportData): VegaSpec {
  const finite = [
    ...d.points.filter((p) => p.objective !== null).map((p) => p.objective!),
    ...d.yardsticks.map((y) => y.objective),
  ];
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  // failed candidates have no objective (−∞ for the optimiser): drawn on a strip just under the lowest score
  const floor = lo - 0.06 * (hi - lo || 1);
  const points = d.points.map((p) => ({ ...p, y: p.objective ?? floor }));
  const maxOrdinal = Math.max(1, ...d.points.map((p) => p.ordinal));
  return {
    ...frame(WIDTH, HEIGHT),
    data: [
      { name: 'points', values: points },
      { name: 'best', values: d.bestCurve },
      { name: 'yard', values: d.yardsticks },
    ],
    scales: [
      linearScale('x', [0, maxOrdinal], 'width', { nice: true }),
      linearScale('y', [floor, hi], 'height', { nice: true, zero: false }),
      ordinalScale('status', Object.keys(STATUS_COLORS), Object.values(STATUS_COLORS)),
    ],
    axes: [
      axis('bottom', 'x', { title: 'candidate # (ask order)', format: 'd' }),
      axis('left', 'y', { title: 'fit objective' }),
    ],
    legends: [{ fill: 'status', title: 'candidate', orient: 'right', symbolType: 'circle' }],
    marks: [
      mark('rule', 'yard', {
        x: value(0),
        x2: signal('width'),
        y: scaled('y', 'objective'),
        stroke: signal(YARDSTICK_COLOR),
        strokeDash: value([5, 4]),
        strokeWidth: value(1.2),
        ...hoverText(`datum.kind + ' ' + datum.label + ': ' + ${formatted('objective')}`),
      }),
      mark('text', 'yard', {
        x: signal('width'),
        dx: value(-2),
        y: scaled('y', 'objective'),
        dy: value(-3),
        align: value('right'),
        fontSize: value(10),
        fill: signal(YARDSTICK_COLOR),
        text: signal(`datum.label + ' ' + ${formatted('objective', 3)}`),
      }),
      mark('symbol', 'points', {
        ...atXY('ordinal', 'y'),
        shape: signal("datum.status === 'failed' ? 'cross' : 'circle'"),
        size: signal("datum.status === 'kept' ? 30 : 16"),
        fill: scaled('status', 'status'),
        fillOpacity: value(0.75),
        ...hoverText(
          `'#' + datum.ordinal + ' (generation ' + datum.generation + '): ' + datum.status + ` +
            `(datum.objective === null ? '' : ', objective ' + ${formatted('objective')})`,
        ),
      }),
      mark('line', 'best', {
        ...atXY('ordinal', 'objective'),
        interpolate: value('step-after'),
        stroke: value('#14532d'),
        strokeWidth: value(2),
        description: value('best kept objective so far'),
      }),
    ],
  };
}

/** Pass rate of each gate per generation. */
export function gateRatesSpec(d: HtmlReportData): VegaSpec {
  return {
    ...frame(WIDTH, 220),
    data: [{ name: 'rates', values: d.gateRates }],
    scales: [
      linearScale('x', dataDomain('rates', 'generation'), 'width', { nice: false, zero: false }),
      linearScale('y', [0, 1], 'height'),
      ordinalScale('gate', dataDomain('rates', 'gate'), 'category'),
    ],
    axes: [generationAxis('generation'), axis('left', 'y', { title: 'pass rate', format: '%' })],
    legends: [{ stroke: 'gate', title: 'gate', orient: 'right' }],
    marks: linesWithDots({
      data: 'rates',
      groupby: 'gate',
      x: 'generation',
      y: 'rate',
      color: { scale: 'gate', field: 'gate' },
      strokeWidth: 1.5,
      dotSize: 18,
      hover: "datum.gate + ', generation ' + datum.generation + ': ' + datum.passed + '/' + datum.judged + ' passed'",
    }),
  };
}

/** Candidates each gate turned away: in all, and as the only gate they failed. */
export function gateRejectionsSpec(d: HtmlReportData): VegaSpec {
  const rows = d.gateRejections;
  const gates = rows.map((r) => r.gate);
  return {
    ...frame(WIDTH - 140, Math.max(60, 28 * rows.length)),
    data: [{ name: 'gates', values: rows }],
    scales: [
      bandScale('y', gates, 'height', 0.25),
      linearScale('x', [0, Math.max(1, ...rows.map((r) => r.rejected))], 'width', { nice: true }),
      ordinalScale(
        'what',
        ['rejected (with other gates too)', 'rejected by this gate alone'],
        [REJECTED_WITH_OTHERS_COLOR, REJECTED_ALONE_COLOR],
      ),
    ],
    axes: [
      axis('left', 'y', { grid: false }),
      axis('bottom', 'x', { title: 'candidates rejected', format: 'd', tickMinStep: 1 }),
    ],
    legends: [{ fill: 'what', orient: 'bottom', direction: 'vertical', labelLimit: 400 }],
    // the bar of those rejected by this gate alone sits inside the bar of all it rejected, 4 px narrower each side
    marks: [
      mark('rect', 'gates', {
        y: scaled('y', 'gate'),
        height: { scale: 'y', band: 1 },
        x: { scale: 'x', value: 0 },
        x2: scaled('x', 'rejected'),
        fill: value(REJECTED_WITH_OTHERS_COLOR),
        ...hoverText(
          "datum.gate + ': rejected ' + datum.rejected + ' candidate(s), ' + datum.sole + ' by this gate alone'",
        ),
      }),
      mark('rect', 'gates', {
        y: scaled('y', 'gate', { offset: 4 }),
        height: { scale: 'y', band: 1, offset: -8 },
        x: { scale: 'x', value: 0 },
        x2: scaled('x', 'sole'),
        fill: value(REJECTED_ALONE_COLOR),
        ...hoverText("datum.gate + ': ' + datum.sole + ' rejected by this gate alone'"),
      }),
    ],
  };
}

/** The best kept genome for one parameter: a row per source model (or the method-wide row), a column per cell. */
export function genomeHeatmapSpec(d: HtmlReportData, param: string): VegaSpec {
  const cells = d
    .bestGenome!.cells.filter((c) => c.param === param)
    .map((c) => ({ ...c, row: c.model ?? '(all models)' }));
  const columns = [...new Set(cells.map((c) => c.cell))];
  const rows = [...new Set(cells.map((c) => c.row))];
  const values = cells.map((c) => c.value);
  return {
    ...frame(Math.min(WIDTH, 90 * columns.length), 34 * rows.length),
    data: [{ name: 'cells', values: cells }],
    scales: [
      bandScale('x', columns, 'width', 0.04),
      bandScale('y', rows, 'height', 0.06),
      linearScale('color', [Math.min(...values), Math.max(...values)], { scheme: 'blues' }, { zero: false }),
    ],
    axes: [axis('top', 'x', { grid: false, labelAngle: 0, labelFontSize: 10 }), axis('left', 'y', { grid: false })],
    legends: [{ fill: 'color', title: param, orient: 'right', gradientLength: Math.max(40, 34 * rows.length - 10) }],
    marks: [
      mark('rect', 'cells', {
        ...bandCell('cell', 'row'),
        fill: scaled('color', 'value'),
        ...hoverText(`datum.cell + ', ' + datum.row + ': ${param} ' + ${formatted('value', 3)}`),
      }),
      mark('text', 'cells', {
        ...atBandCentre('cell', 'row'),
        ...centredText(11),
        // white on the darker half of the blues, black on the lighter
        fill: signal(`datum.value > ${(Math.min(...values) + Math.max(...values)) / 2} ? 'white' : 'black'`),
        text: signal(formatted('value', 2)),
      }),
    ],
  };
}

/** The winning data-flow path: a column per step, a row per model, the cell coloured by the hop's scale and
 *  labelled with the layer; a line follows the token from step to step. */
export function pathSpec(d: HtmlReportData): VegaSpec {
  const steps = d.winningPath!.steps.map((s) => ({ ...s, label: String(s.layer) }));
  const stepNumbers = steps.map((s) => s.step);
  const models = [...new Set(steps.map((s) => s.model))];
  const scales = steps.map((s) => s.scale);
  const lo = Math.min(...scales, 1);
  const hi = Math.max(...scales, 1);
  return {
    ...frame(Math.min(WIDTH * 1.5, Math.max(160, 26 * steps.length)), 46 * Math.max(2, models.length)),
    data: [{ name: 'steps', values: steps }],
    scales: [
      bandScale('x', stepNumbers, 'width', 0.08),
      bandScale('y', models, 'height', 0.12),
      // diverging around 1 (white): blue shrinks the hidden state, red grows it
      linearScale('color', [lo, 1, hi === 1 ? 1.0001 : hi], ['#2166ac', '#f7f7f7', '#b2182b']),
    ],
    axes: [axis('bottom', 'x', { grid: false, title: 'step', labelFontSize: 9 }), axis('left', 'y', { grid: false })],
    legends: [{ fill: 'color', title: 'input scale', orient: 'right' }],
    marks: [
      mark('line', 'steps', { ...atBandCentre('step', 'model'), stroke: value('#888'), strokeWidth: value(1) }),
      mark('rect', 'steps', {
        ...bandCell('step', 'model'),
        fill: scaled('color', 'scale'),
        stroke: value('#555'),
        ...hoverText(
          `'step ' + datum.step + ': ' + datum.model + ' layer ' + datum.layer + ', scale ' + ${formatted('scale', 4)}`,
        ),
      }),
      mark('text', 'steps', { ...atBandCentre('step', 'model'), ...centredText(11), text: { field: 'label' } }),
    ],
  };
}

/** Each generation's best candidate: one line per (cell, model) of its weights. */
export function genomeMovesSpec(d: HtmlReportData): VegaSpec {
  const moves = d.genomeMoves.map((m) => ({ ...m, series: `${m.cell} · ${m.model}` }));
  return {
    ...frame(WIDTH, 240),
    data: [{ name: 'moves', values: moves }],
    scales: [
      linearScale('x', dataDomain('moves', 'generation'), 'width', { zero: false }),
      linearScale('y', dataDomain('moves', 'value'), 'height', { nice: true, zero: false }),
      ordinalScale('cell', dataDomain('moves', 'cell'), 'category'),
      // the source models told apart by dash: solid, long, short, dash-dot
      ordinalScale('model', d.models, [
        [1, 0],
        [6, 3],
        [2, 2],
        [8, 2, 2, 2],
      ]),
    ],
    axes: [generationAxis('generation'), axis('left', 'y', { title: d.movesParam ?? 'weight' })],
    legends: [
      { stroke: 'cell', title: 'layer group', orient: 'right' },
      { strokeDash: 'model', title: 'model', orient: 'right', symbolType: 'stroke' },
    ],
    marks: linesWithDots({
      data: 'moves',
      groupby: ['cell', 'model'],
      x: 'generation',
      y: 'value',
      color: { scale: 'cell', field: 'cell' },
      dash: { scale: 'model', field: 'model' },
      strokeWidth: 1.5,
      dotSize: 10,
      hover: `'generation ' + datum.generation + ' best #' + datum.ordinal + ', ' + datum.series + ': ' + ${formatted('value', 3)}`,
    }),
  };
}

/** The categorical gene's probabilities per generation (CMA-ES's categorical distribution). */
export function methodProbabilitiesSpec(d: HtmlReportData): VegaSpec {
  const rows = d.methodProbabilities.map((r) => ({
    ...r,
    series: r.gene === 'method' ? r.choice : `${r.gene}=${r.choice}`,
  }));
  return {
    ...frame(WIDTH, 200),
    data: [{ name: 'probs', values: rows }],
    scales: [
      linearScale('x', dataDomain('probs', 'generation'), 'width', { zero: false }),
      linearScale('y', [0, 1], 'height'),
      ordinalScale('choice', dataDomain('probs', 'series'), 'category'),
    ],
    axes: [
      generationAxis('generation asked from this distribution'),
      axis('left', 'y', { title: 'probability', format: '%' }),
    ],
    legends: [{ stroke: 'choice', title: 'method', orient: 'right' }],
    marks: linesWithDots({
      data: 'probs',
      groupby: 'series',
      x: 'generation',
      y: 'p',
      color: { scale: 'choice', field: 'series' },
      strokeWidth: 2,
      dotSize: 12,
      hover: "'generation ' + datum.generation + ': P(' + datum.series + ') = ' + format(datum.p, '.3f')",
    }),
  };
}

/** Fit against test on the objective task's own metric, with ±1 SE bars on both axes and the y = x line. */
export function fitVsTestSpec(d: HtmlReportData): VegaSpec {
  const rows = d.fitVsTest;
  const ends = rows.flatMap((r) => [r.fit - r.fitSe, r.fit + r.fitSe, r.test - r.testSe, r.test + r.testSe]);
  const lo = Math.min(...ends);
  const hi = Math.max(...ends);
  const pad = 0.05 * (hi - lo || 1);
  const domain = [lo - pad, hi + pad];
  return {
    ...frame(360, 300),
    data: [
      { name: 'rows', values: rows },
      { name: 'diag', values: [{ a: domain[0], b: domain[1] }] },
    ],
    scales: [
      linearScale('x', domain, 'width', { zero: false }),
      linearScale('y', domain, 'height', { zero: false }),
      ordinalScale('kind', ['source', 'reference', 'kept', 'best kept'], ['#1f5fa8', '#7b3294', '#74c476', '#14532d']),
    ],
    axes: [
      axis('bottom', 'x', { title: `${d.fitVsTestMeasure}, fit split`, tickCount: 5 }),
      axis('left', 'y', { title: `${d.fitVsTestMeasure}, test split`, tickCount: 5 }),
    ],
    legends: [{ fill: 'kind', title: 'model', orient: 'right' }],
    marks: [
      mark('rule', 'diag', {
        ...atXY('a', 'a'),
        x2: scaled('x', 'b'),
        y2: scaled('y', 'b'),
        stroke: value('#bbb'),
        strokeDash: value([3, 3]),
        description: value('test = fit'),
      }),
      mark('rule', 'rows', {
        ...plusMinus('x', 'fit', 'fitSe'),
        y: scaled('y', 'test'),
        stroke: scaled('kind', 'kind'),
      }),
      mark('rule', 'rows', {
        ...plusMinus('y', 'test', 'testSe'),
        x: scaled('x', 'fit'),
        stroke: scaled('kind', 'kind'),
      }),
      mark('symbol', 'rows', {
        ...atXY('fit', 'test'),
        size: value(50),
        fill: scaled('kind', 'kind'),
        ...hoverText(
          `datum.label + ': fit ' + ${formatted('fit', 3)} + ' ± ' + ${formatted('fitSe', 3)} + ', test ' + ` +
            `${formatted('test', 3)} + ' ± ' + ${formatted('testSe', 3)}`,
        ),
      }),
      mark('text', 'rows', {
        ...atXY('fit', 'test'),
        dx: value(6),
        dy: value(-6),
        fontSize: value(10),
        text: { field: 'label' },
      }),
    ],
  };
}

/** One measure (task/metric): each source, reference and the best kept, fit and test, ±1 SE. */
export function measureSpec(d: HtmlReportData, measure: string): VegaSpec {
  const rows = d.report.rows.flatMap((r) =>
    (['fit', 'test'] as const).flatMap((split) => {
      const s = r.scores[measure]?.[split];
      return s && Number.isFinite(s.value) ? [{ label: r.label, split, value: s.value, se: s.se ?? 0, n: s.n }] : [];
    }),
  );
  const labels = [...new Set(rows.map((r) => r.label))];
  // fit just above the middle of the model's band, test just below, so both bars show
  const y = () => scaled('y', 'label', { band: 0.5, offset: signal("datum.split === 'fit' ? -3 : 3") });
  return {
    ...frame(300, 22 * labels.length),
    title: { text: measure, fontSize: 12, anchor: 'start' },
    data: [{ name: 'rows', values: rows }],
    scales: [
      bandScale('y', labels, 'height', 0.2),
      linearScale(
        'x',
        [Math.min(...rows.map((r) => r.value - r.se)), Math.max(...rows.map((r) => r.value + r.se))],
        'width',
        { nice: true, zero: false },
      ),
      ordinalScale('split', ['fit', 'test'], ['#1f77b4', '#ff7f0e']),
    ],
    axes: [axis('left', 'y', { grid: false }), axis('bottom', 'x', { tickCount: 5 })],
    legends: [{ fill: 'split', orient: 'right' }],
    marks: [
      mark('rule', 'rows', { ...plusMinus('x', 'value', 'se'), y: y(), stroke: scaled('split', 'split') }),
      mark('symbol', 'rows', {
        x: scaled('x', 'value'),
        y: y(),
        size: value(30),
        fill: scaled('split', 'split'),
        ...hoverText(
          `datum.label + ', ' + datum.split + ': ' + ${formatted('value', 3)} + ' ± ' + ${formatted('se', 3)} + ` +
            `' (n = ' + datum.n + ')'`,
        ),
      }),
    ],
  };
}
