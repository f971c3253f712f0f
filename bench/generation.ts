// Part of `npm run bench -- eval`: greedy generation speed on a chain-of-thought-shaped lm-eval task (short
// prompt, long answer, no stop string) next to the prefill rate (full-sequence forward passes), on the zoo's own
// graph (no KV cache: every step re-runs the whole sequence) and on a zoo-architecture graph with a KV cache
// (the test fixture's, one new token per step). The zoo has a 256-token context: 32 prompt + 224 new tokens.
import { join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Evaluator } from '../src/eval/evaluator.ts';
import type { ExecutionProvider } from '../src/eval/onnx-session.ts';
import { openModelDir } from '../src/checkpoint/model-dir.ts';
import { writeKvLlamaGraph } from '../test/unit/eval/kv-llama-graph.ts';

const ROOT = join(import.meta.dirname, '..');
const ZOO = join(ROOT, 'models/micro');
const PROMPT_BYTES = 32;
const NEW_TOKENS = 224;

export async function generationBench(opts: {
  ep: ExecutionProvider;
  threads?: number;
  reps: number;
  items: number;
}): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'evomerge-bench-gen-'));
  const english = join(ROOT, 'evals/micro/english.fit.jsonl');
  const task = (name: string, body: string) => {
    writeFileSync(
      join(tmp, `${name}.yaml`),
      `task: ${name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: ${english}\ntest_split: test\n${body}`,
    );
  };
  task(
    'cot',
    `output_type: generate_until\ndoc_to_text: "{{ text[:${PROMPT_BYTES}] }}"\ndoc_to_target: "{{ text ` +
      `}}"\ngeneration_kwargs:\n  until: []\n  max_gen_toks: ${NEW_TOKENS}\n`,
  );
  task('prefill', 'output_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: text\n');
  const kvGraph = join(tmp, 'decoder_with_past.onnx');
  const base = openModelDir(join(ZOO, 'base'));
  writeKvLlamaGraph(kvGraph, base.tensors);
  base.close();
  const suite = join(tmp, 'suite.yaml');
  writeFileSync(
    suite,
    `base_model: ${join(ZOO, 'base')}\ntokenizer: byte\ntasks:\n  cot:\n    lm_eval: cot.yaml\n  prefill:\n    lm_eval: prefill.yaml\n`,
  );
  const weights = openModelDir(join(ZOO, 'expert-math'));
  console.log(
    `\ngeneration (lm-eval generate_until, ${opts.items} rows of ${PROMPT_BYTES} prompt + ${NEW_TOKENS} new tokens, ` +
      `greedy, no stop string) vs prefill (loglikelihood_rolling, ${opts.items} rows of 128 tokens); best of ` +
      `${opts.reps}`,
  );
  console.log('graph                         prefill tokens/s   generated tokens/s   generation s');
  for (const [label, graph] of [
    ['zoo model.onnx (no KV cache)', join(ZOO, 'base/model.onnx')],
    ['KV-cache graph (fixture)', kvGraph],
  ] as const) {
    const ev = await Evaluator.create({
      suite,
      graph,
      ep: opts.ep,
      ...(opts.threads ? { threads: opts.threads } : {}),
    });
    const gen: number[] = [];
    const pre: number[] = [];
    for (let r = 0; r < opts.reps; r++) {
      let t0 = performance.now();
      const [g] = await ev.evaluate(weights.tensors, {
        split: 'fit',
        tasks: ['cot'],
        limit: opts.items,
        withPredictions: true,
      });
      gen.push((performance.now() - t0) / 1000);
      if (g!.predictions!.some((p) => Buffer.byteLength(p) < NEW_TOKENS - 8))
        throw new Error('a row stopped early; the bench expects full-length answers');
      t0 = performance.now();
      await ev.evaluate(weights.tensors, { split: 'fit', tasks: ['prefill'], limit: opts.items });
      pre.push((performance.now() - t0) / 1000);
    }
    await ev.close();
    const g = Math.min(...gen);
    const p = Math.min(...pre);
    console.log(
      `${label.padEnd(29)} ${((opts.items * 127) / p).toFixed(0).padStart(16)} ` +
        `${((opts.items * NEW_TOKENS) / g).toFixed(0).padStart(20)} ${g.toFixed(2).padStart(14)}`,
    );
  }
  weights.close();
  rmSync(tmp, { recursive: true, force: true });
}
