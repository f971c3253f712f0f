// `evomerge export` through the real CLI on a finished tiny campaign: the test-split gate re-check refuses
// (one line naming the gate, nothing written) unless --force; the exported checkpoint scores what the
// database recorded; the exported recipe, re-merged with `evomerge merge`, gives the same tensors.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModelDir } from '../../src/checkpoint/model-dir.ts';
import { openStore } from '../../src/store/db.ts';
import { errorLines, repoRoot, runCli, tinySpace, writeSpace } from './search-fixtures.ts';

let tmp: string;
let db: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-export-'));
  const space = writeSpace(tmp, 'exp.yaml', tinySpace({ name: 'exp', seed: 3 }));
  db = path.join(tmp, 'exp.sqlite');
  const r = runCli(tmp, 'search', space, '--db', db, '--device', 'cpu');
  if (r.status !== 0) throw new Error(`search failed: ${r.stderr}`);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The rejected candidate with the lowest fit math_words (its test score fails the 0.05 floor too). */
function weakest(): { ordinal: number; method: string } {
  const s = openStore(db, { readonly: true });
  try {
    const [c] = s.listCampaigns();
    const rejected = s.listCandidates(c!.campaignId, { kind: 'search', status: 'rejected' });
    const mw = (id: number) => s.listScores(id, 'fit').find((x) => x.task === 'math_words')!.value;
    const w = rejected.sort((a, b) => mw(a.candidateId) - mw(b.candidateId))[0]!;
    return { ordinal: w.ordinal!, method: JSON.parse(w.genomeJson!).method as string };
  } finally {
    s.close();
  }
}

function sameTensors(a: string, b: string): void {
  const x = openModelDir(a);
  const y = openModelDir(b);
  try {
    expect([...y.tensors.tensorNames()].sort()).toEqual([...x.tensors.tensorNames()].sort());
    for (const n of x.tensors.tensorNames())
      expect(
        Buffer.from(y.tensors.readTensor(n).data.buffer).equals(Buffer.from(x.tensors.readTensor(n).data.buffer)),
        n,
      ).toBe(true);
  } finally {
    x.close();
    y.close();
  }
}

describe('evomerge export', () => {
  it('refuses a candidate that fails a gate on the test split, naming the gate, and writes nothing', () => {
    const w = weakest();
    const out = path.join(tmp, 'refused');
    const r = runCli(tmp, 'export', db, '--candidate', String(w.ordinal), '-o', out, '--device', 'cpu');
    expect(r.status).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `exp\\.sqlite: candidate #${w.ordinal}: gate "math_words_floor" fails on the test split: ` +
          `math_words/exact_match 0\\.\\d+ < 0\\.0500.*--force`,
      ),
    );
    expect(existsSync(out)).toBe(false);
  });

  it(
    '--force exports it: checkpoint, recipe and scores; the checkpoint scores what the database recorded; the recipe ' +
      're-merges to the same tensors',
    () => {
      const w = weakest();
      const out = path.join(tmp, 'forced');
      const r = runCli(tmp, 'export', db, '--candidate', `#${w.ordinal}`, '-o', out, '--force', '--device', 'cpu');
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`exported candidate #${w.ordinal} .*math_words_floor FAIL.*\\(forced\\)`));
      for (const f of ['config.json', 'model.safetensors', 'recipe.yaml', 'scores.json'])
        expect(existsSync(path.join(out, f)), f).toBe(true);
      const scores = JSON.parse(readFileSync(path.join(out, 'scores.json'), 'utf8'));
      expect(scores.candidate).toBe(w.ordinal);
      expect(scores.forced).toBe(true);
      expect(scores.genome.method).toBe(w.method);
      expect(scores.test_gates.find((v: { gate: string }) => v.gate === 'math_words_floor').pass).toBe(false);

      // the exported checkpoint, scored from disk, gives the fit scores recorded during the search (in memory)
      const ev = runCli(
        tmp,
        'eval',
        out,
        '--suite',
        path.join(repoRoot, 'evals/micro.yaml'),
        '--limit',
        '12',
        '--tasks',
        'composite,lang',
        '--json',
      );
      expect(ev.status).toBe(0);
      const got = JSON.parse(ev.stdout).scores as { task: string; value: number }[];
      const fit = scores.fit as { task: string; metric: string; value: number }[];
      expect(got.find((s) => s.task === 'composite')!.value).toBe(
        fit.find((s) => s.task === 'composite' && s.metric === 'exact_match')!.value,
      );
      expect(got.find((s) => s.task === 'lang')!.value).toBeCloseTo(fit.find((s) => s.task === 'lang')!.value, 6);

      // the recipe (model paths relative to the export folder) reproduces the checkpoint with evomerge merge
      const recipe = readFileSync(path.join(out, 'recipe.yaml'), 'utf8');
      expect(recipe).toMatch(/merge_method: (task_arithmetic|dare_ties)/);
      expect(recipe).toContain('base_model: ../');
      const again = path.join(tmp, 'remerged');
      const m = runCli(tmp, 'merge', path.join(out, 'recipe.yaml'), '-o', again, '--device', 'cpu');
      expect(m.status).toBe(0);
      sameTensors(out, again);
    },
  );

  it('exports the best kept candidate when it clears every gate on the test split', () => {
    const rep = JSON.parse(runCli(tmp, 'report', db, '--json').stdout);
    const out = path.join(tmp, 'best');
    const r = runCli(tmp, 'export', db, '-o', out, '--device', 'cpu');
    if (rep.counts.kept === 0) {
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/no candidate cleared every gate/);
      return;
    }
    const scores = existsSync(path.join(out, 'scores.json'))
      ? JSON.parse(readFileSync(path.join(out, 'scores.json'), 'utf8'))
      : undefined;
    if (r.status === 0) {
      expect(scores.test_gates.every((v: { pass: boolean }) => v.pass)).toBe(true);
      expect(scores.forced).toBe(false);
      expect(scores.status_on_fit).toBe('kept');
    } else {
      expect(errorLines(r.stderr)[0]).toMatch(/gate "\w+" fails on the test split/);
      expect(existsSync(out)).toBe(false);
    }
  });
});
