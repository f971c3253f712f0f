// The model_files table: the safetensors files of a campaign's input models as the campaign first saw them
// (size and a hash of the header), so a remote worker can refuse a job when its copy of a model differs.
// Its DDL is in schema.sql; a database opened read-only that predates the table lists no files.

import type Database from 'better-sqlite3';
import type { ModelFileRecord } from './records.ts';

interface ModelFileRow {
  model_dir: string;
  file: string;
  size: number;
  header_sha256: string;
}

export class ModelFileTable {
  private readonly insertStmt;
  private readonly listStmt;

  constructor(private readonly db: Database.Database) {
    const exists =
      db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'model_files'").get() !== undefined;
    // a read-only handle on an older database has no such table: it lists nothing
    this.insertStmt = exists
      ? db.prepare('INSERT INTO model_files (campaign_id, model_dir, file, size, header_sha256) VALUES (?, ?, ?, ?, ?)')
      : undefined;
    this.listStmt = exists
      ? db.prepare<[number], ModelFileRow>(
          'SELECT model_dir, file, size, header_sha256 FROM model_files WHERE campaign_id = ? ORDER BY model_dir, file',
        )
      : undefined;
  }

  insertAll(campaignId: number, files: readonly ModelFileRecord[]): void {
    for (const f of files) this.insertStmt!.run(campaignId, f.modelDir, f.file, f.size, f.headerSha256);
  }

  list(campaignId: number): ModelFileRecord[] {
    return (this.listStmt?.all(campaignId) ?? []).map((r) => ({
      modelDir: r.model_dir,
      file: r.file,
      size: r.size,
      headerSha256: r.header_sha256,
    }));
  }
}
