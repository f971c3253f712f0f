// Bad lm-eval input refused in one line naming the file and the key: Python code (!function, process_docs,
// process_results), sampling, unsupported filters and metrics, a split that does not exist, Jinja errors (with
// the template's text), few-shot examples that would be scored docs, data that is not there.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EvomergeError } from '../../../src/errors.ts';
import { parseSuiteFile } from '../../../src/eval/suite.ts';
import { buildPrompts } from '../../../src/eval/lm-eval/run-task.ts';
import { repoRoot, sharedTasks, writeHubData } from '../../fixtures/lm-eval-data.ts';

let tmp: string;
let hub: Record<string, string>;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'evomerge-lm-eval-err-'));
  hub = writeHubData(path.join(tmp, 'hub'));
  cpSync(path.join(sharedTasks, 'gsm8k'), path.join(tmp, 'gsm8k'), { recursive: true });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A suite with one lm_eval task (a task file written from `taskYaml`, or an existing path) and extra task keys. */
function suiteWith(taskYaml: string | { path: string }, taskKeys = '', suiteKeys = ''): string {
  const k = n++;
  let taskFile: string;
  if (typeof taskYaml === 'string') {
    taskFile = path.join(tmp, `task${k}.yaml`);
    writeFileSync(taskFile, taskYaml);
  } else taskFile = taskYaml.path;
  const file = path.join(tmp, `suite${k}.yaml`);
  writeFileSync(
    file,
    `tokenizer: byte\n${suiteKeys}datasets:\n${Object.entries(hub)
      .map(([a, b]) => `  ${a}: ${b}`)
      .join('\n')}\ntasks:\n  t:\n    lm_eval: ${taskFile}\n${taskKeys}`,
  );
  return file;
}

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
async function asyncErrorOf(f: () => Promise<unknown>): Promise<EvomergeError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(EvomergeError);
    expect((e as Error).message.split('\n')).toHaveLength(1);
    return e as EvomergeError;
  }
  throw new Error('expected an EvomergeError');
}

const gsm8k = path.join(sharedTasks, 'gsm8k/gsm8k.yaml');
// includes are read under the task file's folder or the suite's (task-load.ts): the task files in tmp include a copy
const over = (yaml: string) => `include: gsm8k/gsm8k.yaml\n${yaml}`;

describe('lm-eval task files: refused in one line', () => {
  it('hellaswag: process_docs is Python code', () => {
    const e = errorOf(() => parseSuiteFile(suiteWith({ path: path.join(sharedTasks, 'hellaswag/hellaswag.yaml') })));
    expect(e.code).toBe('lm_eval.unsupported');
    expect(e.file).toBe(path.join(sharedTasks, 'hellaswag/hellaswag.yaml'));
    expect(e.field).toBe('process_docs');
    expect(e.message).toContain('!function utils.process_docs');
  });

  it('!function anywhere, and process_results', () => {
    let e = errorOf(() => parseSuiteFile(suiteWith(over('metric_list:\n  - metric: !function utils.my_metric\n'))));
    expect([e.code, e.field]).toEqual(['lm_eval.unsupported', 'metric_list']);
    expect(e.message).toContain('utils.my_metric');
    e = errorOf(() => parseSuiteFile(suiteWith(over('process_results: !function utils.process_results\n'))));
    expect(e.field).toBe('process_results');
  });

  it('sampling and beam search', () => {
    let e = errorOf(() => parseSuiteFile(suiteWith(over('generation_kwargs:\n  until: ["\\n"]\n  do_sample: true\n'))));
    expect([e.code, e.field]).toEqual(['lm_eval.unsupported', 'generation_kwargs.do_sample']);
    expect(e.message).toContain('greedily');
    e = errorOf(() => parseSuiteFile(suiteWith(over('generation_kwargs:\n  temperature: 0.7\n'))));
    expect(e.field).toBe('generation_kwargs.temperature');
    e = errorOf(() => parseSuiteFile(suiteWith(over('generation_kwargs:\n  top_p: 0.9\n'))));
    expect(e.field).toBe('generation_kwargs.top_p');
  });

  it('unsupported filters and metrics', () => {
    let e = errorOf(() =>
      parseSuiteFile(suiteWith(over('filter_list:\n  - name: vote\n    filter:\n      - function: majority_vote\n'))),
    );
    expect([e.code, e.field]).toEqual(['lm_eval.unsupported', 'filter_list[0].filter[0].function']);
    e = errorOf(() => parseSuiteFile(suiteWith(over('metric_list:\n  - metric: bleu\n'))));
    expect([e.code, e.field]).toEqual(['lm_eval.unsupported', 'metric_list[0].metric']);
    e = errorOf(() =>
      parseSuiteFile(
        suiteWith(
          over('filter_list:\n  - name: r\n    filter:\n      - function: regex\n        regex_pattern: "(?x) a b"\n'),
        ),
      ),
    );
    expect(e.field).toBe('filter_list[0].filter[0].regex_pattern');
  });

  it('a split that does not exist names the key that asks for it', () => {
    const e = errorOf(() => parseSuiteFile(suiteWith(over('test_split: validation\n'))));
    expect([e.code, e.field]).toEqual(['lm_eval.no_split', 'test_split']);
    expect(e.message).toContain('split "validation" does not exist');
    expect(e.message).toMatch(/has: (train, test|test, train)/);
  });

  it('a Jinja syntax error quotes the template; an undefined field is caught when the doc is rendered', async () => {
    let e = errorOf(() => parseSuiteFile(suiteWith(over('doc_to_text: "Question: {{ question \\nAnswer:"\n'))));
    expect([e.code, e.field]).toEqual(['lm_eval.bad_template', 'doc_to_text']);
    expect(e.message).toContain('Question: {{ question');
    const s = parseSuiteFile(suiteWith(over('doc_to_text: "Q: {{ questoin }}"\n'), '    max_gen_toks: 8\n'));
    e = await asyncErrorOf(() => buildPrompts(s.tasks[0]!.lmEval!, 'fit'));
    expect([e.code, e.field]).toEqual(['lm_eval.template_error', 'doc_to_text']);
    expect(e.message).toContain("'questoin' is undefined");
    expect(e.message).toContain('"Q: {{ questoin }}"');
  });

  it('few-shot examples never come from scored docs', () => {
    const arc = { path: path.join(sharedTasks, 'arc/arc_easy.yaml') };
    const e = errorOf(() => parseSuiteFile(suiteWith(arc, '    num_fewshot: 1\n    fewshot_split: validation\n')));
    expect([e.code, e.field]).toEqual(['suite.fewshot_leak', 'tasks.t.fewshot_split']);
    // a task whose only examples are in its test split
    const only = errorOf(() => parseSuiteFile(suiteWith(over('training_split: null\nfewshot_split: test\n'))));
    expect(only.code).toBe('suite.fewshot_leak');
  });

  it('missing data, include, suite keys; max_gen_toks that fills the context', () => {
    const noMap = path.join(tmp, 'nomap.yaml');
    writeFileSync(noMap, `tokenizer: byte\ntasks:\n  t:\n    lm_eval: ${gsm8k}\n`);
    let e = errorOf(() => parseSuiteFile(noMap));
    expect([e.code, e.field, e.file]).toEqual(['lm_eval.no_local_data', 'dataset_path', gsm8k]);
    e = errorOf(() => parseSuiteFile(suiteWith('include: nowhere\ntask: x\n')));
    expect([e.code, e.field]).toEqual(['lm_eval.bad_include', 'include']);
    e = errorOf(() => parseSuiteFile(suiteWith({ path: gsm8k }, '    kind: generate\n')));
    expect([e.code, e.field]).toEqual(['eval.suite_unknown_key', 'tasks.t.kind']);
    e = errorOf(() => parseSuiteFile(suiteWith({ path: gsm8k }, '    metric: acc\n')));
    expect(e.field).toBe('tasks.t.metric');
    expect(e.message).toContain('exact_match,strict-match');
    e = errorOf(() => parseSuiteFile(suiteWith({ path: gsm8k }, '', `base_model: ${repoRoot}/models/micro/base\n`)));
    expect(e.field).toBe('tasks.t.lm_eval');
    expect(e.message).toContain('max_gen_toks 256');
    e = errorOf(() => parseSuiteFile(suiteWith(over('dataset_path: json\n'))));
    expect(e.field).toBe('dataset_kwargs');
  });
});
