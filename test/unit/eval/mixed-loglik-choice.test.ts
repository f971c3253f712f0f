// Loglik and choice rows of different lengths in one forward pass (padded on the right; forward.ts batchesMixed),
// against batch-1 on the micro zoo's texts and spam labels: per-item log-likelihoods within 1e-5 absolute, the
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
    writeFileSync(
      suite,
      `graph: ${join(ZOO, 'base/model.onnx')}\nbase_model: ${join(ZOO, 'base')}\ntokenizer: byte\ntasks:\n` +
        `  lang: {kind: loglik, metric: loglik, fit: ${evals}/lang.fit.jsonl, test: ${evals}/lang.test.jsonl}\n` +
        `  spam: {kind: choice, metric: auc, fit: ${evals}/spam.fit.jsonl, test: ${evals}/spam.test.jsonl, ` +
        `choices: [spam, ham]}\n`,
    );
    const run = { split: 'test' as const, limit: 40 };
    const scored = async (opts: { padRows?: boolean; batchTokens?: number }) => {
      const ev = await Evaluator.create({ suite, threads: 1, weightMode: 'inputs', ...opts });
      try {
        const scores = await ev.evaluate(expert.tensors, run);
        return { scores, tokens: ev.tokensProcessed() };
      } finally {
        await ev.close();
      }
    };
    const mixed = await scored({});
    const equal = await scored({ padRows: false });
    const single = await scored({ batchTokens: 1 });
    // batch-1 runs exactly the items' tokens; equal-length batches too; mixed ones add the padding
    expect(equal.tokens).toBe(single.tokens);
    expect(mixed.tokens).toBeGreaterThan(single.tokens);
    for (const r of [mixed, equal]) {
      expect(r.scores.map((s) => s.task)).toEqual(['lang', 'spam']);
      expect(Math.abs(r.scores[0]!.value - single.scores[0]!.value)).toBeLessThanOrEqual(TOLERANCE);
      expect(r.scores[1]!.value).toBe(single.scores[1]!.value); // AUC
      expect(r.scores[1]!.extra.accuracy!.value).toBe(single.scores[1]!.extra.accuracy!.value);
    }
  });
});
