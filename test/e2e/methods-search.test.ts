// The search space whose method gene lists the methods mergekit added since 2024 (search-spaces/
// micro-methods-2025.yaml) run through the real CLI as the sweep its header describes: optimizer grid with
// grid_points 1, so the grid is the method gene and eight candidates merge each method once, at the centre of
// its ranges. Every method is merged, scored and recorded; nearswap and arcee_fusion merge only the model that
// genome.method_models names for them. The same sweep on the GPU kernel gives the same candidates.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { openStore } from '../../src/store/db.ts';
import { errorLines, repoRoot, runCliAsync, writeSpace } from './search-fixtures.ts';

const METHODS = ['task_arithmetic', 'ties', 'sce', 'nuslerp', 'karcher', 'multislerp', 'nearswap', 'arcee_fusion'];

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-methods-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The space as shipped, its paths made absolute, turned into the eight-candidate sweep on a few items. */
function sweepSpace(): string {
  const file = path.join(repoRoot, 'search-spaces/micro-methods-2025.yaml');
  const doc = YAML.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const abs = (p: string) => path.resolve(path.dirname(file), p);
  expect((doc.genome as { methods: string[] }).methods).toEqual(METHODS);
  return writeSpace(tmp, 'methods.yaml', {
    ...doc,
    base_model: abs(doc.base_model as string),
    models: (doc.models as string[]).map(abs),
    suite: abs(doc.suite as string),
    optimizer: 'grid',
    grid_points: 1,
    budget: { candidates: 8 },
    references: [],
    workers: 1,
    eval_limit: 4,
  });
}

describe('a campaign whose method gene lists the methods added since 2024', () => {
  it('merges, scores and records every method once (grid over the method gene)', async () => {
    const db = path.join(tmp, 'methods.sqlite');
    const r = await runCliAsync(tmp, 'search', sweepSpace(), '--db', db, '--device', 'cpu');
    expect(errorLines(r.stderr).filter((l) => l.startsWith('evomerge:'))).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/candidates: 8 evaluated/);
    const s = openStore(db, { readonly: true });
    try {
      const [c] = s.listCampaigns();
      const search = s.listCandidates(c!.campaignId, { kind: 'search' });
      expect(search).toHaveLength(8);
      const byMethod = new Map<string, { models: { model: string }[] }>();
      for (const x of search) {
        expect(x.status, `${x.errorCode}: ${x.errorMessage}`).not.toBe('failed');
        const recipe = YAML.parse(x.recipeYaml!) as { merge_method: string; models: { model: string }[] };
        byMethod.set(recipe.merge_method, recipe);
        const fit = s.listScores(x.candidateId, 'fit');
        expect(fit.some((f) => f.task === 'composite' && Number.isFinite(f.value))).toBe(true);
        expect(Number.isFinite(x.objective)).toBe(true);
      }
      expect([...byMethod.keys()].sort()).toEqual([...METHODS].sort());
      for (const m of ['nearswap', 'arcee_fusion'])
        expect(byMethod.get(m)!.models.map((x) => path.basename(x.model))).toEqual(['expert-math']);
      expect(byMethod.get('nuslerp')!.models.map((x) => path.basename(x.model))).toEqual([
        'expert-math',
        'expert-lang',
      ]);
      // Eight different merges: the methods do not collapse to one result.
      expect(new Set(search.map((x) => x.contentHash)).size).toBe(8);
      expect(new Set(search.map((x) => x.objective)).size).toBeGreaterThan(1);
    } finally {
      s.close();
    }
  });

  it('gives the same candidates on the GPU kernel (lavapipe), sce merged in WGSL, objectives within 1e-6', async () => {
    const gpuDb = path.join(tmp, 'methods-gpu.sqlite');
    const r = await runCliAsync(tmp, 'search', path.join(tmp, 'methods.yaml'), '--db', gpuDb, '--device', 'gpu');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/gpu: /);
    // sce and arcee_fusion have WGSL passes: no host-stopgap notice for either.
    expect(r.stderr).not.toMatch(/gpu: sce has no GPU passes/);
    expect(r.stderr).not.toMatch(/gpu: arcee_fusion/);
    const records = (db: string) => {
      const s = openStore(db, { readonly: true });
      try {
        const [c] = s.listCampaigns();
        return s
          .listCandidates(c!.campaignId, { kind: 'search' })
          .map((x) => ({ hash: x.contentHash, obj: x.objective! }));
      } finally {
        s.close();
      }
    };
    const cpu = records(path.join(tmp, 'methods.sqlite'));
    const gpu = records(gpuDb);
    expect(gpu.map((x) => x.hash)).toEqual(cpu.map((x) => x.hash));
    gpu.forEach((x, i) =>
      expect(Math.abs(x.obj - cpu[i]!.obj)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(cpu[i]!.obj))),
    );
  });
});
