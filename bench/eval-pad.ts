// `npm run bench -- eval --pad-rows [--threads 1] [--reps 5]`: choice, lm-eval multiple_choice and answer_logprob rows
// of different lengths batched together (padded, the default) against equal lengths only (padRows: false), on
// the micro zoo (expert-spam, evals/micro-lm-eval.yaml's spam_choice and lm_spam, fit split), alternated A B A B …
// after one untimed run each; prints the median seconds per task and whether the scores agree within 1e-5.
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { Evaluator } from '../src/eval/evaluator.ts';
import type { ExecutionProvider } from '../src/eval/onnx-session.ts';
import { openModelDir } from '../src/checkpoint/model-dir.ts';

const ROOT = join(import.meta.dirname, '..');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

export async function padRowsBench(opts: { ep: ExecutionProvider; threads: number; reps: number }): Promise<void> {
  const dir = openModelDir(join(ROOT, 'models/micro/expert-spam'));
  const tasks = ['spam_choice', 'lm_spam'];
  const settings = [
    { name: 'mixed lengths (default)', padRows: true },
    { name: 'equal lengths only', padRows: false },
  ];
  const evs = await Promise.all(
    settings.map((s) =>
      Evaluator.create({
        suite: join(ROOT, 'evals/micro-lm-eval.yaml'),
        ep: opts.ep,
        threads: opts.threads,
        padRows: s.padRows,
      }),
    ),
  );
  console.log(
    `eval --pad-rows bench: ep ${opts.ep}, ${opts.threads} intra-op threads, ${opts.reps} runs each alternated, ` +
      `load average ${loadavg().map((l) => l.toFixed(1))}`,
  );
  const seconds = settings.map(() => tasks.map(() => [] as number[]));
  const values: number[][] = [];
  for (let r = -1; r < opts.reps; r++) {
    for (let k = 0; k < settings.length; k++) {
      const scores = await evs[k]!.evaluate(dir.tensors, { split: 'fit', tasks });
      values[k] = scores.map((s) => s.value);
      if (r >= 0) scores.forEach((s, t) => seconds[k]![t]!.push(s.seconds));
    }
  }
  for (const ev of evs) await ev.close();
  dir.close();
  console.log(`setting                   ${tasks.map((t) => `${t} s`.padStart(16)).join('')}`);
  settings.forEach((s, k) =>
    console.log(`${s.name.padEnd(25)} ${seconds[k]!.map((xs) => median(xs).toFixed(3).padStart(15)).join(' ')}`),
  );
  const agree = values[0]!.every((v, t) => Math.abs(v - values[1]![t]!) <= 1e-5);
  console.log(`scores within 1e-5: ${agree ? 'yes' : 'NO'} (${values[0]!.join(', ')})`);
}
