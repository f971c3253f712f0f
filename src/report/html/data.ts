// What the HTML report shows, read from a campaign database and nothing else, so it works on a campaign still
// running (WAL readers never block the writer), a finished one, and one killed mid-generation. Long series
// are thinned here (thin.ts), so the page stays small. The tables and the 2-SE verdict follow report.ts's
// rules (its `conclude` itself), read through slim queries: a 100,000-candidate campaign must not be loaded
// genome by genome.
import { EvomergeError } from '../../errors.ts';
import { parseCampaignConfig, type StoredCampaignConfig } from '../../store/campaign-config.ts';
import type { GateTally, Store } from '../../store/db.ts';
import {
  conclude,
  pickRow,
  recipeParameters,
  rivalLabels,
  winningPath,
  type CampaignReport,
  type ReportRow,
  type WinningPath,
  recordedScoresOf,
} from '../report.ts';
import { testObjectiveComparison } from '../test-objective.ts';
import { pickSentence } from '../pick-sentence.ts';
import { paretoFrontReport, type ParetoFrontReport } from '../pareto-front.ts';
import { evenlySpaced, thinByBins } from './thin.ts';

/** Most candidate marks in the objective plot; longer campaigns are thinned (the extremes of each bin kept). */
export const MAX_CANDIDATE_POINTS = 3000;
/** Most generations shown in the per-generation plots (evenly spaced, first and last kept). */
export const MAX_GENERATIONS = 200;
/** Most generations in the genome-moves plot, which draws one series per (layer group, model). */
export const MAX_GENOME_GENERATIONS = 60;

export interface CandidatePoint {
  readonly ordinal: number;
  readonly generation: number;
  readonly status: 'kept' | 'rejected' | 'failed' | 'unfinished';
  /** Fit objective; null for failed and unfinished candidates. */
  readonly objective: number | null;
}

export interface GenomeCell {
  readonly cell: string;
  /** A source model's name, or null for a method-wide gene (t, lambda). */
  readonly model: string | null;
  readonly param: string;
  readonly value: number;
}

/** The text report's summary (report.ts), without its per-generation genome list, which the plots replace. */
export type ReportSummary = Omit<CampaignReport, 'generations' | 'inputs' | 'inputChanges'>;

export interface HtmlReportData {
  readonly report: ReportSummary;
  readonly facts: { label: string; value: string }[];
  readonly models: readonly string[];
  /** Thinned: every candidate when there are few; else per bin of ordinals the best and worst per status. */
  readonly points: readonly CandidatePoint[];
  readonly totalPoints: number;
  /** Running best kept objective, one point per improvement and one at the last candidate. */
  readonly bestCurve: readonly { ordinal: number; objective: number }[];
  readonly yardsticks: readonly { label: string; kind: string; objective: number }[];
  readonly gateRates: readonly { gate: string; generation: number; rate: number; passed: number; judged: number }[];
  readonly gateRejections: readonly { gate: string; rejected: number; sole: number }[];
  readonly bestGenome?: { ordinal: number; method: string; objective: number; cells: readonly GenomeCell[] };
  /** A data-flow campaign: the winning path, slot by slot (in place of the genome's cells). */
  readonly winningPath?: WinningPath;
  /** objective_mode: pareto: every scored candidate in objective space, the front, the pick and its rule. */
  readonly paretoFront?: ParetoFrontReport;
  /** The per-model weights (or first per-model parameter) of each generation's best candidate. */
  readonly genomeMoves: readonly { generation: number; ordinal: number; cell: string; model: string; value: number }[];
  readonly movesParam?: string;
  /** Categorical probabilities per generation (CMA-ES); empty for other optimisers. */
  readonly methodProbabilities: readonly { generation: number; gene: string; choice: string; p: number }[];
  /** Objective task's own metric, fit against test, for everything scored on test. */
  readonly fitVsTest: readonly {
    label: string;
    kind: string;
    fit: number;
    fitSe: number;
    test: number;
    testSe: number;
  }[];
  readonly fitVsTestMeasure: string;
  /** Failed search candidates by error code, most frequent first, with one message as an example. */
  readonly failures: readonly { code: string; count: number; message: string }[];
}

/** One search candidate as the plots and facts use it: unfinished statuses merged, non-finite objectives dropped. */
interface PlotPoint extends CandidatePoint {
  readonly createdAt: string;
  readonly finishedAt: string | null;
}

/** Reads everything the page shows from an open (read-only) store. */
export function htmlReportData(store: Store, dbFile: string): HtmlReportData {
  const campaign = store.listCampaigns()[0];
  if (!campaign) throw new EvomergeError('report.empty', 'the database holds no campaign', { file: dbFile });
  const cfg = parseCampaignConfig(campaign);
  const id = campaign.campaignId;
  const models = cfg.models.map((m) => m.name);

  const all = searchPoints(store, id);
  // every fit verdict in one pass, per generation and gate: passed, judged, and rejections where this gate
  // was the only one failed
  const verdictRows = store.tallyFitGates(id);
  const report = summary(store, dbFile, campaign, cfg, all, verdictRows);

  const points = thinByBins(all, {
    maxPoints: MAX_CANDIDATE_POINTS,
    x: (p) => p.ordinal,
    y: (p) => p.objective ?? -Infinity,
    series: (p) => p.status,
  }).map(({ ordinal, generation, status, objective }) => ({ ordinal, generation, status, objective }));
  const yardsticks = report.rows
    .filter((r) => r.kind !== 'best' && r.objective !== null && Number.isFinite(r.objective))
    .map((r) => ({ label: r.label, kind: r.kind, objective: r.objective! }));
  const { gateRates, gateRejections } = gateCharts(report, verdictRows);
  const best = report.rows.find((r) => r.kind === 'best');
  const bestGenome = bestGenomeCells(store, id, best, models);
  const path = winningPath(store, id, cfg.models);
  const front = paretoFrontReport(store, id, cfg);
  const { genomeMoves, movesParam } = generationBestMoves(store, id, all, models);
  const methodProbabilities = categoricalProbabilities(store, id);
  const key = `${report.conclusion.task}/${report.conclusion.metric}`;
  const fitVsTest = fitAgainstTest(store, id, report.conclusion, best?.ordinal);
  const failures = store
    .countSearchFailures(id)
    .map((f) => ({ code: f.code ?? 'unknown', count: f.count, message: f.message ?? '' }));

  return {
    report,
    failures,
    facts: campaignFacts(store, campaign, cfg, all),
    models,
    points,
    totalPoints: all.length,
    bestCurve: bestKeptCurve(all),
    yardsticks,
    gateRates,
    gateRejections,
    ...(bestGenome ? { bestGenome } : {}),
    ...(path ? { winningPath: path } : {}),
    ...(front ? { paretoFront: front } : {}),
    genomeMoves,
    ...(movesParam ? { movesParam } : {}),
    methodProbabilities,
    fitVsTest,
    fitVsTestMeasure: key,
  };
}

/** One slim row per search candidate (no genome, no recipe): 100,000 of them read in a blink. */
function searchPoints(store: Store, campaignId: number): PlotPoint[] {
  return store.listSearchPoints(campaignId).map((r) => {
    const objective = r.objective;
    const status = r.status === 'kept' || r.status === 'rejected' || r.status === 'failed' ? r.status : 'unfinished';
    return {
      ordinal: r.ordinal,
      generation: r.generation ?? 0,
      status,
      objective: status === 'failed' || objective === null || !Number.isFinite(objective) ? null : objective,
      createdAt: r.createdAt,
      finishedAt: r.finishedAt,
    } as const;
  });
}

/** The running best kept objective: one point per improvement, and one at the last candidate. */
function bestKeptCurve(all: readonly PlotPoint[]): HtmlReportData['bestCurve'][number][] {
  const bestCurve: { ordinal: number; objective: number }[] = [];
  for (const p of all) {
    if (p.status !== 'kept' || p.objective === null) continue;
    if (!bestCurve.length || p.objective > bestCurve[bestCurve.length - 1]!.objective)
      bestCurve.push({ ordinal: p.ordinal, objective: p.objective });
  }
  const lastOrdinal = all.length ? all[all.length - 1]!.ordinal : 0;
  if (bestCurve.length && bestCurve[bestCurve.length - 1]!.ordinal < lastOrdinal)
    bestCurve.push({ ordinal: lastOrdinal, objective: bestCurve[bestCurve.length - 1]!.objective });
  return bestCurve;
}

/** Gates: the pass rate per generation, and which gate turned candidates away (alone or with others). */
function gateCharts(
  report: ReportSummary,
  verdictRows: readonly GateTally[],
): Pick<HtmlReportData, 'gateRates' | 'gateRejections'> {
  const gateOrder = report.gates.map((g) => g.gate);
  const shownGenerations = new Set(
    evenlySpaced(
      [...new Set(verdictRows.map((r) => r.generation ?? 0))].sort((a, b) => a - b),
      MAX_GENERATIONS,
    ),
  );
  const gateRates = verdictRows
    .filter((r) => shownGenerations.has(r.generation ?? 0))
    .sort((a, b) => (a.generation ?? 0) - (b.generation ?? 0) || gateOrder.indexOf(a.gate) - gateOrder.indexOf(b.gate))
    .map((r) => ({
      gate: r.gate,
      generation: r.generation ?? 0,
      rate: r.passed / r.judged,
      passed: r.passed,
      judged: r.judged,
    }));
  const gateRejections = report.gates.map((g) => ({
    gate: g.gate,
    rejected: g.judged - g.passed,
    sole: verdictRows.filter((r) => r.gate === g.gate).reduce((acc, r) => acc + r.sole, 0),
  }));
  return { gateRates, gateRejections };
}

/** The best kept genome, cell by cell, with only the genes its method reads; none for a data-flow genome (a
 *  path, drawn from the winning path instead of cells). */
function bestGenomeCells(
  store: Store,
  campaignId: number,
  best: ReportRow | undefined,
  models: readonly string[],
): HtmlReportData['bestGenome'] {
  if (!best || best.ordinal === null) return undefined;
  const c = store.findCandidateByOrdinal(campaignId, best.ordinal);
  const genome = c?.genomeJson ? (JSON.parse(c.genomeJson) as Record<string, number | string>) : undefined;
  if (!c || !genome || typeof genome.path === 'string') return undefined;
  const method = String(genome.method ?? '');
  return {
    ordinal: best.ordinal,
    method,
    objective: best.objective ?? NaN,
    cells: genomeCells(genome, models, new Set(recipeParameters(c.recipeYaml))),
  };
}

/** Each generation's best (kept if any, else the best scored one): how its per-model weights (or its first
 *  per-model parameter) moved. */
function generationBestMoves(
  store: Store,
  campaignId: number,
  all: readonly PlotPoint[],
  models: readonly string[],
): Pick<HtmlReportData, 'genomeMoves' | 'movesParam'> {
  const genBest = new Map<number, { ordinal: number; kept: boolean; objective: number }>();
  for (const p of all) {
    if (p.objective === null) continue;
    const cur = genBest.get(p.generation);
    const kept = p.status === 'kept';
    if (!cur || (kept && !cur.kept) || (kept === cur.kept && p.objective > cur.objective))
      genBest.set(p.generation, { ordinal: p.ordinal, kept, objective: p.objective });
  }
  const moveGenerations = evenlySpaced(
    [...genBest.keys()].sort((a, b) => a - b),
    MAX_GENOME_GENERATIONS,
  );
  const genomeMoves: { generation: number; ordinal: number; cell: string; model: string; value: number }[] = [];
  let movesParam: string | undefined;
  for (const g of moveGenerations) {
    const { ordinal } = genBest.get(g)!;
    const json = store.genomeJsonAt(campaignId, ordinal);
    if (!json) continue;
    const cells = genomeCells(JSON.parse(json) as Record<string, number | string>, models, undefined);
    movesParam ??= cells.some((c) => c.param === 'weight') ? 'weight' : cells.find((c) => c.model !== null)?.param;
    for (const c of cells)
      if (c.param === movesParam && c.model !== null)
        genomeMoves.push({ generation: g, ordinal, cell: c.cell, model: c.model, value: c.value });
  }
  return { genomeMoves, movesParam };
}

/** Fit against test on the objective task's own metric, for everything whose test split was scored. */
function fitAgainstTest(
  store: Store,
  campaignId: number,
  measure: { task: string; metric: string },
  bestOrdinal: number | null | undefined,
): HtmlReportData['fitVsTest'][number][] {
  const key = `${measure.task}/${measure.metric}`;
  const fitVsTest: HtmlReportData['fitVsTest'][number][] = [];
  for (const candidateId of store.listTestScoredCandidateIds(campaignId, measure.task, measure.metric)) {
    const c = store.getCandidate(candidateId);
    const scores = store.listScores(candidateId).filter((s) => `${s.task}/${s.metric}` === key);
    const fit = scores.find((s) => s.split === 'fit');
    const test = scores.find((s) => s.split === 'test');
    if (!fit || !test || !Number.isFinite(fit.value) || !Number.isFinite(test.value)) continue;
    fitVsTest.push({
      label: c.label ?? `#${c.ordinal}`,
      kind: c.kind === 'search' ? (c.ordinal === bestOrdinal ? 'best kept' : 'kept') : c.kind,
      fit: fit.value,
      fitSe: fit.se ?? 0,
      test: test.value,
      testSe: test.se ?? 0,
    });
  }
  return fitVsTest;
}

/** What the text report says (report.ts's rules: the same rows, best kept, fit comparison and test verdict),
 *  built from slim queries because its full candidate list is too slow to read at 100,000 candidates. */
function summary(
  store: Store,
  dbFile: string,
  campaign: { campaignId: number; name: string; seed: number; device: string; configHash: string },
  cfg: StoredCampaignConfig,
  all: readonly { ordinal: number; generation: number; status: string; objective: number | null }[],
  verdictRows: readonly {
    gate: string;
    kind: string;
    task: string;
    metric: string;
    first: number;
    passed: number;
    judged: number;
  }[],
): ReportSummary {
  const id = campaign.campaignId;
  const objective = cfg.objective.map((t) => ({
    task: t.task,
    metric: t.metric ?? cfg.ownMetrics[t.task]!,
    weight: t.weight,
  }));
  const scoresOf = (candidateId: number) => recordedScoresOf(store, candidateId);
  const order = ['base', ...cfg.models.map((m) => m.name), ...cfg.references.map((r) => r.name)];
  const rows: ReportRow[] = [];
  const baselines = store.listBaselineCandidateIds(id).map((candidateId) => store.getCandidate(candidateId));
  for (const kind of ['source', 'reference'] as const) {
    const list = baselines
      .filter((c) => c.kind === kind)
      .sort((a, b) => order.indexOf(a.label ?? '') - order.indexOf(b.label ?? ''));
    for (const c of list)
      rows.push({
        kind,
        label: c.label ?? `#${c.ordinal}`,
        ordinal: c.ordinal ?? null,
        objective: c.objective,
        scores: scoresOf(c.candidateId),
      });
  }
  // the recorded final pick, else best kept: highest fit objective, earliest ordinal on ties (report.ts's pickedCandidate)
  const pick = store.finalPick(id);
  const picked = pick ? store.getCandidate(pick.candidateId) : undefined;
  let best: { ordinal: number; objective: number } | undefined;
  if (picked) best = { ordinal: picked.ordinal ?? 0, objective: picked.objective ?? -Infinity };
  else
    for (const c of all)
      if (c.status === 'kept' && c.objective !== null && (!best || c.objective > best.objective))
        best = { ordinal: c.ordinal, objective: c.objective };
  const bestRecord = best ? (picked ?? store.findCandidateByOrdinal(id, best.ordinal)!) : undefined;
  if (best && bestRecord) {
    rows.push({
      ...pickRow(bestRecord, pick?.rule ?? 'fit'),
      objective: bestRecord.objective,
      scores: scoresOf(bestRecord.candidateId),
    });
  }
  const rivals = rows.filter((r) => r.kind !== 'best' && r.label !== rows.find((x) => x.kind === 'best')?.reference);
  let bestRival: { label: string; value: number } | undefined;
  for (const r of rivals)
    if (r.objective !== null && Number.isFinite(r.objective) && (!bestRival || r.objective > bestRival.value))
      bestRival = { label: r.label, value: r.objective };
  // gate pass rates over the whole campaign, in the order the gates were judged (the text report's order)
  const byGate = new Map<
    string,
    { gate: string; kind: string; task: string; metric: string; passed: number; judged: number; first: number }
  >();
  for (const r of verdictRows) {
    const g = byGate.get(r.gate);
    if (!g)
      byGate.set(r.gate, {
        gate: r.gate,
        kind: r.kind,
        task: r.task,
        metric: r.metric,
        passed: r.passed,
        judged: r.judged,
        first: r.first,
      });
    else {
      g.passed += r.passed;
      g.judged += r.judged;
      g.first = Math.min(g.first, r.first);
    }
  }
  const gates = [...byGate.values()].sort((a, b) => a.first - b.first).map(({ first: _, ...g }) => g);
  const count = (status: string) => all.filter((c) => c.status === status).length;
  return {
    db: dbFile,
    campaign: {
      id,
      name: campaign.name,
      seed: campaign.seed,
      device: campaign.device,
      configHash: campaign.configHash,
      optimizer: cfg.optimizer,
    },
    objective,
    measures: cfg.measures.map((m) => `${m.task}/${m.metric}`),
    counts: {
      evaluated: all.length,
      kept: count('kept'),
      rejected: count('rejected'),
      failed: count('failed'),
      generations: new Set(all.map((c) => c.generation)).size,
    },
    rows,
    gates,
    fitObjective: {
      ...(best ? { best: best.objective } : {}),
      ...(bestRival ? { bestRival } : {}),
      beatsAll: best !== undefined && rivals.every((r) => r.objective === null || best.objective > r.objective),
    },
    conclusion: conclude(rows, objective[0]!.task, cfg.ownMetrics[objective[0]!.task]!),
    pickRule: pick?.rule ?? 'fit',
    ...(bestRecord && pickSentence(store, id, bestRecord) ? { pickNote: pickSentence(store, id, bestRecord)! } : {}),
    ...(bestRecord
      ? {
          testObjective: testObjectiveComparison(
            store,
            id,
            cfg.objective,
            cfg.ownMetrics,
            bestRecord,
            rivalLabels(rows, cfg.references),
          ),
        }
      : {}),
  };
}

/** Genome keys are `<cell>.<model>.<param>` or `<cell>.<param>`; a cell label may itself hold a dot (`layers0-2.mlp`). */
function genomeCells(
  genome: Record<string, number | string>,
  models: readonly string[],
  used: Set<string> | undefined,
): GenomeCell[] {
  const out: GenomeCell[] = [];
  for (const [k, v] of Object.entries(genome)) {
    if (k === 'method' || typeof v !== 'number') continue;
    const parts = k.split('.');
    const param = parts.pop()!;
    if (used && !used.has(param)) continue;
    const maybeModel = parts[parts.length - 1]!;
    const model = parts.length >= 2 && models.includes(maybeModel) ? maybeModel : null;
    if (model !== null) parts.pop();
    out.push({ cell: parts.join('.'), model, param, value: v });
  }
  return out;
}

/** θ of each categorical gene from the saved CMA-ES states: the distribution each generation was asked from. */
function categoricalProbabilities(store: Store, campaignId: number): HtmlReportData['methodProbabilities'][number][] {
  // the states are large (covariance matrix): read the generation list first, then θ of the few shown
  const shown = evenlySpaced(store.listOptimizerStateGenerations(campaignId), MAX_GENERATIONS);
  const out: HtmlReportData['methodProbabilities'][number][] = [];
  for (const { generation, told } of shown) {
    const row = store.categoricalStateAt(campaignId, generation, told);
    if (!row?.theta || !row.categorical) continue;
    const theta = JSON.parse(row.theta) as number[][];
    const genes = JSON.parse(row.categorical) as { name: string; choices: string[] }[];
    genes.forEach((g, i) => {
      if (g.choices.length < 2) return;
      g.choices.forEach((choice, j) => out.push({ generation, gene: g.name, choice, p: theta[i]?.[j] ?? NaN }));
    });
  }
  return out;
}

function campaignFacts(
  store: Store,
  campaign: { campaignId: number; name: string; seed: number; device: string; versionsJson: string; createdAt: string },
  cfg: StoredCampaignConfig,
  all: readonly { createdAt: string; finishedAt: string | null }[],
): { label: string; value: string }[] {
  let versions: Record<string, string> = {};
  try {
    versions = JSON.parse(campaign.versionsJson) as Record<string, string>;
  } catch {
    throw new EvomergeError('report.bad_versions', 'versions_json is not JSON', {
      file: store.path,
      field: 'campaigns.versions_json',
    });
  }
  const baselineFinished = store.baselinesLastFinishedAt(campaign.campaignId);
  const last = all.reduce<string | null>(
    (acc, c) => (c.finishedAt !== null && (acc === null || c.finishedAt > acc) ? c.finishedAt : acc),
    baselineFinished,
  );
  const started = Date.parse(campaign.createdAt);
  const ended = last ? Date.parse(last) : NaN;
  const wallMinutes = (ended - started) / 60000;
  const finished = all.filter((c) => c.finishedAt !== null);
  const firstSearch = all.length
    ? Date.parse(all.reduce((a, c) => (c.createdAt < a ? c.createdAt : a), all[0]!.createdAt))
    : NaN;
  const lastSearch = finished.length
    ? Date.parse(finished.reduce((a, c) => (c.finishedAt! > a ? c.finishedAt! : a), finished[0]!.finishedAt!))
    : NaN;
  const searchMinutes = (lastSearch - firstSearch) / 60000;
  const rate =
    finished.length && searchMinutes > 0
      ? `${(finished.length / searchMinutes).toFixed(1)} candidates/minute (${finished.length} finished over ` +
        `${formatMinutes(searchMinutes)}, pauses between runs included)`
      : '—';
  const genome: NonNullable<StoredCampaignConfig['genome']> = cfg.genome ?? {};
  return [
    { label: 'campaign', value: campaign.name },
    { label: 'database', value: store.path },
    { label: 'started', value: campaign.createdAt },
    { label: 'last candidate finished', value: last ?? '—' },
    { label: 'wall time', value: Number.isFinite(wallMinutes) ? formatMinutes(wallMinutes) : '—' },
    { label: 'rate', value: rate },
    { label: 'seed', value: String(campaign.seed) },
    { label: 'optimizer', value: `${cfg.optimizer}${cfg.populationSize ? `, population ${cfg.populationSize}` : ''}` },
    {
      label: 'genome',
      value: cfg.dataFlow
        ? `data flow over ${cfg.models.map((m) => m.name).join(' (A) and ')} (B): r = ${cfg.dataFlow.repeats}, ` +
          (cfg.dataFlow.scaleModel === 'none'
            ? 'every scale 1'
            : `scales ${cfg.dataFlow.scales.min}…${cfg.dataFlow.scales.max}`)
        : `${genome.layerGroups ?? '?'} layer ` +
          `group(s)${genome.filters?.length ? `, filters ${genome.filters.join(', ')}` : ''}; methods ` +
          `${(genome.methods ?? []).join(', ')}`,
    },
    {
      label: 'models',
      value: [
        `${cfg.baseModel.name} (base): ${cfg.baseModel.path}`,
        ...cfg.models.map((m) => `${m.name}: ${m.path}`),
      ].join('; '),
    },
    { label: 'eval suite', value: `${cfg.suite}${cfg.evalLimit ? ` (first ${cfg.evalLimit} items per file)` : ''}` },
    { label: 'devices', value: campaign.device },
    {
      label: 'versions',
      value: Object.entries(versions)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    },
  ];
}

function formatMinutes(m: number): string {
  if (m < 1) return `${Math.round(m * 60)} s`;
  if (m < 90) return `${Math.floor(m)} min ${Math.round((m % 1) * 60)} s`;
  return `${(m / 60).toFixed(1)} h`;
}
