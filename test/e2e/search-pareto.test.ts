// objective_mode: pareto on the micro zoo through the real CLI: NSGA-II with two objectives (math answer
// log-probability, lang log-likelihood) and two gates as constraints, the knee picked on val by LCB. The report
// (text, --json, HTML in headless Chromium) shows the front and the picked member with the rule's sentence; a
// 2-worker run records exactly what a 1-worker run records; a run killed with SIGKILL at seeded moments and resumed
// records exactly what the uninterrupted run records; any front member exports.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { HeadlessChromium } from '../fixtures/headless-chromium.ts';
import { mulberry32 } from '../fixtures/seeded-random.ts';
import { recordSnapshot, runAndKill, runCli, searchCount, tinySpace, writeSpace } from './search-fixtures.ts';

const BUDGET = 12;
const pareto = (workers: number) =>
  tinySpace({
    name: 'pareto',
    optimizer: 'nsga2',
    objective_mode: 'pareto',
    pareto_pick: 'knee',
    objective: [
      { task: 'math', metric: 'answer_logprob', weight: 1 },
      { task: 'lang', metric: 'loglik', weight: 1 },
    ],
    gates: [
      { name: 'lang_floor', kind: 'floor', task: 'lang', value: -2.6 },
      { name: 'math_kept', kind: 'no_regression', task: 'math', metric: 'answer_logprob', tolerance: 0.3 },
    ],
    selection: { top_k: 3, lcb_z: 1 },
    budget: { candidates: BUDGET },
    eval_limit: 8,
    seed: 11,
    workers,
  });

let tmp: string;
let space: string;
let straightDb: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-pareto-'));
  space = writeSpace(tmp, 'pareto.yaml', pareto(2));
  straightDb = path.join(tmp, 'straight.sqlite');
  const r = runCli(tmp, 'search', space, '--db', straightDb, '--device', 'cpu');
  if (r.status !== 0) throw new Error(`search failed: ${r.stderr}`);
}, 300_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface FrontJson {
  rule: string;
  objectives: string[];
  front: number[];
  chosen: number | null;
  sentence: string;
  candidates: { ordinal: number; status: string; values: number[]; front: boolean }[];
}

describe('objective_mode: pareto', () => {
  it('reports the front on fit and the picked member with the rule that picked it (text and --json)', () => {
    const json = JSON.parse(runCli(tmp, 'report', straightDb, '--json').stdout) as {
      paretoFront: FrontJson;
      rows: { kind: string; ordinal: number | null }[];
      pickRule: string;
    };
    const p = json.paretoFront;
    expect(p.rule).toBe('knee');
    expect(p.objectives).toEqual(['math/answer_logprob', 'lang/loglik']);
    expect(p.front.length).toBeGreaterThan(0);
    // the front: kept candidates none of which another kept candidate dominates (here on plain values; the
    // campaign ranks by value − 1·SE, so the recomputed front must be a subset of the kept ones at least)
    for (const o of p.front) expect(p.candidates.find((c) => c.ordinal === o)!.status).toBe('kept');
    expect(json.pickRule).toBe('val');
    const best = json.rows.find((r) => r.kind === 'best')!;
    if (best.ordinal !== null) {
      expect(p.front).toContain(p.chosen);
      expect(best.ordinal).toBe(p.chosen);
      expect(p.sentence).toMatch(
        new RegExp(`^The pick, by pareto_pick: knee: #${p.chosen} is the front's knee: .*on val, each value − 1·SE`),
      );
    } else expect(p.sentence).toMatch(/Never worse than naive then handed over the reference merge/);
    const text = runCli(tmp, 'report', straightDb).stdout;
    expect(text).toMatch(
      /Pareto front on fit \(objective_mode: pareto, pareto_pick: knee, value − 1·SE\): \d+ of \d+ kept/,
    );
    expect(text).toContain(p.sentence);
    for (const o of p.front) expect(text).toMatch(new RegExp(`^  #${o}\\b`, 'm'));
    // the recorded pick names the same front (final_picks.detail_json)
    const s = openStore(straightDb, { readonly: true });
    try {
      const d = JSON.parse(s.finalPick(s.listCampaigns()[0]!.campaignId)!.detailJson) as {
        pareto: { front: number[] };
      };
      expect(d.pareto.front).toEqual(p.front);
    } finally {
      s.close();
    }
  });

  it('draws a scatter of the objectives with the front, the pick and hover text in headless Chromium', async () => {
    const html = path.join(tmp, 'straight.html');
    expect(existsSync(html)).toBe(true);
    const browser = await HeadlessChromium.launch();
    try {
      await browser.open(pathToFileURL(html).href);
      const page = await browser.evaluate<{ marks: number; titles: string[]; pick: string }>(`(() => {
        const f = document.querySelector('figure.plot[data-plot="pareto-math/answer_logprob-lang/loglik"]');
        return {
          marks: f ? f.querySelectorAll('g.role-mark > :not(g)').length : 0,
          titles: f ? [...f.querySelectorAll('g.role-mark title')].map((t) => t.textContent) : [],
          pick: document.querySelector('p.pareto-pick')?.textContent ?? '',
        };
      })()`);
      expect(browser.errors).toEqual([]);
      const json = JSON.parse(runCli(tmp, 'report', straightDb, '--json').stdout) as { paretoFront: FrontJson };
      const scored = json.paretoFront.candidates.length;
      expect(page.marks).toBeGreaterThanOrEqual(scored);
      expect(page.titles.filter((t) => / on the front/.test(t))).toHaveLength(json.paretoFront.front.length);
      expect(page.titles.every((t) => /^#\d+ \((kept|rejected)[^)]*\): math\/answer_logprob -?\d/.test(t))).toBe(true);
      expect(page.pick).toBe(json.paretoFront.sentence);
    } finally {
      await browser.close();
    }
  }, 120_000);

  it('a 1-worker run records exactly what the 2-worker run recorded', () => {
    const one = writeSpace(tmp, 'pareto-1.yaml', pareto(1));
    const db = path.join(tmp, 'one.sqlite');
    const r = runCli(tmp, 'search', one, '--db', db, '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    expect(recordSnapshot(db)).toEqual(recordSnapshot(straightDb));
  }, 300_000);

  it('killed with SIGKILL at seeded moments and resumed, records exactly what the uninterrupted run recorded', async () => {
    const db = path.join(tmp, 'killed.sqlite');
    const rand = mulberry32(20261207);
    expect((await runAndKill(tmp, space, db, { afterMs: 300 + 1500 * rand() })).killed).toBe(true);
    const kills: number[] = [];
    for (let i = 0; i < 2; i++) {
      // by a third (then two thirds) of the budget at the latest: mid-search however fast the machine records
      const r = await runAndKill(tmp, space, db, {
        afterNewMs: 1500 * rand(),
        atMost: Math.floor((BUDGET * (i + 1)) / 3),
      });
      expect(r.killed).toBe(true);
      kills.push(searchCount(db));
    }
    expect(
      kills.every((n) => n > 0 && n < BUDGET),
      `candidates at each kill: ${kills.join(', ')}`,
    ).toBe(true);
    const last = runCli(tmp, 'search', space, '--db', db, '--device', 'cpu');
    expect(last.status, last.stderr).toBe(0);
    expect(recordSnapshot(db)).toEqual(recordSnapshot(straightDb));
    expect(JSON.parse(runCli(tmp, 'report', db, '--json').stdout).paretoFront).toEqual(
      JSON.parse(runCli(tmp, 'report', straightDb, '--json').stdout).paretoFront,
    );
  }, 300_000);

  it("with successive halving, tells NSGA-II each candidate's objectives at the rung it reached", () => {
    const doc = { ...pareto(2), name: 'pareto-sh', budget: { candidates: 8 } };
    const sh = writeSpace(tmp, 'pareto-sh.yaml', {
      ...doc,
      selection: { top_k: 2, halving: { min_items: 3, eta: 2 } },
    });
    const db = path.join(tmp, 'sh.sqlite');
    const r = runCli(tmp, 'search', sh, '--db', db, '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    const p = (JSON.parse(runCli(tmp, 'report', db, '--json').stdout) as { paretoFront: FrontJson }).paretoFront;
    const s = openStore(db, { readonly: true });
    const states = s.listOptimizerStates(s.listCampaigns()[0]!.campaignId);
    s.close();
    const parents = (
      JSON.parse(states.at(-1)!.stateJson) as {
        algorithm: { parents: { f: number[] }[] };
      }
    ).algorithm.parents;
    expect(parents).toHaveLength(4);
    // each parent's objectives are a recorded candidate's fit values (scores at the rung it reached), exactly
    for (const { f } of parents)
      expect(
        p.candidates.some((c) => c.values.every((v, k) => Math.abs(v - f[k]!) < 1e-12)),
        JSON.stringify(f),
      ).toBe(true);
  }, 300_000);

  it('exports a front member that is not the pick', () => {
    const p = (JSON.parse(runCli(tmp, 'report', straightDb, '--json').stdout) as { paretoFront: FrontJson })
      .paretoFront;
    const member = p.front.find((o) => o !== p.chosen) ?? p.front[0]!;
    const out = path.join(tmp, 'member');
    const r = runCli(tmp, 'export', straightDb, '--candidate', String(member), '-o', out, '--force', '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    const scores = JSON.parse(readFileSync(path.join(out, 'scores.json'), 'utf8')) as { candidate: number };
    expect(scores.candidate).toBe(member);
    for (const f of ['model.safetensors', 'recipe.yaml']) expect(existsSync(path.join(out, f)), f).toBe(true);
  }, 120_000);
});
