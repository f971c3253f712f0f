// `evomerge export`: one recorded candidate as a release — every gate re-checked on the TEST split (refused,
// naming the gate, unless forced), then the merged checkpoint, its mergekit recipe and its scores in one folder.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { EvomergeError } from '../errors.ts';
import { parseSuiteFile, type Suite } from '../eval/suite.ts';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import type { MergeKernel } from '../kernel/kernel.ts';
import { mergeRecipeToDir } from '../merge/engine.ts';
import { parseRecipe, recipeToYaml } from '../recipe/parse.ts';
import { openStore, type Store } from '../store/db.ts';
import type { CandidateRecord, NewGateVerdict } from '../store/records.ts';
import { fromRecord } from '../search/campaign.ts';
import type { RecipeDoc } from '../search/genome.ts';
import type { Measure, Score } from '../search/measures.ts';
import { Scorer } from '../search/scorer.ts';
import type { SearchSpace } from '../search/space.ts';
import { judgeGates } from '../search/verdicts.ts';
import { pickedCandidate } from './report.ts';

export interface ExportOptions {
  readonly db: string;
  /** `best` (the campaign's final pick, else the best kept candidate) or a candidate's number as the report shows it (`#N`, its ordinal). */
  readonly candidate: string;
  readonly outDir: string;
  readonly force: boolean;
  readonly kernel: () => Promise<MergeKernel>;
  readonly ep?: ExecutionProvider;
  /** One-line notices (a forced export past a failed gate). */
  readonly log?: (line: string) => void;
}

export interface ExportResult {
  readonly ordinal: number;
  readonly outDir: string;
  readonly verdicts: readonly NewGateVerdict[];
  readonly forced: boolean;
}

/** The space a campaign was run with, as stored in its database (absolute paths). */
function storedSpace(store: Store, db: string): { space: SearchSpace; suite: Suite; measures: Measure[]; campaignId: number } {
  const campaign = store.listCampaigns()[0];
  if (!campaign) throw new EvomergeError('export.empty', 'the database holds no campaign', { file: db });
  const cfg = JSON.parse(campaign.configJson) as SearchSpace & { measures: Measure[] };
  const space: SearchSpace = { ...cfg, file: db, budget: {}, workers: 1 };
  return { space, suite: parseSuiteFile(space.suite), measures: cfg.measures, campaignId: campaign.campaignId };
}

function findCandidate(store: Store, campaignId: number, which: string, db: string): CandidateRecord {
  if (which === 'best') {
    const best = pickedCandidate(store, campaignId)?.candidate;
    if (!best) throw new EvomergeError('export.no_kept', 'no candidate cleared every gate on the fit split; name one with --candidate N (and --force)', { file: db, field: '--candidate best' });
    return best;
  }
  if (!/^#?\d+$/.test(which)) throw new EvomergeError('cli.bad_option', `"${which}" is not a candidate; expected best or a number as the report shows it (#N)`, { field: '--candidate' }, 2);
  const c = store.findCandidateByOrdinal(campaignId, Number(which.replace('#', '')));
  if (!c) throw new EvomergeError('export.no_candidate', `no search candidate #${which.replace('#', '')}`, { file: db, field: '--candidate' });
  return c;
}

export async function exportCandidate(options: ExportOptions): Promise<ExportResult> {
  const { db } = options;
  // Read and check everything first (read-only); the database is written only to add test scores.
  let ro = openStore(db, { readonly: true });
  let ctx: ReturnType<typeof storedSpace>;
  let cand: CandidateRecord;
  try {
    ctx = storedSpace(ro, db);
    cand = findCandidate(ro, ctx.campaignId, options.candidate, db);
    if (cand.status === 'failed') throw new EvomergeError('export.failed_candidate', `candidate #${cand.ordinal} failed (${cand.errorCode}: ${cand.errorMessage}); there is nothing to export`, { file: db, field: '--candidate' });
  } finally {
    ro.close();
  }
  const doc = YAML.parse(cand.recipeYaml!) as RecipeDoc;
  const recipe = parseRecipe(doc, { file: `${db} candidate #${cand.ordinal}`, baseDir: path.dirname(path.resolve(db)) });

  const kernel = await options.kernel();
  try {
    // Test scores of the candidate and of the sources (the gates' baselines), scored now if missing.
    const testScores = await ensureTestScores(db, ctx, cand, kernel, options.ep ?? 'cpu');
    const verdicts = judgeGates(ctx.space, ctx.suite, testScores.candidate, testScores.sources, 'test');
    const failed = verdicts.filter((v) => !v.pass);
    if (failed.length && !options.force) {
      const v = failed[0]!;
      throw new EvomergeError(
        'export.gate_failed',
        `gate "${v.gate}" fails on the test split: ${v.task}/${v.metric} ${fmt(v.value)} < ${fmt(v.threshold)}${failed.length > 1 ? ` (and ${failed.length - 1} more gate(s))` : ''}; nothing exported (--force exports anyway)`,
        { file: db, field: `candidate #${cand.ordinal}` },
      );
    }
    if (failed.length) options.log?.(`exporting candidate #${cand.ordinal} although ${failed.map((v) => `"${v.gate}"`).join(', ')} fail(s) on the test split (--force)`);

    await mergeRecipeToDir(recipe, { outDir: options.outDir, shardSizeBytes: 5e9, kernel });
    const outDir = path.resolve(options.outDir);
    writeFileSync(path.join(outDir, 'recipe.yaml'), `# evomerge export of campaign candidate #${cand.ordinal}; reproduce with: evomerge merge recipe.yaml -o <dir>\n${recipeToYaml(recipe, outDir)}`);
    const fit = readScores(db, cand.candidateId, 'fit');
    writeFileSync(
      path.join(outDir, 'scores.json'),
      `${JSON.stringify({ candidate: cand.ordinal, generation: cand.generation, status_on_fit: cand.status, objective_fit: cand.objective, genome: JSON.parse(cand.genomeJson ?? '{}'), fit, test: testScores.candidate, test_gates: verdicts, forced: failed.length > 0 }, null, 2)}\n`,
    );
    return { ordinal: cand.ordinal!, outDir, verdicts, forced: failed.length > 0 };
  } finally {
    await kernel.close();
  }
}

function readScores(db: string, candidateId: number, split: string): Score[] {
  const s = openStore(db, { readonly: true });
  try {
    return s.listScores(candidateId, split).map(fromRecord);
  } finally {
    s.close();
  }
}

/** Scores on the test split what is missing (the candidate, the sources) and records it in the database. */
async function ensureTestScores(db: string, ctx: ReturnType<typeof storedSpace>, cand: CandidateRecord, kernel: MergeKernel, ep: ExecutionProvider) {
  const store = openStore(db, { readonly: true });
  const missing: { c: CandidateRecord; dir?: string }[] = [];
  try {
    const sources = store.listCandidates(ctx.campaignId, { kind: 'source' });
    for (const s of sources) if (!store.listScores(s.candidateId, 'test').length) missing.push({ c: s, dir: [ctx.space.baseModel, ...ctx.space.models].find((m) => m.name === s.label)!.path });
    if (!store.listScores(cand.candidateId, 'test').length) missing.push({ c: cand });
  } finally {
    store.close();
  }
  if (missing.length) {
    const scorer = await Scorer.create({ suite: ctx.suite, graph: ctx.space.graph, baseModelDir: ctx.space.baseModel.path, kernel, ep, workers: 1, limit: ctx.space.evalLimit, baseDir: path.dirname(path.resolve(db)) });
    try {
      const rw = openStore(db);
      try {
        for (const m of missing) {
          const r = m.dir ? await scorer.scoreModelDir(m.dir, 'test', ctx.measures) : await scorer.scoreRecipe(YAML.parse(m.c.recipeYaml!) as RecipeDoc, 'test', ctx.measures);
          rw.addScores(m.c.candidateId, r.value.map((s) => ({ task: s.task, metric: s.metric, split: s.split, value: s.value, se: Number.isFinite(s.se) ? s.se : null, n: s.n })));
        }
      } finally {
        rw.close();
      }
    } finally {
      await scorer.close();
    }
  }
  const s2 = openStore(db, { readonly: true });
  try {
    const sources = new Map<string, Score[]>();
    for (const s of s2.listCandidates(ctx.campaignId, { kind: 'source' })) sources.set(s.label!, s2.listScores(s.candidateId, 'test').map(fromRecord));
    return { candidate: s2.listScores(cand.candidateId, 'test').map(fromRecord), sources };
  } finally {
    s2.close();
  }
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : String(v);
}
