// The database schema's one home: schema.sql is the current schema, whole; migrations/NNNN-<what>.sql is the
// step from version NNNN − 1 to NNNN (as optuna's alembic versions). A new database gets schema.sql and the
// current version; an older one is migrated one step at a time, each step in one transaction with its version
// row. This module only applies DDL; whether a file may be opened, and how, is db.ts's.

import fs from 'node:fs';
import type Database from 'better-sqlite3';

/** The schema this code reads and writes: the number of the last file in migrations/. */
export const SCHEMA_VERSION = 2;

const SCHEMA_FILE = new URL('./schema.sql', import.meta.url);
const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);
const MIGRATION_NAME = /^(\d{4})-[a-z0-9-]+\.sql$/;

/** The migration files by the version they lead to, in order. */
export function migrationFiles(): { version: number; file: URL }[] {
  return fs
    .readdirSync(MIGRATIONS_DIR)
    .flatMap((name) => {
      const m = MIGRATION_NAME.exec(name);
      return m ? [{ version: Number(m[1]), file: new URL(name, MIGRATIONS_DIR) }] : [];
    })
    .sort((a, b) => a.version - b.version);
}

/** The older versions this code migrates from (each migration's version − 1). */
export function migratableVersions(): number[] {
  return migrationFiles().map((m) => m.version - 1);
}

/** A new, empty database: the whole current schema and its version, in one transaction. */
export function createSchema(db: Database.Database): void {
  const schema = fs.readFileSync(SCHEMA_FILE, 'utf8');
  db.transaction(() => {
    db.exec(schema);
    recordVersion(db, SCHEMA_VERSION);
  })();
}

/** Brings a database of version `from` to SCHEMA_VERSION, one migration (and its version row) per transaction. */
export function migrateSchema(db: Database.Database, from: number): void {
  for (const m of migrationFiles()) {
    if (m.version <= from || m.version > SCHEMA_VERSION) continue;
    const ddl = fs.readFileSync(m.file, 'utf8');
    db.transaction(() => {
      db.exec(ddl);
      recordVersion(db, m.version);
    })();
  }
}

/** Creates any table or index of the current schema that the database lacks (run on every writable open):
 *  item_values, final_picks and model_files joined versions 1 and 2 without a version of their own. */
export function createMissingTables(db: Database.Database): void {
  db.exec(fs.readFileSync(SCHEMA_FILE, 'utf8'));
}

function recordVersion(db: Database.Database, version: number): void {
  db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(version, new Date().toISOString());
}
