// Slim read-only views over a whole campaign, for the HTML report and the item budget: one row per search
// candidate without its genome or recipe, per-gate tallies, aggregates. A 100,000-candidate campaign must be
// read in a blink, so these select only the columns asked for and let SQLite count. Rows ↔ records only: what
// the numbers mean is decided by the caller.

import type Database from 'better-sqlite3';
import { decodeReal, type RealType } from './real.ts';

/** One search candidate as the report's plots need it, in ordinal order. */
export interface SearchCandidatePoint {
  readonly ordinal: number;
  readonly generation: number | null;
  readonly status: string;
  /** The fit objective (±Inf and NaN decoded), or null when none was recorded. */
  readonly objective: number | null;
  readonly createdAt: string;
  readonly finishedAt: string | null;
}

/** The fit-split verdicts of one gate over one generation. */
export interface GateTally {
  readonly generation: number | null;
  readonly gate: string;
  readonly kind: string;
  readonly task: string;
  readonly metric: string;
  /** The rowid of the gate's first verdict: gates sort in the order they were judged. */
  readonly first: number;
  readonly passed: number;
  readonly judged: number;
  /** Rejections in which this gate was the only one failed. */
  readonly sole: number;
}

/** Failed search candidates sharing an error code, with one of their messages. */
export interface FailureCount {
  readonly code: string | null;
  readonly count: number;
  readonly message: string | null;
}

/** The categorical part of one saved CMA-ES state, as JSON text (null where the state has none). */
export interface CategoricalStateJson {
  readonly theta: string | null;
  readonly categorical: string | null;
}

interface PointRow {
  ordinal: number;
  generation: number | null;
  status: string;
  objective: number | null;
  objective_type: RealType | null;
  created_at: string;
  finished_at: string | null;
}

export class CampaignViews {
  private readonly pointsStmt;
  private readonly gateTallyStmt;
  private readonly genomeStmt;
  private readonly testScoredStmt;
  private readonly failuresStmt;
  private readonly baselinesStmt;
  private readonly baselineFinishedStmt;
  private readonly stateGenerationsStmt;
  private readonly categoricalStmt;
  private readonly itemsScoredStmt;

  constructor(db: Database.Database) {
    this.pointsStmt = db.prepare<[number], PointRow>(
      `SELECT ordinal, generation, status, objective, objective_type, created_at, finished_at FROM candidates
       WHERE campaign_id = ? AND kind = 'search' ORDER BY ordinal`,
    );
    // the window counts each candidate's failed gates, so a rejection by one gate alone is told apart
    this.gateTallyStmt = db.prepare<[number], GateTally>(
      `WITH v AS (SELECT candidate_id, rowid AS r, gate, kind, task, metric, pass,
                         SUM(1 - pass) OVER (PARTITION BY candidate_id) AS failing
                  FROM gate_verdicts WHERE split = 'fit')
       SELECT c.generation AS generation, v.gate AS gate, v.kind AS kind, v.task AS task, v.metric AS metric,
              MIN(v.r) AS first, SUM(v.pass) AS passed, COUNT(*) AS judged, SUM(v.pass = 0 AND v.failing = 1) AS sole
       FROM v JOIN candidates c ON c.candidate_id = v.candidate_id
       WHERE c.campaign_id = ? GROUP BY c.generation, v.gate`,
    );
    this.genomeStmt = db.prepare<[number, number], { genome_json: string | null }>(
      'SELECT genome_json FROM candidates WHERE campaign_id = ? AND ordinal = ?',
    );
    this.testScoredStmt = db.prepare<[number, string, string], { candidate_id: number }>(
      `SELECT DISTINCT s.candidate_id FROM scores s JOIN candidates c ON c.candidate_id = s.candidate_id
       WHERE c.campaign_id = ? AND s.split = 'test' AND s.task = ? AND s.metric = ? ORDER BY s.candidate_id`,
    );
    this.failuresStmt = db.prepare<[number], FailureCount>(
      `SELECT error_code AS code, COUNT(*) AS count, MIN(error_message) AS message FROM candidates
       WHERE campaign_id = ? AND kind = 'search' AND status = 'failed' GROUP BY error_code ORDER BY count DESC, code`,
    );
    // sources and references have no ordinal (schema CHECK): found through the (campaign, ordinal) index
    // instead of a scan of every candidate for their kind
    this.baselinesStmt = db.prepare<[number], { candidate_id: number }>(
      'SELECT candidate_id FROM candidates WHERE campaign_id = ? AND ordinal IS NULL',
    );
    this.baselineFinishedStmt = db.prepare<[number], { t: string | null }>(
      'SELECT MAX(finished_at) AS t FROM candidates WHERE campaign_id = ? AND ordinal IS NULL',
    );
    // the states are large (covariance matrix): the generation list first, then θ of the few a caller shows
    this.stateGenerationsStmt = db.prepare<[number], { generation: number; told: number }>(
      'SELECT generation, MAX(told_count) AS told FROM optimizer_states WHERE campaign_id = ? GROUP BY generation ORDER BY generation',
    );
    this.categoricalStmt = db.prepare<[number, number, number], CategoricalStateJson>(
      `SELECT json_extract(state_json, '$.algorithm.theta') AS theta, json_extract(state_json, '$.domain.categorical') AS categorical
       FROM optimizer_states WHERE campaign_id = ? AND generation = ? AND told_count = ?`,
    );
    this.itemsScoredStmt = db.prepare<[number], { n: number | null }>(
      `SELECT SUM(s.n) AS n FROM scores s JOIN candidates c ON c.candidate_id = s.candidate_id
       WHERE c.campaign_id = ? AND c.kind = 'search'
         AND (s.split = 'val' OR s.split LIKE 'fit@%'
              OR (s.split = 'fit' AND NOT EXISTS (SELECT 1 FROM scores r WHERE r.candidate_id = s.candidate_id AND r.split LIKE 'fit@%')))`,
    );
  }

  searchPoints(campaignId: number): SearchCandidatePoint[] {
    return this.pointsStmt.all(campaignId).map((r) => ({
      ordinal: r.ordinal,
      generation: r.generation,
      status: r.status,
      objective: r.objective_type === null ? null : decodeReal(r.objective, r.objective_type),
      createdAt: r.created_at,
      finishedAt: r.finished_at,
    }));
  }

  fitGateTallies(campaignId: number): GateTally[] {
    return this.gateTallyStmt.all(campaignId);
  }

  /** The genome JSON of the search candidate at an ordinal: null when it has none, undefined when no such one. */
  genomeJson(campaignId: number, ordinal: number): string | null | undefined {
    return this.genomeStmt.get(campaignId, ordinal)?.genome_json;
  }

  testScoredCandidateIds(campaignId: number, task: string, metric: string): number[] {
    return this.testScoredStmt.all(campaignId, task, metric).map((r) => r.candidate_id);
  }

  searchFailures(campaignId: number): FailureCount[] {
    return this.failuresStmt.all(campaignId);
  }

  baselineCandidateIds(campaignId: number): number[] {
    return this.baselinesStmt.all(campaignId).map((r) => r.candidate_id);
  }

  baselinesLastFinishedAt(campaignId: number): string | null {
    return this.baselineFinishedStmt.get(campaignId)?.t ?? null;
  }

  optimizerStateGenerations(campaignId: number): { generation: number; told: number }[] {
    return this.stateGenerationsStmt.all(campaignId);
  }

  categoricalState(campaignId: number, generation: number, toldCount: number): CategoricalStateJson | undefined {
    return this.categoricalStmt.get(campaignId, generation, toldCount);
  }

  searchItemsScored(campaignId: number): number {
    return this.itemsScoredStmt.get(campaignId)?.n ?? 0;
  }
}
