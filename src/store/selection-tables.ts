// The item_values and final_picks tables (schema.sql): per-item pseudo-values of test scores, and the
// campaign's final pick. Rows ↔ records; a database opened read-only that predates them reads as empty.

import type Database from 'better-sqlite3';
import type { FinalPickRecord, ItemValuesRecord } from './records.ts';

interface ItemValuesRow {
  candidate_id: number;
  task: string;
  metric: string;
  split: string;
  n: number;
  vals: Buffer;
}

interface FinalPickRow {
  campaign_id: number;
  candidate_id: number;
  rule: string;
  detail_json: string;
  created_at: string;
}

function hasTable(db: Database.Database, name: string): boolean {
  return (
    db
      .prepare<[string], { n: number }>("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?")
      .get(name)!.n > 0
  );
}

export class ItemValueTable {
  private readonly present: boolean;

  constructor(private readonly db: Database.Database) {
    this.present = hasTable(db, 'item_values');
  }

  insert(r: ItemValuesRecord): void {
    const buf = Buffer.alloc(8 * r.values.length);
    r.values.forEach((v, i) => buf.writeDoubleLE(v, 8 * i));
    this.db
      .prepare('INSERT INTO item_values (candidate_id, task, metric, split, n, vals) VALUES (?, ?, ?, ?, ?, ?)')
      .run(r.candidateId, r.task, r.metric, r.split, r.values.length, buf);
  }

  ofCandidate(candidateId: number, split: string): ItemValuesRecord[] {
    if (!this.present) return [];
    return this.db
      .prepare<[number, string], ItemValuesRow>(
        'SELECT * FROM item_values WHERE candidate_id = ? AND split = ? ORDER BY task, metric',
      )
      .all(candidateId, split)
      .map((r) => ({
        candidateId: r.candidate_id,
        task: r.task,
        metric: r.metric,
        split: r.split,
        values: Array.from({ length: r.n }, (_, i) => r.vals.readDoubleLE(8 * i)),
      }));
  }
}

export class FinalPickTable {
  private readonly present: boolean;

  constructor(private readonly db: Database.Database) {
    this.present = hasTable(db, 'final_picks');
  }

  save(r: Omit<FinalPickRecord, 'createdAt'>, createdAt: string): void {
    this.db
      .prepare(
        'INSERT OR REPLACE INTO final_picks (campaign_id, candidate_id, rule, detail_json, created_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(r.campaignId, r.candidateId, r.rule, r.detailJson, createdAt);
  }

  get(campaignId: number): FinalPickRecord | undefined {
    if (!this.present) return undefined;
    const r = this.db
      .prepare<[number], FinalPickRow>('SELECT * FROM final_picks WHERE campaign_id = ?')
      .get(campaignId);
    return (
      r && {
        campaignId: r.campaign_id,
        candidateId: r.candidate_id,
        rule: r.rule,
        detailJson: r.detail_json,
        createdAt: r.created_at,
      }
    );
  }
}
