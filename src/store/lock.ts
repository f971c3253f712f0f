// One writer per campaign database: an advisory lock file `<db>.lock` created exclusively (O_EXCL) and holding
// the owner's pid, host and start time. A second writer is refused at once, naming the owner; readers (report,
// export) never take it. A lock left by a killed process on this host (its pid gone) is taken over; one from
// another host is never guessed stale, since its pid cannot be checked from here.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EvomergeError } from '../errors.ts';

export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
}

export interface DatabaseLock {
  readonly file: string;
  /** Removes the lock file if it is still ours; safe to call twice. */
  release(): void;
}

export function lockFileOf(dbFile: string): string {
  return `${dbFile}.lock`;
}

/** Takes the writer's lock of a database or throws `store.locked` naming the process that holds it. */
export function acquireDatabaseLock(dbFile: string): DatabaseLock {
  const file = lockFileOf(dbFile);
  const me: LockOwner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
  const text = `${JSON.stringify(me)}\n`;
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true });
    if (!fs.statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder`);
  } catch (err) {
    throw new EvomergeError('store.lock_failed', `cannot make the database's folder (${(err as Error).message})`, {
      file: dbFile,
    });
  }
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, text, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new EvomergeError(
          'store.lock_failed',
          `cannot create the writer's lock file (${(err as Error).message})`,
          { file },
        );
      }
    }
    const owner = readOwner(file);
    if (owner === undefined && attempt === 0) {
      // created but not yet written by its owner: look again in a moment
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      continue;
    }
    const stale = owner === undefined ? attempt > 0 : owner.host === me.host && !processAlive(owner.pid);
    if (stale && attempt < 3) {
      fs.rmSync(file, { force: true });
      continue;
    }
    const who = owner ? `pid ${owner.pid} on ${owner.host}, since ${owner.since}` : 'an unreadable lock file';
    throw new EvomergeError(
      'store.locked',
      `another evomerge is writing this database (${who}); one search per database at a time — wait for it, stop it, ` +
        `or use another --db (remove ${file} only if that process is gone)`,
      { file: dbFile },
    );
  }
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    try {
      if (fs.readFileSync(file, 'utf8') === text) fs.rmSync(file, { force: true });
    } catch {
      // already gone
    }
  };
  process.on('exit', release);
  return { file, release };
}

/** The owner recorded in a lock file, or undefined if it cannot be read (being written, or damaged). */
export function readOwner(file: string): LockOwner | undefined {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string' && typeof o.since === 'string') return o as LockOwner;
  } catch {
    // fall through
  }
  return undefined;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
