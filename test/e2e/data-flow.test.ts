// Data-flow-space campaigns on the micro zoo through the real CLI: a DFS campaign (expert-math's and
// expert-lang's layers) killed with SIGKILL mid-search and resumed ends with exactly the records of an
// uninterrupted run.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../fixtures/seeded-random.ts';
import { cli, recordSnapshot, repoRoot, runCli, searchCount, writeSpace } from './search-fixtures.ts';

const zoo = path.join(repoRoot, 'models/micro');
const BUDGET = 8;
let tmp: string;

/** A small DFS campaign: A = `a`, B = expert-lang, r = 2, 8 candidates of 8 items per task. */
function dfsSpace(name: string, a: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    base_model: `${zoo}/base`,
    models: [a, `${zoo}/expert-lang`],
    suite: path.join(repoRoot, 'evals/micro.yaml'),
    genome: { kind: 'data_flow', repeats: 2, scales: { min: 0.5, max: 1.5 } },
    objective: [{ task: 'composite', metric: 'answer_logprob', weight: 1 }],
    gates: [{ name: 'lang_floor', kind: 'floor', task: 'lang', value: -3.5 }],
    optimizer: 'cmaes',
    population_size: 4,
    budget: { candidates: BUDGET },
    seed: 3,
    workers: 2,
    eval_limit: 8,
    ...overrides,
  };
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-dfs-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function runAndKill(space: string, db: string, afterNewMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const before = searchCount(db);
    const child = spawn(process.execPath, [cli, 'search', space, '--db', db, '--device', 'cpu'], {
      cwd: tmp,
      stdio: 'ignore',
    });
    let timer: NodeJS.Timeout | undefined;
    const poll = setInterval(() => {
      if (searchCount(db) > before) {
        clearInterval(poll);
        timer = setTimeout(() => child.kill('SIGKILL'), afterNewMs);
      }
    }, 25);
    child.on('exit', (_code, signal) => {
      clearTimeout(timer);
      clearInterval(poll);
      resolve(signal === 'SIGKILL');
    });
  });
}

describe('data-flow campaigns', () => {
  it('a DFS campaign killed twice mid-search and resumed records what an uninterrupted run records', async () => {
    const space = writeSpace(tmp, 'dfs.yaml', dfsSpace('dfs', `${zoo}/expert-math`));
    const straightDb = path.join(tmp, 'dfs-straight.sqlite');
    const straight = runCli(tmp, 'search', space, '--db', straightDb, '--device', 'cpu');
    expect(straight.status, straight.stderr).toBe(0);
    const a = recordSnapshot(straightDb);
    const search = a.candidates.filter((c) => c.kind === 'search');
    expect(search).toHaveLength(BUDGET);
    // real paths were scored: every candidate has scores, and the paths differ
    expect(search.every((c) => c.scores.length > 0 && c.status !== 'failed')).toBe(true);
    expect(new Set(search.map((c) => c.genome)).size).toBe(BUDGET);

    const killedDb = path.join(tmp, 'dfs-killed.sqlite');
    const rand = mulberry32(16);
    const kills: number[] = [];
    for (let i = 0; i < 2; i++) {
      expect(await runAndKill(space, killedDb, 1500 * rand())).toBe(true);
      kills.push(searchCount(killedDb));
    }
    expect(kills.every((n) => n > 0 && n < BUDGET)).toBe(true);
    const last = runCli(tmp, 'search', space, '--db', killedDb, '--device', 'cpu');
    expect(last.status, last.stderr).toBe(0);
    expect(recordSnapshot(killedDb)).toEqual(a);
  });
});
