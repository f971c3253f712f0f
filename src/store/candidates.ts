// The candidates table: one row per merge candidate (search, source or reference), its genome, recipe,
// content hash, status, objective, error and timings. Rows ↔ records; the caller decides statuses.

import type Database from 'better-sqlite3';
import { decodeReal, encodeReal, type RealType } from './real.ts';
import type { CandidateKind, CandidateOutcome, CandidateRecord, CandidateStatus, NewCandidate } from './records.ts';

interface CandidateRow {
  candidate_id: number;
  campaign_id: number;
  kind: CandidateKind;
  label: string | null;
  ordinal: number | null;
  generation: number | null;
  genome_json: string | null;
  recipe_yaml: string | null;
  content_hash: string;
  status: CandidateStatus;
  objective: number | null;
  objective_type: RealType | null;
  error_code: string | null;
  error_message: string | null;
  merge_ms: number | null;
  eval_ms: number | null;
  created_at: string;
  finished_at: string | null;
}

function toRecord(r: CandidateRow): CandidateRecord {
  return {
    candidateId: r.candidate_id,
    campaignId: r.campaign_id,
    kind: r.kind,
    label: r.label,
    ordinal: r.ordinal,
    generation: r.generation,
    genomeJson: r.genome_json,
    recipeYaml: r.recipe_yaml,
    contentHash: r.content_hash,
    status: r.status,
    objective: r.objective_type === null ? null : decodeReal(r.objective, r.objective_type),
    errorCode: r.error_code,
    errorMessage: r.error_message,
    mergeMs: r.merge_ms,
    evalMs: r.eval_ms,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

/** Filter for `list` and `count`; absent fields match everything. */
export interface CandidateFilter {
  kind?: CandidateKind;
  status?: CandidateStatus | readonly CandidateStatus[];
  generation?: number;
}

export class CandidateTable {
  private readonly db: Database.Database;
  private readonly insertStmt;
  private readonly byIdStmt;
  private readonly byHashStmt;
  private readonly byOrdinalStmt;
  private readonly maxOrdinalStmt;
  private readonly updateStmt;

  constructor(db: Database.Database) {
    this.db = db;
    this.insertStmt = db.prepare(
      `INSERT INTO candidates (campaign_id, kind, label, ordinal, generation, genome_json, recipe_yaml,
                               content_hash, status, created_at)
       VALUES (@campaignId, @kind, @label, @ordinal, @generation, @genomeJson, @recipeYaml,
               @contentHash, @status, @createdAt)`,
    );
    this.byIdStmt = db.prepare<[number], CandidateRow>('SELECT * FROM candidates WHERE candidate_id = ?');
    this.byHashStmt = db.prepare<[number, string], CandidateRow>(
      'SELECT * FROM candidates WHERE campaign_id = ? AND content_hash = ?',
    );
    this.byOrdinalStmt = db.prepare<[number, number], CandidateRow>(
      'SELECT * FROM candidates WHERE campaign_id = ? AND ordinal = ?',
    );
    this.maxOrdinalStmt = db.prepare<[number], { m: number | null }>(
      'SELECT MAX(ordinal) AS m FROM candidates WHERE campaign_id = ?',
    );
    this.updateStmt = db.prepare(
      `UPDATE candidates SET status = @status, objective = @objective, objective_type = @objectiveType,
              error_code = @errorCode, error_message = @errorMessage, merge_ms = @mergeMs, eval_ms = @evalMs,
              finished_at = @finishedAt
       WHERE candidate_id = @candidateId`,
    );
  }

  insert(c: NewCandidate, now: string): number {
    const info = this.insertStmt.run({
      campaignId: c.campaignId,
      kind: c.kind,
      label: c.label ?? null,
      ordinal: c.ordinal ?? null,
      generation: c.generation ?? null,
      genomeJson: c.genomeJson ?? null,
      recipeYaml: c.recipeYaml ?? null,
      contentHash: c.contentHash,
      status: c.status ?? 'pending',
      createdAt: c.createdAt ?? now,
    });
    return Number(info.lastInsertRowid);
  }

  get(candidateId: number): CandidateRecord | undefined {
    const row = this.byIdStmt.get(candidateId);
    return row ? toRecord(row) : undefined;
  }

  byHash(campaignId: number, contentHash: string): CandidateRecord | undefined {
    const row = this.byHashStmt.get(campaignId, contentHash);
    return row ? toRecord(row) : undefined;
  }

  byOrdinal(campaignId: number, ordinal: number): CandidateRecord | undefined {
    const row = this.byOrdinalStmt.get(campaignId, ordinal);
    return row ? toRecord(row) : undefined;
  }

  maxOrdinal(campaignId: number): number | null {
    return this.maxOrdinalStmt.get(campaignId)?.m ?? null;
  }

  update(candidateId: number, o: CandidateOutcome, finishedAt: string | null): void {
    const [objective, objectiveType] =
      o.objective === undefined || o.objective === null ? [null, null] : encodeReal(o.objective);
    this.updateStmt.run({
      candidateId,
      status: o.status,
      objective,
      objectiveType,
      errorCode: o.errorCode ?? null,
      errorMessage: o.errorMessage ?? null,
      mergeMs: o.mergeMs ?? null,
      evalMs: o.evalMs ?? null,
      finishedAt,
    });
  }

  /** Candidates of a campaign in ask order (search by ordinal, then the others by id). */
  list(campaignId: number, filter: CandidateFilter = {}): CandidateRecord[] {
    const { where, params } = whereClause(campaignId, filter);
    return this.db
      .prepare<unknown[], CandidateRow>(
        `SELECT * FROM candidates WHERE ${where} ORDER BY ordinal IS NULL, ordinal, candidate_id`,
      )
      .all(...params)
      .map(toRecord);
  }

  count(campaignId: number, filter: CandidateFilter = {}): number {
    const { where, params } = whereClause(campaignId, filter);
    return this.db
      .prepare<unknown[], { n: number }>(`SELECT COUNT(*) AS n FROM candidates WHERE ${where}`)
      .get(...params)!.n;
  }
}

function whereClause(campaignId: number, f: CandidateFilter): { where: string; params: unknown[] } {
  const parts = ['campaign_id = ?'];
  const params: unknown[] = [campaignId];
  if (f.kind !== undefined) {
    parts.push('kind = ?');
    params.push(f.kind);
  }
  if (f.status !== undefined) {
    const statuses = typeof f.status === 'string' ? [f.status] : [...f.status];
    parts.push(`status IN (${statuses.map(() => '?').join(', ') || 'NULL'})`);
    params.push(...statuses);
  }
  if (f.generation !== undefined) {
    parts.push('generation = ?');
    params.push(f.generation);
  }
  return { where: parts.join(' AND '), params };
}
