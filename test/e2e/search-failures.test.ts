// A candidate that cannot be merged is recorded as failed (error code and message), counts as −∞ for the
// optimiser, and the campaign goes on to its budget: here every merge meets a NaN weight planted in a copy
// of an expert, so every candidate fails, yet each generation is told and its state saved.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { poisonedCopy, repoRoot, runCli, tinySpace, writeSpace } from './search-fixtures.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-fail-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('failed candidates', () => {
  it('are recorded with their error and the search still spends its budget', () => {
    const lang = poisonedCopy(tmp, 'expert-lang', 'model.layers.2.mlp.up_proj.weight');
    const space = writeSpace(
      tmp,
      'fail.yaml',
      tinySpace({
        name: 'fail',
        models: [path.join(repoRoot, 'models/micro/expert-math'), lang],
        references: [],
        budget: { candidates: 8 },
      }),
    );
    const db = path.join(tmp, 'fail.sqlite');
    const r = runCli(tmp, 'search', space, '--db', db, '--device', 'cpu');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/8 evaluated over 2 generation\(s\): 0 kept, 0 rejected, 8 failed/);
    expect(r.stdout).toContain('No search candidate cleared every gate');
    const s = openStore(db, { readonly: true });
    try {
      const [c] = s.listCampaigns();
      const search = s.listCandidates(c!.campaignId, { kind: 'search' });
      expect(search).toHaveLength(8);
      for (const x of search) {
        expect(x.status).toBe('failed');
        expect(x.errorCode).toBe('merge.non_finite');
        expect(x.errorMessage).toMatch(/model\.layers\.2\.mlp\.up_proj\.weight/);
        expect(x.objective).toBe(-Infinity);
        expect(s.listScores(x.candidateId)).toEqual([]);
      }
      // every generation was told (−∞ for each) and its state saved
      expect(s.listOptimizerStates(c!.campaignId).map((st) => st.generation)).toEqual([1, 2]);
    } finally {
      s.close();
    }
  });
});
