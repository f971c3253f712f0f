// `evomerge merge` never writes onto, into or around one of its inputs, whatever path leads there (a symlinked
// base, the real folder of a model, a folder inside or above one), with or without --force; an existing
// non-empty output needs --force; leftovers of a killed merge are swept. After every refusal the sources'
// bytes are unchanged.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, errorLines, runCli } from './search-fixtures.ts';
import { privateZoo, treeHash } from './guard-fixtures.ts';

let tmp: string;
let models: Record<string, string>;
let recipe: string;
let before: string;
const zooHash = () => treeHash(path.join(tmp, 'zoo'));

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-outputs-'));
  models = privateZoo(tmp).models;
  rmSync(path.join(models.base!, 'model.onnx')); // a plain checkpoint folder: nothing in it but what a merge writes
  symlinkSync(models.base!, path.join(tmp, 'base-link'));
  recipe = path.join(tmp, 'recipe.yaml');
  writeFileSync(
    recipe,
    `merge_method: task_arithmetic\nbase_model: base-link\nmodels:\n  - model: zoo/expert-math\n    parameters: ` +
      `{weight: 0.5}\n  - model: zoo/expert-lang\n    parameters: {weight: 0.5}\n`,
  );
  before = zooHash();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function refused(args: string[], pattern: RegExp): void {
  const r = runCli(tmp, 'merge', recipe, ...args, '--device', 'cpu');
  expect(r.status, r.stderr).toBe(1);
  const lines = errorLines(r.stderr);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(zooHash()).toBe(before);
}

describe('merge outputs never touch inputs', () => {
  it('refuses the real folder of a base given through a symlink, with or without --force', () => {
    refused(
      ['-o', models.base!],
      /^evomerge: .*zoo\/base: -o: the output folder is an input of this command \(base_model .*base-link\)/,
    );
    refused(['-o', models.base!, '--force'], /is an input.*--force never allows this/);
  });

  it('refuses a model folder, a folder inside one and a folder holding one', () => {
    refused(
      ['-o', models['expert-math']!, '--force'],
      /the output folder is an input of this command \(model .*expert-math\)/,
    );
    refused(['-o', path.join(models['expert-lang']!, 'merged')], /the output folder lies inside an input/);
    refused(['-o', path.join(tmp, 'zoo'), '--force'], /the output folder contains an input/);
    refused(['-o', path.join(tmp, 'base-link', 'x')], /lies inside an input/);
  });

  it('an existing non-empty output needs --force; leftovers of a killed merge are swept', () => {
    const out = path.join(tmp, 'out');
    expect(runCli(tmp, 'merge', recipe, '-o', out, '--device', 'cpu').status).toBe(0);
    refused(['-o', out], /out: -o: output folder exists and is not empty \(4 file\(s\)\); --force replaces it/);
    // a merge killed mid-way (its pid gone) left its temporary folder beside the output
    const dead = 2 ** 22 + 12345;
    mkdirSync(`${out}.evomerge-tmp-${dead}`);
    const r = runCli(tmp, 'merge', recipe, '-o', out, '--force', '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    expect(
      readdirSync(tmp)
        .filter((n) => n.startsWith('out'))
        .sort(),
    ).toEqual(['out']);
    // a replacement killed between setting the old output aside and renaming the new one: the old comes back
    const other = path.join(tmp, 'other');
    mkdirSync(`${other}.evomerge-old-${dead}`);
    writeFileSync(path.join(`${other}.evomerge-old-${dead}`, 'config.json'), '{}');
    expect(runCli(tmp, 'merge', recipe, '-o', other, '--device', 'cpu').status).toBe(1);
    expect(existsSync(path.join(other, 'config.json'))).toBe(true);
    expect(zooHash()).toBe(before);
  });

  it.runIf(process.platform === 'linux')(
    'an output folder that cannot be made (under /proc) is one line, at once',
    () => {
      // Node's recursive mkdir spins forever there: /proc/self exists, and a new entry in it is ENOENT
      const out = '/proc/self/evomerge-never/deeper/merged';
      const started = Date.now();
      const r = spawnSync(process.execPath, [cli, 'merge', recipe, '-o', out, '--device', 'cpu'], {
        cwd: tmp,
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.status, `merge hung or failed oddly: ${r.stderr}`).toBe(1);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(errorLines(r.stderr)).toHaveLength(1);
      // the errno is the kernel's (ENOENT here)
      expect(errorLines(r.stderr)[0]).toMatch(
        new RegExp(
          `^evomerge: ${out}: cannot make the output folder \\(cannot make /proc/self/evomerge-never: E[A-Z]+\\)$`,
        ),
      );
      expect(zooHash()).toBe(before);
    },
  );

  it('a bad --shard-size is a usage error (exit 2) and --version prints the version', () => {
    const r = runCli(tmp, 'merge', recipe, '-o', path.join(tmp, 'never'), '--shard-size', 'abc');
    expect(r.status).toBe(2);
    expect(errorLines(r.stderr)).toEqual([
      'evomerge: --shard-size: "abc" is not a size; expected e.g. 5GB, 500MB, 1.5GB, 2GiB or a number of bytes',
    ]);
    const v = runCli(tmp, '--version');
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});
