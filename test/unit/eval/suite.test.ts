// Eval suites and eval files: the micro suite parses to the zoo's six tasks; every bad input is one line naming
// the file, the key (and for JSONL the line number and field).
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSuite, parseSuiteFile } from '../../../src/eval/suite.ts';
import { readEvalFile } from '../../../src/eval/eval-file.ts';
import { EvomergeError } from '../../../src/errors.ts';

const ROOT = join(import.meta.dirname, '../../..');
const tmp = mkdtempSync(join(tmpdir(), 'evomerge-suite-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
mkdirSync(join(tmp, 'data'));
writeFileSync(join(tmp, 'data/a.jsonl'), '{"prompt": "1+1=", "answer": "2"}\n');
const SUITE = join(tmp, 'suite.yaml');

function errorOf(f: () => unknown): EvomergeError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(EvomergeError);
    expect((e as Error).message.split('\n')).toHaveLength(1);
    return e as EvomergeError;
  }
  throw new Error('expected an EvomergeError');
}
const task = (extra: string) =>
  `tasks:\n  t:\n    kind: generate\n    fit: data/a.jsonl\n    test: data/a.jsonl\n    max_new_tokens: 3\n${extra}`;

describe('eval suite', () => {
  it('describes the zoo tasks as the zoo README does', () => {
    const s = parseSuiteFile(join(ROOT, 'evals/micro.yaml'));
    expect(s.graph).toBe(join(ROOT, 'models/micro/base/model.onnx'));
    expect(s.baseModel).toBe(join(ROOT, 'models/micro/base'));
    expect(s.tokenizer).toBe('byte');
    const t = Object.fromEntries(s.tasks.map((x) => [x.name, x]));
    expect(Object.keys(t)).toEqual(['math', 'math_words', 'composite', 'spam', 'lang', 'english']);
    for (const n of ['math', 'math_words', 'composite'])
      expect([t[n]!.kind, t[n]!.metric, t[n]!.maxNewTokens, t[n]!.stop]).toEqual([
        'generate',
        'exact_match',
        4,
        ['\n'],
      ]);
    expect([t.spam!.kind, t.spam!.maxNewTokens, t.spam!.stop]).toEqual(['generate', 5, ['\n']]);
    for (const n of ['lang', 'english']) {
      expect([t[n]!.kind, t[n]!.metric]).toEqual(['loglik', 'loglik']);
      expect(t[n]!.files).toEqual({
        fit: join(ROOT, `evals/micro/${n}.fit.jsonl`),
        test: join(ROOT, `evals/micro/${n}.test.jsonl`),
      });
    }
  });

  it.each([
    ['an unknown top-level key', `grpah: x\n${task('')}`, 'eval.suite_unknown_key', /suite\.yaml: grpah: unknown key/],
    [
      'an unknown task key',
      task('    max_new: 4\n'),
      'eval.suite_unknown_key',
      /suite\.yaml: tasks\.t\.max_new: unknown key/,
    ],
    [
      'a missing eval file',
      task('').replace('test: data/a.jsonl', 'test: data/b.jsonl'),
      'eval.suite_missing_file',
      /suite\.yaml: tasks\.t\.test: data\/b\.jsonl not found/,
    ],
    [
      'a missing test key',
      task('').replace('    test: data/a.jsonl\n', ''),
      'eval.bad_suite',
      /tasks\.t\.test: missing/,
    ],
    [
      'a bad kind',
      task('').replace('kind: generate', 'kind: classify'),
      'eval.bad_suite',
      /tasks\.t\.kind: expected generate, choice or loglik/,
    ],
    [
      'a metric of another kind',
      task('    metric: loglik\n'),
      'eval.bad_suite',
      /tasks\.t\.metric: expected one of exact_match, answer_logprob/,
    ],
    [
      'no max_new_tokens for generate',
      task('').replace('    max_new_tokens: 3\n', ''),
      'eval.bad_suite',
      /tasks\.t\.max_new_tokens: expected a positive integer/,
    ],
    [
      'a missing graph',
      `graph: nope.onnx\n${task('')}`,
      'eval.suite_missing_file',
      /suite\.yaml: graph: nope\.onnx not found/,
    ],
    [
      'an unknown field role',
      task('    fields: {question: q}\n'),
      'eval.suite_unknown_key',
      /tasks\.t\.fields\.question: unknown role/,
    ],
  ])('rejects %s', (_what, text, code, message) => {
    const e = errorOf(() => parseSuite(text, SUITE));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
  });

  it("defaults to graph: auto with the base model's tokenizer when the suite names no graph", () => {
    const s = parseSuite(task(''), SUITE);
    expect(s.graph).toBeUndefined(); // the evaluator then builds the graph (graph: auto)
    expect(s.tokenizer).toBe('auto');
    const explicit = parseSuite(`graph: auto\ntokenizer: auto\n${task('')}`, SUITE);
    expect([explicit.graph, explicit.tokenizer]).toEqual(['auto', 'auto']);
  });

  it('accepts renamed fields, several stop strings and the answer_logprob metric', () => {
    const s = parseSuite(
      task('    metric: answer_logprob\n    stop: ["\\n", "."]\n    fields: {prompt: q, answer: a}\n'),
      SUITE,
    );
    expect(s.tasks[0]).toMatchObject({
      metric: 'answer_logprob',
      stop: ['\n', '.'],
      fields: { prompt: 'q', answer: 'a' },
    });
  });
});

describe('eval files (JSONL)', () => {
  const fields = { prompt: 'prompt', answer: 'answer' };
  const write = (name: string, text: string) => {
    const p = join(tmp, name);
    writeFileSync(p, text);
    return p;
  };
  it('reads items with their line numbers, skipping blank lines', () => {
    const p = write('ok.jsonl', '{"prompt": "a", "answer": "b"}\n\n{"prompt": "c", "answer": "d", "extra": 1}\n');
    expect(readEvalFile(p, fields)).toEqual([
      { line: 1, values: { prompt: 'a', answer: 'b' } },
      { line: 3, values: { prompt: 'c', answer: 'd' } },
    ]);
  });
  it.each([
    [
      'a malformed line',
      '{"prompt": "a", "answer": "b"}\n{"prompt": "a",\n',
      'eval.bad_jsonl',
      /bad\.jsonl:2: \(line\): not valid JSON/,
    ],
    [
      'a missing field',
      '{"prompt": "a", "answer": "b"}\n{"prompt": "a"}\n',
      'eval.bad_jsonl',
      /bad\.jsonl:2: answer: missing field/,
    ],
    [
      'a field of the wrong type',
      '{"prompt": 3, "answer": "b"}\n',
      'eval.bad_jsonl',
      /bad\.jsonl:1: prompt: expected a string, got number/,
    ],
    [
      'a line that is not an object',
      '["a", "b"]\n',
      'eval.bad_jsonl',
      /bad\.jsonl:1: \(line\): expected a JSON object/,
    ],
    ['an empty file', '\n\n', 'eval.empty_file', /bad\.jsonl: \(file\): the eval file has no items/],
  ])('rejects %s', (_what, text, code, message) => {
    const p = write('bad.jsonl', text);
    const e = errorOf(() => readEvalFile(p, fields));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
  });
});
