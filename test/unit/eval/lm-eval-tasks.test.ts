// The task files of ../shared/lm-eval-tasks, used in place, on small local data in their datasets' schemas:
// the prompts of the first docs (few-shot included) against text written by hand from lm-eval's documented rules
// (description + examples joined by target_delimiter and fewshot_delimiter + question), the fit/test hygiene,
// and each task's filters and metrics against hand-computed cases.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSuiteFile, type Suite, type TaskSpec } from '../../../src/eval/suite.ts';
import { buildPrompts } from '../../../src/eval/lm-eval/run-task.ts';
import { applyPipeline } from '../../../src/eval/lm-eval/filters.ts';
import { choiceHits, exactMatch } from '../../../src/eval/lm-eval/metrics.ts';
import { docToChoice, docToTarget, targetText } from '../../../src/eval/lm-eval/doc-render.ts';
import { ARC, GSM8K_TEST, GSM8K_TRAIN, MGSM_EN, MGSM_JA, writeSharedSuite } from '../../fixtures/lm-eval-data.ts';

let tmp: string;
let suite: Suite;
const task = (name: string): TaskSpec => suite.tasks.find((t) => t.name === name)!;

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'evomerge-lm-eval-'));
  suite = parseSuiteFile(writeSharedSuite(tmp));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('gsm8k/gsm8k.yaml', () => {
  it('renders 5 examples from the train split, then the question; fit and test partition the test split', async () => {
    const s = task('gsm8k').lmEval!;
    const fit = await buildPrompts(s, 'fit');
    const test = await buildPrompts(s, 'test');
    // a seeded half each, disjoint, together the whole test split
    expect(fit.docs).toHaveLength(2);
    expect(test.docs).toHaveLength(2);
    expect([...fit.docs, ...test.docs].map((d) => d.question).sort()).toEqual(GSM8K_TEST.map((d) => d.question).sort());
    const shot = (d: { question: string; answer: string }) => `Question: ${d.question}\nAnswer: ${d.answer}`;
    for (const r of [fit, test]) {
      r.prompts.forEach((p, i) => {
        // "Question: {{question}}\nAnswer:" + " " + answer + "\n\n", five times (num_fewshot 5, any order), then the doc
        const parts = p.split('\n\n');
        expect(parts).toHaveLength(6);
        expect(parts[5]).toBe(`Question: ${r.docs[i]!.question as string}\nAnswer:`);
        expect(parts.slice(0, 5).sort()).toEqual(GSM8K_TRAIN.map(shot).sort());
      });
    }
    // seeded: the same examples in the same order every time
    expect((await buildPrompts(s, 'fit')).prompts).toEqual(fit.prompts);
  });

  it('strict-match and flexible-extract, scored with regexes_to_ignore and ignore_case', () => {
    const t = task('gsm8k').lmEval!.task;
    const [strict, flexible] = t.filters;
    expect([strict!.name, flexible!.name]).toEqual(['strict-match', 'flexible-extract']);
    expect(applyPipeline(strict!, ['Natalia sold 24 clips.\n#### 72'])).toBe('72');
    expect(applyPipeline(strict!, ['#### -1,234.5 dollars'])).toBe('-1,234.5');
    expect(applyPipeline(strict!, ['The answer is 72'])).toBe('[invalid]');
    // group_select −1: the last match; of its two groups the non-empty one
    expect(applyPipeline(flexible!, ['I think 5 + 10 = 15. So $20.'])).toBe('$20.');
    expect(applyPipeline(flexible!, ['only 7 left'])).toBe('7');
    expect(applyPipeline(flexible!, ['no digits'])).toBe('[invalid]');
    const em = t.metrics[0]!;
    const ref = targetText(t, GSM8K_TEST[2]!, 'doc'); // "… #### 999", the whole answer (doc_to_target "{{answer}}")
    expect(ref).toBe(GSM8K_TEST[2]!.answer);
    expect(exactMatch(em, '999', ref)).toBe(true); // "(?s).*#### " removes the reasoning from the reference
    expect(exactMatch(em, '$999.', ref)).toBe(true); // "\$" and "\.$"
    expect(exactMatch(em, '9,9,9', ref)).toBe(true); // ","
    expect(exactMatch(em, '[invalid]', ref)).toBe(false);
    expect(exactMatch(em, '998', ref)).toBe(false);
  });
});

describe('gsm8k/gsm8k-cot.yaml', () => {
  it('renders the 8 inline samples (first_n) before the question, through the Jinja target', async () => {
    const s = task('gsm8k_cot').lmEval!;
    const fit = await buildPrompts(s, 'fit');
    const p = fit.prompts[0]!;
    expect(
      p.startsWith(
        'Q: There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, ' +
          'there will be 21 trees. How many trees did the grove workers plant today?\n' +
          'A: There are 15 trees originally. Then there were 21 trees after some more were planted. So there must ' +
          'have been 21 - 15 = 6. The answer is 6.\n\n' +
          'Q: If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking ' +
          'lot?\nA: There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.\n\n',
      ),
    ).toBe(true);
    expect(p.split('\n\nQ: ')).toHaveLength(9);
    expect(p.endsWith(`\n\nQ: ${fit.docs[0]!.question as string}\nA:`)).toBe(true);
    expect(p).toContain('23 - 15 is 8. The answer is 8.\n\nQ: ');
    // doc_to_target: answer.split('####')[-1].strip() for a dataset doc, `target` for an inline sample
    expect(targetText(s.task, GSM8K_TEST[0]!, 'doc')).toBe('42');
    expect(targetText(s.task, { question: 'q', target: 'T' }, 'sample')).toBe('T');
  });

  it('extracts "The answer is N." strictly and the last number flexibly', () => {
    const t = task('gsm8k_cot').lmEval!.task;
    const [strict, flexible] = t.filters;
    const out = 'Sam read 12 + 8 = 20 pages. The answer is 20.\n\n';
    expect(applyPipeline(strict!, [out])).toBe('20');
    expect(applyPipeline(flexible!, [out])).toBe('20.');
    expect(applyPipeline(strict!, ['It is 20.'])).toBe('[invalid]');
    expect(exactMatch(t.metrics[0]!, '20.', '20')).toBe(true);
  });
});

describe('arc/arc_easy.yaml', () => {
  it('uses validation as fit and test as test; choices from a Jinja list, the target as an index', async () => {
    const s = task('arc_easy').lmEval!;
    const fit = await buildPrompts(s, 'fit');
    const test = await buildPrompts(s, 'test');
    expect(fit.docs.map((d) => d.id)).toEqual(['v1', 'v2']);
    expect(test.docs.map((d) => d.id)).toEqual(['x1', 'x2']);
    expect(fit.prompts).toEqual([
      'Question: What do plants need to grow?\nAnswer:',
      'Question: Which is the hottest?\nAnswer:',
    ]);
    expect(docToChoice(s.task, ARC.validation[1]!, 'doc')).toEqual(['ice', 'snow', 'the sun']);
    expect(docToTarget(s.task, ARC.validation[1]!, 'doc')).toBe(2); // choices.label.index(answerKey)
    expect(task('arc_easy').metrics).toEqual(['acc,none', 'acc_norm,none']);
  });

  it('with num_fewshot 1 the example comes from the train split, its answer as the gold choice text', async () => {
    const fit = await buildPrompts(task('arc_easy_1shot').lmEval!, 'fit');
    expect(fit.prompts[0]).toBe(
      'Question: Which is a liquid?\nAnswer: water\n\nQuestion: What do plants need to grow?\nAnswer:',
    );
  });

  it('acc takes the highest log-likelihood, acc_norm the highest per character', () => {
    // "ab" −4 (−2/char), "abcdef" −5 (−0.83/char): acc picks 0, acc_norm picks 1
    expect(choiceHits([-4, -5], ['ab', 'abcdef'], 1)).toEqual({ acc: false, acc_norm: true });
    expect(choiceHits([-4, -5], ['ab', 'abcdef'], 0)).toEqual({ acc: true, acc_norm: false });
    // ties go to the first choice (np.argmax); lengths count characters, not bytes
    expect(choiceHits([-3, -3], ['é', 'e'], 0)).toEqual({ acc: true, acc_norm: true });
  });
});

describe('mgsm/direct', () => {
  it('en: include without .yaml, target_delimiter "", Jinja if/else on a null answer, |string', async () => {
    const s = task('mgsm_en').lmEval!;
    expect(s.task.targetDelimiter).toBe('');
    expect(s.task.until).toEqual(['Question:', '</s>', '<|im_end|>']);
    const fit = await buildPrompts(s, 'fit');
    const test = await buildPrompts(s, 'test');
    expect([...fit.docs, ...test.docs].map((d) => d.answer_number as number).sort((a, b) => a - b)).toEqual([3, 13]);
    const q = fit.docs[0]!.question as string;
    // the train doc has an answer: its question as is; the test doc has none: "Question: " is prepended
    expect(fit.prompts[0]).toBe(`${MGSM_EN.train[0]!.question}\nAnswer:11\n\nQuestion: ${q}\nAnswer:`);
    expect(targetText(s.task, fit.docs[0]!, 'doc')).toBe(String(fit.docs[0]!.answer_number));
  });

  it('ja: 問題： prefix and stop string', async () => {
    const s = task('mgsm_ja').lmEval!;
    expect(s.task.until).toEqual(['問題：', '</s>', '<|im_end|>']);
    const fit = await buildPrompts(s, 'fit');
    expect(fit.prompts[0]).toBe(
      `${MGSM_JA.train[0]!.question}\nAnswer:11\n\n問題： ${fit.docs[0]!.question as string}\nAnswer:`,
    );
  });

  it('remove_whitespace strips the left only; exact_match ignores case and punctuation', () => {
    const t = task('mgsm_en').lmEval!.task;
    const [ws, flexible] = t.filters;
    expect(ws!.name).toBe('remove_whitespace');
    expect(applyPipeline(ws!, ['  13 eggs '])).toBe('13 eggs ');
    expect(applyPipeline(flexible!, ['There are 1,000. No, 13.'])).toBe('13.');
    const em = t.metrics[0]!;
    expect([em.ignoreCase, em.ignorePunctuation]).toEqual([true, true]);
    expect(exactMatch(em, '13.', '13')).toBe(true);
    expect(exactMatch(em, '1,000', '1000')).toBe(true);
    expect(exactMatch(em, '13 eggs ', '13')).toBe(false);
    expect(exactMatch({ ...em, ignorePunctuation: false }, '13.', '13')).toBe(false);
  });
});
