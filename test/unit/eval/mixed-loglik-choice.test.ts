// Loglik and choice rows (and lm-eval's context + continuation pairs, answer_logprob's prompt + answer rows) of
// different lengths in one forward pass (padded on the right; forward.ts batchesMixed), against batch-1 on the
// micro zoo's texts, spam labels and math answers: per-item log-likelihoods within 1e-5 absolute, the
// same argmax hits, predictions, accuracy and AUC, through the fused CPU ops (GroupQueryAttention), the standard
// ops of the built graph and the zoo's own model.onnx (no attention_mask). The evaluator mixes lengths by
// default (padRows) and not with padRows: false.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModelDir, type ModelDir } from '../../../src/checkpoint/model-dir.ts';
import { parseDecoderConfig } from '../../../src/graph/decoder-config.ts';
import { buildDecoderGraph, type OpSet } from '../../../src/graph/decoder-graph.ts';
import { FeedSet, GraphSession } from '../../../src/eval/onnx-session.ts';
import { OnnxGraph } from '../../../src/graph/onnx-graph.ts';
import { bindWeights, boundInitializers, resolveBinding } from '../../../src/eval/bind.ts';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import type { Forward } from '../../../src/eval/tasks/forward.ts';
import { textLogliks } from '../../../src/eval/tasks/loglik.ts';
import { choiceLogliks, evaluateChoice, type ChoiceItem } from '../../../src/eval/tasks/choice.ts';
import { readEvalFile } from '../../../src/eval/eval-file.ts';
import { scoreContinuations } from '../../../src/eval/lm-eval/run-task.ts';
import { evaluateAnswerLogprob } from '../../../src/eval/tasks/generate.ts';
import { ByteTokenizer } from '../../../src/eval/tokenizers/byte.ts';

const ROOT = join(import.meta.dirname, '../../..');
const ZOO = join(ROOT, 'models/micro');
const TOLERANCE = 1e-5;
let tmp: string;
let expert: ModelDir;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-mixed-loglik-'));
  expert = openModelDir(join(ZOO, 'expert-spam'));
});
afterAll(() => {
  expert?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const tokenizer = new ByteTokenizer();
const texts = (file: string, n: number) =>
  readEvalFile(join(ROOT, 'evals/micro', file), { text: 'text' })
    .slice(0, n)
    .map((i) => i.values.text as string);
const spam: ChoiceItem[] = readEvalFile(join(ROOT, 'evals/micro/spam.test.jsonl'), {
  prompt: 'prompt',
  answer: 'answer',
})
  .slice(0, 40)
  .map((i) => ({ prompt: i.values.prompt as string, answer: i.values.answer as string, choices: ['spam', 'ham'] }));

async function sessionFor(graph: OpSet | 'model.onnx'): Promise<{ session: GraphSession; feeds?: FeedSet }> {
  if (graph === 'model.onnx') {
    const g = OnnxGraph.load(join(ZOO, 'base/model.onnx'));
    const base = openModelDir(join(ZOO, 'base'));
    const binding = resolveBinding(g, base.tensors);
    base.close();
    const session = await GraphSession.create(g, boundInitializers(binding), { ep: 'cpu', intraOpThreads: 1 });
    return { session, feeds: bindWeights(binding, expert.tensors, { refuseNonFinite: false }) };
  }
  const cfg = parseDecoderConfig(expert.config, join(ZOO, 'expert-spam/config.json'));
  const built = buildDecoderGraph(cfg, { opSet: graph });
  const feeds = new FeedSet();
  for (const w of built.weights) feeds.set(w.name, expert.tensors.readTensor(w.name).data, w.shape);
  const session = await GraphSession.createWithExternalWeights(
    OnnxGraph.fromModel(built.model, join(ZOO, 'expert-spam/config.json')),
    feeds,
    { ep: 'cpu', intraOpThreads: 1 },
  );
  return { session };
}

describe('loglik and choice rows of different lengths in one batch, against batch-1', () => {
  const graphs = [
    ['fused CPU ops (GroupQueryAttention, attention_mask)', 'cpu'],
    ['standard ops (attention_mask, position_ids)', 'plain'],
    ["the zoo's model.onnx (no attention_mask)", 'model.onnx'],
  ] as const;
  for (const [label, graph] of graphs) {
    it(label, async () => {
      const { session, feeds } = await sessionFor(graph);
      let mixedCalls = 0;
      const forward: Forward = (rows) => {
        if (rows.some((r) => r.length !== rows[0]!.length)) mixedCalls++;
        return session.forwardRows(rows, feeds);
      };
      try {
        // the zoo's texts are cut to one length: cut them shorter, to lengths 9..121
        const seqs = [...texts('lang.test.jsonl', 30), ...texts('english.test.jsonl', 30)].map((t, i) =>
          tokenizer.encode(t.slice(0, 9 + ((i * 37) % 113))),
        );
        const single = await textLogliks(seqs, forward, 1, false);
        expect(mixedCalls).toBe(0);
        const mixed = await textLogliks(seqs, forward, 2048, true);
        expect(mixedCalls).toBeGreaterThan(0);
        expect(mixed.positions).toBe(single.positions);
        expect(mixed.hits).toBe(single.hits);
        mixed.sums.forEach((s, i) => expect(Math.abs(s - single.sums[i]!), `text ${i}`).toBeLessThanOrEqual(TOLERANCE));
        expect(single.sums.every((s) => s < -1)).toBe(true); // real log-likelihoods, not zeros

        mixedCalls = 0;
        const one = await choiceLogliks(spam, tokenizer, forward, 1, false);
        const many = await choiceLogliks(spam, tokenizer, forward, 2048, true);
        expect(mixedCalls).toBeGreaterThan(0);
        many.forEach((row, i) =>
          row.forEach((s, k) => expect(Math.abs(s - one[i]![k]!), `item ${i}`).toBeLessThanOrEqual(TOLERANCE)),
        );
        const a = await evaluateChoice(spam, tokenizer, forward, 1, false);
        const b = await evaluateChoice(spam, tokenizer, forward, 2048, true);
        expect(b.predictions).toEqual(a.predictions);
        expect(b.accuracy.value).toBe(a.accuracy.value);
        expect(b.auc!.value).toBe(a.auc!.value);
        expect(new Set(a.predictions).size).toBe(2); // both labels predicted: not a degenerate comparison

        // lm-eval's context + continuation pairs, and answer_logprob's prompt + answer rows
        mixedCalls = 0;
        const pairs = spam.flatMap((it) =>
          it.choices.map((c) => ({ ctx: tokenizer.encode(it.prompt), cont: tokenizer.encode(c) })),
        );
        const c1 = await scoreContinuations(pairs, forward, 1, undefined, false);
        const cm = await scoreContinuations(pairs, forward, 2048, undefined, true);
        expect(mixedCalls).toBeGreaterThan(0);
        cm.forEach((r, i) => {
          expect(Math.abs(r.loglik - c1[i]!.loglik), `pair ${i}`).toBeLessThanOrEqual(TOLERANCE);
          expect(r.greedy).toBe(c1[i]!.greedy);
        });
        mixedCalls = 0;
        const math = readEvalFile(join(ROOT, 'evals/micro/math.test.jsonl'), { prompt: 'prompt', answer: 'answer' })
          .slice(0, 40)
          .map((i) => ({ prompt: i.values.prompt as string, answer: i.values.answer as string }));
        const l1 = await evaluateAnswerLogprob(math, tokenizer, forward, { stop: ['\n'], batchTokens: 1 });
        const lm = await evaluateAnswerLogprob(math, tokenizer, forward, {
          stop: ['\n'],
          batchTokens: 2048,
          mixedLengths: true,
        });
        expect(mixedCalls).toBeGreaterThan(0);
        lm.answer_loglik.pseudo!.forEach((v, i) =>
          expect(Math.abs(v - l1.answer_loglik.pseudo![i]!), `math ${i}`).toBeLessThanOrEqual(TOLERANCE),
        );
        expect(Math.abs(lm.answer_logprob.value - l1.answer_logprob.value)).toBeLessThanOrEqual(TOLERANCE);
      } finally {
        await session.close();
      }
    });
  }
});

describe('the evaluator', () => {
  it('mixes lengths by default (padding runs), not with padRows: false; the scores agree with batch-1', async () => {
    const suite = join(tmp, 'suite.yaml');
    const evals = join(ROOT, 'evals/micro');
    const files = (name: string) => `fit: ${evals}/${name}.fit.jsonl, test: ${evals}/${name}.test.jsonl`;
    writeFileSync(
      suite,
      `graph: ${join(ZOO, 'base/model.onnx')}\nbase_model: ${join(ZOO, 'base')}\ntokenizer: byte\ntasks:\n` +
        `  lang: {kind: loglik, metric: loglik, ${files('lang')}}\n` +
        `  spam: {kind: choice, metric: auc, ${files('spam')}, choices: [spam, ham]}\n` +
        `  math_lp: {kind: generate, metric: answer_logprob, ${files('math')}, max_new_tokens: 4, stop: "\\n"}\n`,
    );
    const scored = async (task: string, opts: { padRows?: boolean; batchTokens?: number }) => {
      // lm_spam: the zoo's spam labels as an lm-eval multiple_choice task
      const file = task === 'lm_spam' ? join(ROOT, 'evals/micro-lm-eval.yaml') : suite;
      const ev = await Evaluator.create({ suite: file, threads: 1, weightMode: 'inputs', ...opts });
      try {
        const [score] = await ev.evaluate(expert.tensors, { split: 'test', limit: 40, tasks: [task] });
        return { score: score!, tokens: ev.tokensProcessed() };
      } finally {
        await ev.close();
      }
    };
    for (const task of ['lang', 'spam', 'math_lp', 'lm_spam']) {
      const mixed = await scored(task, {});
      const equal = await scored(task, { padRows: false });
      const single = await scored(task, { batchTokens: 1 });
      // batch-1 runs exactly the rows' tokens, equal-length batches too; mixed ones add padding (the zoo's
      // loglik texts all have one length: none there)
      expect(equal.tokens, task).toBe(single.tokens);
      if (task === 'lang') expect(mixed.tokens).toBe(single.tokens);
      else expect(mixed.tokens, task).toBeGreaterThan(single.tokens);
      for (const r of [mixed, equal]) {
        expect(Math.abs(r.score.value - single.score.value), task).toBeLessThanOrEqual(TOLERANCE);
        for (const [k, e] of Object.entries(single.score.extra))
          expect(Math.abs(r.score.extra[k]!.value - e.value), `${task} ${k}`).toBeLessThanOrEqual(TOLERANCE);
      }
      if (task === 'spam') expect(mixed.score.extra.accuracy!.value).toBe(single.score.extra.accuracy!.value);
    }
  });
});
