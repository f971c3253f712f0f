// The input_fingerprints and input_changes tables: what a campaign read (path, role, digest) and the changes
// accepted on purpose. Rows ↔ records. A version-1 database has neither table: it reads as none recorded.

import type Database from 'better-sqlite3';
import type { InputChangeRecord, InputFingerprintRecord } from './records.ts';

interface FingerprintRow {
  campaign_id: number;
  path: string;
  role: string;
  digest: string;
  recorded_at: string;
}

interface ChangeRow {
  campaign_id: number;
  path: string;
  old_digest: string;
  new_digest: string;
  accepted_at: string;
}

export class InputTable {
  private readonly present: boolean;
  private readonly db: Database.Database;

  constructor(db: Database.Database) {
    this.db = db;
    this.present =
      db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'input_fingerprints'").get() !==
      undefined;
  }

  save(campaignId: number, f: Omit<InputFingerprintRecord, 'campaignId'>): void {
    this.db
      .prepare(
        'INSERT OR REPLACE INTO input_fingerprints (campaign_id, path, role, digest, recorded_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(campaignId, f.path, f.role, f.digest, f.recordedAt);
  }

  list(campaignId: number): InputFingerprintRecord[] {
    if (!this.present) return [];
    return this.db
      .prepare<[number], FingerprintRow>('SELECT * FROM input_fingerprints WHERE campaign_id = ? ORDER BY path')
      .all(campaignId)
      .map((r) => ({
        campaignId: r.campaign_id,
        path: r.path,
        role: r.role,
        digest: r.digest,
        recordedAt: r.recorded_at,
      }));
  }

  addChange(campaignId: number, c: Omit<InputChangeRecord, 'campaignId'>): void {
    this.db
      .prepare(
        'INSERT INTO input_changes (campaign_id, path, old_digest, new_digest, accepted_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(campaignId, c.path, c.oldDigest, c.newDigest, c.acceptedAt);
  }

  changes(campaignId: number): InputChangeRecord[] {
    if (!this.present) return [];
    return this.db
      .prepare<[number], ChangeRow>('SELECT * FROM input_changes WHERE campaign_id = ? ORDER BY rowid')
      .all(campaignId)
      .map((r) => ({
        campaignId: r.campaign_id,
        path: r.path,
        oldDigest: r.old_digest,
        newDigest: r.new_digest,
        acceptedAt: r.accepted_at,
      }));
  }
}
