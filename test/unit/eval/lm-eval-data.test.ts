// lm-eval data and the log-likelihood output types: dataset_path csv / json (JSON Lines and a JSON list) with
// data_files, Python regex translation, literal_eval of rendered lists, lm-eval's context/continuation split,
// and loglikelihood / loglikelihood_rolling scored on the zoo (rolling bits_per_byte checked against the native
// loglik task, whose pooled per-byte score differs only by counting the first byte of each text).
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSuiteFile } from '../../../src/eval/suite.ts';
import { buildPrompts, encodePair } from '../../../src/eval/lm-eval/run-task.ts';
import { compilePythonRegex, findAll } from '../../../src/eval/lm-eval/python-regex.ts';
import { parsePythonLiteral } from '../../../src/eval/lm-eval/python-literal.ts';
import { ByteTokenizer } from '../../../src/eval/tokenizers/byte.ts';
import { Evaluator } from '../../../src/eval/evaluator.ts';
import { openModelDir } from '../../../src/checkpoint/model-dir.ts';
import { repoRoot } from '../../fixtures/lm-eval-data.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'evomerge-lm-eval-data-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function suiteFor(taskYaml: string, name = 't', taskKeys = ''): string {
  const taskFile = path.join(tmp, `${name}.yaml`);
  writeFileSync(taskFile, taskYaml);
  const file = path.join(tmp, `${name}-suite.yaml`);
  writeFileSync(
    file,
    `graph: ${repoRoot}/models/micro/base/model.onnx\nbase_model: ${repoRoot}/models/micro/base\ntokenizer: ` +
      `byte\ntasks:\n  ${name}:\n    lm_eval: ${taskFile}\n${taskKeys}`,
  );
  return file;
}

describe('local data files', () => {
  it('csv: quoted cells, commas and newlines inside quotes, numeric columns as numbers', async () => {
    writeFileSync(path.join(tmp, 'qa.csv'), 'q,a,n\n"Say ""hi"", twice",hi hi,2\n"line\nbreak",x,10\n');
    const s = parseSuiteFile(
      suiteFor(
        'dataset_path: csv\ndataset_kwargs:\n  data_files: qa.csv\ntest_split: train\noutput_type: ' +
          'generate_until\ndoc_to_text: "{{q}}|{{n + 1}}"\ndoc_to_target: a\ngeneration_kwargs:\n  max_gen_toks: 4\n',
        'csv',
      ),
    );
    // a bare data_files path is the train split, as load_dataset reads it
    const p = await buildPrompts(s.tasks[0]!.lmEval!, 'fit');
    const q = await buildPrompts(s.tasks[0]!.lmEval!, 'test');
    expect([...p.prompts, ...q.prompts].sort()).toEqual(['Say "hi", twice|3', 'line\nbreak|11']);
  });

  it('json: a JSON list as well as JSON Lines', async () => {
    writeFileSync(path.join(tmp, 'list.json'), JSON.stringify([{ t: 'one' }, { t: 'two' }]));
    writeFileSync(path.join(tmp, 'lines.jsonl'), '{"t": "three"}\n\n{"t": "four"}\n');
    const s = parseSuiteFile(
      suiteFor(
        'dataset_path: json\ndataset_kwargs:\n  data_files:\n    validation: list.json\n    test: ' +
          '[lines.jsonl]\nvalidation_split: validation\ntest_split: test\ndoc_to_text: t\ndoc_to_target: ' +
          't\ngeneration_kwargs:\n  max_gen_toks: 4\n',
        'json',
      ),
    );
    expect((await buildPrompts(s.tasks[0]!.lmEval!, 'fit')).prompts).toEqual(['one', 'two']);
    expect((await buildPrompts(s.tasks[0]!.lmEval!, 'test')).prompts).toEqual(['three', 'four']);
    // generation_kwargs given without until: no stop string; absent: lm-eval stops at the few-shot delimiter
    expect(s.tasks[0]!.lmEval!.task.until).toEqual([]);
    const d = parseSuiteFile(
      suiteFor(
        'dataset_path: json\ndataset_kwargs:\n  data_files: {test: list.json}\ntest_split: test\ndoc_to_text: ' +
          't\ndoc_to_target: t\nfewshot_delimiter: "###"\n',
        'json2',
        '    max_gen_toks: 4\n',
      ),
    );
    expect(d.tasks[0]!.lmEval!.task.until).toEqual(['###']);
  });
});

describe('Python semantics', () => {
  it('regexes: leading inline flags, $ before a final newline, findall with 0, 1 and 2 groups', () => {
    expect('a\n#### 5'.replace(compilePythonRegex('(?s).*#### ', true), '')).toBe('5');
    expect(compilePythonRegex('\\.$').test('42.\n')).toBe(true); // Python: $ also matches before a final \n
    expect(compilePythonRegex('\\.$').test('42.\nx')).toBe(false);
    expect(compilePythonRegex('\\d\\Z').test('4\n')).toBe(false);
    expect(findAll(compilePythonRegex('[0-9]+', true), 'a1b22')).toEqual(['1', '22']);
    expect(findAll(compilePythonRegex('x(\\d)', true), 'x1x2')).toEqual(['1', '2']);
    expect(findAll(compilePythonRegex('(a)|(b)', true), 'ab')).toEqual([
      ['a', ''],
      ['', 'b'],
    ]);
    expect(findAll(compilePythonRegex('(?P<d>\\d)(?P=d)', true), '11 23 44')).toEqual(['1', '4']);
  });

  it('literal_eval of rendered lists in either quote style', () => {
    expect(parsePythonLiteral("['a', \"b'c\", 'd\\'e']")).toEqual(['a', "b'c", "d'e"]);
    expect(parsePythonLiteral('[1, 2.5, True, None]')).toEqual([1, 2.5, true, null]);
    expect(() => parsePythonLiteral('[1, 2')).toThrow('not a Python literal');
  });

  it("the context's trailing whitespace moves to the continuation (HFLM._encode_pair)", () => {
    const tok = new ByteTokenizer();
    expect(encodePair(tok, 'Label: ', 'spam')).toEqual({ ctx: tok.encode('Label:'), cont: tok.encode(' spam') });
    expect(encodePair(tok, 'Q\n\n', ' A')).toEqual({ ctx: tok.encode('Q'), cont: tok.encode('\n\n A') });
  });
});

describe('log-likelihood output types on the zoo', () => {
  it("loglikelihood_rolling: bits_per_byte = the native loglik task's, rescaled from predicted bytes to all bytes", async () => {
    // data files are read under the task file's folder or the suite's (task-load.ts): a copy beside them
    const lang = path.join(tmp, 'lang.fit.jsonl');
    copyFileSync(path.join(repoRoot, 'evals/micro/lang.fit.jsonl'), lang);
    const rolling = suiteFor(
      `dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: ${lang}\ntest_split: test\noutput_type: ` +
        `loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: text\n`,
      'rolling',
    );
    const native = path.join(tmp, 'native.yaml');
    const m = openModelDir(path.join(repoRoot, 'models/micro/expert-lang'));
    const evA = await Evaluator.create({ suite: rolling, threads: 1 });
    try {
      // the 20 fit docs of a seeded half of the file, against the same 20 texts through the native task
      const [r] = await evA.evaluate(m.tensors, { split: 'fit', limit: 20 });
      const texts = (await buildPrompts(parseSuiteFile(rolling).tasks[0]!.lmEval!, 'fit', 20)).docs.map(
        (d) => d.text as string,
      );
      const lines = readFileSync(lang, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
      const order = texts.map((t) => lines.findIndex((l) => (JSON.parse(l) as { text: string }).text === t));
      expect(order.every((i) => i >= 0)).toBe(true);
      writeFileSync(path.join(tmp, 'subset.jsonl'), order.map((i) => lines[i]).join('\n') + '\n');
      writeFileSync(
        native,
        `graph: ${repoRoot}/models/micro/base/model.onnx\nbase_model: ${repoRoot}/models/micro/base\ntasks:\n  ` +
          `lang:\n    kind: loglik\n    fit: ${tmp}/subset.jsonl\n    test: ${tmp}/subset.jsonl\n`,
      );
      const evC = await Evaluator.create({ suite: native, threads: 1 });
      const [n] = await evC.evaluate(m.tensors, { split: 'fit' });
      await evC.close();
      expect(r!.metric).toBe('word_perplexity,none');
      const predicted = texts.reduce((a, t) => a + Buffer.byteLength(t) - 1, 0);
      const all = texts.reduce((a, t) => a + Buffer.byteLength(t), 0);
      expect(r!.extra['bits_per_byte,none']!.value).toBeCloseTo((n!.extra.bits_per_byte!.value * predicted) / all, 10);
      expect(r!.extra['byte_perplexity,none']!.value).toBeCloseTo(2 ** r!.extra['bits_per_byte,none']!.value, 10);
    } finally {
      m.close();
      await evA.close();
    }
  });

  it('loglikelihood: perplexity of the continuation and whether it is the greedy one', async () => {
    // data files are read under the task file's folder or the suite's (task-load.ts): a copy beside them
    const words = path.join(tmp, 'math_words.fit.jsonl');
    copyFileSync(path.join(repoRoot, 'evals/micro/math_words.fit.jsonl'), words);
    const file = suiteFor(
      `dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: ${words}\ntest_split: test\noutput_type: ` +
        `loglikelihood\ndoc_to_text: prompt\ndoc_to_target: "{{answer}}"\ntarget_delimiter: ""\n`,
      'll',
    );
    const ev = await Evaluator.create({ suite: file, threads: 1 });
    const math = openModelDir(path.join(repoRoot, 'models/micro/expert-math'));
    const base = openModelDir(path.join(repoRoot, 'models/micro/base'));
    try {
      const [e] = await ev.evaluate(math.tensors, { split: 'fit', limit: 30 });
      const [b] = await ev.evaluate(base.tensors, { split: 'fit', limit: 30 });
      expect(e!.metric).toBe('perplexity,none');
      // the math expert finds the answers far likelier than the base model, and mostly as its greedy choice
      expect(e!.value).toBeGreaterThan(1);
      expect(e!.value).toBeLessThan(b!.value);
      expect(e!.extra['acc,none']!.value).toBeGreaterThan(0.5);
      expect(b!.extra['acc,none']!.value).toBeLessThan(e!.extra['acc,none']!.value);
    } finally {
      math.close();
      base.close();
      await ev.close();
    }
  });
});

describe('greedy generation and stop strings', () => {
  // A scripted next-token source: row r emits the bytes of scripts[r], one per step (the decoding loop is under
  // test here, not a model); the logits put all mass on the scripted byte.
  const scripted = (scripts: string[], prompts: string[]) => {
    const bytes = scripts.map((s) => [...Buffer.from(s, 'utf8')]);
    const promptLen = Buffer.byteLength(prompts[0]!);
    let calls = 0;
    const forward = async (rows: readonly (readonly number[])[]) => {
      calls++;
      const seq = rows[0]!.length;
      const data = new Float32Array(rows.length * seq * 256).fill(-10);
      rows.forEach((r, i) => {
        const row = scripts.findIndex((_, k) => Buffer.from(prompts[k]!).equals(Buffer.from(r.slice(0, promptLen))));
        const step = seq - promptLen;
        data[(i * seq + seq - 1) * 256 + (bytes[row]![step] ?? 10)] = 10;
      });
      return { data, batch: rows.length, seq, vocab: 256 };
    };
    return { forward, calls: () => calls };
  };

  it('a multi-byte stop string is found on the decoded text across token boundaries and not kept; finished rows leave', async () => {
    const { generateGreedy } = await import('../../../src/eval/tasks/generate.ts');
    const prompts = ['P1:', 'P2:'];
    const s = scripted(['答え13問題：次', '7\n\n8'], prompts);
    const out = await generateGreedy(prompts, new ByteTokenizer(), s.forward, {
      maxNewTokens: 40,
      stop: ['問題：', '\n\n'],
      batchTokens: 2048,
    });
    expect(out).toEqual(['答え13', '7']);
    // row 2 stops after 3 tokens, row 1 after 17 bytes ('答え13問題：' is 6 + 2 + 9): 17 steps, not 40
    expect(s.calls()).toBe(17);
  });
});
