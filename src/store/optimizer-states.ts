// The optimizer_states table: the optimiser's JSON state after a tell, keyed by (campaign, generation,
// told_count). Resuming reads the latest one.

import type Database from 'better-sqlite3';
import type { NewOptimizerState, OptimizerStateRecord } from './records.ts';

interface StateRow {
  campaign_id: number;
  generation: number;
  told_count: number;
  state_json: string;
  created_at: string;
}

function toRecord(r: StateRow): OptimizerStateRecord {
  return {
    campaignId: r.campaign_id,
    generation: r.generation,
    toldCount: r.told_count,
    stateJson: r.state_json,
    createdAt: r.created_at,
  };
}

export class OptimizerStateTable {
  private readonly upsertStmt;
  private readonly latestStmt;
  private readonly allStmt;

  constructor(db: Database.Database) {
    // Re-saving the same (generation, told_count) replaces the row: a resumed run may save it again.
    this.upsertStmt = db.prepare(
      `INSERT OR REPLACE INTO optimizer_states (campaign_id, generation, told_count, state_json, created_at)
       VALUES (@campaignId, @generation, @toldCount, @stateJson, @createdAt)`,
    );
    this.latestStmt = db.prepare<[number], StateRow>(
      `SELECT * FROM optimizer_states WHERE campaign_id = ? ORDER BY generation DESC, told_count DESC LIMIT 1`,
    );
    this.allStmt = db.prepare<[number], StateRow>(
      `SELECT * FROM optimizer_states WHERE campaign_id = ? ORDER BY generation, told_count`,
    );
  }

  save(campaignId: number, s: NewOptimizerState, now: string): void {
    this.upsertStmt.run({
      campaignId,
      generation: s.generation,
      toldCount: s.toldCount,
      stateJson: s.stateJson,
      createdAt: s.createdAt ?? now,
    });
  }

  latest(campaignId: number): OptimizerStateRecord | undefined {
    const row = this.latestStmt.get(campaignId);
    return row ? toRecord(row) : undefined;
  }

  list(campaignId: number): OptimizerStateRecord[] {
    return this.allStmt.all(campaignId).map(toRecord);
  }
}
