// Part of `npm run bench -- eval`: greedy generation speed on a chain-of-thought-shaped lm-eval task (short
// prompts of mixed lengths, long answers, no stop string) next to the prefill rate (full-sequence forward
// passes), on the zoo's own graph (no KV cache: every step re-runs the whole sequence), on a zoo-architecture
// graph with a KV cache (the test fixture's, one new token per step) and on the graph evomerge builds (graph:
// auto, GroupQueryAttention). Generation runs twice: prompts of different lengths batched together (padded) and
// only equal lengths together (as before padding). The zoo has a 256-token context: prompts of 8 to 32 tokens
// + 224 new tokens.
import { join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Evaluator } from '../src/eval/evaluator.ts';
import type { ExecutionProvider } from '../src/eval/onnx-session.ts';
import { openModelDir } from '../src/checkpoint/model-dir.ts';
import { writeKvLlamaGraph } from '../test/unit/eval/kv-llama-graph.ts';

const ROOT = join(import.meta.dirname, '..');
const ZOO = join(ROOT, 'models/micro');
/**
 * Prompt lengths: 8 to 32 bytes, from letter counts of the text (the zoo's English texts are all 128 bytes long),
 * so that the rows' lengths differ as a real task's do: 13 lengths among the first 16 rows.
 */
const PROMPT_BYTES =
  "8 + ((text.split(' ')|length) * 5 + (text.split('a')|length) * 3 + (text.split('o')|length)) % 25";
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
    `\ngeneration (lm-eval generate_until, ${opts.items} rows of 8 to 32 prompt + ${NEW_TOKENS} new tokens, greedy, no ` +
      `stop string), prompts of different lengths batched together (padded) or only equal lengths together, vs ` +
      `prefill (loglikelihood_rolling, ${opts.items} rows of 128 tokens); best of ${opts.reps}`,
  );
  console.log(
    'graph                         prefill tokens/s   generated tokens/s: mixed lengths   equal lengths   ' +
      'mixed s   equal s',
  );
  for (const [label, graph] of [
    ['zoo model.onnx (no KV cache)', join(ZOO, 'base/model.onnx')],
    ['KV-cache graph (fixture)', kvGraph],
    ['graph: auto (GQA, KV cache)', 'auto'],
  ] as const) {
    const evaluators = [true, false].map((padRows) =>
      Evaluator.create({ suite, graph, ep: opts.ep, padRows, ...(opts.threads ? { threads: opts.threads } : {}) }),
    );
    const [mixed, equal] = await Promise.all(evaluators);
    const gen = { mixed: [] as number[], equal: [] as number[] };
    const pre: number[] = [];
    let predictions: readonly string[] | undefined;
    for (let r = 0; r < opts.reps; r++) {
      for (const [kind, ev] of [
        ['mixed', mixed!],
        ['equal', equal!],
      ] as const) {
        const t0 = performance.now();
        const [g] = await ev.evaluate(weights.tensors, {
          split: 'fit',
          tasks: ['cot'],
          limit: opts.items,
          withPredictions: true,
        });
        gen[kind].push((performance.now() - t0) / 1000);
        if (g!.predictions!.some((p) => Buffer.byteLength(p) < NEW_TOKENS - 8))
          throw new Error('a row stopped early; the bench expects full-length answers');
        predictions ??= g!.predictions;
        if (g!.predictions!.some((p, i) => p !== predictions![i]))
          throw new Error(`${label}: batching changed a completion`);
      }
      const t0 = performance.now();
      await mixed!.evaluate(weights.tensors, { split: 'fit', tasks: ['prefill'], limit: opts.items });
      pre.push((performance.now() - t0) / 1000);
    }
    await mixed!.close();
    await equal!.close();
    const m = Math.min(...gen.mixed);
    const e = Math.min(...gen.equal);
    const p = Math.min(...pre);
    const rate = (s: number) => ((opts.items * NEW_TOKENS) / s).toFixed(0);
    console.log(
      `${label.padEnd(29)} ${((opts.items * 127) / p).toFixed(0).padStart(16)} ${rate(m).padStart(35)} ` +
        `${rate(e).padStart(15)} ${m.toFixed(2).padStart(9)} ${e.toFixed(2).padStart(9)}`,
    );
  }
  weights.close();
  rmSync(tmp, { recursive: true, force: true });
}
