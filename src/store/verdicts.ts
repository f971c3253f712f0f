// The gate_verdicts table: one row per (candidate, gate, split) with the value compared, the threshold and
// whether it passed. The verdicts themselves are computed by gates/; this only records them.

import type Database from 'better-sqlite3';
import { decodeReal, encodeReal, type RealType } from './real.ts';
import type { GateVerdictRecord, NewGateVerdict } from './records.ts';

interface VerdictRow {
  candidate_id: number;
  gate: string;
  kind: string;
  task: string;
  metric: string;
  split: string;
  value: number | null;
  value_type: RealType;
  threshold: number | null;
  threshold_type: RealType;
  pass: number;
}

function toRecord(r: VerdictRow): GateVerdictRecord {
  return {
    candidateId: r.candidate_id,
    gate: r.gate,
    kind: r.kind,
    task: r.task,
    metric: r.metric,
    split: r.split,
    value: decodeReal(r.value, r.value_type),
    threshold: decodeReal(r.threshold, r.threshold_type),
    pass: r.pass === 1,
  };
}

export class VerdictTable {
  private readonly insertStmt;
  private readonly byCandidateStmt;
  private readonly byCampaignStmt;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare(
      `INSERT INTO gate_verdicts (candidate_id, gate, kind, task, metric, split, value, value_type,
                                  threshold, threshold_type, pass)
       VALUES (@candidateId, @gate, @kind, @task, @metric, @split, @value, @valueType,
               @threshold, @thresholdType, @pass)`,
    );
    // rowid order = insertion order = the order of the gate specs.
    this.byCandidateStmt = db.prepare<[number, string | null, string | null], VerdictRow>(
      `SELECT * FROM gate_verdicts WHERE candidate_id = ? AND (? IS NULL OR split = ?) ORDER BY split, rowid`,
    );
    this.byCampaignStmt = db.prepare<[number, string | null, string | null], VerdictRow>(
      `SELECT v.* FROM gate_verdicts v JOIN candidates c ON c.candidate_id = v.candidate_id
       WHERE c.campaign_id = ? AND (? IS NULL OR v.split = ?) ORDER BY v.candidate_id, v.split, v.rowid`,
    );
  }

  insert(candidateId: number, v: NewGateVerdict): void {
    const [value, valueType] = encodeReal(v.value);
    const [threshold, thresholdType] = encodeReal(v.threshold);
    this.insertStmt.run({
      candidateId,
      gate: v.gate,
      kind: v.kind,
      task: v.task,
      metric: v.metric,
      split: v.split,
      value,
      valueType,
      threshold,
      thresholdType,
      pass: v.pass ? 1 : 0,
    });
  }

  ofCandidate(candidateId: number, split?: string): GateVerdictRecord[] {
    const sp = split ?? null;
    return this.byCandidateStmt.all(candidateId, sp, sp).map(toRecord);
  }

  ofCampaign(campaignId: number, split?: string): GateVerdictRecord[] {
    const sp = split ?? null;
    return this.byCampaignStmt.all(campaignId, sp, sp).map(toRecord);
  }
}
