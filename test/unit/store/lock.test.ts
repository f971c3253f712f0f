// The writer's lock of a campaign database: of many starts finding the same stale lock exactly one takes it
// over, and a lock naming a live pid that another process now wears (its start time differs) is taken over.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireDatabaseLock, lockFileOf, privateLockName, processStart, readOwner } from '../../../src/store/lock.ts';

let dir: string;
let db: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evomerge-lock-'));
  db = path.join(dir, 'c.sqlite');
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A pid that no process holds now: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid as number;
}

const racer = path.join(import.meta.dirname, 'lock-racer.ts');

async function race(starts: number, round: number): Promise<string[]> {
  const go = path.join(dir, `go-${round}`);
  const done = path.join(dir, `done-${round}`);
  const children = Array.from({ length: starts }, () =>
    spawn(process.execPath, ['--import', 'tsx', racer, db, go, done], { stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  const answers = children.map(
    (child) =>
      new Promise<string>((resolve) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        child.on('exit', () => resolve(out.split('\n')[0]));
      }),
  );
  // let every child load and wait at the barrier, then release them together
  await new Promise((r) => setTimeout(r, 4000));
  fs.writeFileSync(go, '');
  const lines = await Promise.all(answers);
  fs.writeFileSync(done, '');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode === null ? c.on('exit', r) : r(null)))));
  return lines;
}

describe('database lock', () => {
  it('records the process start time on Linux', () => {
    const lock = acquireDatabaseLock(db);
    const owner = readOwner(lockFileOf(db));
    expect(owner?.pid).toBe(process.pid);
    if (process.platform === 'linux') expect(owner?.pstart).toBe(processStart(process.pid));
    lock.release();
    expect(fs.existsSync(lockFileOf(db))).toBe(false);
  });

  it('refuses a second start while the first holds the lock', () => {
    const lock = acquireDatabaseLock(db);
    expect(() => acquireDatabaseLock(db)).toThrow(/another evomerge is writing this database \(pid \d+/);
    lock.release();
  });

  it('of many starts racing for a stale lock, exactly one wins', async () => {
    for (let round = 0; round < 2; round++) {
      const stale = { pid: deadPid(), host: os.hostname(), since: '2020-01-01T00:00:00.000Z' };
      fs.writeFileSync(lockFileOf(db), `${JSON.stringify(stale)}\n`);
      const lines = await race(12, round);
      expect(lines.filter((l) => l === 'won')).toHaveLength(1);
      expect(lines.filter((l) => l.startsWith('refused') && l.includes('another evomerge is writing'))).toHaveLength(
        11,
      );
      expect(fs.existsSync(lockFileOf(db))).toBe(false);
      expect(fs.readdirSync(dir).filter((f) => f.includes('.lock'))).toEqual([]);
    }
  }, 120_000);

  it.runIf(process.platform === 'linux')(
    'takes over a lock whose live pid is another process (start time differs)',
    () => {
      const start = processStart(process.pid) as number;
      const recycled = { pid: process.pid, host: os.hostname(), since: '2020-01-01T00:00:00.000Z', pstart: start + 1 };
      fs.writeFileSync(lockFileOf(db), `${JSON.stringify(recycled)}\n`);
      const lock = acquireDatabaseLock(db);
      expect(readOwner(lockFileOf(db))?.pstart).toBe(start);
      // the same pid with its own start time is the live owner: refused
      expect(() => acquireDatabaseLock(db)).toThrow(/another evomerge is writing this database/);
      lock.release();
    },
  );

  // What SIGKILL leaves at each step of a start: its private lock file (written, not yet linked or removed); a
  // stale lock; a takeover guard (killed while swapping); or the guard without a lock (killed after removing the
  // stale lock, before linking its own). The next start takes the lock and leaves the folder as a clean run does.
  it('a start killed with a stale lock, its guard and its private file left: the next takes over and sweeps', () => {
    const dead = deadPid();
    const stale = { pid: dead, host: os.hostname(), since: '2020-01-01T00:00:00.000Z' };
    const text = `${JSON.stringify(stale)}\n`;
    fs.writeFileSync(lockFileOf(db), text);
    fs.writeFileSync(`${lockFileOf(db)}.takeover`, text);
    const leftover = privateLockName(lockFileOf(db), dead, os.hostname());
    fs.writeFileSync(leftover, text);
    // another host's start on a shared folder: its pid means nothing here, its file is left alone
    const elsewhere = privateLockName(lockFileOf(db), dead, 'another-host');
    fs.writeFileSync(elsewhere, text);
    const lock = acquireDatabaseLock(db);
    expect(readOwner(lockFileOf(db))?.pid).toBe(process.pid);
    expect(fs.readdirSync(dir).sort()).toEqual([path.basename(lockFileOf(db)), path.basename(elsewhere)].sort());
    lock.release();
    expect(fs.readdirSync(dir)).toEqual([path.basename(elsewhere)]);
  });

  it('a start killed after removing the stale lock, before linking its own: the next takes the lock and sweeps', () => {
    const dead = deadPid();
    const text = `${JSON.stringify({ pid: dead, host: os.hostname(), since: '2020-01-01T00:00:00.000Z' })}\n`;
    fs.writeFileSync(`${lockFileOf(db)}.takeover`, text);
    fs.writeFileSync(privateLockName(lockFileOf(db), dead, os.hostname()), text);
    const lock = acquireDatabaseLock(db);
    expect(fs.readdirSync(dir)).toEqual([path.basename(lockFileOf(db))]);
    // a second start meanwhile is refused, naming the live owner
    expect(() => acquireDatabaseLock(db)).toThrow(
      new RegExp(`another evomerge is writing this database \\(pid ${process.pid} `),
    );
    lock.release();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('takes over a lock a killed start left while taking over', () => {
    const stale = { pid: deadPid(), host: os.hostname(), since: '2020-01-01T00:00:00.000Z' };
    fs.writeFileSync(lockFileOf(db), `${JSON.stringify(stale)}\n`);
    fs.writeFileSync(`${lockFileOf(db)}.takeover`, `${JSON.stringify(stale)}\n`);
    const lock = acquireDatabaseLock(db);
    expect(readOwner(lockFileOf(db))?.pid).toBe(process.pid);
    lock.release();
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
