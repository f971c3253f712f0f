// The report's verdict on the objective itself, on the test split: the objective of every source, reference and
// the final pick (share terms normalised against the sources' test scores), and the pick's difference with each
// rival with the paired SE over the same test items (the per-item pseudo-values the store keeps for test
// scores; the normalising gains' own noise included): a gain counts when it exceeds 2 paired SEs.
import type { Store } from '../store/db.ts';
import type { CandidateRecord } from '../store/records.ts';
import {
  objectiveEstimate,
  pairedObjectiveDifference,
  type ItemValues,
  type ObjectiveTerm,
  type ScoreLike,
} from '../gates/objective.ts';

export interface TestObjectiveComparison {
  /** label → test objective ± SE. */
  readonly values: Readonly<Record<string, { value: number; se: number }>>;
  /** The pick minus each rival, with the paired SE (absent when item values are missing). */
  readonly differences: readonly { rival: string; gain: number; pairedSe: number; significant: boolean }[];
  /** Beats every rival by more than 2 paired SEs. */
  readonly beatsAll: boolean;
  readonly lines: readonly string[];
}

export function testObjectiveComparison(
  store: Store,
  campaignId: number,
  terms: readonly ObjectiveTerm[],
  ownMetrics: Readonly<Record<string, string>>,
  pick: CandidateRecord,
  rivalLabels: readonly string[],
): TestObjectiveComparison | undefined {
  const own = (t: string) => ownMetrics[t]!;
  const others = [
    ...store.listCandidates(campaignId, { kind: 'source' }),
    ...store.listCandidates(campaignId, { kind: 'reference' }),
  ];
  const scores = (c: CandidateRecord): ScoreLike[] => store.listScores(c.candidateId, 'test');
  const items = (c: CandidateRecord): ItemValues =>
    new Map(store.listItemValues(c.candidateId, 'test').map((r) => [`${r.task}/${r.metric}`, r.values]));
  const sources = new Map(store.listCandidates(campaignId, { kind: 'source' }).map((c) => [c.label!, scores(c)]));
  const sourceItems = new Map(store.listCandidates(campaignId, { kind: 'source' }).map((c) => [c.label!, items(c)]));
  const pickScores = scores(pick);
  if (pickScores.length === 0) return undefined;
  const values: Record<string, { value: number; se: number }> = {};
  const pickLabel = pick.ordinal === null ? `reference pick: ${pick.label}` : `#${pick.ordinal}`;
  values[pickLabel] = objectiveEstimate(terms, own, pickScores, sources, 'test');
  const pickItems = items(pick);
  const differences: TestObjectiveComparison['differences'][number][] = [];
  const ordered = rivalLabels
    .map((l) => others.find((c) => c.label === l))
    .filter((c): c is CandidateRecord => c !== undefined);
  for (const c of ordered) {
    values[c.label!] = objectiveEstimate(terms, own, scores(c), sources, 'test');
    const d = pairedObjectiveDifference(terms, own, pickItems, items(c), sources, 'test', sourceItems);
    if (d) differences.push({ rival: c.label!, gain: d.value, pairedSe: d.se, significant: d.value > 2 * d.se });
  }
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '—');
  const lines = [
    `test objective ` +
      `(` +
      `${terms
        .map(
          (t) =>
            `${t.weight} × ${t.task}/${t.metric ?? own(t.task)}${t.shareOf ? ` as share of ${t.shareOf}'s gain` : ''}`,
        )
        .join(' + ')}` +
      `):`,
  ];
  for (const [label, e] of Object.entries(values)) {
    const d = differences.find((x) => x.rival === label);
    lines.push(
      `  ${label.padEnd(20)} ${f(e.value)} ± ${f(e.se)}` +
        `${
          d
            ? `   pick − this: ${d.gain >= 0 ? '+' : ''}${f(d.gain)}` +
              ` ± ${f(d.pairedSe)} (paired SE)${d.significant ? ' > 2 SE' : ''}`
            : label === pickLabel
              ? '   (the final pick)'
              : ''
        }`,
    );
  }
  const beatsAll =
    differences.length === ordered.length && differences.length > 0 && differences.every((d) => d.significant);
  if (differences.length) {
    const worst = [...differences].sort((a, b) => a.gain / a.pairedSe - b.gain / b.pairedSe)[0]!;
    lines.push(
      beatsAll
        ? `The final pick beats every source and reference merge on the test objective by more than 2 paired standard ` +
            `errors (closest: ${worst.rival}, +${f(worst.gain)} ± ${f(worst.pairedSe)}).`
        : `The final pick does NOT beat every source and reference merge on the test objective by more than 2 paired ` +
            `standard errors (closest: ${worst.rival}, ${worst.gain >= 0 ? '+' : ''}${f(worst.gain)} ± ` +
            `${f(worst.pairedSe)}).`,
    );
  }
  return { values, differences, beatsAll, lines };
}
