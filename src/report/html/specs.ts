// The report's plots as Vega specifications (data inlined): one function per plot, each a pure function of
// the extracted data. Every data mark carries a `description`, which Vega writes as the mark's aria-label;
// page.ts turns it into an SVG <title>, the browser's hover text (no JavaScript needed).
import type { HtmlReportData } from './data.ts';

// Vega's spec type is large and loose; the specs here are plain JSON checked by vega.parse at render time.
export type VegaSpec = Record<string, unknown>;

const WIDTH = 640;
const HEIGHT = 260;
const STATUS_COLORS = { kept: '#2e8b57', rejected: '#9aa5b1', failed: '#d62728', unfinished: '#c9a227' };

const base = (width = WIDTH, height = HEIGHT): VegaSpec => ({
  $schema: 'https://vega.github.io/schema/vega/v6.json',
  width,
  height,
  padding: 8,
  autosize: { type: 'pad' },
  config: {
    axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: '#eee' },
    legend: { labelFontSize: 11, titleFontSize: 12 },
  },
});

const fmt = (field: string, digits = 4) => `format(datum.${field}, '.${digits}~f')`;

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
    ...base(),
    data: [
      { name: 'points', values: points },
      { name: 'best', values: d.bestCurve },
      { name: 'yard', values: d.yardsticks },
    ],
    scales: [
      { name: 'x', type: 'linear', domain: [0, maxOrdinal], range: 'width', nice: true },
      { name: 'y', type: 'linear', domain: [floor, hi], range: 'height', nice: true, zero: false },
      { name: 'status', type: 'ordinal', domain: Object.keys(STATUS_COLORS), range: Object.values(STATUS_COLORS) },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'candidate # (ask order)', format: 'd' },
      { orient: 'left', scale: 'y', title: 'fit objective' },
    ],
    legends: [{ fill: 'status', title: 'candidate', orient: 'right', symbolType: 'circle' }],
    marks: [
      {
        type: 'rule',
        from: { data: 'yard' },
        encode: {
          enter: {
            x: { value: 0 },
            x2: { signal: 'width' },
            y: { scale: 'y', field: 'objective' },
            stroke: { signal: "datum.kind === 'reference' ? '#7b3294' : '#1f5fa8'" },
            strokeDash: { value: [5, 4] },
            strokeWidth: { value: 1.2 },
            description: { signal: `datum.kind + ' ' + datum.label + ': ' + ${fmt('objective')}` },
          },
        },
      },
      {
        type: 'text',
        from: { data: 'yard' },
        encode: {
          enter: {
            x: { signal: 'width' },
            dx: { value: -2 },
            y: { scale: 'y', field: 'objective' },
            dy: { value: -3 },
            align: { value: 'right' },
            fontSize: { value: 10 },
            fill: { signal: "datum.kind === 'reference' ? '#7b3294' : '#1f5fa8'" },
            text: { signal: `datum.label + ' ' + ${fmt('objective', 3)}` },
          },
        },
      },
      {
        type: 'symbol',
        from: { data: 'points' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'ordinal' },
            y: { scale: 'y', field: 'y' },
            shape: { signal: "datum.status === 'failed' ? 'cross' : 'circle'" },
            size: { signal: "datum.status === 'kept' ? 30 : 16" },
            fill: { scale: 'status', field: 'status' },
            fillOpacity: { value: 0.75 },
            description: {
              signal:
                `'#' + datum.ordinal + ' (generation ' + datum.generation + '): ' + datum.status + ` +
                `(datum.objective === null ? '' : ', objective ' + ${fmt('objective')})`,
            },
          },
        },
      },
      {
        type: 'line',
        from: { data: 'best' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'ordinal' },
            y: { scale: 'y', field: 'objective' },
            interpolate: { value: 'step-after' },
            stroke: { value: '#14532d' },
            strokeWidth: { value: 2 },
            description: { value: 'best kept objective so far' },
          },
        },
      },
    ],
  };
}

/** Pass rate of each gate per generation. */
export function gateRatesSpec(d: HtmlReportData): VegaSpec {
  return {
    ...base(WIDTH, 220),
    data: [{ name: 'rates', values: d.gateRates }],
    scales: [
      {
        name: 'x',
        type: 'linear',
        domain: { data: 'rates', field: 'generation' },
        range: 'width',
        nice: false,
        zero: false,
      },
      { name: 'y', type: 'linear', domain: [0, 1], range: 'height' },
      { name: 'gate', type: 'ordinal', domain: { data: 'rates', field: 'gate' }, range: 'category' },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'generation', format: 'd', tickMinStep: 1 },
      { orient: 'left', scale: 'y', title: 'pass rate', format: '%' },
    ],
    legends: [{ stroke: 'gate', title: 'gate', orient: 'right' }],
    marks: [
      {
        type: 'group',
        from: { facet: { name: 'series', data: 'rates', groupby: 'gate' } },
        marks: [
          {
            type: 'line',
            from: { data: 'series' },
            encode: {
              enter: {
                x: { scale: 'x', field: 'generation' },
                y: { scale: 'y', field: 'rate' },
                stroke: { scale: 'gate', field: 'gate' },
                strokeWidth: { value: 1.5 },
              },
            },
          },
        ],
      },
      {
        type: 'symbol',
        from: { data: 'rates' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'generation' },
            y: { scale: 'y', field: 'rate' },
            size: { value: 18 },
            fill: { scale: 'gate', field: 'gate' },
            description: {
              signal:
                "datum.gate + ', generation ' + datum.generation + ': ' + datum.passed + '/' + datum.judged + ' passed'",
            },
          },
        },
      },
    ],
  };
}

/** Candidates each gate turned away: in all, and as the only gate they failed. */
export function gateRejectionsSpec(d: HtmlReportData): VegaSpec {
  const rows = d.gateRejections;
  return {
    ...base(WIDTH - 140, Math.max(60, 28 * rows.length)),
    data: [{ name: 'gates', values: rows }],
    scales: [
      { name: 'y', type: 'band', domain: rows.map((r) => r.gate), range: 'height', padding: 0.25 },
      {
        name: 'x',
        type: 'linear',
        domain: [0, Math.max(1, ...rows.map((r) => r.rejected))],
        range: 'width',
        nice: true,
      },
      {
        name: 'what',
        type: 'ordinal',
        domain: ['rejected (with other gates too)', 'rejected by this gate alone'],
        range: ['#f4a582', '#b2182b'],
      },
    ],
    axes: [
      { orient: 'left', scale: 'y', grid: false },
      { orient: 'bottom', scale: 'x', title: 'candidates rejected', format: 'd', tickMinStep: 1 },
    ],
    legends: [{ fill: 'what', orient: 'bottom', direction: 'vertical', labelLimit: 400 }],
    marks: [
      {
        type: 'rect',
        from: { data: 'gates' },
        encode: {
          enter: {
            y: { scale: 'y', field: 'gate' },
            height: { scale: 'y', band: 1 },
            x: { scale: 'x', value: 0 },
            x2: { scale: 'x', field: 'rejected' },
            fill: { value: '#f4a582' },
            description: {
              signal:
                "datum.gate + ': rejected ' + datum.rejected + ' candidate(s), ' + datum.sole + ' by this gate alone'",
            },
          },
        },
      },
      {
        type: 'rect',
        from: { data: 'gates' },
        encode: {
          enter: {
            y: { scale: 'y', field: 'gate', offset: 4 },
            height: { scale: 'y', band: 1, offset: -8 },
            x: { scale: 'x', value: 0 },
            x2: { scale: 'x', field: 'sole' },
            fill: { value: '#b2182b' },
            description: { signal: "datum.gate + ': ' + datum.sole + ' rejected by this gate alone'" },
          },
        },
      },
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
    ...base(Math.min(WIDTH, 90 * columns.length), 34 * rows.length),
    data: [{ name: 'cells', values: cells }],
    scales: [
      { name: 'x', type: 'band', domain: columns, range: 'width', padding: 0.04 },
      { name: 'y', type: 'band', domain: rows, range: 'height', padding: 0.06 },
      {
        name: 'color',
        type: 'linear',
        domain: [Math.min(...values), Math.max(...values)],
        range: { scheme: 'blues' },
        zero: false,
      },
    ],
    axes: [
      { orient: 'top', scale: 'x', grid: false, labelAngle: 0, labelFontSize: 10 },
      { orient: 'left', scale: 'y', grid: false },
    ],
    legends: [{ fill: 'color', title: param, orient: 'right', gradientLength: Math.max(40, 34 * rows.length - 10) }],
    marks: [
      {
        type: 'rect',
        from: { data: 'cells' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'cell' },
            width: { scale: 'x', band: 1 },
            y: { scale: 'y', field: 'row' },
            height: { scale: 'y', band: 1 },
            fill: { scale: 'color', field: 'value' },
            description: { signal: `datum.cell + ', ' + datum.row + ': ${param} ' + ${fmt('value', 3)}` },
          },
        },
      },
      {
        type: 'text',
        from: { data: 'cells' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'cell', band: 0.5 },
            y: { scale: 'y', field: 'row', band: 0.5 },
            align: { value: 'center' },
            baseline: { value: 'middle' },
            fontSize: { value: 11 },
            fill: { signal: `datum.value > ${(Math.min(...values) + Math.max(...values)) / 2} ? 'white' : 'black'` },
            text: { signal: fmt('value', 2) },
          },
        },
      },
    ],
  };
}

/** The winning data-flow path: a column per step, a row per model, the cell coloured by the hop's scale and
 *  labelled with the layer; a line follows the token from step to step. */
export function pathSpec(d: HtmlReportData): VegaSpec {
  const steps = d.winningPath!.steps.map((s) => ({ ...s, label: String(s.layer) }));
  const models = [...new Set(steps.map((s) => s.model))];
  const scales = steps.map((s) => s.scale);
  const lo = Math.min(...scales, 1);
  const hi = Math.max(...scales, 1);
  return {
    ...base(Math.min(WIDTH * 1.5, Math.max(160, 26 * steps.length)), 46 * Math.max(2, models.length)),
    data: [{ name: 'steps', values: steps }],
    scales: [
      { name: 'x', type: 'band', domain: steps.map((s) => s.step), range: 'width', padding: 0.08 },
      { name: 'y', type: 'band', domain: models, range: 'height', padding: 0.12 },
      {
        name: 'color',
        type: 'linear',
        domain: [lo, 1, hi === 1 ? 1.0001 : hi],
        range: ['#2166ac', '#f7f7f7', '#b2182b'],
      },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', grid: false, title: 'step', labelFontSize: 9 },
      { orient: 'left', scale: 'y', grid: false },
    ],
    legends: [{ fill: 'color', title: 'input scale', orient: 'right' }],
    marks: [
      {
        type: 'line',
        from: { data: 'steps' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'step', band: 0.5 },
            y: { scale: 'y', field: 'model', band: 0.5 },
            stroke: { value: '#888' },
            strokeWidth: { value: 1 },
          },
        },
      },
      {
        type: 'rect',
        from: { data: 'steps' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'step' },
            width: { scale: 'x', band: 1 },
            y: { scale: 'y', field: 'model' },
            height: { scale: 'y', band: 1 },
            fill: { scale: 'color', field: 'scale' },
            stroke: { value: '#555' },
            description: {
              signal: `'step ' + datum.step + ': ' + datum.model + ' layer ' + datum.layer + ', scale ' + ${fmt('scale', 4)}`,
            },
          },
        },
      },
      {
        type: 'text',
        from: { data: 'steps' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'step', band: 0.5 },
            y: { scale: 'y', field: 'model', band: 0.5 },
            align: { value: 'center' },
            baseline: { value: 'middle' },
            fontSize: { value: 11 },
            text: { field: 'label' },
          },
        },
      },
    ],
  };
}

/** Each generation's best candidate: one line per (cell, model) of its weights. */
export function genomeMovesSpec(d: HtmlReportData): VegaSpec {
  const moves = d.genomeMoves.map((m) => ({ ...m, series: `${m.cell} · ${m.model}` }));
  return {
    ...base(WIDTH, 240),
    data: [{ name: 'moves', values: moves }],
    scales: [
      { name: 'x', type: 'linear', domain: { data: 'moves', field: 'generation' }, range: 'width', zero: false },
      {
        name: 'y',
        type: 'linear',
        domain: { data: 'moves', field: 'value' },
        range: 'height',
        nice: true,
        zero: false,
      },
      { name: 'cell', type: 'ordinal', domain: { data: 'moves', field: 'cell' }, range: 'category' },
      {
        name: 'model',
        type: 'ordinal',
        domain: d.models,
        range: [
          [1, 0],
          [6, 3],
          [2, 2],
          [8, 2, 2, 2],
        ],
      },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'generation', format: 'd', tickMinStep: 1 },
      { orient: 'left', scale: 'y', title: d.movesParam ?? 'weight' },
    ],
    legends: [
      { stroke: 'cell', title: 'layer group', orient: 'right' },
      { strokeDash: 'model', title: 'model', orient: 'right', symbolType: 'stroke' },
    ],
    marks: [
      {
        type: 'group',
        from: { facet: { name: 'series', data: 'moves', groupby: ['cell', 'model'] } },
        marks: [
          {
            type: 'line',
            from: { data: 'series' },
            encode: {
              enter: {
                x: { scale: 'x', field: 'generation' },
                y: { scale: 'y', field: 'value' },
                stroke: { scale: 'cell', field: 'cell' },
                strokeDash: { scale: 'model', field: 'model' },
                strokeWidth: { value: 1.5 },
              },
            },
          },
        ],
      },
      {
        type: 'symbol',
        from: { data: 'moves' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'generation' },
            y: { scale: 'y', field: 'value' },
            size: { value: 10 },
            fill: { scale: 'cell', field: 'cell' },
            description: {
              signal: `'generation ' + datum.generation + ' best #' + datum.ordinal + ', ' + datum.series + ': ' + ${fmt('value', 3)}`,
            },
          },
        },
      },
    ],
  };
}

/** The categorical gene's probabilities per generation (CMA-ES's categorical distribution). */
export function methodProbabilitiesSpec(d: HtmlReportData): VegaSpec {
  const rows = d.methodProbabilities.map((r) => ({
    ...r,
    series: r.gene === 'method' ? r.choice : `${r.gene}=${r.choice}`,
  }));
  return {
    ...base(WIDTH, 200),
    data: [{ name: 'probs', values: rows }],
    scales: [
      { name: 'x', type: 'linear', domain: { data: 'probs', field: 'generation' }, range: 'width', zero: false },
      { name: 'y', type: 'linear', domain: [0, 1], range: 'height' },
      { name: 'choice', type: 'ordinal', domain: { data: 'probs', field: 'series' }, range: 'category' },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'generation asked from this distribution', format: 'd', tickMinStep: 1 },
      { orient: 'left', scale: 'y', title: 'probability', format: '%' },
    ],
    legends: [{ stroke: 'choice', title: 'method', orient: 'right' }],
    marks: [
      {
        type: 'group',
        from: { facet: { name: 'series', data: 'probs', groupby: 'series' } },
        marks: [
          {
            type: 'line',
            from: { data: 'series' },
            encode: {
              enter: {
                x: { scale: 'x', field: 'generation' },
                y: { scale: 'y', field: 'p' },
                stroke: { scale: 'choice', field: 'series' },
                strokeWidth: { value: 2 },
              },
            },
          },
        ],
      },
      {
        type: 'symbol',
        from: { data: 'probs' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'generation' },
            y: { scale: 'y', field: 'p' },
            size: { value: 12 },
            fill: { scale: 'choice', field: 'series' },
            description: {
              signal: "'generation ' + datum.generation + ': P(' + datum.series + ') = ' + format(datum.p, '.3f')",
            },
          },
        },
      },
    ],
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
    ...base(360, 300),
    data: [
      { name: 'rows', values: rows },
      { name: 'diag', values: [{ a: domain[0], b: domain[1] }] },
    ],
    scales: [
      { name: 'x', type: 'linear', domain, range: 'width', zero: false },
      { name: 'y', type: 'linear', domain, range: 'height', zero: false },
      {
        name: 'kind',
        type: 'ordinal',
        domain: ['source', 'reference', 'kept', 'best kept'],
        range: ['#1f5fa8', '#7b3294', '#74c476', '#14532d'],
      },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: `${d.fitVsTestMeasure}, fit split`, tickCount: 5 },
      { orient: 'left', scale: 'y', title: `${d.fitVsTestMeasure}, test split`, tickCount: 5 },
    ],
    legends: [{ fill: 'kind', title: 'model', orient: 'right' }],
    marks: [
      {
        type: 'rule',
        from: { data: 'diag' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'a' },
            y: { scale: 'y', field: 'a' },
            x2: { scale: 'x', field: 'b' },
            y2: { scale: 'y', field: 'b' },
            stroke: { value: '#bbb' },
            strokeDash: { value: [3, 3] },
            description: { value: 'test = fit' },
          },
        },
      },
      {
        type: 'rule',
        from: { data: 'rows' },
        encode: {
          enter: {
            x: { scale: 'x', signal: 'datum.fit - datum.fitSe' },
            x2: { scale: 'x', signal: 'datum.fit + datum.fitSe' },
            y: { scale: 'y', field: 'test' },
            stroke: { scale: 'kind', field: 'kind' },
          },
        },
      },
      {
        type: 'rule',
        from: { data: 'rows' },
        encode: {
          enter: {
            y: { scale: 'y', signal: 'datum.test - datum.testSe' },
            y2: { scale: 'y', signal: 'datum.test + datum.testSe' },
            x: { scale: 'x', field: 'fit' },
            stroke: { scale: 'kind', field: 'kind' },
          },
        },
      },
      {
        type: 'symbol',
        from: { data: 'rows' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'fit' },
            y: { scale: 'y', field: 'test' },
            size: { value: 50 },
            fill: { scale: 'kind', field: 'kind' },
            description: {
              signal:
                `datum.label + ': fit ' + ${fmt('fit', 3)} + ' ± ' + ${fmt('fitSe', 3)} + ', test ' + ` +
                `${fmt('test', 3)} + ' ± ' + ${fmt('testSe', 3)}`,
            },
          },
        },
      },
      {
        type: 'text',
        from: { data: 'rows' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'fit' },
            y: { scale: 'y', field: 'test' },
            dx: { value: 6 },
            dy: { value: -6 },
            fontSize: { value: 10 },
            text: { field: 'label' },
          },
        },
      },
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
  return {
    ...base(300, 22 * labels.length),
    title: { text: measure, fontSize: 12, anchor: 'start' },
    data: [{ name: 'rows', values: rows }],
    scales: [
      { name: 'y', type: 'band', domain: labels, range: 'height', padding: 0.2 },
      {
        name: 'x',
        type: 'linear',
        domain: [Math.min(...rows.map((r) => r.value - r.se)), Math.max(...rows.map((r) => r.value + r.se))],
        range: 'width',
        nice: true,
        zero: false,
      },
      { name: 'split', type: 'ordinal', domain: ['fit', 'test'], range: ['#1f77b4', '#ff7f0e'] },
    ],
    axes: [
      { orient: 'left', scale: 'y', grid: false },
      { orient: 'bottom', scale: 'x', tickCount: 5 },
    ],
    legends: [{ fill: 'split', orient: 'right' }],
    marks: [
      {
        type: 'rule',
        from: { data: 'rows' },
        encode: {
          enter: {
            x: { scale: 'x', signal: 'datum.value - datum.se' },
            x2: { scale: 'x', signal: 'datum.value + datum.se' },
            y: { scale: 'y', field: 'label', band: 0.5, offset: { signal: "datum.split === 'fit' ? -3 : 3" } },
            stroke: { scale: 'split', field: 'split' },
          },
        },
      },
      {
        type: 'symbol',
        from: { data: 'rows' },
        encode: {
          enter: {
            x: { scale: 'x', field: 'value' },
            y: { scale: 'y', field: 'label', band: 0.5, offset: { signal: "datum.split === 'fit' ? -3 : 3" } },
            size: { value: 30 },
            fill: { scale: 'split', field: 'split' },
            description: {
              signal: `datum.label + ', ' + datum.split + ': ' + ${fmt('value', 3)} + ' ± ' + ${fmt('se', 3)} + ' (n = ' + datum.n + ')'`,
            },
          },
        },
      },
    ],
  };
}
