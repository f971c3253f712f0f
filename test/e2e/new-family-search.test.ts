// A campaign end to end on a family added to graph: auto after the zoo's Llama: `evomerge search` through the
// real CLI over two tiny Gemma 2 fine-tunes (random checkpoints with Gemma 2's tensor names and config keys:
// soft-capping, sandwich norms, alternating sliding windows), scored through the graph built from config.json.
// Six candidates: every one merged, scored and recorded, and the report printed.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { writeTinyDecoder } from '../fixtures/tiny-decoders.ts';
import { errorLines, repoRoot, runCli, writeSpace } from './search-fixtures.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-gemma2-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A Gemma 2 base, two fine-tunes of it, and a search space over them (byte tokenizer: vocab_size 256). */
function gemma2Space(dir: string): string {
  const config = { vocab_size: 256, max_position_embeddings: 256 };
  for (const [name, seed] of [
    ['base', 1],
    ['ft-a', 2],
    ['ft-b', 3],
  ] as const)
    writeTinyDecoder(path.join(dir, name), 'gemma2', { seed, config, dtype: 'BF16' });
  const data = path.join(repoRoot, 'evals/micro');
  const suite = writeSpace(dir, 'suite.yaml', {
    graph: 'auto',
    base_model: path.join(dir, 'base'),
    tokenizer: 'byte',
    tasks: {
      composite: {
        kind: 'generate',
        metric: 'answer_logprob',
        fit: `${data}/composite.fit.jsonl`,
        test: `${data}/composite.test.jsonl`,
        max_new_tokens: 4,
        stop: '\n',
      },
      lang: { kind: 'loglik', metric: 'loglik', fit: `${data}/lang.fit.jsonl`, test: `${data}/lang.test.jsonl` },
    },
  });
  return writeSpace(dir, 'gemma2.yaml', {
    name: 'gemma2-tiny',
    base_model: path.join(dir, 'base'),
    models: [path.join(dir, 'ft-a'), path.join(dir, 'ft-b')],
    suite,
    genome: {
      layer_groups: 2,
      methods: ['task_arithmetic', 'ties'],
      parameters: { weight: { min: 0, max: 1 }, density: { min: 0.3, max: 1 } },
    },
    objective: [{ task: 'composite', metric: 'answer_logprob', weight: 1 }],
    optimizer: 'cmaes',
    population_size: 3,
    budget: { candidates: 6 },
    seed: 5,
    workers: 1,
    eval_limit: 6,
  });
}

describe('a campaign over tiny Gemma 2 fine-tunes (graph: auto)', () => {
  it('runs six candidates to the budget, each merged, scored and recorded, and prints the report', () => {
    const space = gemma2Space(tmp);
    const db = path.join(tmp, 'gemma2.sqlite');
    const r = runCli(tmp, 'search', space, '--db', db, '--device', 'cpu');
    expect(errorLines(r.stderr).filter((l) => l.startsWith('evomerge:'))).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('campaign "gemma2-tiny"');
    expect(r.stdout).toMatch(/candidates: 6 evaluated over 2 generation\(s\)/);
    const s = openStore(db, { readonly: true });
    try {
      const [c] = s.listCampaigns();
      const search = s.listCandidates(c!.campaignId, { kind: 'search' });
      expect(search.map((x) => x.ordinal)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(new Set(search.map((x) => x.contentHash)).size).toBe(6);
      for (const x of search) {
        expect(x.status).not.toBe('failed');
        const fit = s.listScores(x.candidateId, 'fit');
        expect(fit.some((f) => f.task === 'composite' && Number.isFinite(f.value))).toBe(true);
      }
      // the candidates differ in what they score, so the search sees a landscape, not a constant
      const objectives = new Set(search.map((x) => x.objective));
      expect(objectives.size).toBeGreaterThan(1);
    } finally {
      s.close();
    }
  });
});
