// `evomerge export`: one recorded candidate as a release — every gate re-checked on the TEST split (refused,
// naming the gate, unless forced), then the merged checkpoint, its mergekit recipe and its scores in one folder.
import path from 'node:path';
import YAML from 'yaml';
import { EvomergeError } from '../errors.ts';
import { parseSuiteFile, type Suite } from '../eval/suite.ts';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import type { MergeKernel } from '../kernel/kernel.ts';
import { isCheckpointOutputFile } from '../checkpoint/model-dir.ts';
import { checkOutputAvoidsInputs, checkOutputReplaceable, type InputPath } from '../checkpoint/paths.ts';
import { mergeRecipeToDir, recipeInputs } from '../merge/engine.ts';
import { parseRecipe, recipeToYaml } from '../recipe/parse.ts';
import { parseCampaignConfig } from '../store/campaign-config.ts';
import { openStore, type Store } from '../store/db.ts';
import type { CandidateRecord, NewGateVerdict } from '../store/records.ts';
import { pickedCandidate } from '../report/report.ts';
import {
  campaignInputs,
  changedInputs,
  inputsChangedError,
  verifyCampaignInputs,
} from '../search/campaign/fingerprint.ts';
import { isDataFlowDoc, type RecipeDoc } from '../search/space/recipe-doc.ts';
import type { Measure } from '../search/space/measures.ts';
import { recordedScores, recordedSourceScores } from '../search/campaign/score-records.ts';
import { Scorer } from '../search/scoring/scorer.ts';
import type { SearchSpace } from '../search/space/space.ts';
import { missingOnTestSplit, scoreOnTestSplit, type TestSplitJob } from '../search/campaign/test-split.ts';
import { judgeGates } from '../search/campaign/verdicts.ts';
import { parseDataFlowDoc, type DataFlowPath } from '../search/space/data-flow.ts';
import { writeDataFlowExport } from './data-flow-export.ts';
import type { Recipe } from '../recipe/recipe.ts';

export interface ExportOptions {
  readonly db: string;
  /**
   * `best` (the campaign's final pick, else the best kept candidate) or a candidate's number as the report shows it
   * (`#N`, its ordinal).
   */
  readonly candidate: string;
  readonly outDir: string;
  readonly force: boolean;
  readonly kernel: () => Promise<MergeKernel>;
  readonly ep?: ExecutionProvider;
  /** Export although an input changed since the campaign recorded it (the change is then recorded). */
  readonly acceptChangedInputs?: boolean;
  /** One-line notices (a forced export past a failed gate). */
  readonly log?: (line: string) => void;
}

export interface ExportResult {
  /** The search candidate's number; null for a reference merge (the final pick when no searched candidate beat it). */
  readonly ordinal: number | null;
  /** `candidate #N`, or `reference merge <name>`. */
  readonly what: string;
  readonly outDir: string;
  readonly verdicts: readonly NewGateVerdict[];
  readonly forced: boolean;
  /** What was written beside the checkpoint. */
  readonly files: readonly string[];
}

/** The space a campaign was run with, as stored in its database (absolute paths). */
function storedSpace(
  store: Store,
  db: string,
): { space: SearchSpace; suite: Suite; measures: Measure[]; campaignId: number } {
  const campaign = store.listCampaigns()[0];
  if (!campaign) throw new EvomergeError('export.empty', 'the database holds no campaign', { file: db });
  const cfg = parseCampaignConfig(campaign);
  // the whole space as campaign-setup.ts wrote it, less budget, workers and file: the store names only the fields
  // it reads back (it imports nothing from search), the rest is taken as written
  const space = { ...cfg, file: db, budget: {}, workers: 1 } as unknown as SearchSpace;
  return { space, suite: parseSuiteFile(space.suite), measures: cfg.measures, campaignId: campaign.campaignId };
}

function findCandidate(store: Store, campaignId: number, which: string, db: string): CandidateRecord {
  if (which === 'best') {
    const best = pickedCandidate(store, campaignId)?.candidate;
    if (!best)
      throw new EvomergeError(
        'export.no_kept',
        'no candidate cleared every gate on the fit split; name one with --candidate N (and --force)',
        { file: db, field: '--candidate best' },
      );
    return best;
  }
  if (!/^#?\d+$/.test(which))
    throw new EvomergeError(
      'cli.bad_option',
      `"${which}" is not a candidate; expected best or a number as the report shows it (#N)`,
      { field: '--candidate' },
      2,
    );
  const c = store.findCandidateByOrdinal(campaignId, Number(which.replace('#', '')));
  if (!c)
    throw new EvomergeError('export.no_candidate', `no search candidate #${which.replace('#', '')}`, {
      file: db,
      field: '--candidate',
    });
  return c;
}

export async function exportCandidate(options: ExportOptions): Promise<ExportResult> {
  const { db } = options;
  // Read and check everything first (read-only); the database is written only to add missing test scores.
  let store = openStore(db, { readonly: true });
  try {
    const ctx = storedSpace(store, db);
    const cand = findCandidate(store, ctx.campaignId, options.candidate, db);
    // a reference merge is the final pick when no searched candidate beat it (search/campaign/selection.ts)
    const name = cand.kind === 'reference' ? `reference merge ${cand.label}` : `candidate #${cand.ordinal}`;
    if (cand.status === 'failed')
      throw new EvomergeError(
        'export.failed_candidate',
        `${name} failed (${cand.errorCode}: ${cand.errorMessage}); there is nothing to export`,
        { file: db, field: '--candidate' },
      );
    const doc = YAML.parse(cand.recipeYaml!) as RecipeDoc;
    // a data-flow candidate is a path through its models' layers, not a mergekit recipe
    const what = `${db} ${name}`;
    const flow: DataFlowPath | undefined = isDataFlowDoc(doc) ? parseDataFlowDoc(doc, what) : undefined;
    const recipe: Recipe | undefined = flow
      ? undefined
      : parseRecipe(doc, { file: what, baseDir: path.dirname(path.resolve(db)) });
    // The output is judged before anything is scored or written: never an input, never a full folder unforced.
    const modelInputs = flow
      ? flow.models.map((m, i) => ({ path: m, role: `data-flow model ${i === 0 ? 'A' : 'B'}` }))
      : recipeInputs(recipe!);
    const inputs = [...modelInputs, ...exportInputs(ctx, db)];
    checkOutputAvoidsInputs(options.outDir, inputs);
    checkOutputReplaceable(options.outDir, { force: options.force, ours: isCheckpointOutputFile });
    // A re-merge from changed checkpoints, or test scores on changed items, would not be what the campaign chose.
    const inputsNow = campaignInputs(ctx.space, ctx.suite);
    const changes = changedInputs(store.listInputFingerprints(ctx.campaignId), inputsNow);
    if (changes.length) {
      if (!options.acceptChangedInputs) throw inputsChangedError(changes, 'exporting');
      store.close();
      store = openStore(db);
      verifyCampaignInputs(store, ctx.campaignId, inputsNow, {
        accept: true,
        what: 'exporting',
        ...(options.log ? { log: options.log } : {}),
      });
    }
    // The gates' test-split baselines (the sources) and the candidate itself, scored now where missing.
    const sourceDirs = new Map([ctx.space.baseModel, ...ctx.space.models].map((m) => [m.name, m.path]));
    const jobs: TestSplitJob[] = [
      ...store
        .listCandidates(ctx.campaignId, { kind: 'source' })
        .map((c) => ({ candidate: c, dir: sourceDirs.get(c.label!)! })),
      { candidate: cand },
    ];
    const missing = missingOnTestSplit(store, jobs);

    const kernel = await options.kernel();
    try {
      if (missing.length && store.readonly) {
        store.close();
        store = openStore(db);
      }
      if (missing.length) {
        const scorer = await Scorer.create({
          suite: ctx.suite,
          graph: ctx.space.graph,
          baseModelDir: ctx.space.baseModel.path,
          kernel,
          ep: options.ep ?? 'cpu',
          workers: 1,
          limit: ctx.space.evalLimit,
          baseDir: path.dirname(path.resolve(db)),
        });
        try {
          await scoreOnTestSplit(store, scorer, ctx.measures, missing, 1);
        } finally {
          await scorer.close();
        }
      }
      const test = recordedScores(store, cand.candidateId, 'test');
      const fit = recordedScores(store, cand.candidateId, 'fit');
      const verdicts = judgeGates(
        ctx.space,
        ctx.suite,
        test,
        recordedSourceScores(store, ctx.campaignId, 'test'),
        'test',
      );
      store.close();
      const failed = verdicts.filter((v) => !v.pass);
      if (failed.length && !options.force) {
        const v = failed[0]!;
        throw new EvomergeError(
          'export.gate_failed',
          `gate "${v.gate}" fails on the test split: ${v.task}/${v.metric} ${fmt(v.value)} < ${fmt(v.threshold)}` +
            `${failed.length > 1 ? ` (and ${failed.length - 1} more gate(s))` : ''}; nothing exported (--force ` +
            `exports anyway)`,
          { file: db, field: name },
        );
      }
      if (failed.length)
        options.log?.(
          `exporting ${name} although ${failed.map((v) => `"${v.gate}"`).join(', ')} fail(s) on ` +
            `the test split (--force)`,
        );

      const outDir = path.resolve(options.outDir);
      // recipe and scores go into the same temporary folder as the tensors: one rename publishes all of it
      const scores = {
        'scores.json':
          `${JSON.stringify(
            {
              candidate: cand.ordinal,
              ...(cand.kind === 'reference' ? { reference: cand.label } : {}),
              generation: cand.generation,
              status_on_fit: cand.status,
              objective_fit: cand.objective,
              genome: JSON.parse(cand.genomeJson ?? '{}'),
              fit,
              test,
              test_gates: verdicts,
              forced: failed.length > 0,
            },
            null,
            2,
          )}` + `\n`,
      };
      if (flow) {
        writeDataFlowExport(flow, {
          outDir: options.outDir,
          force: options.force,
          inputs,
          extraFiles: scores,
          note: `evomerge export of campaign ${name}`,
        });
        const files = [
          'data_flow.yaml',
          'model.onnx',
          ...(flow.path.every((p) => p.scale === 1) ? ['recipe.yaml'] : []),
        ];
        return {
          ordinal: cand.ordinal,
          what: name,
          outDir,
          verdicts,
          forced: failed.length > 0,
          files: [...files, 'scores.json'],
        };
      }
      const extraFiles = {
        'recipe.yaml':
          `# evomerge export of campaign ${name}; reproduce with: evomerge merge ` +
          `recipe.yaml -o <dir>\n${recipeToYaml(recipe!, outDir)}`,
        ...scores,
      };
      await mergeRecipeToDir(recipe!, {
        outDir: options.outDir,
        shardSizeBytes: 5e9,
        kernel,
        force: options.force,
        inputs,
        extraFiles,
      });
      return {
        ordinal: cand.ordinal,
        what: name,
        outDir,
        verdicts,
        forced: failed.length > 0,
        files: ['recipe.yaml', 'scores.json'],
      };
    } finally {
      await kernel.close();
    }
  } finally {
    store.close();
  }
}

/** What an export reads besides the candidate's models: the database, the suite, its graph, eval files and tokenizer. */
function exportInputs(ctx: ReturnType<typeof storedSpace>, db: string): InputPath[] {
  const graph = ctx.space.graph ?? ctx.suite.graph;
  const tokenizer = ctx.suite.tokenizer;
  return [
    { path: db, role: 'campaign database' },
    { path: ctx.suite.file, role: 'eval suite' },
    ...(graph && graph !== 'auto' ? [{ path: graph, role: 'graph' }] : []),
    ...(tokenizer !== 'byte' && tokenizer !== 'auto' ? [{ path: tokenizer, role: 'tokenizer' }] : []),
    ...ctx.suite.tasks.flatMap((t) =>
      Object.values(t.files).map((f) => ({ path: f, role: `eval file of task ${t.name}` })),
    ),
    ...[ctx.space.baseModel, ...ctx.space.models].map((m) => ({ path: m.path, role: `campaign source ${m.name}` })),
  ];
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : String(v);
}
