// `evomerge search --estimate` on the micro zoo: one line per part (merge, weights to session, each measured task,
// per candidate, per generation, per hour, baselines, search, test, finish), and no database written, neither the
// default runs/<name>.sqlite nor a --db path. Timings are printed, never asserted.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorLines, repoRoot, runCli, tinySpace, writeSpace } from './search-fixtures.ts';

let tmp: string;
let space: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-estimate-'));
  space = writeSpace(tmp, 'est.yaml', tinySpace({ name: 'est', eval_limit: 4, budget: { candidates: 10 } }));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const seconds = String.raw`(\d+\.\d\d s|\d+\.\d min|\d+\.\d h)`;

describe('search --estimate', () => {
  it('prints one line per part and writes no database', () => {
    const db = path.join(tmp, 'given.sqlite');
    const r = runCli(tmp, 'search', space, '--estimate', '--device', 'cpu', '--db', db);
    expect(r.status, r.stderr).toBe(0);
    expect(errorLines(r.stderr)).toEqual([]);
    const lines = r.stdout.trimEnd().split('\n');
    const expected = [
      /^estimate for .*est\.yaml \(one candidate measured; no database opened, nothing recorded\)$/,
      new RegExp(`^process start-up: ${seconds}$`),
      new RegExp(`^start-up: ${seconds} per worker`),
      new RegExp(`^merge: ${seconds}$`),
      new RegExp(`^weights to session: ${seconds}$`),
      new RegExp(`^task composite \\(answer_logprob, 4 fit items\\): ${seconds}$`),
      new RegExp(`^task lang \\(loglik, 4 fit items\\): ${seconds}$`),
      new RegExp(`^task math_words \\(exact_match, 4 fit items\\): ${seconds}$`),
      new RegExp(`^task composite \\(exact_match, 4 fit items\\): ${seconds}$`),
      new RegExp(`^per candidate: ${seconds} on one worker$`),
      new RegExp(`^per generation: ${seconds} \\(4 candidates on 2 worker\\(s\\), \\d+ core\\(s\\)\\)$`),
      /^candidates per hour: \d+ with 2 worker\(s\)$/,
      new RegExp(`^baselines: ${seconds} \\(3 source\\(s\\), 1 reference merge\\(s\\), scored once\\)$`),
      new RegExp(`^search: ${seconds} \\(10 candidates in 3 generation\\(s\\)\\)$`),
      new RegExp(`^test split at the end: ${seconds} \\(sized as fit\\)$`),
      new RegExp(`^budget finishes: in ${seconds}, about \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC$`),
    ];
    expect(lines).toHaveLength(expected.length);
    lines.forEach((line, i) => expect(line).toMatch(expected[i]!));
    // nothing written: not the --db path, not the default runs/est.sqlite, no other database or report page
    expect(existsSync(db)).toBe(false);
    expect(existsSync(path.join(tmp, 'runs'))).toBe(false);
    expect(readdirSync(tmp).sort()).toEqual(['est.yaml']);
  });

  it('takes --budget and --workers, and refuses --queue (it measures this process)', () => {
    const r = runCli(tmp, 'search', space, '--estimate', '--device', 'cpu', '--budget', '40', '--workers', '1');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^per generation: .* \(4 candidates on 1 worker\(s\), \d+ core\(s\)\)$/m);
    expect(r.stdout).toMatch(/^search: .* \(40 candidates in 10 generation\(s\)\)$/m);
    const q = runCli(tmp, 'search', space, '--estimate', '--queue', 'redis://127.0.0.1:1');
    expect(q.status).toBe(2);
    expect(errorLines(q.stderr).at(-1)).toMatch(/^evomerge: --estimate: measures one candidate in this process/);
    expect(readdirSync(tmp).sort()).toEqual(['est.yaml']);
  });

  it('refuses a data-flow genome (no merge to measure), writing nothing', () => {
    const r = runCli(
      tmp,
      'search',
      path.join(repoRoot, 'search-spaces/micro-dfs.yaml'),
      '--estimate',
      '--device',
      'cpu',
    );
    expect(r.status).toBe(1);
    expect(errorLines(r.stderr).at(-1)).toMatch(
      /micro-dfs\.yaml: genome\.kind: a data-flow genome has no merge to measure/,
    );
    expect(readdirSync(tmp).sort()).toEqual(['est.yaml']);
  });
});
