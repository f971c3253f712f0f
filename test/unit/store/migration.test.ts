// A database of schema version 1 (before input fingerprints) stays readable as it is, and is migrated to the
// current version when opened for writing, its campaigns intact.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore, SCHEMA_VERSION } from '../../../src/store/db.ts';
import { acquireDatabaseLock } from '../../../src/store/lock.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evomerge-migrate-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('schema version 1', () => {
  it('reads without fingerprints read-only, and migrates on a writable open', () => {
    const file = path.join(dir, 'v1.sqlite');
    const s = openStore(file);
    const c = s.createCampaign({
      name: 'old',
      configJson: '{}',
      configHash: 'h',
      seed: 1,
      versionsJson: '{}',
      device: 'cpu',
    });
    s.close();
    const raw = new Database(file);
    raw.exec('DROP TABLE input_fingerprints; DROP TABLE input_changes; UPDATE schema_version SET version = 1');
    raw.close();

    const ro = openStore(file, { readonly: true });
    expect(ro.listInputFingerprints(c.campaignId)).toEqual([]);
    expect(ro.listInputChanges(c.campaignId)).toEqual([]);
    ro.close();

    const rw = openStore(file);
    const sql = new Database(file, { readonly: true });
    expect(sql.prepare('SELECT MAX(version) FROM schema_version').pluck().get()).toBe(SCHEMA_VERSION);
    sql.close();
    rw.saveInputFingerprints(c.campaignId, [{ path: '/m', role: 'checkpoint base', digest: 'd1' }]);
    rw.acceptInputChanges(c.campaignId, [{ path: '/m', role: 'checkpoint base', oldDigest: 'd1', newDigest: 'd2' }]);
    expect(rw.listInputFingerprints(c.campaignId).map((f) => f.digest)).toEqual(['d2']);
    expect(rw.listInputChanges(c.campaignId).map((x) => [x.oldDigest, x.newDigest])).toEqual([['d1', 'd2']]);
    expect(rw.findCampaign({ name: 'old' })?.campaignId).toBe(c.campaignId);
    rw.close();
  });
});

describe('database lock', () => {
  it('refuses a second writer naming the owner, takes over a dead one, releases only its own', () => {
    const db = path.join(dir, 'locked.sqlite');
    const lock = acquireDatabaseLock(db);
    expect(() => acquireDatabaseLock(db)).toThrow(
      new RegExp(`locked\\.sqlite: another evomerge is writing this database \\(pid ${process.pid} on `),
    );
    lock.release();
    lock.release();
    expect(fs.existsSync(`${db}.lock`)).toBe(false);
    // a lock file left by a killed process on this host
    fs.writeFileSync(
      `${db}.lock`,
      JSON.stringify({ pid: 2 ** 22 + 4321, host: os.hostname(), since: '2026-01-01T00:00:00Z' }),
    );
    const again = acquireDatabaseLock(db);
    expect(JSON.parse(fs.readFileSync(`${db}.lock`, 'utf8')).pid).toBe(process.pid);
    again.release();
    // one from another host is never guessed stale
    fs.writeFileSync(`${db}.lock`, JSON.stringify({ pid: 1, host: 'elsewhere', since: '2026-01-01T00:00:00Z' }));
    expect(() => acquireDatabaseLock(db)).toThrow(/pid 1 on elsewhere/);
  });
});
