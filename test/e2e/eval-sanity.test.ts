// `evomerge eval` refuses what cannot give a score: a checkpoint with NaN/Inf weights (as merge does), a
// max_new_tokens past the model's context (it used to run on for minutes), a prompt or text longer than the
// context (it used to be scored silently). One line naming the file and the key or line; exit 1; in time.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, errorLines, repoRoot } from './search-fixtures.ts';
import { privateZoo, treeHash, zoo } from './guard-fixtures.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-evalsanity-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function evalCli(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, 'eval', ...args], { cwd: tmp, encoding: 'utf8', timeout: 90_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A suite of one task over the zoo's base, with the given task body and eval file lines. */
function suiteWith(name: string, task: string, lines: readonly object[]): string {
  const data = path.join(tmp, `${name}.jsonl`);
  writeFileSync(data, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const file = path.join(tmp, `${name}.yaml`);
  writeFileSync(
    file,
    `graph: ${zoo}/base/model.onnx\nbase_model: ${zoo}/base\ntokenizer: byte\ntasks:\n  t:\n${task}\n    fit: ${data}\n    test: ${data}\n`,
  );
  return file;
}

describe('eval model sanity', () => {
  it('refuses a checkpoint with a NaN weight, naming the file and the tensor', () => {
    const { models } = privateZoo(tmp, ['expert-lang']);
    const dir = models['expert-lang']!;
    const file = path.join(dir, 'model.safetensors');
    const fd = openSync(file, 'r+');
    try {
      const len = Buffer.alloc(8);
      readSync(fd, len, 0, 8, 0);
      const n = Number(len.readBigUInt64LE(0));
      const header = JSON.parse(
        readFileSync(file)
          .subarray(8, 8 + n)
          .toString('utf8'),
      ) as Record<string, { data_offsets: [number, number] }>;
      const nan = Buffer.alloc(4);
      nan.writeFloatLE(Number.NaN, 0);
      writeSync(fd, nan, 0, 4, 8 + n + header['model.layers.1.self_attn.q_proj.weight']!.data_offsets[0]);
    } finally {
      closeSync(fd);
    }
    const before = treeHash(dir);
    const r = evalCli(dir, '--suite', path.join(repoRoot, 'evals/micro.yaml'), '--tasks', 'lang', '--limit', '3');
    expect(r.status, r.stdout).toBe(1);
    expect(errorLines(r.stderr)).toEqual([
      `evomerge: ${file}: tensor "model.layers.1.self_attn.q_proj.weight": holds NaN at element 0; a checkpoint with ` +
        `NaN or Inf weights cannot be scored`,
    ]);
    expect(treeHash(dir)).toBe(before);
  });

  it('finite weights whose logits overflow give a NaN score: refused in one line naming the task and metric, exit 1', () => {
    const { models } = privateZoo(path.join(tmp, 'overflow'), ['expert-lang']);
    const dir = models['expert-lang']!;
    const file = path.join(dir, 'model.safetensors');
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<
      string,
      { dtype: string; data_offsets: [number, number] }
    >;
    for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight']) {
      const t = header[name]!;
      expect(t.dtype).toBe('F32');
      for (let o = t.data_offsets[0]; o < t.data_offsets[1]; o += 4) bytes.writeFloatLE(1e25, 8 + n + o);
    }
    writeFileSync(file, bytes);
    const r = evalCli(dir, '--suite', path.join(repoRoot, 'evals/micro.yaml'), '--tasks', 'lang', '--limit', '3');
    expect(r.status, r.stdout).toBe(1);
    expect(r.stdout).toBe('');
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^evomerge: ${path.join(repoRoot, 'evals/micro.yaml')}: tasks\\.lang: \\w+ of task lang is (NaN|-?Infinity) `,
      ),
    );
  });

  it('refuses max_new_tokens past the context, and a prompt or text longer than it, naming the key or line', () => {
    const gen = suiteWith('gen', '    kind: generate\n    max_new_tokens: 1000\n    stop: "@"', [
      { prompt: 'what is 2 plus 2? ', answer: '4' },
    ]);
    const a = evalCli(path.join(zoo, 'base'), '--suite', gen);
    expect(a.status, `eval hung or passed: ${a.stdout}`).toBe(1);
    expect(errorLines(a.stderr)).toEqual([
      `evomerge: ${gen}: tasks.t.max_new_tokens: max_new_tokens 1000 leaves no room for a prompt: the model's context ` +
        `is 256 tokens (max_position_embeddings in ${zoo}/base/config.json)`,
    ]);

    const long = 'what is 2 plus 2? '.repeat(15); // 270 bytes = tokens
    const prompt = suiteWith('prompt', '    kind: generate\n    max_new_tokens: 4\n    stop: "\\n"', [
      { prompt: 'what is 1 plus 1? ', answer: '2' },
      { prompt: long, answer: '4' },
    ]);
    const b = evalCli(path.join(zoo, 'base'), '--suite', prompt);
    expect(b.status, b.stdout).toBe(1);
    expect(errorLines(b.stderr)).toEqual([
      `evomerge: ${path.join(tmp, 'prompt.jsonl')}:2: prompt: the prompt is 270 tokens, plus 4 new tokens ` +
        `(max_new_tokens), past the model's context: the model's context is 256 tokens (max_position_embeddings in ` +
        `${zoo}/base/config.json); shorten it or drop the item`,
    ]);

    const text = suiteWith('text', '    kind: loglik', [{ text: long }]);
    const c = evalCli(path.join(zoo, 'base'), '--suite', text);
    expect(c.status, c.stdout).toBe(1);
    expect(errorLines(c.stderr)[0]).toMatch(/text\.jsonl:1: text: the text is 270 tokens, past the model's context/);
  });

  it('--progress prints items done/total, rate and ETA on stderr as each task ends', () => {
    const r = evalCli(
      path.join(zoo, 'base'),
      '--suite',
      path.join(repoRoot, 'evals/micro.yaml'),
      '--tasks',
      'math,lang',
      '--limit',
      '3',
      '--progress',
    );
    expect(r.status, r.stderr).toBe(0);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^eval: 3\/6 items \(1\/2 tasks, (math|lang) done\), [\d.]+ items\/s, ETA \d+s$/);
    expect(lines[1]).toMatch(/^eval: 6\/6 items \(2\/2 tasks, (math|lang) done\), [\d.]+ items\/s, ETA 0s$/);
  });
});
