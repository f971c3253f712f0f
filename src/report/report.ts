// `evomerge report`: what a campaign database says, read-only — sources vs un-optimised merges vs the best
// kept candidate per task on fit and test with standard errors, gate pass rates, the best genome per
// generation, and whether the test gain over the best rival exceeds 2 standard errors of the difference.
import YAML from 'yaml';
import type { Estimate } from '../estimate.ts';
import { EvomergeError } from '../errors.ts';
import { parseCampaignConfig } from '../store/campaign-config.ts';
import { openStore, type Store } from '../store/db.ts';
import type { CandidateRecord, InputFingerprintRecord } from '../store/records.ts';
import { recordedEstimate } from '../store/recorded-score.ts';
import { testObjectiveComparison, type TestObjectiveComparison } from './test-objective.ts';
import { pickSentence } from './pick-sentence.ts';
import { formatParetoFront, paretoFrontReport, type ParetoFrontReport } from './pareto-front.ts';

/** A score as the report shows it (an unknown SE is NaN, `null` in the JSON). */
export type ReportScore = Estimate;

/**
 * The genes a generation's best candidate's method reads: the parameter names of its recorded recipe (the
 * genome codec leaves out the genes a method ignores). The text shows only these; the JSON, keyed by strings
 * only, keeps the whole genome.
 */
export const GENES_READ = Symbol('genes read');

export interface ReportRow {
  readonly kind: 'source' | 'reference' | 'best';
  readonly label: string;
  /** The search candidate's number (`#N`, its ask order; what export --candidate takes); null for sources
   *  and references. Database row ids are not shown: they follow completion order, which threads vary. */
  readonly ordinal: number | null;
  /** Fit objective (what the search maximised). */
  readonly objective: number | null;
  /** `task/metric` → split → score. */
  readonly scores: Record<string, { fit?: ReportScore; test?: ReportScore }>;
  /** The best row of a pick that is a reference merge: that reference's name (its own row is no rival). */
  readonly reference?: string;
}

export interface GenerationBest {
  readonly generation: number;
  readonly ordinal: number;
  readonly status: string;
  readonly objective: number | null;
  readonly genome: Record<string, number | string>;
  readonly [GENES_READ]?: readonly string[];
}

export interface Conclusion {
  readonly task: string;
  readonly metric: string;
  readonly best?: LabelledScore;
  readonly rival?: LabelledScore;
  readonly gain?: number;
  readonly seDiff?: number;
  readonly significant?: boolean;
  readonly sentence: string;
}

/** A model's test score in the conclusion (an unknown SE counts as 0). */
export interface LabelledScore extends Pick<Estimate, 'value' | 'se'> {
  readonly label: string;
}

export interface CampaignReport {
  readonly db: string;
  readonly campaign: { id: number; name: string; seed: number; device: string; configHash: string; optimizer: string };
  readonly objective: readonly { task: string; metric: string; weight: number }[];
  readonly measures: readonly string[];
  readonly counts: { evaluated: number; kept: number; rejected: number; failed: number; generations: number };
  readonly rows: readonly ReportRow[];
  readonly gates: readonly {
    gate: string;
    kind: string;
    task: string;
    metric: string;
    passed: number;
    judged: number;
  }[];
  readonly generations: readonly GenerationBest[];
  /** The fit-objective comparison: best kept candidate against every source and reference. */
  readonly fitObjective: { best?: number; bestRival?: { label: string; value: number }; beatsAll: boolean };
  readonly conclusion: Conclusion;
  /** How the best row was chosen: the recorded final pick's rule ('val': best of the top-k by fit on val), or
   *  'fit' (best kept by fit objective, as campaigns without a recorded pick). */
  readonly pickRule: string;
  /** Never worse than naive: one sentence on the pick against the best reference merge that clears every gate
   *  (absent for a campaign that recorded no such comparison). */
  readonly pickNote?: string;
  /** The objective on the test split for every row, and the pick against each rival with the paired SE. */
  readonly testObjective?: TestObjectiveComparison;
  /** lm-eval tasks: how their fit and test docs and few-shot examples were chosen, as recorded. */
  readonly lmEvalProtocols?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Whether the inputs the campaign read are as it recorded them (null: not checked); `changed` names those
   *  that are not. */
  readonly inputs: {
    readonly recorded: number;
    readonly current: boolean | null;
    readonly changed: readonly { path: string; role: string }[];
  };
  /** Changes accepted on purpose (--accept-changed-inputs), oldest first. */
  readonly inputChanges: readonly { path: string; acceptedAt: string }[];
  /** A data-flow campaign: the winning path, slot by slot. */
  readonly winningPath?: WinningPath;
  /** objective_mode: pareto: the front on fit and which member was picked, by which rule. */
  readonly paretoFront?: ParetoFrontReport;
}

/** The path of a data-flow candidate: step k runs `layer` of `model`, its input hidden state times `scale`. */
export interface WinningPath {
  readonly ordinal: number;
  readonly status: string;
  readonly objective: number | null;
  /** Whether it is the campaign's pick (else the best scored candidate: none was kept). */
  readonly picked: boolean;
  readonly steps: readonly { step: number; model: string; layer: number; scale: number }[];
}

/** A data-flow campaign's winning path: the pick (else, none kept, the best scored candidate); undefined for a
 *  merge campaign. Model folders are named as in the space. */
export function winningPath(
  store: Store,
  campaignId: number,
  models: readonly { name: string; path: string }[],
): WinningPath | undefined {
  const picked = pickedCandidate(store, campaignId)?.candidate;
  const c =
    picked ??
    store
      .listCandidates(campaignId, { kind: 'search' })
      .filter((x) => x.objective !== null && Number.isFinite(x.objective))
      .sort((x, y) => y.objective! - x.objective! || (x.ordinal ?? 0) - (y.ordinal ?? 0))[0];
  if (!c?.recipeYaml) return undefined;
  const doc = YAML.parse(c.recipeYaml) as {
    data_flow?: { models: string[]; path: { model: number; layer: number; scale: number }[] };
  };
  if (!doc.data_flow) return undefined;
  const name = (dir: string) => models.find((m) => m.path === dir)?.name ?? dir;
  return {
    ordinal: c.ordinal ?? 0,
    status: c.status,
    objective: c.objective,
    picked: picked !== undefined,
    steps: doc.data_flow.path.map((s, step) => ({
      step,
      model: name(doc.data_flow!.models[s.model]!),
      layer: s.layer,
      scale: s.scale,
    })),
  };
}

/**
 * Which of a campaign's recorded inputs differ on disk now. The report reads only the database; the caller,
 * who knows how inputs are fingerprinted, says whether they changed.
 */
export type InputsCheck = (
  recorded: readonly InputFingerprintRecord[],
) => readonly { readonly path: string; readonly role: string }[];

/** Builds the report of the (single) campaign in a database, opened read-only. */
export function buildReport(dbFile: string, checkInputs?: InputsCheck): CampaignReport {
  const store = openStore(dbFile, { readonly: true });
  try {
    return reportFromStore(store, dbFile, checkInputs);
  } finally {
    store.close();
  }
}

/** The campaign's final pick as recorded (what export takes as best), else the best kept candidate by fit. */
export function pickedCandidate(
  store: Store,
  campaignId: number,
): { candidate: CandidateRecord; rule: string } | undefined {
  const pick = store.finalPick(campaignId);
  if (pick) return { candidate: store.getCandidate(pick.candidateId), rule: pick.rule };
  const best = bestKeptCandidate(store, campaignId);
  return best && { candidate: best, rule: 'fit' };
}

/** The best kept search candidate: highest fit objective, earliest ordinal on ties. */
export function bestKeptCandidate(store: Store, campaignId: number): CandidateRecord | undefined {
  return store
    .listCandidates(campaignId, { kind: 'search', status: 'kept' })
    .sort((x, y) => (y.objective ?? -Infinity) - (x.objective ?? -Infinity) || (x.ordinal ?? 0) - (y.ordinal ?? 0))[0];
}

export function reportFromStore(store: Store, dbFile: string, checkInputs?: InputsCheck): CampaignReport {
  const campaign = store.listCampaigns()[0];
  if (!campaign) throw new EvomergeError('report.empty', 'the database holds no campaign', { file: dbFile });
  const cfg = parseCampaignConfig(campaign);
  const id = campaign.campaignId;
  const objective = cfg.objective.map((t) => ({
    task: t.task,
    metric: t.metric ?? cfg.ownMetrics[t.task]!,
    weight: t.weight,
  }));
  const measures = cfg.measures.map((m) => `${m.task}/${m.metric}`);

  const scoresOf = (c: CandidateRecord) => recordedScoresOf(store, c.candidateId);
  const rows: ReportRow[] = [];
  // in the space's order (they are scored concurrently, so the ids are not)
  const order = ['base', ...cfg.models.map((m) => m.name), ...cfg.references.map((r) => r.name)];
  for (const kind of ['source', 'reference'] as const) {
    const list = store
      .listCandidates(id, { kind })
      .sort((a, b) => order.indexOf(a.label ?? '') - order.indexOf(b.label ?? ''));
    for (const c of list)
      rows.push({
        kind,
        label: c.label ?? `#${c.ordinal}`,
        ordinal: c.ordinal ?? null,
        objective: c.objective,
        scores: scoresOf(c),
      });
  }
  const picked = pickedCandidate(store, id);
  const best = picked?.candidate;
  if (best) rows.push({ ...pickRow(best, picked.rule), objective: best.objective, scores: scoresOf(best) });

  const search = store.listCandidates(id, { kind: 'search' });
  const count = (status: string) => search.filter((c) => c.status === status).length;
  const generations = [...new Set(search.map((c) => c.generation ?? 0))].sort((a, b) => a - b);

  const verdicts = store.listCampaignVerdicts(id, 'fit');
  const gateNames = [...new Set(verdicts.map((v) => v.gate))];
  const gates = gateNames.map((g) => {
    const vs = verdicts.filter((v) => v.gate === g);
    return {
      gate: g,
      kind: vs[0]!.kind,
      task: vs[0]!.task,
      metric: vs[0]!.metric,
      passed: vs.filter((v) => v.pass).length,
      judged: vs.length,
    };
  });

  // grouped once: a long campaign has thousands of generations
  const byGeneration = new Map<number, CandidateRecord[]>();
  for (const c of search) {
    const list = byGeneration.get(c.generation ?? 0);
    if (list) list.push(c);
    else byGeneration.set(c.generation ?? 0, [c]);
  }
  const genBest: GenerationBest[] = generations.map((g) => {
    const inGen = byGeneration.get(g)!;
    const kept = inGen.filter((c) => c.status === 'kept');
    const pool = kept.length ? kept : inGen;
    const c = pool.sort(
      (x, y) => (y.objective ?? -Infinity) - (x.objective ?? -Infinity) || (x.ordinal ?? 0) - (y.ordinal ?? 0),
    )[0]!;
    return {
      generation: g,
      ordinal: c.ordinal ?? 0,
      status: c.status,
      objective: c.objective,
      genome: c.genomeJson ? (JSON.parse(c.genomeJson) as Record<string, number | string>) : {},
      [GENES_READ]: recipeParameters(c.recipeYaml),
    };
  });

  const rivals = rows.filter((r) => r.kind !== 'best' && r.label !== rows.find((x) => x.kind === 'best')?.reference);
  const rivalBest = rivals.reduce<{ label: string; value: number } | undefined>(
    (acc, r) =>
      r.objective !== null && Number.isFinite(r.objective) && (!acc || r.objective > acc.value)
        ? { label: r.label, value: r.objective }
        : acc,
    undefined,
  );
  const fitObjective = {
    ...(best?.objective != null ? { best: best.objective } : {}),
    ...(rivalBest ? { bestRival: rivalBest } : {}),
    beatsAll: best?.objective != null && rivals.every((r) => r.objective === null || best.objective! > r.objective),
  };

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
    measures,
    counts: {
      evaluated: search.length,
      kept: count('kept'),
      rejected: count('rejected'),
      failed: count('failed'),
      generations: generations.length,
    },
    rows,
    gates,
    generations: genBest,
    fitObjective,
    conclusion: conclude(rows, objective[0]!.task, cfg.ownMetrics[objective[0]!.task]!),
    pickRule: picked?.rule ?? 'fit',
    ...optional('pickNote', pickSentence(store, id, best)),
    ...(best
      ? {
          testObjective: testObjectiveComparison(
            store,
            id,
            cfg.objective,
            cfg.ownMetrics,
            best,
            rivalLabels(rows, cfg.references),
          ),
        }
      : {}),
    ...(cfg.lmEvalProtocols ? { lmEvalProtocols: cfg.lmEvalProtocols } : {}),
    inputs: inputsState(store, id, checkInputs),
    inputChanges: store.listInputChanges(id).map((c) => ({ path: c.path, acceptedAt: c.acceptedAt })),
    ...optional('winningPath', winningPath(store, id, cfg.models)),
    ...optional('paretoFront', paretoFrontReport(store, id, cfg)),
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [k in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [k in K]?: V };
}

/** Whether the campaign's inputs are still those it recorded (a report of changed inputs is not current). */
function inputsState(store: Store, campaignId: number, checkInputs: InputsCheck | undefined): CampaignReport['inputs'] {
  const recorded = store.listInputFingerprints(campaignId);
  if (!checkInputs) return { recorded: recorded.length, current: null, changed: [] };
  const changed = checkInputs(recorded).map((c) => ({ path: c.path, role: c.role }));
  return { recorded: recorded.length, current: changed.length === 0, changed };
}

/** The best row's identity: `val pick #N` / `best kept #N`, or for a reference merge picked over every searched
 *  candidate `reference pick: <name>` (its name kept, so that its own row is not counted as a rival). */
export function pickRow(
  c: Pick<CandidateRecord, 'kind' | 'label' | 'ordinal'>,
  rule: string,
): Pick<ReportRow, 'kind' | 'label' | 'ordinal' | 'reference'> {
  if (c.kind === 'reference')
    return { kind: 'best', label: `reference pick: ${c.label}`, ordinal: null, reference: c.label ?? '' };
  return { kind: 'best', label: `${rule === 'val' ? 'val pick' : 'best kept'} #${c.ordinal}`, ordinal: c.ordinal };
}

/** Sources and references the pick is compared with: of a reference group (several weights), only the
 *  member with the best fit objective — the weight a user would have chosen on fit. */
export function rivalLabels(
  rows: readonly ReportRow[],
  references: readonly { name: string; group?: string }[],
): string[] {
  const out: string[] = [];
  const picked = rows.find((x) => x.kind === 'best')?.reference;
  for (const r of rows) {
    if (r.kind === 'best' || r.label === picked) continue;
    const group = references.find((x) => x.name === r.label)?.group;
    if (group !== undefined) {
      const members = rows.filter((x) => references.find((y) => y.name === x.label)?.group === group);
      const chosen = members.reduce((a, b) => ((b.objective ?? -Infinity) > (a.objective ?? -Infinity) ? b : a));
      if (chosen !== r) continue;
    }
    out.push(r.label);
  }
  return out;
}

/** Test gain of the best kept candidate over the best rival on the objective task's own metric, against
 *  2 standard errors of the difference, SE_diff = sqrt(se₁² + se₂²) (independent samples). */
export function conclude(rows: readonly ReportRow[], task: string, metric: string): Conclusion {
  const key = `${task}/${metric}`;
  const best = rows.find((r) => r.kind === 'best');
  const base = { task, metric };
  if (!best)
    return {
      ...base,
      sentence:
        'No search candidate cleared every gate, so there is no candidate to compare with the sources and the reference merges.',
    };
  const b = best.scores[key]?.test;
  if (!b)
    return {
      ...base,
      sentence:
        `The best kept candidate has no ${task} score on the test split yet (the search did not finish); run ` +
        `the search again to complete it.`,
    };
  const seOrZero = (se: number) => (Number.isNaN(se) ? 0 : se);
  let rival: LabelledScore | undefined;
  for (const r of rows) {
    const s = r.kind === 'best' || r.label === best.reference ? undefined : r.scores[key]?.test;
    if (s && (!rival || s.value > rival.value)) rival = { label: r.label, value: s.value, se: seOrZero(s.se) };
  }
  const bs: LabelledScore = { label: best.label, value: b.value, se: seOrZero(b.se) };
  if (!rival)
    return { ...base, best: bs, sentence: `No source or reference merge has a ${task} test score to compare with.` };
  const gain = bs.value - rival.value;
  const seDiff = Math.sqrt(bs.se ** 2 + rival.se ** 2);
  const significant = gain > 2 * seDiff;
  const f = (v: number) => v.toFixed(3);
  const who =
    best.reference === undefined ? 'the best kept candidate' : `the pick (the reference merge ${best.reference})`;
  const sentence =
    `On the test split, ${who} scores ${task} ${metric} ${f(bs.value)} ± ${f(bs.se)} against ` +
    `${f(rival.value)} ± ${f(rival.se)} for the best rival (${rival.label}): ` +
    `a ${gain >= 0 ? 'gain' : 'loss'} of ${f(Math.abs(gain))}, which is ${significant ? '' : 'not '}larger than 2 ` +
    `standard errors of the difference (2 × ${f(seDiff)} = ${f(2 * seDiff)})` +
    `${significant ? '.' : ', so the gain is not established.'}`;
  return { ...base, best: bs, rival, gain, seDiff, significant, sentence };
}

// ---------------------------------------------------------------------------------------------------------
// Text

/** The report as plain text for a terminal. */
export function formatReport(r: CampaignReport): string {
  const lines: string[] = [];
  const f = (v: number | null | undefined, d = 3) =>
    v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d);
  lines.push(
    `campaign "${r.campaign.name}" (${r.db}): ${r.campaign.optimizer}, seed ${r.campaign.seed}, ${r.campaign.device}`,
  );
  lines.push(
    `candidates: ${r.counts.evaluated} evaluated over ${r.counts.generations} generation(s): ${r.counts.kept} kept, ` +
      `${r.counts.rejected} rejected, ${r.counts.failed} failed`,
  );
  lines.push(
    `objective (fit, maximised): ${r.objective.map((t) => `${t.weight} × ${t.task}/${t.metric}`).join(' + ')}`,
  );
  for (const [task, p] of Object.entries(r.lmEvalProtocols ?? {})) {
    lines.push(
      `lm-eval task ${task} (${p.task_file}): fit = ${p.fit}; test = ${p.test}; few-shot: ${p.fewshot}; chat template: ${p.chat_template}`,
    );
  }
  lines.push('');
  const cell = (s?: ReportScore) => (s ? `${f(s.value)} ± ${f(s.se)}` : '—');
  // one block per measured task/metric: the models in rows, fit and test side by side
  lines.push(
    ...table(
      ['model', 'fit objective'],
      r.rows.map((row) => [row.label, f(row.objective, 4)]),
    ),
  );
  for (const m of r.measures) {
    lines.push('');
    lines.push(
      ...table(
        [m, 'fit', 'test'],
        r.rows.map((row) => [row.label, cell(row.scores[m]?.fit), cell(row.scores[m]?.test)]),
      ),
    );
  }
  lines.push('');
  if (r.pickNote) lines.push(r.pickNote);
  if (r.fitObjective.best !== undefined) {
    const riv = r.fitObjective.bestRival;
    lines.push(
      `fit objective: ${r.rows.some((x) => x.reference !== undefined) ? 'the pick' : 'best kept'} ${f(r.fitObjective.best, 4)}` +
        `${riv ? ` vs best source/reference ${f(riv.value, 4)} (${riv.label})` : ''}: ` +
        `${r.fitObjective.beatsAll ? 'beats every source and reference merge' : 'does NOT beat every source and reference merge'}` +
        `.`,
    );
  }
  if (r.gates.length) {
    lines.push('gate pass rates (fit): ' + r.gates.map((g) => `${g.gate} ${g.passed}/${g.judged}`).join(', '));
  }
  lines.push('');
  lines.push(
    r.winningPath
      ? 'best genome per generation (the best kept one if any; its path, model.layer×scale per step):'
      : 'best genome per generation (the best kept one if any; per cell, each parameter the method reads, one value per model):',
  );
  for (const g of r.generations) {
    lines.push(
      `  gen ${String(g.generation).padStart(2)}  #${String(g.ordinal).padEnd(4)} ${g.status.padEnd(8)} ` +
        `${f(g.objective, 4).padStart(8)}  ${compactGenome(g.genome, g[GENES_READ])}`,
    );
  }
  if (r.winningPath) {
    const w = r.winningPath;
    lines.push('');
    lines.push(
      `winning path: #${w.ordinal} (${w.picked ? 'the pick' : `${w.status}, the best scored: none was kept`}, fit ` +
        `objective ${f(w.objective, 4)}), ${w.steps.length} layers, slot by slot (the input hidden state of each ` +
        `layer times its scale):`,
    );
    lines.push(
      ...table(
        ['step', 'model', 'layer', 'scale'],
        w.steps.map((s) => [String(s.step), s.model, String(s.layer), s.scale.toFixed(4)]),
      ).map((l) => `  ${l}`),
    );
  }
  if (r.paretoFront) lines.push('', ...formatParetoFront(r.paretoFront));
  if (r.testObjective) {
    lines.push('');
    lines.push(...r.testObjective.lines);
  }
  lines.push('');
  if (r.inputs.current === false) {
    lines.push(
      `not current: ${r.inputs.changed.map((c) => `${c.path} changed`).join('; ')} since the campaign recorded ` +
        `${r.inputs.changed.length > 1 ? 'them' : 'it'}; these results are of the inputs as they were.`,
    );
  } else if (r.inputs.recorded === 0) lines.push('(this campaign recorded no input fingerprints: it predates them)');
  for (const c of r.inputChanges)
    lines.push(
      `accepted change of ${c.path} at ${c.acceptedAt} (--accept-changed-inputs): results before it were made with the earlier file`,
    );
  // the verdict closes the report
  lines.push(r.conclusion.sentence);
  return lines.join('\n') + '\n';
}

/** The parameter names a recorded recipe sets: the genes its method reads (the codec leaves out the rest). */
export function recipeParameters(recipeYaml: string | null): string[] {
  if (!recipeYaml) return [];
  const doc = YAML.parse(recipeYaml) as {
    models?: { parameters?: Record<string, unknown> }[];
    parameters?: Record<string, unknown>;
  };
  const names = new Set<string>(Object.keys(doc.parameters ?? {}));
  for (const m of doc.models ?? []) for (const k of Object.keys(m.parameters ?? {})) names.add(k);
  return [...names];
}

/** `method  cell: weight a,b density c,d  …` with only the genes the method reads (all when not known). */
function compactGenome(genome: Record<string, number | string>, read: readonly string[] | undefined): string {
  // a data-flow genome is its path, already in words
  if (typeof genome.path === 'string') return `${genome.layers} layers: ${genome.path}`;
  const method = String(genome.method ?? '');
  const cells = new Map<string, Map<string, number[]>>();
  for (const [k, v] of Object.entries(genome)) {
    if (k === 'method' || typeof v !== 'number') continue;
    const parts = k.split('.');
    const param = parts[parts.length - 1]!;
    if (read && !read.includes(param)) continue;
    const cell = parts[0]!;
    const byParam = cells.get(cell) ?? new Map<string, number[]>();
    byParam.set(param, [...(byParam.get(param) ?? []), v]);
    cells.set(cell, byParam);
  }
  const body = [...cells].map(
    ([cell, ps]) => `${cell}: ${[...ps].map(([p, vs]) => `${p} ${vs.map((x) => x.toFixed(2)).join(',')}`).join(' ')}`,
  );
  return [method, ...body].join('  ');
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)];
}

/** A candidate's recorded fit and test scores by `task/metric`: the rows of both reports. */
export function recordedScoresOf(store: Store, candidateId: number): ReportRow['scores'] {
  const out: ReportRow['scores'] = {};
  for (const s of store.listScores(candidateId))
    (out[`${s.task}/${s.metric}`] ??= {})[s.split as 'fit' | 'test'] = recordedEstimate(s);
  return out;
}
