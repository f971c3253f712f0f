// `evomerge eval --spin` through the real CLI: ORT's worker threads spinning between operators change the time,
// never a score (every task, metric, value, SE and n equal to the run without it).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const cli = path.join(repoRoot, 'bin/evomerge.js');
const model = path.join(repoRoot, 'models/micro/expert-math');
const suite = path.join(repoRoot, 'evals/micro.yaml');

function scores(...extra: string[]): unknown[] {
  const args = [cli, 'eval', model, '--suite', suite, '--split', 'test', '--limit', '30', '--threads', '2', '--json'];
  const r = spawnSync(process.execPath, [...args, ...extra], { cwd: repoRoot, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const parsed = JSON.parse(r.stdout) as { scores?: Record<string, unknown>[] } | Record<string, unknown>[];
  const list = Array.isArray(parsed) ? parsed : parsed.scores!;
  return list.map(({ seconds: _seconds, ...rest }) => rest);
}

describe('evomerge eval --spin', () => {
  it('gives the same scores as without it', () => {
    const off = scores();
    expect(off.length).toBeGreaterThan(2);
    expect(scores('--spin')).toEqual(off);
  });
});
