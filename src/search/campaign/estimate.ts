// `evomerge search --estimate`: measures one candidate of a campaign's space (the optimiser's first ask, merged in
// memory, its weights handed to a session, each measured task scored on fit) and projects the campaign's time
// from it. Opens no database and records nothing.
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { openModelDir } from '../../checkpoint/model-dir.ts';
import { MemoryTensors } from '../../checkpoint/tensor-source.ts';
import { EvomergeError } from '../../errors.ts';
import { Evaluator } from '../../eval/evaluator.ts';
import type { ExecutionProvider } from '../../eval/onnx-session.ts';
import type { MergeKernel } from '../../kernel/kernel.ts';
import { mergeRecipe } from '../../merge/engine.ts';
import { parseRecipe } from '../../recipe/parse.ts';
import { createOptimizer } from '../optimizers/factory.ts';
import { isDataFlowDoc } from '../space/recipe-doc.ts';
import { evaluationRounds } from '../space/measures.ts';
import { prepareCampaign, type RunOverrides } from './campaign-setup.ts';

export interface TaskTime {
  readonly task: string;
  readonly metric: string;
  readonly items: number;
  readonly seconds: number;
}

export interface CampaignEstimate {
  readonly space: string;
  /** This process until the estimate began (node, module loading, the kernel): a campaign pays it once too. */
  readonly processS: number;
  /** Creating one worker's evaluator and its session (once per worker and run, not per candidate). */
  readonly startupS: number;
  readonly mergeS: number;
  /** evaluate() time not spent in the tasks: binding the merged weights to the session. */
  readonly weightsS: number;
  readonly tasks: readonly TaskTime[];
  /** merge + weights + tasks: one candidate on one worker. */
  readonly candidateS: number;
  readonly workers: number;
  /** Candidates scored at the same time: the workers with the CPU kernel (one scorer thread each); 1 with a GPU
   *  kernel, whose scorer runs every evaluator in this thread (ONNX Runtime's run blocks it). */
  readonly sideBySide: number;
  readonly cores: number;
  readonly populationSize: number;
  /** Candidates a worker scores side by side with the others; above the core count they share cores. */
  readonly perGenerationS: number;
  readonly candidatesPerHour: number;
  /** Sources and reference merges scored once on fit at the start. */
  readonly baselines: { readonly sources: number; readonly references: number; readonly seconds: number };
  /** The search phase: `candidates` (Infinity when only minutes bound it) in `generations`. */
  readonly budget: {
    readonly candidates: number;
    readonly generations: number;
    readonly seconds: number;
    readonly minutes?: number;
  };
  /** With `selection.top_k`: the val pick (sources, references and the top-k candidates scored on val). */
  readonly valPick?: { readonly topK: number; readonly seconds: number };
  /** The test split at the end (sources, references and the best kept candidates), sized as fit. */
  readonly testS: number;
  readonly totalS: number;
}

/** Kept candidates scored on the test split at the end (the campaign's default testTop). */
const TEST_TOP = 3;

/**
 * Measures one candidate and projects the campaign from it; touches no database. The candidate is the
 * optimiser's first ask (CMA-ES: a sample around the initial mean), scored on every measured task's fit items.
 */
export async function estimateCampaign(
  spaceFile: string,
  overrides: RunOverrides,
  kernel: MergeKernel,
  ep: ExecutionProvider,
): Promise<CampaignEstimate> {
  // performance.now() counts from the process's start
  const processS = performance.now() / 1000;
  const setup = prepareCampaign(spaceFile, overrides);
  const { space, suite, measures } = setup;
  const opt = createOptimizer(space.optimizer, setup.layout.domain, {
    seed: setup.seed,
    ...(space.populationSize ? { populationSize: space.populationSize } : {}),
    ...(setup.x0 ? { x0: [...setup.x0] } : {}),
  });
  const solution = opt.ask();
  const { recipe: doc } = setup.decode(solution.x, solution.c);
  if (isDataFlowDoc(doc))
    throw new EvomergeError(
      'search.estimate_data_flow',
      'a data-flow genome has no merge to measure; --estimate measures merge genomes only',
      { file: space.file, field: 'genome.kind' },
    );

  // Start-up: the evaluator, and its session prepared on the base model (one item), as a worker does once.
  let t0 = performance.now();
  const ev = await Evaluator.create({
    suite,
    graph: space.graph,
    baseModelDir: space.baseModel.path,
    ep,
    threads: 1,
    sessions: 1,
  });
  try {
    const firstTask = measures[0]!.task;
    const baseDir = openModelDir(space.baseModel.path);
    try {
      await ev.evaluate(baseDir.tensors, { split: 'fit', tasks: [firstTask], limit: 1 });
    } finally {
      baseDir.close();
    }
    const startupS = (performance.now() - t0) / 1000;

    t0 = performance.now();
    const weights = new MemoryTensors('<candidate>');
    await mergeRecipe(parseRecipe(doc, { file: '<candidate>', baseDir: path.dirname(space.file) }), weights, {
      kernel,
    });
    const mergeS = (performance.now() - t0) / 1000;

    const tasks: TaskTime[] = [];
    let evaluateS = 0;
    for (const round of evaluationRounds(measures)) {
      t0 = performance.now();
      const results = await ev.evaluate(weights, {
        split: 'fit',
        tasks: round.map((m) => m.task),
        metrics: Object.fromEntries(round.map((m) => [m.task, m.metric])),
        ...(space.evalLimit !== undefined ? { limit: space.evalLimit } : {}),
        ...(setup.items ? { items: setup.items.fit } : {}),
      });
      evaluateS += (performance.now() - t0) / 1000;
      for (const r of results) tasks.push({ task: r.task, metric: r.metric, items: r.n, seconds: r.seconds });
    }
    const taskS = tasks.reduce((s, t) => s + t.seconds, 0);
    const weightsS = Math.max(0, evaluateS - taskS);
    return project(setup, {
      cpuKernel: kernel.device.startsWith('cpu'),
      processS,
      startupS,
      mergeS,
      weightsS,
      tasks,
      populationSize: opt.populationSize,
    });
  } finally {
    await ev.close();
  }
}

function project(
  setup: ReturnType<typeof prepareCampaign>,
  measured: {
    cpuKernel: boolean;
    processS: number;
    startupS: number;
    mergeS: number;
    weightsS: number;
    tasks: readonly TaskTime[];
    populationSize: number;
  },
): CampaignEstimate {
  const { space } = setup;
  const taskS = measured.tasks.reduce((s, t) => s + t.seconds, 0);
  const candidateS = measured.mergeS + measured.weightsS + taskS;
  const workers = setup.workers;
  const { cpuKernel, ...times } = measured;
  const sideBySide = cpuKernel ? workers : 1;
  const cores = availableParallelism();
  // Workers beyond the cores share them: each candidate then takes workers / cores times as long.
  const slowdown = Math.max(1, sideBySide / cores);
  const lambda = measured.populationSize;
  const perGenerationS = Math.ceil(lambda / sideBySide) * candidateS * slowdown;
  const candidatesPerHour = (3600 * lambda) / perGenerationS;
  const batches = (n: number, eachS: number) => Math.ceil(n / sideBySide) * eachS * slowdown;
  const sources = 1 + space.models.length;
  const references = space.references.length;
  const baselinesS = batches(sources, measured.weightsS + taskS) + batches(references, candidateS);
  let candidates = setup.budget;
  let generations = Number.isFinite(candidates) ? Math.ceil(candidates / lambda) : Infinity;
  let searchS = generations * perGenerationS;
  if (setup.minutes !== undefined && setup.minutes * 60 < searchS) {
    searchS = setup.minutes * 60;
    generations = Math.ceil(searchS / perGenerationS);
    candidates = Math.min(candidates, generations * lambda);
  }
  // The val pick scores the sources, the references (merged again) and the top k on the val items.
  const topK = space.selection?.topK ?? 0;
  const fitItems = measured.tasks.reduce((sum, t) => sum + t.items, 0);
  const valEvalS =
    measured.weightsS + (setup.items && fitItems > 0 ? (taskS * setup.items.valPerCandidate) / fitItems : 0);
  const valS = batches(sources, valEvalS) + batches(references + topK, measured.mergeS + valEvalS);
  const testS = batches(sources + references + TEST_TOP, candidateS);
  return {
    space: space.file,
    ...times,
    candidateS,
    workers,
    sideBySide,
    cores,
    populationSize: lambda,
    perGenerationS,
    candidatesPerHour,
    baselines: { sources, references, seconds: baselinesS },
    budget: {
      candidates,
      generations,
      seconds: searchS,
      ...(setup.minutes !== undefined ? { minutes: setup.minutes } : {}),
    },
    ...(topK > 0 ? { valPick: { topK, seconds: valS } } : {}),
    testS,
    totalS: measured.processS + measured.startupS + baselinesS + searchS + (topK > 0 ? valS : 0) + testS,
  };
}

/** One line per part of the estimate (seconds as `1.23 s`, longer spans in minutes or hours). */
export function formatEstimate(e: CampaignEstimate, now: Date = new Date()): string {
  const lines = [`estimate for ${e.space} (one candidate measured; no database opened, nothing recorded)`];
  lines.push(`process start-up: ${span(e.processS)}`);
  lines.push(`start-up: ${span(e.startupS)} per worker (evaluator and session, once per run)`);
  lines.push(`merge: ${span(e.mergeS)}`);
  lines.push(`weights to session: ${span(e.weightsS)}`);
  for (const t of e.tasks) lines.push(`task ${t.task} (${t.metric}, ${t.items} fit items): ${span(t.seconds)}`);
  lines.push(`per candidate: ${span(e.candidateS)} on one worker`);
  lines.push(
    `per generation: ${span(e.perGenerationS)} (${e.populationSize} candidates on ${e.workers} worker(s), ` +
      `${e.cores} core(s)${e.sideBySide < e.workers ? '; one at a time: a GPU kernel scores in this thread' : ''})`,
  );
  lines.push(`candidates per hour: ${Math.round(e.candidatesPerHour)} with ${e.workers} worker(s)`);
  lines.push(
    `baselines: ${span(e.baselines.seconds)} (${e.baselines.sources} source(s), ${e.baselines.references} ` +
      `reference merge(s), scored once)`,
  );
  const b = e.budget;
  const count = Number.isFinite(b.candidates) ? `${b.candidates} candidates` : 'as many candidates as fit';
  const limit = b.minutes !== undefined ? `, budget.minutes ${b.minutes}` : '';
  lines.push(`search: ${span(b.seconds)} (${count} in ${b.generations} generation(s)${limit})`);
  if (e.valPick)
    lines.push(
      `val pick: ${span(e.valPick.seconds)} (the top ${e.valPick.topK} by fit, the sources and the references, ` +
        `scored on val)`,
    );
  lines.push(`test split at the end: ${span(e.testS)} (sized as fit)`);
  const finish = new Date(now.getTime() + e.totalS * 1000);
  lines.push(`budget finishes: in ${span(e.totalS)}, about ${finish.toISOString().slice(0, 16).replace('T', ' ')} UTC`);
  return `${lines.join('\n')}\n`;
}

function span(s: number): string {
  if (!Number.isFinite(s)) return 'unbounded';
  if (s < 120) return `${s.toFixed(2)} s`;
  if (s < 2 * 3600) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
