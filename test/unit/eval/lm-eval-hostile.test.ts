// A hostile lm-eval task file cannot hang eval or make evomerge print another file: include chains are bounded in
// depth and in files read, a template's render in steps and characters, patterns refused where a backtracking
// engine could run for ever; includes and data_files are read only under the task file's folder and the
// suite's; errors give a data or YAML file's place, never its text. Each refusal is one line naming file and key.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EvomergeError } from '../../../src/errors.ts';
import { parseSuiteFile } from '../../../src/eval/suite.ts';
import { buildPrompts } from '../../../src/eval/lm-eval/run-task.ts';
import { MAX_INCLUDE_DEPTH, MAX_INCLUDE_FILES } from '../../../src/eval/lm-eval/task-load.ts';

let tmp: string;
let outside: string;
const SECRET = 'SECRET-CONTENT-of-a-file-outside';
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'evomerge-lm-eval-hostile-'));
  outside = mkdtempSync(path.join(tmpdir(), 'evomerge-lm-eval-outside-'));
  writeFileSync(path.join(outside, 'secret.yaml'), `${SECRET}: [unclosed\n`);
  writeFileSync(path.join(outside, 'secret.jsonl'), `${SECRET}\n`);
  writeFileSync(path.join(tmp, 'data.jsonl'), '{"q": "1+1", "a": "2"}\n{"q": "2+2", "a": "4"}\n');
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

const TASK =
  'dataset_path: json\ndataset_kwargs:\n  data_files: {test: data.jsonl}\ntest_split: test\ndoc_to_text: q\ndoc_to_target: a\n';

let n = 0;
function suiteWith(taskYaml: string, dir = tmp): string {
  const k = n++;
  const taskFile = path.join(dir, `task${k}.yaml`);
  writeFileSync(taskFile, taskYaml);
  const file = path.join(dir, `suite${k}.yaml`);
  writeFileSync(file, `tokenizer: byte\ntasks:\n  t:\n    lm_eval: ${taskFile}\n    max_gen_toks: 8\n`);
  return file;
}

async function refusal(f: () => unknown): Promise<EvomergeError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(EvomergeError);
    expect((e as Error).message.split('\n')).toHaveLength(1);
    expect((e as Error).message).not.toContain(SECRET);
    return e as EvomergeError;
  }
  throw new Error('expected an EvomergeError');
}

describe('hostile task files', () => {
  it('a branching include chain (each file including the next ten times: a million reads) stops at the file budget', async () => {
    const levels = 7;
    for (let i = 0; i < levels; i++)
      writeFileSync(
        path.join(tmp, `level${i}.yaml`),
        i + 1 < levels
          ? `include: [${Array(10)
              .fill(`level${i + 1}.yaml`)
              .join(', ')}]\n`
          : 'task: x\n',
      );
    const started = Date.now();
    const e = await refusal(() => parseSuiteFile(suiteWith(`include: level0.yaml\n${TASK}`)));
    expect([e.code, e.field]).toEqual(['lm_eval.bad_include', 'include']);
    expect(e.message).toContain(`more than ${MAX_INCLUDE_FILES} files`);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('a deep include chain stops at the depth budget', async () => {
    for (let i = 0; i < 12; i++)
      writeFileSync(path.join(tmp, `deep${i}.yaml`), i < 11 ? `include: deep${i + 1}.yaml\n` : 'task: x\n');
    const e = await refusal(() => parseSuiteFile(suiteWith(`include: deep0.yaml\n${TASK}`)));
    expect([e.code, e.field]).toEqual(['lm_eval.bad_include', 'include']);
    expect(e.message).toContain(`deeper than ${MAX_INCLUDE_DEPTH} files`);
  });

  it('nested Jinja loops and a huge range() are refused when rendered, naming the key', async () => {
    const loops =
      '{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}x{% endfor %}{% endfor %}{% endfor %}';
    for (const template of [loops, '{% for a in range(1000000000) %}x{% endfor %}']) {
      const s = parseSuiteFile(suiteWith(TASK.replace('doc_to_text: q', `doc_to_text: "${template}"`)));
      const started = Date.now();
      const e = await refusal(() => buildPrompts(s.tasks[0]!.lmEval!, 'fit'));
      expect([e.code, e.field]).toEqual(['lm_eval.template_error', 'doc_to_text']);
      expect(e.message).toMatch(/steps|range\(\)|characters/);
      expect(Date.now() - started).toBeLessThan(5000);
    }
  });

  it('catastrophic patterns in a regex filter or regexes_to_ignore are refused when the task is read', async () => {
    const filter =
      'output_type: generate_until\nfilter_list:\n  - name: f\n    filter:\n      - function: regex\n        regex_pattern: "(a+)+$"\n';
    let e = await refusal(() => parseSuiteFile(suiteWith(TASK + filter)));
    expect([e.code, e.field]).toEqual(['lm_eval.unsupported', 'filter_list[0].filter[0].regex_pattern']);
    expect(e.message).toContain('catastrophic backtracking');
    const ignore = 'metric_list:\n  - metric: exact_match\n    regexes_to_ignore: [",", "(\\\\w+\\\\s?)*$"]\n';
    e = await refusal(() => parseSuiteFile(suiteWith(TASK + ignore)));
    expect([e.code, e.field]).toEqual(['lm_eval.bad_task', 'metric_list[0].regexes_to_ignore[1]']);
    expect(e.message).toContain('catastrophic backtracking');
  });
});

describe('task and data files are read only under the task file folder and the suite folder', () => {
  it('an include outside them is refused before it is read', async () => {
    const e = await refusal(() => parseSuiteFile(suiteWith(`include: ${path.join(outside, 'secret.yaml')}\n${TASK}`)));
    expect([e.code, e.field, e.file]).toEqual([
      'lm_eval.outside_roots',
      'include',
      path.join(tmp, `task${n - 1}.yaml`),
    ]);
  });

  it('data_files outside them are refused when the task is read', async () => {
    const task = TASK.replace('{test: data.jsonl}', `{test: ${path.join(outside, 'secret.jsonl')}}`);
    const e = await refusal(() => parseSuiteFile(suiteWith(task)));
    expect([e.code, e.field]).toEqual(['lm_eval.outside_roots', 'dataset_kwargs.data_files.test']);
  });

  it("a data file or an included YAML that does not parse: the error gives the place, not the file's text", async () => {
    writeFileSync(path.join(tmp, 'bad.jsonl'), `{"q": "fine", "a": "1"}\n${SECRET}\n`);
    const s = parseSuiteFile(suiteWith(TASK.replace('data.jsonl', 'bad.jsonl')));
    let e = await refusal(() => buildPrompts(s.tasks[0]!.lmEval!, 'fit'));
    expect([e.code, e.line]).toEqual(['lm_eval.bad_data', 2]);
    writeFileSync(path.join(tmp, 'bad.yaml'), `${SECRET}: [unclosed\n`);
    e = await refusal(() => parseSuiteFile(suiteWith(`include: bad.yaml\n${TASK}`)));
    expect([e.code, e.file]).toEqual(['lm_eval.bad_yaml', path.join(tmp, 'bad.yaml')]);
    expect(e.message).toMatch(/not valid YAML \(\w+ at line \d+, column \d+\)$/);
  });

  it("the suite's folder is a root: a task file elsewhere may include a file beside the suite", async () => {
    const suiteDir = path.join(tmp, 'suite-dir');
    const taskDir = path.join(tmp, 'task-dir');
    mkdirSync(suiteDir);
    mkdirSync(taskDir);
    writeFileSync(path.join(suiteDir, 'common.yaml'), TASK.replace('data.jsonl', path.join(suiteDir, 'data.jsonl')));
    writeFileSync(path.join(suiteDir, 'data.jsonl'), '{"q": "3+3", "a": "6"}\n');
    writeFileSync(path.join(taskDir, 'task.yaml'), `include: ${path.join(suiteDir, 'common.yaml')}\ntask: mine\n`);
    const suite = path.join(suiteDir, 'suite.yaml');
    writeFileSync(
      suite,
      `tokenizer: byte\ntasks:\n  t:\n    lm_eval: ${path.join(taskDir, 'task.yaml')}\n    max_gen_toks: 8\n`,
    );
    expect(parseSuiteFile(suite).tasks[0]!.lmEval!.task.task).toBe('mine');
  });
});
