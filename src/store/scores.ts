// The scores table: one row per (candidate, task, metric, split) with value, standard error and n.

import type Database from 'better-sqlite3';
import { decodeReal, encodeReal, type RealType } from './real.ts';
import type { NewScore, ScoreRecord } from './records.ts';

interface ScoreRow {
  candidate_id: number;
  task: string;
  metric: string;
  split: string;
  value: number | null;
  value_type: RealType;
  se: number | null;
  n: number;
}

function toRecord(r: ScoreRow): ScoreRecord {
  return {
    candidateId: r.candidate_id,
    task: r.task,
    metric: r.metric,
    split: r.split,
    value: decodeReal(r.value, r.value_type),
    se: r.se ?? Number.NaN,
    n: r.n,
  };
}

export class ScoreTable {
  private readonly insertStmt;
  private readonly byCandidateStmt;
  private readonly byCampaignStmt;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare(
      `INSERT INTO scores (candidate_id, task, metric, split, value, value_type, se, n)
       VALUES (@candidateId, @task, @metric, @split, @value, @valueType, @se, @n)`,
    );
    this.byCandidateStmt = db.prepare<[number, string | null, string | null], ScoreRow>(
      `SELECT * FROM scores WHERE candidate_id = ? AND (? IS NULL OR split = ?) ORDER BY split, task, metric`,
    );
    this.byCampaignStmt = db.prepare<[number, string | null, string | null], ScoreRow>(
      `SELECT s.* FROM scores s JOIN candidates c ON c.candidate_id = s.candidate_id
       WHERE c.campaign_id = ? AND (? IS NULL OR s.split = ?)
       ORDER BY s.candidate_id, s.split, s.task, s.metric`,
    );
  }

  insert(candidateId: number, s: NewScore): void {
    const [value, valueType] = encodeReal(s.value);
    const se = Number.isFinite(s.se) ? s.se : null;
    this.insertStmt.run({ candidateId, task: s.task, metric: s.metric, split: s.split, value, valueType, se, n: s.n });
  }

  ofCandidate(candidateId: number, split?: string): ScoreRecord[] {
    const sp = split ?? null;
    return this.byCandidateStmt.all(candidateId, sp, sp).map(toRecord);
  }

  ofCampaign(campaignId: number, split?: string): ScoreRecord[] {
    const sp = split ?? null;
    return this.byCampaignStmt.all(campaignId, sp, sp).map(toRecord);
  }
}
