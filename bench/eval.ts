// `npm run bench -- eval [--threads N] [--ep cpu|webgpu] [--reps N] [--gen-items N] [--spin] [--pad-rows]`:
// evaluation speed on the micro zoo — items/second per task kind, the per-candidate cost of binding new weights as a share of one
// candidate's evaluation, and the numbers behind onnx-session.ts's choice (weights fed as inputs vs a session per
// candidate). `--spin` runs only the comparison of ORT's intra-op spinning on and off (bench/eval-spin.ts);
// `--pad-rows` only scoring rows of mixed lengths against equal lengths (bench/eval-pad.ts).
import { join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Evaluator } from '../src/eval/evaluator.ts';
import { GraphSession, type ExecutionProvider } from '../src/eval/onnx-session.ts';
import { OnnxGraph } from '../src/graph/onnx-graph.ts';
import { openModelDir } from '../src/checkpoint/model-dir.ts';
import { MemoryTensors } from '../src/checkpoint/tensor-source.ts';
import { bindWeights, boundInitializers, resolveBinding } from '../src/eval/bind.ts';
import { generationBench } from './generation.ts';
import { spinBench } from './eval-spin.ts';
import { padRowsBench } from './eval-pad.ts';

const ROOT = join(import.meta.dirname, '..');
const ZOO = join(ROOT, 'models/micro');

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function best(xs: number[]): number {
  return Math.min(...xs);
}

export async function main(args: string[]): Promise<void> {
  const threads = Number(flag(args, '--threads') ?? 0) || undefined;
  const ep = (flag(args, '--ep') ?? 'cpu') as ExecutionProvider;
  const reps = Number(flag(args, '--reps') ?? 3);
  // --spin: only the comparison of ORT's intra-op spinning on and off (bench/eval-spin.ts).
  if (args.includes('--pad-rows'))
    return padRowsBench({ ep, threads: threads ?? 1, reps: Number(flag(args, '--reps') ?? 5) });
  if (args.includes('--spin')) return spinBench({ ep, threads: threads ?? 2, reps: Number(flag(args, '--reps') ?? 7) });
  const tmp = mkdtempSync(join(tmpdir(), 'evomerge-bench-eval-'));
  const spam = join(ROOT, 'evals/micro/spam.fit.jsonl');
  const math = join(ROOT, 'evals/micro/math.fit.jsonl');
  writeFileSync(
    join(tmp, 'extra.yaml'),
    `graph: ${join(ZOO, 'base/model.onnx')}\nbase_model: ${join(ZOO, 'base')}\ntasks:\n` +
      `  spam_choice: {kind: choice, fit: ${spam}, test: ${spam}, choices: [spam, ham]}\n` +
      `  math_logprob: {kind: generate, metric: answer_logprob, fit: ${math}, test: ${math}, max_new_tokens: 4, stop: "\\n"}\n`,
  );
  console.log(
    `eval bench: ep ${ep}, intra-op threads ${threads ?? 'default'}, best of ${reps}, fit split, expert-math weights`,
  );

  const dir = openModelDir(join(ZOO, 'expert-math'));
  const candidate = new MemoryTensors('candidate');
  for (const n of dir.tensors.tensorNames()) candidate.writeTensor(n, dir.tensors.readTensor(n));

  // 1. Items per second per task.
  const ev = await Evaluator.create({ suite: join(ROOT, 'evals/micro.yaml'), ep, ...(threads ? { threads } : {}) });
  const extra = await Evaluator.create({ suite: join(tmp, 'extra.yaml'), ep, ...(threads ? { threads } : {}) });
  const perTask = new Map<string, { kind: string; n: number; seconds: number[] }>();
  const wall: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const scores = await ev.evaluate(candidate, { split: 'fit' });
    wall.push((performance.now() - t0) / 1000);
    scores.push(...(await extra.evaluate(candidate, { split: 'fit' })));
    for (const s of scores) {
      const kind =
        s.metric === 'answer_logprob'
          ? 'generate (answer_logprob)'
          : s.metric === 'accuracy'
            ? 'choice'
            : s.metric === 'exact_match'
              ? 'generate (exact_match)'
              : 'loglik';
      const e = perTask.get(s.task) ?? { kind, n: s.n, seconds: [] };
      e.seconds.push(s.seconds);
      perTask.set(s.task, e);
    }
  }
  console.log('\ntask           kind                        items   seconds   items/s');
  const byKind = new Map<string, { n: number; s: number }>();
  for (const [task, e] of perTask) {
    const s = best(e.seconds);
    console.log(
      `${task.padEnd(14)} ${e.kind.padEnd(26)} ${String(e.n).padStart(6)} ${s.toFixed(3).padStart(9)} ${(e.n / s).toFixed(0).padStart(9)}`,
    );
    const k = byKind.get(e.kind) ?? { n: 0, s: 0 };
    byKind.set(e.kind, { n: k.n + e.n, s: k.s + s });
  }
  console.log('\nper kind:');
  for (const [kind, k] of byKind) console.log(`  ${kind.padEnd(26)} ${(k.n / k.s).toFixed(0).padStart(6)} items/s`);
  const evalSeconds = best(wall);
  console.log(`one candidate, all six zoo tasks (fit): ${evalSeconds.toFixed(2)} s`);

  // 2. Per-candidate binding overhead: weights already in memory (a merge) and read from disk.
  const bindMem: number[] = [];
  const bindDisk: number[] = [];
  for (let r = 0; r < Math.max(reps, 5); r++) {
    let t0 = performance.now();
    ev.bind(candidate);
    bindMem.push((performance.now() - t0) / 1000);
    t0 = performance.now();
    ev.bind(dir.tensors);
    bindDisk.push((performance.now() - t0) / 1000);
  }
  const bm = best(bindMem);
  const bd = best(bindDisk);
  console.log(
    `\nbinding a candidate's weights: in memory ${(bm * 1000).toFixed(2)} ms = ` +
      `${((100 * bm) / (bm + evalSeconds)).toFixed(3)}% of its evaluation; from disk ${(bd * 1000).toFixed(1)} ms = ` +
      `${((100 * bd) / (bd + evalSeconds)).toFixed(2)}%`,
  );
  await ev.close();
  await extra.close();

  // 3. The design choice: weights fed as inputs (one session) vs a session rebuilt per candidate, end to end
  // (all six tasks per candidate, the two modes interleaved), then per forward pass.
  const modes = { inputs: [] as number[], rebuild: [] as number[] };
  const evs = {
    inputs: await Evaluator.create({
      suite: join(ROOT, 'evals/micro.yaml'),
      ep,
      weightMode: 'inputs',
      ...(threads ? { threads } : {}),
    }),
    rebuild: await Evaluator.create({
      suite: join(ROOT, 'evals/micro.yaml'),
      ep,
      weightMode: 'rebuild',
      ...(threads ? { threads } : {}),
    }),
  };
  for (let r = 0; r < reps; r++) {
    for (const mode of ['inputs', 'rebuild'] as const) {
      const t0 = performance.now();
      await evs[mode].evaluate(candidate, { split: 'fit' });
      modes[mode].push((performance.now() - t0) / 1000);
    }
  }
  await evs.inputs.close();
  await evs.rebuild.close();
  console.log(
    `
per candidate, all six tasks: weightMode inputs ${best(modes.inputs).toFixed(2)} s, rebuild ` +
      `${best(modes.rebuild).toFixed(2)} s (best of ${reps}, interleaved)`,
  );

  const graph = OnnxGraph.load(join(ZOO, 'base/model.onnx'));
  const base = openModelDir(join(ZOO, 'base'));
  const binding = resolveBinding(graph, base.tensors);
  base.close();
  const sessionOpts = { ep, ...(threads ? { intraOpThreads: threads } : {}) };
  const fed = await GraphSession.create(graph, boundInitializers(binding), sessionOpts);
  const feeds = bindWeights(binding, candidate);
  const rebuild: number[] = [];
  let constant: GraphSession | undefined;
  for (let r = 0; r < Math.max(reps, 3); r++) {
    const t0 = performance.now();
    await constant?.close();
    constant = await GraphSession.createWithWeights(graph, feeds, sessionOpts);
    rebuild.push((performance.now() - t0) / 1000);
  }
  console.log(`session rebuild (encode + create): ${(best(rebuild) * 1000).toFixed(0)} ms per candidate`);
  for (const [batch, seq] of [
    [1, 20],
    [32, 6],
    [16, 128],
  ] as const) {
    const ids = new Int32Array(batch * seq).map((_, i) => 97 + (i % 26));
    const tf: number[] = [];
    const tc: number[] = [];
    for (let r = 0; r < 15; r++) {
      let t0 = performance.now();
      await fed.forward(ids, batch, seq, feeds);
      tf.push(performance.now() - t0);
      t0 = performance.now();
      await constant!.forward(ids, batch, seq);
      tc.push(performance.now() - t0);
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    console.log(
      `  forward ${batch}x${seq}: weights fed ${med(tf).toFixed(2)} ms, built in ${med(tc).toFixed(2)} ms (median of 15, interleaved)`,
    );
  }
  await fed.close();
  await constant!.close();
  dir.close();
  rmSync(tmp, { recursive: true, force: true });

  // 4. Generation: tokens/s of long greedy answers next to the prefill rate.
  await generationBench({ ep, ...(threads ? { threads } : {}), reps, items: Number(flag(args, '--gen-items') ?? 16) });
}
