// Fixtures of the tests that check evomerge never destroys what a user has: a private copy of the micro zoo
// and of its eval suite (so a test may link, poison or edit them), and a fingerprint of a folder's bytes to
// show that a refused command left the sources exactly as they were.
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './search-fixtures.ts';

export const zoo = path.join(repoRoot, 'models/micro');

/** Copies zoo models and the micro suite under `dir`; the suite's graph, base model and eval files point at the copies. */
export function privateZoo(
  dir: string,
  models: readonly string[] = ['base', 'expert-math', 'expert-lang'],
): { models: Record<string, string>; suite: string; evals: string } {
  const out: Record<string, string> = {};
  for (const m of models) {
    out[m] = path.join(dir, 'zoo', m);
    cpSync(path.join(zoo, m), out[m]!, { recursive: true });
    for (const f of readdirSync(out[m]!)) chmodSync(path.join(out[m]!, f), 0o644);
  }
  const evals = path.join(dir, 'evals');
  mkdirSync(evals, { recursive: true });
  cpSync(path.join(repoRoot, 'evals/micro'), path.join(evals, 'micro'), { recursive: true });
  for (const f of readdirSync(path.join(evals, 'micro'))) chmodSync(path.join(evals, 'micro', f), 0o644);
  const suite = path.join(evals, 'micro.yaml');
  writeFileSync(
    suite,
    readFileSync(path.join(repoRoot, 'evals/micro.yaml'), 'utf8')
      .replace(
        'graph: ../models/micro/base/model.onnx',
        `graph: ${path.join(out.base ?? path.join(zoo, 'base'), 'model.onnx')}`,
      )
      .replace('base_model: ../models/micro/base', `base_model: ${out.base ?? path.join(zoo, 'base')}`),
  );
  return { models: out, suite, evals };
}

/** sha256 over every file under a folder (names and bytes), to compare before and after a command. */
export function treeHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(`${path.relative(dir, p)}\0`).update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}
