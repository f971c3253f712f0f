// `evomerge merge <recipe.yaml> -o <dir>`: parses the options, picks the kernel and calls the merge engine;
// a progress bar on stderr when it is a terminal. No merge logic lives here.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { EvomergeError } from '../errors.ts';
import { parseSize } from '../checkpoint/model-dir.ts';
import type { MergeKernel } from '../kernel/kernel.ts';
import type { DeviceChoice } from '../kernel/pick-device.ts';
import { CpuKernel } from '../kernel/cpu/cpu-kernel.ts';
import { mergeRecipeToDir, type MergeProgress } from '../merge/engine.ts';
import { parseRecipeFile } from '../recipe/parse.ts';
import { deviceOption } from './options.ts';

interface MergeCliOptions {
  out: string;
  seed?: string;
  shardSize: string;
  device: DeviceChoice;
  force?: boolean;
}

export function registerMergeCommand(program: Command): void {
  program
    .command('merge')
    .description('merge the models of a mergekit YAML recipe into a new checkpoint folder')
    .argument('<recipe>', 'mergekit YAML recipe; model paths are relative to its folder')
    .requiredOption('-o, --out <dir>', 'output model folder (written under a temporary name, renamed when complete)')
    .option('--seed <n>', "seed of the DARE/DELLA random masks (overrides the recipe's random_seed; default 0)")
    .option('--shard-size <size>', 'largest safetensors shard, e.g. 5GB, 500MB, 2GiB', '5GB')
    .option('--force', 'replace an existing non-empty output folder (never one that is, holds or lies inside an input)')
    .addOption(deviceOption('where the arithmetic runs'))
    .action(async (recipePath: string, opts: MergeCliOptions) => {
      const seed = opts.seed === undefined ? undefined : parseSeed(opts.seed);
      const shardSizeBytes = usage(() => parseSize(opts.shardSize, { field: '--shard-size' }));
      const recipe = parseRecipeFile(recipePath);
      const bar = new ProgressBar();
      try {
        const r = await mergeRecipeToDir(recipe, {
          outDir: opts.out,
          shardSizeBytes,
          force: opts.force === true,
          kernel: () => chooseKernel(opts.device),
          onProgress: (p) => bar.update(p),
          ...(seed !== undefined ? { seed } : {}),
        });
        bar.done();
        const seedNote =
          r.plan.method.family === 'task_arithmetic' &&
          ['random', 'della_magprune'].includes(r.plan.method.sparsification ?? '')
            ? `, seed ${r.plan.seed}`
            : '';
        process.stdout.write(
          `merged ${r.tensors} tensors (${r.plan.method.name}${seedNote}, ${r.plan.outDtype}, ${r.device}) into ` +
            `${opts.out} in ${r.seconds.toFixed(2)} s\n`,
        );
      } finally {
        bar.done();
      }
    });
}

/** A bad option value is a usage error (exit 2), whichever module judged it. */
function usage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof EvomergeError && err.exitCode !== 2) throw new EvomergeError(err.code, err.message, {}, 2);
    throw err;
  }
}

function parseSeed(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
    throw new EvomergeError(
      'cli.bad_option',
      `"${text}" is not a seed; expected a non-negative integer`,
      { field: '--seed' },
      2,
    );
  }
  return n;
}

/**
 * cpu → CpuKernel. auto/gpu → kernel/pick-device.ts `selectKernel(choice)` when present (the GPU backend decides
 * there, and falls back); without it, auto means cpu and gpu is refused with a clear message. Called only
 * after the recipe and the checkpoints have been validated.
 */
async function chooseKernel(device: DeviceChoice): Promise<MergeKernel> {
  if (device === 'cpu') return new CpuKernel();
  const select = new URL('../kernel/pick-device.ts', import.meta.url);
  if (!existsSync(fileURLToPath(select))) {
    if (device === 'gpu') {
      throw new EvomergeError(
        'cli.gpu_unavailable',
        'this evomerge has no GPU merge backend yet (src/kernel/pick-device.ts is absent); use --device cpu',
        { field: '--device gpu' },
        2,
      );
    }
    return new CpuKernel();
  }
  const mod = (await import(select.href)) as { selectKernel?: (choice: DeviceChoice) => Promise<MergeKernel> };
  if (typeof mod.selectKernel !== 'function') {
    throw new EvomergeError(
      'internal',
      'src/kernel/pick-device.ts does not export selectKernel(choice) (this is a bug in evomerge)',
    );
  }
  return mod.selectKernel(device);
}

/** Shown after this long, so quick merges print nothing but their result line. */
const PROGRESS_DELAY_MS = 500;
const BAR_WIDTH = 30;

/** A one-line progress bar on stderr, only when stderr is a terminal. */
class ProgressBar {
  private readonly started = Date.now();
  private shown = false;
  private readonly enabled = process.stderr.isTTY === true;

  update(p: MergeProgress): void {
    if (!this.enabled || Date.now() - this.started < PROGRESS_DELAY_MS) return;
    const frac = p.totalBytes > 0 ? p.doneBytes / p.totalBytes : p.done / p.total;
    const filled = Math.round(frac * BAR_WIDTH);
    const secs = (Date.now() - this.started) / 1000;
    const cols = process.stderr.columns ?? 100;
    const line =
      `merging [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ` +
      `${(frac * 100).toFixed(0).padStart(3)}% ${p.done}/${p.total} tensors ${secs.toFixed(0)}s ${p.tensor}`;
    process.stderr.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length))}\x1b[K`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
    this.shown = false;
  }
}
