// The campaign loop: score the sources and the reference merges once, then ask → decode → hash →
// merge in memory → score on the fit split → objective and gates → one transaction per candidate → tell,
// with the optimiser state saved in the transaction that closes a generation. Resumable at any instant.
import { createHash } from 'node:crypto';
import path from 'node:path';
import pLimit from 'p-limit';
import YAML from 'yaml';
import { checkOutputAvoidsInputs } from '../../checkpoint/paths.ts';
import { EvomergeError } from '../../errors.ts';
import type { ExecutionProvider } from '../../eval/onnx-session.ts';
import type { Split } from '../../eval/split.ts';
import type { MergeKernel } from '../../kernel/kernel.ts';
import { openStore, type Store } from '../../store/db.ts';
import { acquireDatabaseLock } from '../../store/lock.ts';
import type { CandidateRecord, NewGateVerdict } from '../../store/records.ts';
import { createOptimizer, restoreOptimizer } from '../optimizers/factory.ts';
import type { Optimizer, OptimizerState, Solution } from '../optimizers/optimizer.ts';
import { prepareCampaign, type CampaignSetup, type RunOverrides } from './campaign-setup.ts';
import { campaignInputs, verifyCampaignInputs } from './fingerprint.ts';
import { checkDatabaseIsOurs, createCampaign } from './campaign-record.ts';
import { contentHash, referenceRecipe, type SourceNames } from '../space/genome.ts';
import type { RecipeDoc } from '../space/recipe-doc.ts';
import { judgeGates, type SourceScores } from './verdicts.ts';
import { objectiveValue, ownMetric, type Score } from '../space/measures.ts';
import { objectiveEstimate, type ObjectiveValue } from '../../gates/objective.ts';
import { rankValue } from './selection.ts';
import { evaluateByHalving, itemsScored } from '../scoring/fidelity-loop.ts';
import { selectFinalPick } from './final-pick.ts';
import { registryMethodParameters } from '../space/method-parameters.ts';
import { isScorerFault, type CandidateScorer } from '../scoring/scorer.ts';
import { embeddedScorer, type ScorerFactory } from '../scoring/scorer-factory.ts';
import { fromRecord, recordedSourceScores } from './score-records.ts';
import { missingOnTestSplit, scoreOnTestSplit, testItemValues } from './test-split.ts';
import type { Ask, NewTell, RunContext } from './run-context.ts';
import { fitItemValues, recordedTellDetails } from './tell-details.ts';
import { spaceOptimizerOptions } from '../space/seeds.ts';
import { paretoObjectives, paretoTeller } from './pareto.ts';

export interface CampaignOptions extends RunOverrides {
  readonly spaceFile: string;
  /** Default: runs/<space name>.sqlite in the working folder. */
  readonly db?: string;
  readonly kernel: MergeKernel | (() => Promise<MergeKernel>);
  readonly ep?: ExecutionProvider;
  readonly onProgress?: (p: CampaignProgress) => void;
  /** Aborting stops new candidates; those in flight are finished and recorded. */
  readonly signal?: AbortSignal;
  /** Kept candidates (best fit objective first) scored on the test split at the end. Default 3. */
  readonly testTop?: number;
  /** Replaces the embedded scorer (worker threads in this process), e.g. by one that hands candidates to
   *  workers on other machines; called once the campaign's record exists. */
  readonly scorer?: ScorerFactory;
  /** Candidates handed to the scorer at once. Default: the space's workers. */
  readonly inFlight?: number;
  /** Called with the database path when a generation's candidates are all recorded (e.g. to refresh a report). */
  readonly onGenerationEnd?: (db: string) => void | Promise<void>;
  /** Resume although an input (checkpoint, graph, eval file, tokenizer) changed; the change is recorded. */
  readonly acceptChangedInputs?: boolean;
}

export interface CampaignProgress {
  readonly phase: 'baselines' | 'search' | 'test';
  /** Search candidates evaluated (all runs of this campaign), and the budget. */
  readonly done: number;
  readonly budget: number;
  readonly generation: number;
  /** Best fit objective of a kept candidate, if any. */
  readonly bestKept?: number;
  /** Candidates per minute in this run, and the estimated seconds left. */
  readonly rate?: number;
  readonly etaSeconds?: number;
  readonly message?: string;
  /** Set on the report sent when a generation's candidates are all recorded. */
  readonly generationDone?: boolean;
}

export interface CampaignResult {
  readonly db: string;
  readonly campaignId: number;
  readonly evaluated: number;
  /** Why the loop stopped. */
  readonly stop: 'budget' | 'minutes' | 'exhausted' | 'converged' | 'aborted';
}

/** Consecutive generations that propose nothing new before the search counts as converged. */
const MAX_EMPTY_GENERATIONS = 20;

export function defaultDbPath(setup: CampaignSetup): string {
  return path.join('runs', `${setup.space.name}.sqlite`);
}

/** Runs (or resumes) the campaign of a search-space file. Every input is checked before the database opens. */
export async function runCampaign(options: CampaignOptions): Promise<CampaignResult> {
  const setup = prepareCampaign(options.spaceFile, options);
  const dbFile = options.db ?? defaultDbPath(setup);
  // the database (and its lock, -wal, -shm beside it) is written: never onto or into an input
  const inputsNow = campaignInputs(setup.space, setup.suite);
  checkOutputAvoidsInputs(dbFile, inputsNow, '--db', 'file');
  checkDatabaseIsOurs(dbFile, setup);

  // One writer per database, taken before anything is opened; then the store, the kernel and the scorer,
  // each released in reverse order whatever fails (a live thread would keep the process running).
  const lock = acquireDatabaseLock(dbFile);
  try {
    const store = openStore(dbFile);
    try {
      const note = (message: string) =>
        options.onProgress?.({ phase: 'baselines', done: 0, budget: setup.budget, generation: 0, message });
      note(`campaign database ${path.resolve(dbFile)}`);
      // Scores of different weights or items never meet in one campaign: the inputs are as they were recorded.
      const existing = store.findCampaign({ configHash: setup.configHash });
      if (existing)
        verifyCampaignInputs(store, existing.campaignId, inputsNow, {
          accept: options.acceptChangedInputs === true,
          what: 'resuming',
          log: note,
        });
      const campaignOn = (device: string) => existing ?? createCampaign(store, setup, device, inputsNow);
      if (options.scorer) {
        // scored elsewhere: the factory's scorer is built once the record exists (it checks inputs against it)
        const campaign = campaignOn(`remote workers; eval ${options.ep ?? 'cpu'}`);
        const scorer = await options.scorer({ setup, store, campaignId: campaign.campaignId });
        try {
          return await runSearch(setup, store, campaign.campaignId, scorer, options, dbFile);
        } finally {
          await scorer.close();
        }
      }
      const kernel = typeof options.kernel === 'function' ? await options.kernel() : options.kernel;
      try {
        const scorer = await embeddedScorer(setup, kernel, options.ep ?? 'cpu');
        try {
          const campaign = campaignOn(`${kernel.device}; eval ${options.ep ?? 'cpu'}`);
          return await runSearch(setup, store, campaign.campaignId, scorer, options, dbFile);
        } finally {
          await scorer.close();
        }
      } finally {
        await kernel.close();
      }
    } finally {
      store.close();
    }
  } finally {
    lock.release();
  }
}

async function runSearch(
  setup: CampaignSetup,
  store: Store,
  campaignId: number,
  scorer: CandidateScorer,
  options: CampaignOptions,
  dbFile: string,
): Promise<CampaignResult> {
  const run = new CampaignRun(setup, store, campaignId, scorer, options);
  await run.scoreBaselines('fit');
  const stop = await run.search();
  if (stop !== 'aborted') await selectFinalPick(run.context());
  if (stop !== 'aborted') await run.scoreTestSplit(options.testTop ?? 3);
  return { db: dbFile, campaignId, evaluated: run.evaluatedCount(), stop };
}

/** A content hash for a source model (they are not recipes): its role, name and folder. */
function sourceHash(name: string, dir: string): string {
  return createHash('sha256').update(`source\n${name}\n${dir}`).digest('hex');
}

/** References live beside search candidates; their hash is kept apart so a search may still propose one. */
function referenceHash(doc: RecipeDoc, space: SourceNames): string {
  return createHash('sha256')
    .update(`reference\n${contentHash(doc, space)}`)
    .digest('hex');
}

class CampaignRun {
  private readonly started = performance.now();
  private evaluatedThisRun = 0;
  /** The optimiser reads per-item fit values: keep them in the store (tell-details.ts). */
  private keepItems = false;
  private readonly limit: ReturnType<typeof pLimit>;

  constructor(
    private readonly setup: CampaignSetup,
    private readonly store: Store,
    private readonly campaignId: number,
    private readonly scorer: CandidateScorer,
    private readonly options: CampaignOptions,
  ) {
    this.limit = pLimit(options.inFlight ?? setup.workers);
  }

  context(): RunContext {
    return {
      setup: this.setup,
      store: this.store,
      campaignId: this.campaignId,
      scorer: this.scorer,
      limit: this.limit,
      keepFitItems: this.keepItems,
      ...(this.options.signal ? { signal: this.options.signal } : {}),
      scoreBaselines: (split) => this.scoreBaselines(split),
      baselines: (split) => this.baselinesOn(split),
      estimate: (scores, split, sources) => this.estimate(scores, split, sources),
    };
  }

  private estimate(scores: readonly Score[], split: Split, sources: SourceScores): ObjectiveValue {
    return objectiveEstimate(this.setup.space.objective, (t) => ownMetric(this.setup.suite, t), scores, sources, split);
  }

  /** The value told to the optimiser: the fit objective, or its lower confidence bound (selection.lcb_z). */
  private toldValue(objective: number, scores: readonly Score[], baselines: SourceScores): number {
    const z = this.setup.space.selection?.lcbZ ?? 0;
    if (z === 0 || !Number.isFinite(objective)) return objective;
    return rankValue({ value: objective, se: this.estimate(scores, 'fit', baselines).se }, z);
  }

  /** The items a split scores in this campaign (undefined: every item of the split's file). */
  private itemsFor(split: Split) {
    return split === 'test' ? undefined : this.setup.items?.[split];
  }

  evaluatedCount(): number {
    return this.store.countCandidates(this.campaignId, { kind: 'search' });
  }

  private bestKept(): number | undefined {
    const kept = this.store.listCandidates(this.campaignId, { kind: 'search', status: 'kept' });
    return kept.length ? Math.max(...kept.map((c) => c.objective ?? -Infinity)) : undefined;
  }

  private progress(
    phase: CampaignProgress['phase'],
    generation: number,
    message?: string,
    generationDone = false,
  ): void {
    if (!this.options.onProgress) return;
    const done = this.evaluatedCount();
    const minutes = (performance.now() - this.started) / 60000;
    const rate = this.evaluatedThisRun > 0 && minutes > 0 ? this.evaluatedThisRun / minutes : undefined;
    const left = this.setup.budget - done;
    const etaSeconds = rate && Number.isFinite(left) ? (left / rate) * 60 : undefined;
    this.options.onProgress({
      phase,
      done,
      budget: this.setup.budget,
      generation,
      bestKept: this.bestKept(),
      rate,
      etaSeconds,
      message,
      ...(generationDone ? { generationDone } : {}),
    });
  }

  /** Scores the base, each model and each reference merge on a split, once (kept across resumes). */
  async scoreBaselines(split: Split): Promise<void> {
    const { space, measures } = this.setup;
    const jobs: { kind: 'source' | 'reference'; label: string; hash: string; recipe?: RecipeDoc; dir?: string }[] = [];
    for (const m of [space.baseModel, ...space.models])
      jobs.push({ kind: 'source', label: m.name, hash: sourceHash(m.name, m.path), dir: m.path });
    for (const r of space.references) {
      const doc = referenceRecipe(space, r, registryMethodParameters, space.seed);
      jobs.push({ kind: 'reference', label: r.name, hash: referenceHash(doc, space), recipe: doc });
    }
    const todo = jobs.filter((j) => {
      const c = this.store.findCandidateByHash(this.campaignId, j.hash);
      return !c || !this.store.listScores(c.candidateId, split).length;
    });
    if (todo.length)
      this.progress('baselines', 0, `scoring ${todo.length} source and reference model(s) on the ${split} split`);
    await Promise.all(
      todo.map((j) =>
        this.limit(async () => {
          const items = this.itemsFor(split);
          const r = j.dir
            ? await this.scorer.scoreModelDir(j.dir, split, measures, items)
            : await this.scorer.scoreRecipe(j.recipe!, split, measures, items);
          this.store.transaction(() => {
            let c = this.store.findCandidateByHash(this.campaignId, j.hash);
            if (!c) {
              c = this.store.insertCandidate({
                campaignId: this.campaignId,
                kind: j.kind,
                label: j.label,
                contentHash: j.hash,
                recipeYaml: j.recipe ? YAML.stringify(j.recipe) : null,
              });
              // share terms need every source's fit scores: such objectives are set below, once all are in
              const objective = split === 'fit' ? objectiveValue(space, this.setup.suite, r.value) : null;
              this.store.recordOutcome(c.candidateId, {
                outcome: { status: 'evaluated', objective, mergeMs: r.mergeMs, evalMs: r.evalMs },
                scores: r.value,
              });
            } else {
              this.store.addScores(c.candidateId, r.value);
            }
            if (split === 'test') this.store.addItemValues(testItemValues(c.candidateId, r.value));
          });
        }),
      ),
    );
    if (split === 'fit') this.setBaselineObjectives();
  }

  /** Objectives of sources and references that share terms left unset (NaN) until every source was scored. */
  private setBaselineObjectives(): void {
    const sources = this.fitBaselines();
    for (const kind of ['source', 'reference'] as const) {
      for (const c of this.store.listCandidates(this.campaignId, { kind })) {
        if (c.status !== 'evaluated' || (c.objective !== null && !Number.isNaN(c.objective))) continue;
        const objective = objectiveValue(
          this.setup.space,
          this.setup.suite,
          this.store.listScores(c.candidateId, 'fit').map(fromRecord),
          sources,
        );
        this.store.updateCandidate(c.candidateId, {
          status: 'evaluated',
          objective,
          mergeMs: c.mergeMs,
          evalMs: c.evalMs,
          finishedAt: c.finishedAt,
        });
      }
    }
  }

  private fitBaselines(): Map<string, Score[]> {
    return this.baselinesOn('fit');
  }

  private baselinesOn(split: Split): Map<string, Score[]> {
    return recordedSourceScores(this.store, this.campaignId, split);
  }

  /** The search: generation after generation until the budget, the time limit or an abort. */
  async search(): Promise<CampaignResult['stop']> {
    const { setup, store, campaignId } = this;
    const saved = store.latestOptimizerState(campaignId);
    const baselines: SourceScores = recordedSourceScores(store, campaignId, 'fit');
    const opt: Optimizer = saved
      ? restoreOptimizer(JSON.parse(saved.stateJson) as OptimizerState)
      : createOptimizer(setup.space.optimizer, setup.layout.domain, {
          seed: setup.seed,
          ...(setup.space.populationSize ? { populationSize: setup.space.populationSize } : {}),
          ...(setup.space.gridPoints ? { gridPoints: setup.space.gridPoints } : {}),
          ...(setup.x0 ? { x0: [...setup.x0] } : {}),
          ...spaceOptimizerOptions(setup.space, setup.layout),
          ...(setup.space.pareto ? { multiObjective: paretoObjectives(setup, baselines) } : {}),
        });
    this.keepItems = opt.readsItems === true;
    // Pareto mode: each tell carries the objectives (share terms as the share kept) and the gates' constraints
    // (pareto.ts); otherwise what the store records of the candidate (tell-details.ts)
    const perTask = setup.space.pareto ? paretoTeller(setup, store, campaignId, baselines) : undefined;
    let empty = 0;
    let toldCount = saved?.toldCount ?? 0;
    for (;;) {
      if (this.options.signal?.aborted) return 'aborted';
      const all = store.listCandidates(campaignId, { kind: 'search' });
      if (all.length >= setup.budget) return 'budget';
      if (setup.minutes !== undefined && performance.now() - this.started > setup.minutes * 60000) return 'minutes';
      // budget.items: the val pick's items (top_k candidates) are reserved from the start
      if (
        setup.itemBudget !== undefined &&
        itemsScored(store, campaignId) +
          (setup.items ? setup.items.valPerCandidate * (setup.space.selection?.topK ?? 0) : 0) >=
          setup.itemBudget
      )
        return 'budget';
      if (opt.exhausted) return 'exhausted';
      const g = opt.generation;

      // The generation's asks, regenerated identically on resume (the state was saved before it began).
      const asks: Ask[] = [];
      while (opt.remainingAsks > 0 && !opt.exhausted) {
        const solution = opt.ask();
        const { genome, recipe } = setup.decode(solution.x, solution.c);
        asks.push({ solution, genome, recipe, hash: contentHash(recipe, setup.space) });
      }
      const before = all.filter((c) => (c.generation ?? 0) < g).length;
      const remaining = setup.budget - before;
      // Each distinct recipe new to this generation takes one slot (an ordinal); earlier ones are reused.
      const slots = new Map<string, number>();
      for (const a of asks) {
        const prior = store.findCandidateByHash(campaignId, a.hash);
        if (prior && prior.kind === 'search' && (prior.generation ?? 0) < g) continue;
        if (!slots.has(a.hash)) slots.set(a.hash, slots.size);
      }
      const complete = slots.size <= remaining;
      if (slots.size === 0) empty++;
      else empty = 0;
      if (empty >= MAX_EMPTY_GENERATIONS) return 'converged';

      const results = new Map<string, number>();
      const scored = new Map<string, readonly Score[]>();
      const finish = (hash: string, value: number, scores?: readonly Score[]): NewTell | undefined => {
        results.set(hash, value);
        if (scores) scored.set(hash, scores);
        if (!complete || !asks.every((a) => results.has(a.hash) || this.reusable(a.hash, g, results))) return undefined;
        // beside each value, what the store records of the candidate (per-task fit scores, items, fidelity)
        const tells = asks.map((a) => ({
          solution: a.solution,
          value: results.get(a.hash) ?? this.priorValue(a.hash),
          ...(perTask
            ? perTask(a.hash, scored.get(a.hash))
            : recordedTellDetails(setup, store, campaignId, a.hash, this.keepItems)),
        }));
        opt.tell(tells);
        toldCount += tells.length;
        return { generation: opt.generation, toldCount, stateJson: JSON.stringify(opt.state()) };
      };

      // Candidates of this generation already recorded by an interrupted run: their results, no evaluation.
      const pending: Ask[] = [];
      for (const a of asks) {
        const slot = slots.get(a.hash);
        if (slot === undefined || slot >= remaining || pending.some((p) => p.hash === a.hash) || results.has(a.hash))
          continue;
        const prior = store.findCandidateByHash(campaignId, a.hash);
        if (prior && prior.status !== 'evaluated') results.set(a.hash, this.valueOf(prior, baselines));
        else pending.push(a);
      }
      if (pending.length === 0 && complete) {
        // nothing to evaluate (all reused): close the generation in its own transaction
        const tell = finish('', NaN);
        results.delete('');
        if (tell) store.transaction(() => store.saveOptimizerState(campaignId, tell));
        continue;
      }
      if (setup.space.selection?.halving) {
        // the whole generation's new recipes: promotions are decided among all of them, resumed or not
        const generation = [...slots]
          .filter(([, slot]) => slot < remaining)
          .map(([hash, slot]) => ({ ask: asks.find((a) => a.hash === hash)!, ordinal: before + slot }));
        await evaluateByHalving(
          this.context(),
          generation,
          g,
          baselines,
          finish,
          (a, sc) => this.toldValue(objectiveValue(setup.space, setup.suite, sc, baselines), sc, baselines),
          () => {
            this.evaluatedThisRun++;
            this.progress('search', g);
          },
        );
      } else {
        await Promise.all(
          pending.map((a) =>
            this.limit(async () => {
              if (this.options.signal?.aborted) return;
              if (setup.minutes !== undefined && performance.now() - this.started > setup.minutes * 60000) return;
              await this.evaluate(a, g, before + slots.get(a.hash)!, baselines, finish);
              this.progress('search', g);
            }),
          ),
        );
      }
      this.progress('search', g, undefined, true);
      await this.options.onGenerationEnd?.(store.path);
      if (!complete) return 'budget';
    }
  }

  /** A hash whose value is known without evaluation: recorded in an earlier generation. */
  private reusable(hash: string, g: number, results: Map<string, number>): boolean {
    if (results.has(hash)) return true;
    const prior = this.store.findCandidateByHash(this.campaignId, hash);
    return prior !== undefined && prior.kind === 'search' && (prior.generation ?? 0) < g;
  }

  private priorValue(hash: string): number {
    const prior = this.store.findCandidateByHash(this.campaignId, hash);
    return prior ? this.valueOf(prior, this.fitBaselines()) : -Infinity;
  }

  /** A recorded candidate's value for the optimiser (its LCB when ranking uses one). */
  private valueOf(c: CandidateRecord, baselines: SourceScores): number {
    const v = candidateValue(c);
    if (!Number.isFinite(v) || !this.setup.space.selection?.lcbZ) return v;
    return this.toldValue(v, this.store.listScores(c.candidateId, 'fit').map(fromRecord), baselines);
  }

  /** Merge, score, judge and record one candidate in one transaction (with the state if it closes the generation). */
  private async evaluate(
    a: Ask,
    generation: number,
    ordinal: number,
    baselines: SourceScores,
    finish: (hash: string, value: number, scores?: readonly Score[]) => NewTell | undefined,
  ): Promise<void> {
    const { setup, store, campaignId } = this;
    let scores: Score[] = [];
    let mergeMs: number | null = null;
    let evalMs: number | null = null;
    let error: { code: string; message: string } | undefined;
    try {
      const r = await this.scorer.scoreRecipe(a.recipe, 'fit', setup.measures, this.itemsFor('fit'));
      scores = r.value;
      mergeMs = r.mergeMs;
      evalMs = r.evalMs;
      const bad = scores.find((s) => !Number.isFinite(s.value));
      if (bad) error = { code: 'search.non_finite_score', message: `${bad.task}/${bad.metric} is ${bad.value}` };
    } catch (err) {
      // A candidate that cannot be merged or scored is recorded as failed; the search goes on.
      // A failure of the scoring machinery itself (a worker refusing its inputs) is not the candidate's:
      // recording it would put a result in the record that a healthy run would not have.
      if (err instanceof EvomergeError && (err.code === 'internal' || isScorerFault(err))) throw err;
      error = {
        code: err instanceof EvomergeError ? err.code : 'search.candidate_failed',
        message: (err as Error).message ?? String(err),
      };
    }
    const objective = error ? -Infinity : objectiveValue(setup.space, setup.suite, scores, baselines);
    const verdicts: NewGateVerdict[] = error ? [] : judgeGates(setup.space, setup.suite, scores, baselines, 'fit');
    const status = error ? 'failed' : verdicts.every((v) => v.pass) ? 'kept' : 'rejected';
    store.transaction(() => {
      const c = store.insertCandidate({
        campaignId,
        kind: 'search',
        ordinal,
        generation,
        genomeJson: JSON.stringify(a.genome),
        recipeYaml: YAML.stringify(a.recipe),
        contentHash: a.hash,
      });
      store.recordOutcome(c.candidateId, {
        outcome: {
          status,
          objective,
          errorCode: error?.code ?? null,
          errorMessage: error?.message ?? null,
          mergeMs,
          evalMs,
        },
        scores,
        verdicts,
      });
      if (this.keepItems && !error) store.addItemValues(fitItemValues(setup, c.candidateId, scores, 'fit'));
      // told once the candidate is recorded: the tell reads what the store holds (tell-details.ts)
      const state = finish(a.hash, this.toldValue(objective, scores, baselines), error ? undefined : scores);
      if (state) store.saveOptimizerState(campaignId, state);
    });
    this.evaluatedThisRun++;
  }

  /** Test split, after the search: sources, references and the best kept candidates. Never told to the optimiser. */
  async scoreTestSplit(top: number): Promise<void> {
    await this.scoreBaselines('test');
    const pick = this.store.finalPick(this.campaignId);
    const best = this.store
      .listCandidates(this.campaignId, { kind: 'search', status: 'kept' })
      .sort((x, y) => (y.objective ?? -Infinity) - (x.objective ?? -Infinity) || (x.ordinal ?? 0) - (y.ordinal ?? 0))
      .filter((c, i) => i < top || c.candidateId === pick?.candidateId);
    const jobs = missingOnTestSplit(
      this.store,
      best.map((candidate) => ({ candidate })),
    );
    if (jobs.length) this.progress('test', 0, `scoring the ${jobs.length} best kept candidate(s) on the test split`);
    await scoreOnTestSplit(this.store, this.scorer, this.setup.measures, jobs, this.setup.workers);
  }
}

/** The optimiser's value of a recorded candidate: its objective, −∞ when it failed. */
function candidateValue(c: CandidateRecord): number {
  return c.status === 'failed' || c.objective === null ? -Infinity : c.objective;
}
