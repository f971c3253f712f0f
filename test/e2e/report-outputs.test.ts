// Every file evomerge writes obeys the output-path rules (issue 23, data loss): `report --html OUT` never writes
// over the campaign database or an input the campaign recorded (suite, eval file, a file inside a checkpoint),
// with or without --force; an existing file that is not an evomerge report page needs --force; `search --db
// X.html` would make the page beside the database the database itself and is refused before anything is written;
// a database inside a model folder is refused; a page folder that is a file and a database that is a folder are
// one line each. After every refusal the bytes of the database, the zoo and the suite are unchanged.
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cli, errorLines, tinySpace, writeSpace, type CliResult } from './search-fixtures.ts';
import { privateZoo, treeHash } from './guard-fixtures.ts';

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

let tmp: string;
let zoo: ReturnType<typeof privateZoo>;
let space: string;
let db: string;
const fileHash = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
let before: { zoo: string; evals: string; db: string };
const snapshot = () => ({ zoo: treeHash(path.join(tmp, 'zoo')), evals: treeHash(zoo.evals), db: fileHash(db) });

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-report-outputs-'));
  zoo = privateZoo(tmp);
  space = writeSpace(
    tmp,
    'tiny.yaml',
    tinySpace({
      base_model: zoo.models.base,
      models: [zoo.models['expert-math'], zoo.models['expert-lang']],
      suite: zoo.suite,
      budget: { candidates: 4 },
      eval_limit: 4,
      workers: 1,
    }),
  );
  mkdirSync(path.join(tmp, 'runs'));
  db = path.join(tmp, 'runs', 'camp.sqlite');
  const r = await runCli(tmp, 'search', space, '--db', db, '--device', 'cpu');
  expect(r.status, r.stderr).toBe(0);
  before = snapshot();
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function refused(args: string[], pattern: RegExp): Promise<void> {
  const r = await runCli(tmp, ...args);
  expect(r.status, r.stderr).toBe(1);
  const lines = errorLines(r.stderr);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(snapshot()).toEqual(before);
}

describe('report --html never destroys what the campaign has', async () => {
  it('a report that only reads leaves the database folder as it found it (no -wal, no -shm)', async () => {
    const dir = path.join(tmp, 'read-only-report');
    mkdirSync(dir);
    const copy = path.join(dir, 'camp.sqlite');
    copyFileSync(db, copy);
    const listing = () => readdirSync(dir).sort();
    const found = listing();
    expect(found).toEqual(['camp.sqlite']);
    for (const args of [[copy], [copy, '--json']]) {
      const r = await runCli(tmp, 'report', ...args);
      expect(r.status, r.stderr).toBe(0);
      expect(listing(), args.join(' ')).toEqual(found);
    }
    expect(fileHash(copy)).toBe(fileHash(db));
  });

  it('refuses the database, its -wal and the inputs the campaign recorded, with or without --force', async () => {
    for (const force of [[], ['--force']]) {
      await refused(
        ['report', db, '--html', db, ...force],
        new RegExp(
          '^evomerge: .*camp\\.sqlite: --html: the output file is an input of this command ' +
            '\\(campaign database .*\\); .*--force never allows this',
        ),
      );
      await refused(
        ['report', db, '--html', `${db}-wal`, ...force],
        /--html: the output file is an input .*campaign database/,
      );
      await refused(
        ['report', db, '--html', zoo.suite, ...force],
        /micro\.yaml: --html: the output file is an input .*\(eval suite /,
      );
      await refused(
        ['report', db, '--html', path.join(zoo.evals, 'micro', 'lang.fit.jsonl'), ...force],
        /lang\.fit\.jsonl: --html: the output file is an input .*\(eval file of task lang /,
      );
      await refused(
        ['report', db, '--html', path.join(zoo.models.base!, 'model.safetensors'), ...force],
        /model\.safetensors: --html: the output file lies inside an input .*\(checkpoint base /,
      );
    }
    // the database reached through another name
    await refused(
      ['report', db, '--html', path.join('runs', '..', 'runs', 'camp.sqlite')],
      /is an input .*campaign database/,
    );
  });

  it("replaces an earlier report page, but someone else's file only with --force", async () => {
    const page = path.join(tmp, 'page.html');
    expect((await runCli(tmp, 'report', db, '--html', page)).status).toBe(0);
    const again = await runCli(tmp, 'report', db, '--html', page);
    expect(again.status, again.stderr).toBe(0);
    const notes = path.join(tmp, 'notes.html');
    writeFileSync(notes, '<html><body>my notes</body></html>\n');
    await refused(
      ['report', db, '--html', notes],
      /^evomerge: .*notes\.html: --html: exists and is not an evomerge HTML report page; --force replaces it$/,
    );
    expect(readFileSync(notes, 'utf8')).toContain('my notes');
    const forced = await runCli(tmp, 'report', db, '--html', notes, '--force');
    expect(forced.status, forced.stderr).toBe(0);
    expect(readFileSync(notes, 'utf8')).toContain('<title>evomerge campaign');
    // a folder is never replaced
    mkdirSync(path.join(tmp, 'a-folder.html'));
    await refused(
      ['report', db, '--html', path.join(tmp, 'a-folder.html'), '--force'],
      /a-folder\.html: --html: is a folder/,
    );
  });

  it('names a page folder that is a file, and a database that is a folder, in one line', async () => {
    writeFileSync(path.join(tmp, 'afile'), 'x');
    await refused(
      ['report', db, '--html', path.join('afile', 'x.html')],
      /^evomerge: afile\/x\.html: --html: cannot write the HTML report page: afile is a file, not a folder$/,
    );
    mkdirSync(path.join(tmp, 'dirdb'));
    await refused(['report', 'dirdb'], /^evomerge: dirdb: is a folder, not a database file$/);
    await refused(
      ['search', space, '--db', 'dirdb', '--device', 'cpu'],
      /^evomerge: dirdb: is a folder, not a database file$/,
    );
  });
});

describe('search never writes its database or page over what it has', async () => {
  it('refuses --db X.html (the page beside the database would be the database) before writing anything', async () => {
    const campHtml = path.join(tmp, 'camp.html');
    copyFileSync(db, campHtml); // a database named .html, as an earlier version let it be made
    const bytes = readFileSync(campHtml);
    await refused(
      ['search', space, '--db', campHtml, '--device', 'cpu'],
      /^evomerge: .*camp\.html: --db: the HTML report page beside the database is the database path with \.html/,
    );
    expect(readFileSync(campHtml).equals(bytes)).toBe(true);
    await refused(
      ['report', campHtml, '--html'],
      /camp\.html: --html: the output file is an input .*campaign database/,
    );
    expect(readFileSync(campHtml).equals(bytes)).toBe(true);
    await refused(
      ['search', space, '--db', path.join(tmp, 'fresh.html'), '--device', 'cpu'],
      /--db: the HTML report page/,
    );
    expect(existsSync(path.join(tmp, 'fresh.html'))).toBe(false);
  });

  it('refuses a database inside a model folder or onto an eval file', async () => {
    await refused(
      ['search', space, '--db', path.join(zoo.models.base!, 'camp.sqlite'), '--device', 'cpu'],
      /camp\.sqlite: --db: the output file lies inside an input of this command \(checkpoint base /,
    );
    await refused(
      ['search', space, '--db', path.join(zoo.evals, 'micro', 'lang.fit.jsonl'), '--device', 'cpu'],
      /lang\.fit\.jsonl: --db: the output file is an input of this command \(eval file of task lang /,
    );
  });

  it("leaves someone else's file beside the database alone, with a warning, and still runs the campaign", async () => {
    const other = path.join(tmp, 'runs', 'other.sqlite');
    const page = path.join(tmp, 'runs', 'other.html');
    writeFileSync(page, 'my own page\n');
    const r = await runCli(tmp, 'search', space, '--db', other, '--device', 'cpu', '--budget', '1');
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(page, 'utf8')).toBe('my own page\n');
    expect(r.stderr).toMatch(
      /evomerge: warning: .*other\.html: the HTML report was not written: .*exists and is not an evomerge HTML report page/,
    );
  }, 120_000);
});
