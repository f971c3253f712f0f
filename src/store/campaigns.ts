// The campaigns table: one row per campaign (config, its hash, seed, versions, device). Rows ↔ records.

import type Database from 'better-sqlite3';
import type { CampaignRecord, NewCampaign } from './records.ts';

interface CampaignRow {
  campaign_id: number;
  name: string;
  config_json: string;
  config_hash: string;
  seed: number;
  versions_json: string;
  device: string;
  created_at: string;
}

function toRecord(r: CampaignRow): CampaignRecord {
  return {
    campaignId: r.campaign_id,
    name: r.name,
    configJson: r.config_json,
    configHash: r.config_hash,
    seed: r.seed,
    versionsJson: r.versions_json,
    device: r.device,
    createdAt: r.created_at,
  };
}

export class CampaignTable {
  private readonly insertStmt;
  private readonly byIdStmt;
  private readonly allStmt;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare(
      `INSERT INTO campaigns (name, config_json, config_hash, seed, versions_json, device, created_at)
       VALUES (@name, @configJson, @configHash, @seed, @versionsJson, @device, @createdAt)`,
    );
    this.byIdStmt = db.prepare<[number], CampaignRow>('SELECT * FROM campaigns WHERE campaign_id = ?');
    this.allStmt = db.prepare<[], CampaignRow>('SELECT * FROM campaigns ORDER BY campaign_id');
  }

  insert(c: NewCampaign, now: string): number {
    const info = this.insertStmt.run({ ...c, createdAt: c.createdAt ?? now });
    return Number(info.lastInsertRowid);
  }

  get(campaignId: number): CampaignRecord | undefined {
    const row = this.byIdStmt.get(campaignId);
    return row ? toRecord(row) : undefined;
  }

  list(): CampaignRecord[] {
    return this.allStmt.all().map(toRecord);
  }
}
