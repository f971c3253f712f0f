// `npm run bench -- merge-loop --dir DIR [--reps 5] [--pool] [--root TREE] [--method task_arithmetic|linear|ties]`:
// the in-memory merge of the candidate bench alone (task_arithmetic of DIR/base + DIR/expert-a (0.6) +
// DIR/expert-b (0.4), linear of the three (0.4, 0.3, 0.3), or the candidate bench's ties (weights 1, densities
// 0.5) over DIR/base, into MemoryTensors, the CPU kernel), repeated in one process as
// a campaign merges candidates, and its share of the copy bound (the three sources read as stored + the float32
// result written, at one thread's copy bandwidth). DIR is a family written by
// `npm run bench -- candidate --params 0.2B … --keep DIR`. --pool: each candidate's arrays are released to an
// ArrayPool for the next merge, as the campaign scorer does. --root: import the merge from another source tree
// (an older build, to alternate before and after in one run); --pool needs a tree that has ArrayPool.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { copyBandwidth } from './bandwidth.ts';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function main(args: string[]): Promise<void> {
  const dir = path.resolve(flag(args, '--dir') ?? '');
  const reps = Number(flag(args, '--reps') ?? 5);
  const root = path.resolve(flag(args, '--root') ?? path.join(import.meta.dirname, '..'));
  const usePool = args.includes('--pool');
  const method = flag(args, '--method') ?? 'task_arithmetic';
  if (!['task_arithmetic', 'linear', 'ties'].includes(method))
    throw new Error(`--method ${method}: expected task_arithmetic, linear or ties`);
  const dirs = ['base', 'expert-a', 'expert-b'].map((n) => path.join(dir, n));
  if (!dirs.every((d) => existsSync(path.join(d, 'config.json')))) {
    throw new Error(
      `--dir ${dir}: no base/expert-a/expert-b family there (write one with the candidate bench's --keep)`,
    );
  }
  const src = (p: string) => import(path.join(root, 'src', p));
  const { MemoryTensors, ArrayPool } = await src('checkpoint/tensor-source.ts');
  const { mergeRecipe } = await src('merge/engine.ts');
  const { parseRecipe } = await src('recipe/parse.ts');
  const { CpuKernel } = await src('kernel/cpu/cpu-kernel.ts');
  if (usePool && ArrayPool === undefined) throw new Error(`--pool: ${root} has no ArrayPool`);
  const pool = usePool ? new ArrayPool() : undefined;

  // Bytes the merge must move: the sources as stored, and the float32 result (twice the bf16/f16 bytes, equal f32's).
  const stored = dirs.map((d) =>
    readdirSync(d)
      .filter((f) => f.endsWith('.safetensors'))
      .reduce((s, f) => s + statSync(path.join(d, f)).size, 0),
  );
  const halves = !args.includes('--f32');
  const bytes = stored.reduce((a, b) => a + b, 0) + (halves ? 2 : 1) * stored[0]!;
  const copy = copyBandwidth();
  const bound = bytes / copy;
  console.log(
    `merge-loop (load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(
        ' ',
      )}; ${method}; root ${root}${usePool ? ', pooled' : ''}): ${(bytes / 1e9).toFixed(2)} GB to move at one ` +
      `thread's copy ${(copy / 1e9).toFixed(1)} GB/s = ${bound.toFixed(2)} s`,
  );
  const kernel = new CpuKernel();
  const doc =
    method === 'linear'
      ? {
          merge_method: 'linear',
          models: dirs.map((d, i) => ({ model: d, parameters: { weight: [0.4, 0.3, 0.3][i] } })),
        }
      : method === 'ties'
        ? {
            merge_method: 'ties',
            base_model: dirs[0],
            models: [
              { model: dirs[1], parameters: { weight: 1, density: 0.5 } },
              { model: dirs[2], parameters: { weight: 1, density: 0.5 } },
            ],
          }
        : {
            merge_method: 'task_arithmetic',
            base_model: dirs[0],
            models: [
              { model: dirs[1], parameters: { weight: 0.6 } },
              { model: dirs[2], parameters: { weight: 0.4 } },
            ],
          };
  const seconds: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const merged = new MemoryTensors(`candidate ${r}`, pool);
    await mergeRecipe(parseRecipe(doc, { file: '<bench>', baseDir: dir }), merged, { kernel });
    seconds.push((performance.now() - t0) / 1000);
    if (pool) merged.release();
  }
  const later = seconds.slice(1).sort((a, b) => a - b);
  const mid = later.length >> 1;
  const median =
    later.length === 0 ? seconds[0]! : later.length % 2 === 1 ? later[mid]! : (later[mid - 1]! + later[mid]!) / 2;
  console.log(
    `merge s: ${seconds.map((s) => s.toFixed(2)).join(', ')}; median of runs 2–${reps} ${median.toFixed(2)} s = ` +
      `${((100 * bound) / median).toFixed(0)}% of the copy bound; load average at the end ${loadavg()[0]!.toFixed(1)}`,
  );
}
