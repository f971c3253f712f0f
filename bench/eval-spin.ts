// `npm run bench -- eval --spin [--threads 2] [--reps 7] [--ep cpu]`: `evomerge eval --spin` against the default,
// one candidate (expert-math, all tasks of evals/micro.yaml, fit split) per run, the two alternated A B A B …
// Prints per setting the median wall seconds and the process's CPU seconds (user + system, process.cpuUsage)
// spent in the same evaluate() calls, so the gain (wall) and the cost (CPU burnt by spinning workers) sit side by
// side; and checks that every score is identical.
import { join } from 'node:path';
import { Evaluator } from '../src/eval/evaluator.ts';
import type { ExecutionProvider } from '../src/eval/onnx-session.ts';
import { openModelDir } from '../src/checkpoint/model-dir.ts';

const ROOT = join(import.meta.dirname, '..');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

export async function spinBench(opts: { ep: ExecutionProvider; threads: number; reps: number }): Promise<void> {
  const dir = openModelDir(join(ROOT, 'models/micro/expert-math'));
  const settings = [
    { name: 'default (no spinning)', spinWait: false },
    { name: '--spin', spinWait: true },
  ];
  const evs = await Promise.all(
    settings.map((s) =>
      Evaluator.create({
        suite: join(ROOT, 'evals/micro.yaml'),
        ep: opts.ep,
        threads: opts.threads,
        spinWait: s.spinWait,
      }),
    ),
  );
  console.log(
    `eval --spin bench: ep ${opts.ep}, ${opts.threads} intra-op threads, ${opts.reps} runs each alternated ` +
      `(first run of each untimed), load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(1))}`,
  );
  const wall: number[][] = settings.map(() => []);
  const cpu: number[][] = settings.map(() => []);
  const values: string[] = [];
  for (let r = -1; r < opts.reps; r++) {
    for (let k = 0; k < settings.length; k++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const scores = await evs[k]!.evaluate(dir.tensors, { split: 'fit' });
      const seconds = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      values[k] = JSON.stringify(scores.map(({ seconds: _s, ...rest }) => rest));
      if (r < 0) continue;
      wall[k]!.push(seconds);
      cpu[k]!.push((c.user + c.system) / 1e6);
    }
  }
  for (const ev of evs) await ev.close();
  dir.close();
  console.log('setting                  wall s (median)   CPU s (median)   CPU ÷ wall');
  settings.forEach((s, k) => {
    const w = median(wall[k]!);
    const c = median(cpu[k]!);
    console.log(
      `${s.name.padEnd(24)} ${w.toFixed(3).padStart(15)} ${c.toFixed(3).padStart(16)} ${(c / w).toFixed(2).padStart(12)}`,
    );
  });
  console.log(`scores identical: ${values[0] === values[1] ? 'yes' : 'NO'}`);
}
