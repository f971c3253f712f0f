// Never worse than naive, end to end on the micro zoo: a tiny campaign whose searched candidates (low weights
// only) cannot beat the DARE-TIES reference merge on val, so the reference is the final pick — the report says so
// in one sentence, and `export --candidate best` writes the reference's checkpoint and recipe after re-checking
// its gates on test (they pass: the export is strict here). A reference that fails a gate is never the pick,
// not even when nothing else is kept.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { cli, tinySpace, writeSpace, type CliResult } from './search-fixtures.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-naive-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The real CLI, awaited without blocking this worker (a long spawnSync starves vitest's own messages). */
function runCli(cwd: string, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [cli, ...args], { cwd });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const REFERENCE = { name: 'dare_ties d=0.5', method: 'dare_ties', weight: 1, density: 0.5 };
const SENTENCE =
  'No searched candidate beat dare_ties d=0.5 on val by its lower confidence bound: the pick is the reference ' +
  'merge dare_ties d=0.5';

describe('never worse than naive', () => {
  const db = path.join(tmp, 'naive.sqlite');

  it('picks the reference merge when no searched candidate beats it on val by its lower confidence bound', async () => {
    const space = writeSpace(
      tmp,
      'naive.yaml',
      tinySpace(
        {
          name: 'naive',
          references: [REFERENCE],
          selection: { val_fraction: 0.3, top_k: 2, lcb_z: 1 },
          budget: { candidates: 4 },
          eval_limit: 20,
        },
        // a search that can only stay near the base: weights of at most 0.2
        { methods: ['task_arithmetic'], parameters: { weight: { min: 0, max: 0.2 } } },
      ),
    );
    const r = await runCli(tmp, 'search', space, '--db', db, '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(SENTENCE);
    const s = openStore(db, { readonly: true });
    try {
      const id = s.listCampaigns()[0]!.campaignId;
      const rec = s.finalPick(id)!;
      const pick = s.getCandidate(rec.candidateId);
      expect([pick.kind, pick.label, rec.rule]).toEqual(['reference', 'dare_ties d=0.5', 'val']);
      const detail = JSON.parse(rec.detailJson);
      expect(detail).toMatchObject({ by_reference: true, reference: 'dare_ties d=0.5', lcb_z: 1, top_k: 2 });
      expect(detail.references[0].failed_gates).toEqual([]);
      // the searched candidates kept were scored on val and lost there by the lower confidence bound
      const lcb = (e: { value: number; se: number }) => e.value - e.se;
      for (const c of detail.considered) expect(lcb(c.val)).toBeLessThanOrEqual(lcb(detail.references[0].val));
      // the reference was scored on val and test like the sources
      expect(s.listScores(pick.candidateId, 'val').length).toBeGreaterThan(0);
      expect(s.listScores(pick.candidateId, 'test').length).toBeGreaterThan(0);
    } finally {
      s.close();
    }
    const rep = JSON.parse((await runCli(tmp, 'report', db, '--json')).stdout);
    expect(rep.rows.find((x: { kind: string }) => x.kind === 'best')).toMatchObject({
      label: 'reference pick: dare_ties d=0.5',
      ordinal: null,
    });
    expect(rep.pickNote).toContain(SENTENCE);
    // the reference is not its own rival
    expect(rep.conclusion.rival.label).not.toBe('dare_ties d=0.5');
  }, 600_000);

  it('export --candidate best writes the reference merge, its gates re-checked on test', async () => {
    const out = path.join(tmp, 'best');
    const r = await runCli(tmp, 'export', db, '--candidate', 'best', '-o', out, '--device', 'cpu');
    const s = openStore(db, { readonly: true });
    const ref = s.listCandidates(s.listCampaigns()[0]!.campaignId, { kind: 'reference' })[0]!;
    s.close();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^exported reference merge dare_ties d=0\.5 to .*test-split gates: .*pass/);
    const scores = JSON.parse(readFileSync(path.join(out, 'scores.json'), 'utf8'));
    expect(scores).toMatchObject({ candidate: null, reference: 'dare_ties d=0.5', forced: false });
    expect(scores.status_on_fit).toBe(ref.status);
    expect(scores.test_gates.map((v: { gate: string; pass: boolean }) => [v.gate, v.pass])).toEqual([
      ['lang_floor', true],
      ['math_words_floor', true],
    ]);
    const recipe = readFileSync(path.join(out, 'recipe.yaml'), 'utf8');
    expect(recipe).toContain('evomerge export of campaign reference merge dare_ties d=0.5');
    expect(recipe).toMatch(/merge_method: dare_ties/);
    expect(existsSync(path.join(out, 'model.safetensors'))).toBe(true);
  }, 600_000);

  it('a reference that fails a gate is not the pick, even when no searched candidate is kept', async () => {
    const space = writeSpace(
      tmp,
      'gated.yaml',
      tinySpace(
        {
          name: 'gated',
          references: [REFERENCE],
          gates: [{ name: 'impossible', kind: 'floor', task: 'math_words', value: 2 }],
          budget: { candidates: 4 },
        },
        { methods: ['task_arithmetic'], parameters: { weight: { min: 0, max: 1 } } },
      ),
    );
    const gated = path.join(tmp, 'gated.sqlite');
    const r = await runCli(tmp, 'search', space, '--db', gated, '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('No search candidate cleared every gate');
    const s = openStore(gated, { readonly: true });
    try {
      expect(s.finalPick(s.listCampaigns()[0]!.campaignId)).toBeUndefined();
    } finally {
      s.close();
    }
    const e = await runCli(tmp, 'export', gated, '-o', path.join(tmp, 'none'), '--device', 'cpu');
    expect(e.status).toBe(1);
    expect(e.stderr).toMatch(/no candidate cleared every gate/);
  }, 600_000);
});
