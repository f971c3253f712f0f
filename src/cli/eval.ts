// `evomerge eval <model-dir | recipe.yaml> --suite <suite.yaml>`: parses the options, opens the checkpoint (or
// merges the recipe in memory) and prints the Evaluator's scores as a table or JSON. No scoring logic here.
import { statSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { EvomergeError } from '../errors.ts';
import { openModelDir, readConfig } from '../checkpoint/model-dir.ts';
import { MemoryTensors, type TensorSource } from '../checkpoint/tensor-source.ts';
import { Evaluator, type EvalProgress } from '../eval/evaluator.ts';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import { COMPUTE_DTYPE_CHOICES, parseSuiteFile, type ComputeDtypeChoice } from '../eval/suite.ts';
import type { Split } from '../eval/split.ts';
import { graphBaseFor } from '../eval/auto-graph.ts';
import type { TaskScore } from '../eval/stats.ts';
import { CpuKernel } from '../kernel/cpu/cpu-kernel.ts';
import { mergeRecipe } from '../merge/engine.ts';
import { parseRecipeFile } from '../recipe/parse.ts';
import { epOption, spinOption } from './options.ts';

interface EvalCliOptions {
  suite: string;
  split: Split;
  ep: ExecutionProvider;
  graph?: string;
  limit?: string;
  tasks?: string;
  threads?: string;
  spin?: boolean;
  sessions?: string;
  seed?: string;
  json?: boolean;
  progress?: boolean;
  computeDtype?: ComputeDtypeChoice;
}

export function registerEvalCommand(program: Command): void {
  program
    .command('eval')
    .description(
      'score a model folder, or a recipe merged in memory, on the tasks of an eval suite through ONNX Runtime',
    )
    .argument('<model>', 'a Hugging Face model folder, or a mergekit recipe (.yaml) to merge in memory first')
    .requiredOption('--suite <suite.yaml>', 'eval suite (e.g. evals/micro.yaml)')
    .addOption(new Option('--split <split>', 'which eval files').choices(['fit', 'test']).default('fit'))
    .addOption(epOption('ONNX Runtime execution provider', ['cpu', 'webgpu', 'cuda']))
    .option(
      '--graph <model.onnx>',
      "the ONNX graph, or auto to build it from the base model's config.json (default: the suite's graph:, else auto)",
    )
    .addOption(
      new Option(
        '--compute-dtype <dtype>',
        "dtype of a built graph's compute (default: the suite's compute_dtype, else auto: float16 on " +
          'webgpu/cuda for a 16-bit checkpoint, float32 otherwise)',
      ).choices(COMPUTE_DTYPE_CHOICES),
    )
    .option('--limit <n>', 'score only the first n items of each task')
    .option('--tasks <names>', 'comma-separated task names (default: all)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per core)')
    .addOption(spinOption())
    .option('--sessions <n>', 'sessions run side by side, tasks spread over them (default 1)')
    .option('--seed <n>', 'seed of DARE/DELLA masks when merging a recipe')
    .option('--json', 'print the scores as JSON')
    .option(
      '--progress',
      'a progress line per task on stderr (items done/total, rate, ETA) even when stderr is not a terminal',
    )
    .action(async (model: string, opts: EvalCliOptions) => {
      const limit = opts.limit === undefined ? undefined : positiveInt(opts.limit, '--limit');
      const threads = opts.threads === undefined ? undefined : positiveInt(opts.threads, '--threads');
      const sessions = opts.sessions === undefined ? undefined : positiveInt(opts.sessions, '--sessions');
      const seed = opts.seed === undefined ? undefined : positiveInt(opts.seed, '--seed', 0);
      const tasks = opts.tasks
        ?.split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '');
      const suite = parseSuiteFile(opts.suite);
      const graph = opts.graph ?? suite.graph ?? 'auto';
      const baseModelDir = graphBase(model, suite.baseModel, graph);
      const evaluator = await Evaluator.create({
        suite,
        ep: opts.ep,
        refuseNonFinite: true,
        graph,
        ...(baseModelDir ? { baseModelDir } : {}),
        ...(threads ? { threads } : {}),
        ...(opts.spin === true ? { spinWait: true } : {}),
        ...(sessions ? { sessions } : {}),
        ...(opts.computeDtype ? { computeDtype: opts.computeDtype } : {}),
      });
      try {
        const { weights, close } = await openWeights(model, seed);
        try {
          const progress =
            opts.progress === true || process.stderr.isTTY === true
              ? progressLine(process.stderr.isTTY === true && opts.progress !== true)
              : undefined;
          const scores = await evaluator.evaluate(weights, {
            split: opts.split,
            ...(tasks ? { tasks } : {}),
            ...(limit !== undefined ? { limit } : {}),
            ...(progress ? { onProgress: progress } : {}),
          });
          if (progress && process.stderr.isTTY === true && opts.progress !== true) process.stderr.write('\r\x1b[K');
          // finite weights can still give NaN or ±Inf (logits that overflow): a score nothing can rank
          const bad = scores.find((s) => !Number.isFinite(s.value));
          if (bad)
            throw new EvomergeError(
              'eval.non_finite_score',
              `${bad.metric} of task ${bad.task} is ${bad.value} (the model's logits overflow or are not numbers); ` +
                'a non-finite score cannot be compared',
              { file: opts.suite, field: `tasks.${bad.task}` },
            );
          if (opts.json) {
            // per-item pseudo-values (for paired comparisons inside a campaign) would swamp the output
            const omitPseudo = (k: string, v: unknown) => (k === 'pseudo' ? undefined : v);
            const compute = evaluator.computeDtype();
            const doc = { model, suite: opts.suite, split: opts.split, ep: opts.ep, compute, scores };
            process.stdout.write(`${JSON.stringify(doc, omitPseudo, 2)}\n`);
          } else process.stdout.write(formatTable(scores));
        } finally {
          close();
        }
      } finally {
        await evaluator.close();
      }
    });
}

/** What the graph is built or bound against: the suite's base model, or a model folder of another shape itself. */
function graphBase(model: string, baseDir: string | undefined, graph: string): string | undefined {
  let isDir = false;
  try {
    isDir = statSync(model).isDirectory();
  } catch {
    return baseDir; // openWeights says what is wrong
  }
  if (!isDir) return baseDir;
  return graphBaseFor(model, readConfig(model), baseDir, baseDir ? readConfig(baseDir) : undefined, graph);
}

/** A model folder is read lazily from disk; a recipe is merged into memory (the merge engine, CPU kernel). */
async function openWeights(
  model: string,
  seed: number | undefined,
): Promise<{ weights: TensorSource; close: () => void }> {
  let isDir = false;
  try {
    isDir = statSync(model).isDirectory();
  } catch {
    throw new EvomergeError(
      'cli.not_found',
      'not found; expected a model folder or a recipe .yaml',
      { file: model },
      2,
    );
  }
  if (isDir) {
    const dir = openModelDir(model);
    return { weights: dir.tensors, close: () => dir.close() };
  }
  if (!/\.ya?ml$/i.test(model))
    throw new EvomergeError('cli.bad_argument', 'expected a model folder or a recipe .yaml', { file: model }, 2);
  const recipe = parseRecipeFile(model);
  const merged = new MemoryTensors(`merge of ${model}`);
  const kernel = new CpuKernel();
  try {
    await mergeRecipe(recipe, merged, { kernel, ...(seed !== undefined ? { seed } : {}) });
  } finally {
    await kernel.close();
  }
  return { weights: merged, close: () => {} };
}

/** `eval: 150/600 items (3/6 tasks, math done), 41.2 items/s, ETA 11s`: rewritten on a terminal, else a line per task. */
function progressLine(rewrite: boolean): (p: EvalProgress) => void {
  return (p) => {
    const rate = p.seconds > 0 ? p.itemsDone / p.seconds : undefined;
    const eta = rate ? `, ETA ${Math.round((p.itemsTotal - p.itemsDone) / rate)}s` : '';
    const line =
      `eval: ${p.itemsDone}/${p.itemsTotal} items (${p.tasksDone}/${p.tasksTotal} tasks, ${p.task} ` +
      `done)${rate ? `, ${rate.toFixed(1)} items/s` : ''}${eta}`;
    process.stderr.write(rewrite ? `\r${line}\x1b[K` : `${line}\n`);
  };
}

function positiveInt(text: string, field: string, min = 1): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new EvomergeError(
      'cli.bad_option',
      `"${text}" is not ${min === 0 ? 'a non-negative' : 'a positive'} integer`,
      { field },
      2,
    );
  }
  return n;
}

/** task, metric, score ± SE, n, seconds; metrics computed alongside follow their task, indented. */
export function formatTable(scores: readonly TaskScore[]): string {
  const rows: string[][] = [['task', 'metric', 'score ± SE', 'n', 'seconds']];
  const fmt = (metric: string, v: number, se: number) => {
    const digits = metric === 'exact_match' || metric === 'accuracy' ? 3 : 4;
    return `${v.toFixed(digits)} ± ${Number.isNaN(se) ? 'n/a' : se.toFixed(digits)}`;
  };
  for (const s of scores) {
    rows.push([s.task, s.metric, fmt(s.metric, s.value, s.se), String(s.n), s.seconds.toFixed(2)]);
    for (const [metric, m] of Object.entries(s.extra))
      rows.push(['', `  ${metric}`, fmt(metric, m.value, m.se), String(m.n), '']);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const right = [false, false, true, true, true];
  return (
    rows
      .map((r) =>
        r
          .map((cell, c) => (right[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}
