// The Pareto front of a campaign run with `objective_mode: pareto`, as the text, JSON and HTML reports show it:
// each search candidate's objective terms on fit (share terms as the share kept), the front recomputed from those
// recorded fit scores exactly as the final pick computes it (the kept candidates, each term's value − lcb_z·SE,
// gates/pareto.ts), which member was picked and by which rule (from the recorded pick's detail).
import { termKey, termValues, type ScoreLike } from '../gates/objective.ts';
import { lcb, paretoFront } from '../gates/pareto.ts';
import type { StoredCampaignConfig } from '../store/campaign-config.ts';
import type { Store } from '../store/db.ts';

/** One search candidate in objective space (failed ones have no values and are left out). */
export interface FrontCandidate {
  readonly ordinal: number;
  readonly status: string;
  /** Each objective's fit value (the objectives' order), and its SE (NaN unknown, null in the JSON). */
  readonly values: readonly number[];
  readonly se: readonly number[];
  readonly front: boolean;
}

export interface ParetoFrontReport {
  readonly rule: string;
  /** The objectives, keyed `task/metric` (`<metric>:share_of:<source>` for a share term). */
  readonly objectives: readonly string[];
  readonly lcbZ: number;
  readonly candidates: readonly FrontCandidate[];
  /** Ordinals of the front's members (kept candidates only). */
  readonly front: readonly number[];
  /** The searched candidate the rule chose (null when none yet); `reference`: the reference merge handed over
   *  instead (never worse than naive). */
  readonly chosen: number | null;
  readonly reference?: string;
  /** Which member was picked and why, in one sentence naming the rule. */
  readonly sentence: string;
}

/** The front of a Pareto campaign; undefined for a weighted one. */
export function paretoFrontReport(
  store: Store,
  campaignId: number,
  cfg: StoredCampaignConfig,
): ParetoFrontReport | undefined {
  if (!cfg.pareto) return undefined;
  const own = (t: string) => cfg.ownMetrics[t]!;
  const z = cfg.selection?.lcbZ ?? 0;
  const sources = new Map<string, ScoreLike[]>();
  for (const c of store.listCandidates(campaignId, { kind: 'source' }))
    sources.set(c.label ?? '', store.listScores(c.candidateId, 'fit'));
  const all = store
    .listCandidates(campaignId, { kind: 'search' })
    .filter((c) => c.status !== 'failed')
    .map((c) => ({ c, t: termValues(cfg.objective, own, store.listScores(c.candidateId, 'fit'), sources, 'fit') }))
    .filter(({ t }) => t.every((v) => Number.isFinite(v.value)))
    .sort((a, b) => (a.c.ordinal ?? 0) - (b.c.ordinal ?? 0));
  const kept = all.filter(({ c }) => c.status === 'kept');
  const onFront = new Set(paretoFront(kept.map(({ t }) => t.map((v) => lcb(v, z)))).map((i) => kept[i]!.c.ordinal));
  const candidates = all.map(({ c, t }) => ({
    ordinal: c.ordinal ?? 0,
    status: c.status,
    values: t.map((v) => v.value),
    se: t.map((v) => v.se),
    front: onFront.has(c.ordinal ?? 0),
  }));
  const pick = store.finalPick(campaignId);
  const d = pick
    ? (JSON.parse(pick.detailJson) as {
        pareto?: { chosen?: number; sentence?: string };
        reference?: string;
        by_reference?: boolean;
      })
    : undefined;
  const chosen = d?.pareto?.chosen ?? null;
  const rule = `pareto_pick: ${cfg.pareto.pick}`;
  let sentence: string;
  if (!pick) sentence = `No pick yet (${rule}): the campaign has not finished its search.`;
  else if (chosen === null) sentence = `No kept candidate is on the front, so ${rule} chose none.`;
  else if (d?.by_reference)
    sentence =
      `By ${rule}, ${d.pareto!.sentence} Never worse than naive then handed over the reference merge ` +
      `${d.reference}: no member of the front beat it by its lower confidence bound.`;
  else sentence = `The pick, by ${rule}: ${d!.pareto!.sentence}`;
  return {
    rule: cfg.pareto.pick,
    objectives: cfg.objective.map((t) => termKey(t, own)),
    lcbZ: z,
    candidates,
    front: candidates.filter((c) => c.front).map((c) => c.ordinal),
    chosen,
    ...(d?.by_reference && d.reference ? { reference: d.reference } : {}),
    sentence,
  };
}

/** The text report's lines: the front's members with their objectives on fit, then the sentence. */
export function formatParetoFront(p: ParetoFrontReport): string[] {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '—');
  const kept = p.candidates.filter((c) => c.status === 'kept').length;
  const lines = [
    `Pareto front on fit (objective_mode: pareto, pareto_pick: ${p.rule}${p.lcbZ > 0 ? `, value − ${p.lcbZ}·SE` : ''}): ` +
      `${p.front.length} of ${kept} kept candidate(s) are on it`,
  ];
  const header = ['', ...p.objectives];
  const rows = p.candidates
    .filter((c) => c.front)
    .map((c) => [
      `#${c.ordinal}${c.ordinal === p.chosen ? (p.reference ? " (the rule's choice)" : ' (picked)') : ''}`,
      ...c.values.map((v, k) => `${f(v)} ± ${f(c.se[k]!)}`),
    ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) =>
    '  ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  lines.push(fmt(header), ...rows.map(fmt), p.sentence);
  return lines;
}
