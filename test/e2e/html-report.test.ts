// The HTML report of real campaigns, opened in a real headless Chromium: a small campaign whose report
// `evomerge search` wrote next to its database has every plot drawn with data marks, hover titles, no
// console error and no network reference; campaigns with nothing to plot (stopped before the first
// candidate, nothing kept, every candidate failed) say so in sentences instead of drawing empty frames.
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeadlessChromium } from '../fixtures/headless-chromium.ts';
import { cli, errorLines, poisonedCopy, repoRoot, tinySpace, writeSpace, type CliResult } from './search-fixtures.ts';

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

interface PageView {
  plots: { name: string; marks: number; titles: number }[];
  empty: { name: string; text: string }[];
  verdict: string;
}

let tmp: string;
let browser: HeadlessChromium;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-html-'));
  browser = await HeadlessChromium.launch();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** Opens a report and lists its plots (with their data marks and hover titles) and its empty-plot sentences. */
async function view(file: string): Promise<PageView> {
  browser.errors.length = 0;
  await browser.open(pathToFileURL(file).href);
  return browser.evaluate<PageView>(`({
    plots: [...document.querySelectorAll('figure.plot')].map((f) => ({
      name: f.dataset.plot,
      // Vega puts data marks in groups of class role-mark; axes, legends and titles have roles of their own
      marks: f.querySelectorAll('g.role-mark > :not(g)').length,
      titles: f.querySelectorAll('g.role-mark title').length,
    })),
    empty: [...document.querySelectorAll('p.empty')].map((p) => ({ name: p.dataset.plot, text: p.textContent })),
    verdict: document.querySelector('p.verdict')?.textContent ?? '',
  })`);
}

describe('HTML report', () => {
  let db: string;

  it('is written by evomerge search next to its database and shows every plot with data in Chromium', async () => {
    const space = writeSpace(tmp, 'tiny.yaml', tinySpace({ budget: { candidates: 8 } }));
    db = path.join(tmp, 'tiny.sqlite');
    const html = path.join(tmp, 'tiny.html');
    // watch the page while the search runs: it is rewritten after each generation (population 4, budget 8)
    const seen = new Set<string>();
    const poll = setInterval(() => {
      if (!existsSync(html)) return;
      const m = /class="summary">(\d+) candidate\(s\) over (\d+) generation/.exec(readFileSync(html, 'utf8'));
      if (m) seen.add(`${m[1]}/${m[2]}`);
    }, 100);
    const r = await runCli(tmp, 'search', space, '--db', db, '--device', 'cpu');
    clearInterval(poll);
    expect(r.status, r.stderr).toBe(0);
    expect(errorLines(r.stderr).filter((l) => l.includes('warning'))).toEqual([]);
    expect(seen).toContain('4/1');
    expect(existsSync(html)).toBe(true);
    // atomic rewrite: no temp file left beside it
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const text = readFileSync(html, 'utf8');
    // one file, no network: nothing is fetched (the SVG namespace URIs are names, not requests)
    expect(text.replace(/xmlns(:xlink)?="http:\/\/www\.w3\.org\/[^"]*"/g, '')).not.toMatch(
      /(src|href)=["']?(https?:)?\/\//,
    );
    expect(text).not.toContain('<script');

    const page = await view(html);
    const names = page.plots.map((p) => p.name);
    for (const expected of [
      'objective',
      'gate-rates',
      'gate-rejections',
      'genome-weight',
      'genome-moves',
      'method-probabilities',
      'fit-vs-test',
      'task-composite/answer_logprob',
      'task-lang/loglik',
    ]) {
      expect(names).toContain(expected);
    }
    for (const p of page.plots) {
      expect(p.marks, `plot ${p.name} has no data marks`).toBeGreaterThan(0);
      expect(p.titles, `plot ${p.name} has no hover titles`).toBeGreaterThan(0);
    }
    // the objective plot draws each of the 8 candidates
    expect(page.plots.find((p) => p.name === 'objective')!.marks).toBeGreaterThanOrEqual(8);
    expect(page.empty).toEqual([]);
    expect(page.verdict).toMatch(/standard errors of the difference/);
    expect(browser.errors).toEqual([]);

    const png = await browser.screenshot();
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    const height = png.readUInt32BE(20);
    expect(height).toBeGreaterThan(1500); // the whole page, not the viewport
    writeFileSync(path.join(tmp, 'tiny.png'), png);
  }, 300_000);

  it('evomerge report --html writes the same report where asked; a missing database or folder is one line', async () => {
    const out = path.join(tmp, 'elsewhere.html');
    const r = await runCli(tmp, 'report', db, '--html', out);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(out, 'utf8')).toContain('data-plot="fit-vs-test"');
    const bad = await runCli(tmp, 'report', path.join(tmp, 'nope.sqlite'), '--html');
    expect(bad.status).toBe(1);
    expect(errorLines(bad.stderr)).toEqual([`evomerge: ${path.join(tmp, 'nope.sqlite')}: no such database file`]);
    const unwritable = path.join(tmp, 'no-such-folder', 'r.html');
    const nowhere = await runCli(tmp, 'report', db, '--html', unwritable);
    expect(nowhere.status).toBe(1);
    expect(errorLines(nowhere.stderr)).toEqual([
      expect.stringMatching(new RegExp(`^evomerge: ${unwritable}: cannot write the HTML report: ENOENT`)),
    ]);
  }, 120_000);

  it('of a campaign stopped before its first candidate says so instead of plotting', async () => {
    // what a kill after the sources were scored leaves: the campaign and its baselines, no search candidate
    const empty = path.join(tmp, 'empty.sqlite');
    copyFileSync(db, empty);
    const sql = new Database(empty);
    sql.exec("DELETE FROM candidates WHERE kind = 'search'; DELETE FROM optimizer_states;");
    sql.close();
    const r = await runCli(tmp, 'report', empty, '--html');
    expect(r.status, r.stderr).toBe(0);
    const page = await view(path.join(tmp, 'empty.html'));
    expect(browser.errors).toEqual([]);
    // only what the sources' scores can show: per task, and fit against test
    expect(page.plots.filter((p) => !p.name.startsWith('task-') && p.name !== 'fit-vs-test')).toEqual([]);
    const sentences = Object.fromEntries(page.empty.map((e) => [e.name, e.text]));
    expect(sentences.objective).toMatch(/stopped before its first candidate/);
    expect(sentences.gates).toMatch(/stopped before its first candidate/);
    expect(sentences.genome).toMatch(/stopped before its first candidate/);
    expect(sentences['method-probabilities']).toMatch(/No generation has been completed yet/);
    // the sources were scored: their per-task plots are drawn, with data
    for (const p of page.plots) expect(p.marks).toBeGreaterThan(0);
  }, 120_000);

  it('of a campaign that kept nothing says there is no best genome, and plots the rest', async () => {
    const space = writeSpace(
      tmp,
      'none.yaml',
      tinySpace({
        name: 'none',
        budget: { candidates: 4 },
        references: [],
        gates: [{ name: 'impossible', kind: 'floor', task: 'math_words', value: 2 }],
      }),
    );
    const none = path.join(tmp, 'none.sqlite');
    const r = await runCli(tmp, 'search', space, '--db', none, '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    const page = await view(path.join(tmp, 'none.html'));
    expect(browser.errors).toEqual([]);
    const sentences = Object.fromEntries(page.empty.map((e) => [e.name, e.text]));
    expect(sentences.genome).toMatch(/None of the 4 candidate\(s\) cleared every gate/);
    expect(page.verdict).toMatch(/No search candidate cleared every gate/);
    expect(page.plots.map((p) => p.name)).toEqual(
      expect.arrayContaining(['objective', 'gate-rates', 'gate-rejections', 'genome-moves', 'fit-vs-test']),
    );
    for (const p of page.plots) expect(p.marks, p.name).toBeGreaterThan(0);
  }, 300_000);

  it('of a campaign where every candidate failed names the error instead of plotting objectives', async () => {
    const lang = poisonedCopy(tmp, 'expert-lang', 'model.layers.2.mlp.up_proj.weight');
    const space = writeSpace(
      tmp,
      'fail.yaml',
      tinySpace({
        name: 'fail',
        models: [path.join(repoRoot, 'models/micro/expert-math'), lang],
        references: [],
        budget: { candidates: 4 },
      }),
    );
    const fail = path.join(tmp, 'fail.sqlite');
    const r = await runCli(tmp, 'search', space, '--db', fail, '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    const page = await view(path.join(tmp, 'fail.html'));
    expect(browser.errors).toEqual([]);
    const sentences = Object.fromEntries(page.empty.map((e) => [e.name, e.text]));
    expect(sentences.objective).toMatch(
      /Every one of the 4 candidate\(s\) failed, so none has an objective: merge\.non_finite × 4/,
    );
    expect(sentences.gates).toMatch(/every candidate failed before it could be judged/);
    expect(sentences.genome).toMatch(/Every one of the 4 candidate\(s\) failed/);
    expect(page.plots.map((p) => p.name)).not.toContain('objective');
    for (const p of page.plots) expect(p.marks, p.name).toBeGreaterThan(0);
  }, 300_000);
});
