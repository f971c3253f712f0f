// The schema has one home (src/store/schema.sql) and one migration file per version: a new database holds what a
// new one held before (test/fixtures/store/schema-v2.sql), and a database of any older version, with or without
// the tables added within versions, ends with the same tables, columns, keys, checks and indexes once opened for
// writing. A read-only open changes nothing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../../src/store/db.ts';
import { migratableVersions, migrationFiles, SCHEMA_VERSION } from '../../../src/store/schema.ts';

const FIXTURES = path.resolve(__dirname, '../../fixtures/store');
const LATE_TABLES = ['final_picks', 'item_values', 'model_files'];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evomerge-schema-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let counter = 0;
/** A raw database made by running SQL files (fixtures or migrations) and recording a version. */
function rawDatabase(sqlFiles: readonly string[], version: number, drop: readonly string[] = []): string {
  const file = path.join(dir, `db${counter++}.sqlite`);
  const db = new Database(file);
  for (const f of sqlFiles) db.exec(fs.readFileSync(f, 'utf8'));
  for (const t of drop) db.exec(`DROP TABLE ${t}`);
  db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(version, '2026-01-01T00:00:00Z');
  db.close();
  return file;
}

/** Everything that shapes the stored data: each table's and index's SQL (spacing normalised; SQLite itself drops
 *  IF NOT EXISTS), columns, foreign keys and indexes. */
function schemaOf(file: string): unknown {
  const db = new Database(file, { readonly: true });
  try {
    const objects = db
      .prepare<[], { type: string; name: string; tbl_name: string; sql: string | null }>(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name",
      )
      .all()
      .map((o) => ({ ...o, sql: o.sql && normaliseSql(o.sql) }));
    const tables = objects
      .filter((o) => o.type === 'table')
      .map(({ name }) => ({
        name,
        columns: db.pragma(`table_xinfo(${name})`),
        foreignKeys: db.pragma(`foreign_key_list(${name})`),
        indexes: (db.pragma(`index_list(${name})`) as { name: string }[]).map((ix) => ({
          ...ix,
          columns: db.pragma(`index_xinfo(${ix.name})`),
        })),
      }));
    return { objects, tables };
  } finally {
    db.close();
  }
}

function normaliseSql(sql: string): string {
  return sql.replace(/\s+/g, ' ').replace(/\(\s+/g, '(').replace(/\s+\)/g, ')').trim();
}

function versionsOf(file: string): number[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT version FROM schema_version ORDER BY rowid').pluck().all() as number[];
  } finally {
    db.close();
  }
}

/** A database of an older version as that version shipped: version 1's fixture and the migrations up to it. */
function databaseAtVersion(version: number): string {
  const steps = migrationFiles()
    .filter((m) => m.version <= version)
    .map((m) => m.file.pathname);
  return rawDatabase([path.join(FIXTURES, 'schema-v1.sql'), ...steps], version);
}

function freshDatabase(): string {
  const file = path.join(dir, `fresh${counter++}.sqlite`);
  openStore(file).close();
  return file;
}

describe('the schema', () => {
  it('numbers the migrations 0002 … SCHEMA_VERSION, one per version, and migrates every older version', () => {
    expect(migrationFiles().map((m) => m.version)).toEqual(Array.from({ length: SCHEMA_VERSION - 1 }, (_, i) => i + 2));
    expect(migratableVersions()).toEqual(Array.from({ length: SCHEMA_VERSION - 1 }, (_, i) => i + 1));
  });

  // pins the schema to what it was before it had one home; a new version migrates this fixture in its own test
  it('gives a new database what a new database held before, at the current version', () => {
    const fresh = freshDatabase();
    const before = rawDatabase([path.join(FIXTURES, 'schema-v2.sql')], 2);
    expect(schemaOf(fresh)).toEqual(schemaOf(before));
    expect(versionsOf(fresh)).toEqual([SCHEMA_VERSION]);
    // reopening a current database changes nothing
    openStore(before).close();
    expect(schemaOf(before)).toEqual(schemaOf(fresh));
    expect(versionsOf(before)).toEqual([2]);
  });

  for (const version of migratableVersions()) {
    it(`migrates a version-${version} database step by step to the new database's schema`, () => {
      const old = databaseAtVersion(version);
      openStore(old).close();
      expect(schemaOf(old)).toEqual(schemaOf(freshDatabase()));
      expect(versionsOf(old)).toEqual(Array.from({ length: SCHEMA_VERSION - version + 1 }, (_, i) => version + i));
    });
  }

  it('takes version 1 to version 2 as version 2 shipped (before the tables added within versions)', () => {
    const migrated = databaseAtVersion(2);
    const shipped = rawDatabase([path.join(FIXTURES, 'schema-v2.sql')], 2, LATE_TABLES);
    expect(schemaOf(migrated)).toEqual(schemaOf(shipped));
  });

  it('adds the tables added within versions to a database of the current version that lacks them', () => {
    const old = rawDatabase([path.join(FIXTURES, 'schema-v2.sql')], SCHEMA_VERSION, LATE_TABLES);
    openStore(old).close();
    expect(schemaOf(old)).toEqual(schemaOf(freshDatabase()));
    expect(versionsOf(old)).toEqual([SCHEMA_VERSION]);
  });

  it('changes nothing when an older database is opened read-only', () => {
    const old = databaseAtVersion(1);
    const before = schemaOf(old);
    const ro = openStore(old, { readonly: true });
    expect(ro.listCampaigns()).toEqual([]);
    expect(ro.finalPick(1)).toBeUndefined();
    expect(ro.listModelFiles(1)).toEqual([]);
    ro.close();
    expect(schemaOf(old)).toEqual(before);
    expect(versionsOf(old)).toEqual([1]);
  });
});
