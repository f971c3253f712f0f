// The Pareto front section of a campaign run with `objective_mode: pareto` (report/pareto-front.ts extracts it):
// for each pair of objectives a scatter of the search candidates on fit (a pairwise projection), the front's
// members highlighted and the pick marked, each point's hover text its number, status and every objective's value;
// then the sentence naming the rule that picked. Past MAX_CANDIDATE_POINTS the off-front points are thinned evenly
// by ordinal; front members and the pick are always drawn.
import type { FrontCandidate, ParetoFrontReport } from '../pareto-front.ts';
import { MAX_CANDIDATE_POINTS } from './data.ts';
import { empty, esc, f3, figure } from './markup.ts';
import {
  atXY,
  axis,
  frame,
  hoverText,
  linearScale,
  mark,
  ordinalScale,
  scaled,
  value,
  type VegaSpec,
} from './vega-spec.ts';

const CLASSES = { picked: '#d62728', front: '#14532d', kept: '#74c476', rejected: '#9aa5b1' };

interface Point {
  readonly x: number;
  readonly y: number;
  readonly cls: keyof typeof CLASSES;
  readonly hover: string;
  readonly label: string;
}

/** The candidates drawn: every front member and the pick, the others evenly thinned past the cap. */
export function drawnCandidates(p: ParetoFrontReport, max = MAX_CANDIDATE_POINTS): FrontCandidate[] {
  const must = p.candidates.filter((c) => c.front || c.ordinal === p.chosen);
  const rest = p.candidates.filter((c) => !(c.front || c.ordinal === p.chosen));
  const room = Math.max(0, max - must.length);
  const kept =
    rest.length <= room
      ? rest
      : rest.filter((_, i) => Math.floor((i * room) / rest.length) !== Math.floor(((i - 1) * room) / rest.length));
  return [...must, ...kept].sort((a, b) => a.ordinal - b.ordinal);
}

/** One pairwise projection: objective i on x, objective j on y. */
export function paretoPairSpec(p: ParetoFrontReport, drawn: readonly FrontCandidate[], i: number, j: number): VegaSpec {
  const chosen = p.reference ? `, the rule's choice; the reference merge ${p.reference} was handed over` : ', the pick';
  const hover = (c: FrontCandidate) =>
    `#${c.ordinal} (${c.status}${c.front ? ', on the front' : ''}${c.ordinal === p.chosen ? chosen : ''}): ` +
    p.objectives.map((k, m) => `${k} ${f3(c.values[m])} ± ${f3(c.se[m])}`).join(', ');
  const points: Point[] = drawn.map((c) => ({
    x: c.values[i]!,
    y: c.values[j]!,
    cls: c.ordinal === p.chosen ? 'picked' : c.front ? 'front' : c.status === 'kept' ? 'kept' : 'rejected',
    hover: hover(c),
    label: c.ordinal === p.chosen ? `#${c.ordinal}` : '',
  }));
  // the front and the pick are drawn last, over the others
  const order = ['rejected', 'kept', 'front', 'picked'];
  points.sort((a, b) => order.indexOf(a.cls) - order.indexOf(b.cls));
  return {
    ...frame(300, 260),
    data: [{ name: 'points', values: points }],
    scales: [
      linearScale('x', { data: 'points', field: 'x' }, 'width', { nice: true, zero: false }),
      linearScale('y', { data: 'points', field: 'y' }, 'height', { nice: true, zero: false }),
      ordinalScale('cls', Object.keys(CLASSES), Object.values(CLASSES)),
    ],
    axes: [
      axis('bottom', 'x', { title: `${p.objectives[i]} (fit)`, tickCount: 5 }),
      axis('left', 'y', { title: `${p.objectives[j]} (fit)`, tickCount: 5 }),
    ],
    legends: [{ fill: 'cls', title: 'candidate', orient: 'right', symbolType: 'circle' }],
    marks: [
      mark('symbol', 'points', {
        ...atXY('x', 'y'),
        size: { signal: "datum.cls === 'picked' ? 160 : datum.cls === 'front' ? 70 : 30" },
        shape: { signal: "datum.cls === 'picked' ? 'diamond' : 'circle'" },
        fill: scaled('cls', 'cls'),
        fillOpacity: value(0.85),
        ...hoverText('datum.hover'),
      }),
      mark('text', 'points', {
        ...atXY('x', 'y'),
        dx: value(7),
        dy: value(-7),
        fontSize: value(11),
        text: { field: 'label' },
      }),
    ],
  };
}

/** The section's body: one scatter per pair of objectives, the sentence on the pick. */
export async function paretoBody(p: ParetoFrontReport): Promise<string> {
  if (p.candidates.length === 0)
    return empty('pareto', `No candidate has been scored yet, so there is no front to draw (pareto_pick: ${p.rule}).`);
  const drawn = drawnCandidates(p);
  const thinned =
    drawn.length < p.candidates.length
      ? ` ${drawn.length} of ${p.candidates.length} candidates drawn: every front member and the pick, the others ` +
        `evenly by number.`
      : '';
  const lcb = p.lcbZ > 0 ? `, ranked by value − ${p.lcbZ}·SE` : '';
  let out = '';
  for (let i = 0; i < p.objectives.length; i++)
    for (let j = i + 1; j < p.objectives.length; j++)
      out += await figure(
        `pareto-${p.objectives[i]}-${p.objectives[j]}`,
        paretoPairSpec(p, drawn, i, j),
        `${p.objectives[j]} against ${p.objectives[i]} on fit for every scored candidate: the front's ` +
          `${p.front.length} member(s) (non-dominated among the kept candidates in all ${p.objectives.length} ` +
          `objectives${lcb}) in dark green, the pick as a red diamond.${thinned}`,
      );
  return out + `<p class="pareto-pick">${esc(p.sentence)}</p>`;
}
