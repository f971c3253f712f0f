// A campaign's database and inputs are safe from ordinary mistakes: an error with scoring threads still ends
// the process; a second search on the same database is refused at once, naming the first one's pid, while
// report keeps reading; export never writes into a campaign's source or eval folder; a campaign refuses to
// go on, export or report as current once an input it read has changed, unless --accept-changed-inputs (which
// is recorded). After every refusal the sources' bytes are unchanged.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { cli, errorLines, runCli, tinySpace, writeSpace } from './search-fixtures.ts';
import { privateZoo, treeHash } from './guard-fixtures.ts';

let tmp: string;
let space: string;
let db: string;
let zoo: ReturnType<typeof privateZoo>;
let before: string;
const zooHash = () => treeHash(path.join(tmp, 'zoo'));

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-guards-'));
  zoo = privateZoo(tmp);
  space = writeSpace(
    tmp,
    'guard.yaml',
    tinySpace({
      name: 'guard',
      base_model: zoo.models.base,
      models: [zoo.models['expert-math'], zoo.models['expert-lang']],
      suite: zoo.suite,
      gates: [],
      references: [],
      budget: { candidates: 8 },
      eval_limit: 6,
    }),
  );
  db = path.join(tmp, 'guard.sqlite');
  before = zooHash();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs the CLI with a time limit: a command that hangs after its error shows as status null. */
function runTimed(seconds: number, ...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: tmp, encoding: 'utf8', timeout: seconds * 1000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('campaign guards', () => {
  it('every error path exits, scoring threads or not', () => {
    const notADir = path.join(tmp, 'plain-file');
    writeFileSync(notADir, 'x');
    const s = runTimed(
      90,
      'search',
      space,
      '--db',
      path.join(notADir, 'c.sqlite'),
      '--workers',
      '2',
      '--device',
      'cpu',
    );
    expect(s.status, `search hung or failed oddly: ${s.stderr}`).toBe(1);
    expect(errorLines(s.stderr).at(-1)).toMatch(/^evomerge: .*plain-file\/c\.sqlite.*: /);
    for (const args of [
      ['report', notADir],
      ['export', notADir, '-o', path.join(tmp, 'never')],
      ['eval', path.join(tmp, 'missing-model'), '--suite', zoo.suite, '--sessions', '2'],
      ['merge', path.join(tmp, 'missing.yaml'), '-o', path.join(tmp, 'never')],
    ]) {
      const r = runTimed(60, ...args);
      expect(r.status, `${args[0]}: ${r.stderr}`).not.toBe(null);
      expect(r.status, args[0]).toBeGreaterThan(0);
      expect(errorLines(r.stderr), args[0]).toHaveLength(1);
    }
    expect(existsSync(path.join(tmp, 'never'))).toBe(false);
  });

  it.runIf(process.platform === 'linux')(
    'a database folder that cannot be made (under /proc) is one line, at once',
    () => {
      // Node's recursive mkdir spins forever there: /proc/self exists, and a new entry in it is ENOENT
      const db = '/proc/self/evomerge-never/deeper/c.sqlite';
      const started = Date.now();
      const s = runTimed(30, 'search', space, '--db', db, '--device', 'cpu');
      expect(s.status, `search hung or failed oddly: ${s.stderr}`).toBe(1);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(errorLines(s.stderr)).toHaveLength(1);
      expect(errorLines(s.stderr)[0]).toMatch(
        /^evomerge: \/proc\/self\/evomerge-never\/deeper\/c\.sqlite: .*evomerge-never/,
      );
    },
  );

  it('one search per database: a second is refused at once naming the pid; report reads meanwhile', async () => {
    // long enough (24 candidates) for a second command to start while it runs
    const first = spawn(process.execPath, [cli, 'search', space, '--db', db, '--budget', '24', '--device', 'cpu'], {
      cwd: tmp,
    });
    let err = '';
    first.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => first.on('exit', (code) => resolve(code)));
    try {
      const t0 = Date.now();
      while (!/^gen \d+:/m.test(err)) {
        if (Date.now() - t0 > 240_000 || first.exitCode !== null)
          throw new Error(`the first search never reached its search phase: ${err}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const started = Date.now();
      const second = runTimed(60, 'search', space, '--db', db, '--device', 'cpu');
      expect(second.status).toBe(1);
      expect(Date.now() - started).toBeLessThan(30_000);
      const lines = errorLines(second.stderr);
      expect(lines.at(-1)).toMatch(
        new RegExp(`guard\\.sqlite: another evomerge is writing this database \\(pid ${first.pid} on `),
      );
      const report = runTimed(60, 'report', db);
      expect(report.status, report.stderr).toBe(0);
      expect(report.stdout).toContain('guard');
    } finally {
      const code = await exited;
      expect(code, err).toBe(0);
    }
    expect(existsSync(`${db}.lock`)).toBe(false);
    // progress: the database path first, then one line as each generation ends (4 candidates each)
    expect(err).toMatch(new RegExp(`^campaign database ${db.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    expect(err.match(/^gen \d+: \d+\/24 candidates.*$/gm)?.map((l) => l.replace(/,.*/, ''))).toEqual(
      [0, 1, 2, 3, 4, 5].map((g) => `gen ${g}: ${4 * (g + 1)}/24 candidates`),
    );
  }, 600_000);

  it("export never writes into a campaign's source or eval folder, --force or not", () => {
    for (const [out, force] of [
      [zoo.models['expert-math']!, false],
      [zoo.models['expert-math']!, true],
      [path.join(zoo.models.base!, 'exported'), true],
      [zoo.evals, true],
    ] as const) {
      const r = runTimed(120, 'export', db, '-o', out, '--device', 'cpu', ...(force ? ['--force'] : []));
      expect(r.status, r.stderr).toBe(1);
      expect(errorLines(r.stderr).at(-1)).toMatch(
        /-o: the output folder (is|lies inside|contains) an input of this command/,
      );
      expect(zooHash()).toBe(before);
    }
    expect(existsSync(path.join(zoo.models['expert-math']!, 'recipe.yaml'))).toBe(false);
  });

  it('a changed input stops resume, export and a current report, naming the file, until --accept-changed-inputs', () => {
    const evalFile = path.join(zoo.evals, 'micro/composite.fit.jsonl');
    const lines = readFileSync(evalFile, 'utf8').split('\n');
    writeFileSync(evalFile, lines.slice(1).join('\n')); // one item fewer: n would differ within one campaign
    const resumed = runTimed(120, 'search', space, '--db', db, '--budget', '28', '--device', 'cpu');
    expect(resumed.status).toBe(1);
    expect(errorLines(resumed.stderr).at(-1)).toMatch(
      /composite\.fit\.jsonl: .*changed since the campaign recorded it.*--accept-changed-inputs/,
    );
    const exported = runTimed(120, 'export', db, '-o', path.join(tmp, 'exp'), '--device', 'cpu');
    expect(exported.status).toBe(1);
    expect(errorLines(exported.stderr).at(-1)).toMatch(
      /composite\.fit\.jsonl: .*changed since the campaign recorded it/,
    );
    expect(existsSync(path.join(tmp, 'exp'))).toBe(false);
    const report = runTimed(60, 'report', db);
    expect(report.status).toBe(0);
    expect(report.stdout).toMatch(/not current: .*composite\.fit\.jsonl changed/);

    const s = openStore(db, { readonly: true });
    const count = s.countCandidates(s.listCampaigns()[0]!.campaignId, { kind: 'search' });
    s.close();
    expect(count).toBe(24);

    const accepted = runTimed(
      300,
      'search',
      space,
      '--db',
      db,
      '--budget',
      '28',
      '--device',
      'cpu',
      '--accept-changed-inputs',
    );
    expect(accepted.status, accepted.stderr).toBe(0);
    expect(accepted.stderr).toMatch(/composite\.fit\.jsonl changed.*accepted/);
    const after = runTimed(60, 'report', db, '--json');
    const changes = JSON.parse(after.stdout).inputChanges as { path: string; acceptedAt: string }[];
    expect(changes.map((c) => path.basename(c.path))).toEqual(['composite.fit.jsonl']);
    expect(zooHash()).toBe(before); // the models were never touched
  }, 600_000);
});
