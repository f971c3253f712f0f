// One writer per campaign database: an advisory lock file `<db>.lock` holding the owner's pid, host, start time
// and (on Linux) the process start time from /proc. It is written whole under a private name and linked into
// place, so it never exists half-written. A second writer is refused at once, naming the owner; readers (report,
// export) never take it. A lock left by a process on this host that is gone — its pid dead, or reused by another
// process (the pid's start time differs from the one recorded) — is taken over; one from another host is never
// guessed stale, since its pid cannot be checked from here. A takeover holds `<db>.lock.takeover` (created
// exclusively) while it checks the lock again and swaps it, so of many starts finding the same stale lock exactly
// one wins. What a start killed at any step leaves (its private lock file, a takeover guard) never stops the next
// start, which removes it once the lock is its own.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EvomergeError } from '../errors.ts';
import { makeFolder } from '../folders.ts';

export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
  /** The process start time (clock ticks since boot, /proc/<pid>/stat field 22), where it can be read. */
  readonly pstart?: number;
}

export interface DatabaseLock {
  readonly file: string;
  /** Removes the lock file if it is still ours; safe to call twice. */
  release(): void;
}

export function lockFileOf(dbFile: string): string {
  return `${dbFile}.lock`;
}

const sleep = (ms: number): void => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms) as unknown as void;

/** Takes the writer's lock of a database or throws `store.locked` naming the process that holds it. */
export function acquireDatabaseLock(dbFile: string): DatabaseLock {
  const file = lockFileOf(dbFile);
  const pstart = processStart(process.pid);
  const me: LockOwner = {
    pid: process.pid,
    host: os.hostname(),
    since: new Date().toISOString(),
    ...(pstart === undefined ? {} : { pstart }),
  };
  const text = `${JSON.stringify(me)}\n`;
  const dir = path.dirname(path.resolve(file));
  try {
    makeFolder(dir);
  } catch (err) {
    throw new EvomergeError('store.lock_failed', `cannot make the database's folder (${(err as Error).message})`, {
      file: dbFile,
    });
  }
  const failed = (err: unknown): EvomergeError =>
    new EvomergeError('store.lock_failed', `cannot create the writer's lock file (${(err as Error).message})`, {
      file,
    });
  // the whole lock, written under a private name; linking it into place is the atomic, exclusive create
  const mine = privateLockName(file, process.pid, me.host);
  try {
    fs.writeFileSync(mine, text, { flag: 'wx' });
  } catch (err) {
    throw failed(err);
  }
  try {
    for (let attempt = 0; ; attempt++) {
      if (linkExclusive(mine, file, failed)) break;
      const seen = readLock(file);
      if (seen === undefined) continue; // gone meanwhile: try again
      const owner = parseOwner(seen.text);
      if (owner === undefined && attempt === 0) {
        // written by an older evomerge that creates then writes: look again in a moment
        sleep(100);
        continue;
      }
      const stale = owner === undefined ? true : owner.host === me.host && !ownerAlive(owner);
      if (stale && attempt < 20) {
        const took = takeOver(file, seen, mine, failed);
        if (took === 'ours') break;
        if (took === 'busy') sleep(20 + Math.random() * 30);
        continue;
      }
      const who = owner ? `pid ${owner.pid} on ${owner.host}, since ${owner.since}` : 'an unreadable lock file';
      throw new EvomergeError(
        'store.locked',
        `another evomerge is writing this database (${who}); one search per database at a time — wait for it, ` +
          `stop it, or use another --db (remove ${file} only if that process is gone)`,
        { file: dbFile },
      );
    }
  } finally {
    fs.rmSync(mine, { force: true });
  }
  sweepLeftovers(file, me.host);
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

interface SeenLock {
  readonly text: string;
  readonly ino: number;
}

function readLock(file: string): SeenLock | undefined {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      return { ino: fs.fstatSync(fd).ino, text: fs.readFileSync(fd, 'utf8') };
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

/** Links `from` at `to` unless `to` exists (false then); where the file system has no hard links (EPERM,
 *  ENOTSUP, ENOSYS), writes a copy with an exclusive create instead. */
function linkExclusive(from: string, to: string, failed: (err: unknown) => EvomergeError): boolean {
  try {
    fs.linkSync(from, to);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw failed(err);
  }
  try {
    fs.writeFileSync(to, fs.readFileSync(from), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw failed(err);
  }
}

/**
 * Replaces the stale lock `seen` by ours while holding `<lock>.takeover`: 'ours' when it did, 'lost' when the lock
 * changed meanwhile (look again), 'busy' when another start is taking it over (wait, then look again).
 */
function takeOver(
  file: string,
  seen: SeenLock,
  mine: string,
  failed: (err: unknown) => EvomergeError,
): 'ours' | 'lost' | 'busy' {
  const guard = `${file}.takeover`;
  if (!linkExclusive(mine, guard, failed)) {
    removeDeadGuard(guard, true);
    return 'busy';
  }
  try {
    const now = readLock(file);
    if (now === undefined) return linkExclusive(mine, file, failed) ? 'ours' : 'lost';
    if (now.ino !== seen.ino || now.text !== seen.text) return 'lost';
    // Moved aside (atomic: of two starts renaming, one gets the stale lock) and checked, not removed by name: should
    // a dead start's guard have been cleared while another start held a live one, two starts can be here at once,
    // and the second must not remove the lock the first has just linked.
    const aside = privateLockName(file, process.pid, os.hostname());
    try {
      fs.renameSync(file, aside);
    } catch {
      return 'lost'; // gone meanwhile
    }
    const moved = readLock(aside);
    if (moved?.ino !== seen.ino || moved.text !== seen.text) {
      linkExclusive(aside, file, failed); // another start's live lock: put back
      fs.rmSync(aside, { force: true });
      return 'lost';
    }
    fs.rmSync(aside, { force: true });
    return linkExclusive(mine, file, failed) ? 'ours' : 'lost';
  } finally {
    fs.rmSync(guard, { force: true });
  }
}

/** A takeover guard left by a start killed in the middle of one: removed when its writer is gone (an unreadable
 *  one too, when `unreadable`: a guard is linked whole, so only a damaged file reads so). */
function removeDeadGuard(guard: string, unreadable: boolean): void {
  const other = readLock(guard);
  if (!other) return;
  const owner = parseOwner(other.text);
  if (owner === undefined ? unreadable : owner.host === os.hostname() && !ownerAlive(owner)) {
    const again = readLock(guard);
    if (again?.ino === other.ino) fs.rmSync(guard, { force: true });
  }
}

/** The private name a start writes its lock under before linking it into place: `<lock>.<pid>-<host tag>.<random>.tmp`
 *  (the host tag, 8 hex digits of the host name's sha256, tells this host's leftovers from another's on a shared
 *  folder). */
export function privateLockName(file: string, pid: number, host: string): string {
  return `${file}.${pid}-${hostTag(host)}.${Math.random().toString(36).slice(2) || '0'}.tmp`;
}

function hostTag(host: string): string {
  return createHash('sha256').update(host).digest('hex').slice(0, 8);
}

/**
 * What starts killed (SIGKILL, a power cut) while taking the lock left beside it, removed once the lock is ours:
 * their private lock files (this host's, whose pid is gone) and a takeover guard whose writer is gone. Such
 * leftovers never stop a start; this keeps the database's folder as a clean run leaves it.
 */
function sweepLeftovers(file: string, host: string): void {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  const tag = hostTag(host);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(`${base}.`) || !name.endsWith('.tmp')) continue;
    const m = /^(\d+)-([0-9a-f]{8})\.[a-z0-9]+\.tmp$/.exec(name.slice(base.length + 1));
    if (!m || m[2] !== tag) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && !processAlive(pid)) fs.rmSync(path.join(dir, name), { force: true });
  }
  removeDeadGuard(`${file}.takeover`, false);
}

/** The owner recorded in a lock file, or undefined if it cannot be read (damaged, or not a lock). */
export function readOwner(file: string): LockOwner | undefined {
  const seen = readLock(file);
  return seen && parseOwner(seen.text);
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string' && typeof o.since === 'string') return o as LockOwner;
  } catch {
    // fall through
  }
  return undefined;
}

/** Whether the process that wrote a lock on this host still runs: its pid is alive and started when recorded. */
function ownerAlive(owner: LockOwner): boolean {
  if (!processAlive(owner.pid)) return false;
  if (typeof owner.pstart !== 'number') return true;
  const now = processStart(owner.pid);
  return now === undefined || now === owner.pstart;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process's start time in clock ticks since boot (Linux /proc/<pid>/stat field 22), or undefined elsewhere. */
export function processStart(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) is in parentheses and may hold spaces or parentheses: count from the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = Number(fields[19]);
    return Number.isSafeInteger(start) ? start : undefined;
  } catch {
    return undefined;
  }
}
