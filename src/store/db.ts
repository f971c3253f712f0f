// The campaign database: opens a SQLite file (WAL, foreign keys, schema version check), and is the table
// of contents of the store — one method per operation, synchronous, rows ↔ records, no decisions.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { EvomergeError } from '../errors.ts';
import { CampaignTable } from './campaigns.ts';
import {
  CampaignViews,
  type CategoricalStateJson,
  type FailureCount,
  type GateTally,
  type SearchCandidatePoint,
} from './campaign-views.ts';
import { CandidateTable, type CandidateFilter } from './candidates.ts';
import { ModelFileTable } from './model-files.ts';
import { makeFolder } from '../folders.ts';
import { InputTable } from './inputs.ts';
import { OptimizerStateTable } from './optimizer-states.ts';
import {
  isFinished,
  type CampaignRecord,
  type CandidateOutcome,
  type CandidateRecord,
  type FinalPickRecord,
  type GateVerdictRecord,
  type ItemValuesRecord,
  type ModelFileRecord,
  type InputChangeRecord,
  type InputFingerprintRecord,
  type NewCampaign,
  type NewCandidate,
  type NewGateVerdict,
  type NewOptimizerState,
  type NewScore,
  type OptimizerStateRecord,
  type ScoreRecord,
} from './records.ts';
import { ScoreTable } from './scores.ts';
import { VerdictTable } from './verdicts.ts';
import { FinalPickTable, ItemValueTable } from './selection-tables.ts';
import { createMissingTables, createSchema, migratableVersions, migrateSchema, SCHEMA_VERSION } from './schema.ts';

export type { CandidateFilter } from './candidates.ts';
export type { CategoricalStateJson, FailureCount, GateTally, SearchCandidatePoint } from './campaign-views.ts';

export { SCHEMA_VERSION } from './schema.ts';

export interface OpenStoreOptions {
  /** Open an existing database without writing to it (report, export, the other-campaign check). */
  readonly?: boolean;
}

const knownOptions = new Set(['readonly']);

/**
 * Open (or create, unless `readonly`) a campaign database. A new file gets the schema and WAL mode; an
 * existing one must be an evomerge database of this schema version. Parent folders are created.
 * Errors: `store.bad_option`, `store.not_found`, `store.not_a_database`, `store.not_evomerge`,
 * `store.schema_version`, `store.open_failed`, each naming the file.
 *
 * @example
 * const store = openStore('runs/micro.sqlite');
 * const existing = store.findCampaign();
 * if (existing && existing.configHash !== hash) throw new EvomergeError('store.other_campaign', ...);
 */
export function openStore(file: string, options: OpenStoreOptions = {}): Store {
  // Validate arguments
  if (typeof file !== 'string' || file === '') {
    throw new EvomergeError('store.bad_option', 'expected a database file path', { field: 'path' });
  }
  for (const key of Object.keys(options)) {
    if (!knownOptions.has(key)) {
      const hint = key.toLowerCase() === 'readonly' ? '; did you mean "readonly"?' : '';
      throw new EvomergeError('store.bad_option', `unknown option "${key}"${hint}`, { field: 'options' });
    }
  }
  const readonly = options.readonly === true;

  // Open the file
  if (isFolder(file)) throw new EvomergeError('store.not_a_file', 'is a folder, not a database file', { file });
  if (readonly && !fs.existsSync(file)) {
    throw new EvomergeError('store.not_found', 'no such database file', { file });
  }
  let db: Database.Database;
  try {
    if (!readonly) makeFolder(path.dirname(path.resolve(file)));
    // A read-only SQLite connection to a WAL database makes -wal and -shm files it cannot remove on close. Where
    // none is there (no writer has the database open), read through a query-only read-write connection: the last
    // connection to close removes them, so the folder is left as it was found.
    const quiet = readonly && !fs.existsSync(`${file}-wal`) && !fs.existsSync(`${file}-shm`);
    db = new Database(file, { readonly: readonly && !quiet, fileMustExist: readonly });
    if (quiet) db.pragma('query_only = ON');
  } catch (e) {
    throw new EvomergeError('store.open_failed', `cannot open database: ${(e as Error).message}`, { file });
  }

  // Check what the file holds; create the schema in a new file
  try {
    const tables = db
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      .all()
      .map((r) => r.name);
    if (tables.length === 0) {
      if (readonly) throw new EvomergeError('store.not_evomerge', 'empty database, not an evomerge campaign', { file });
      db.pragma('journal_mode = WAL');
      createSchema(db);
    } else if (!tables.includes('schema_version')) {
      throw new EvomergeError(
        'store.not_evomerge',
        `not an evomerge campaign database (tables: ${tables.slice(0, 5).join(', ')})`,
        { file },
      );
    } else {
      const row = db.prepare<[], { version: number }>('SELECT MAX(version) AS version FROM schema_version').get();
      const version = row?.version;
      const migratable = migratableVersions();
      if (version !== SCHEMA_VERSION && !(typeof version === 'number' && migratable.includes(version))) {
        throw new EvomergeError(
          'store.schema_version',
          `schema version ${row?.version}; this evomerge reads version ${SCHEMA_VERSION} (and migrates ` +
            `${migratable.join(', ')})`,
          { file, field: 'schema_version' },
        );
      }
      if (!readonly && version !== SCHEMA_VERSION) migrateSchema(db, version as number);
      if (!readonly && db.pragma('journal_mode', { simple: true }) !== 'wal') db.pragma('journal_mode = WAL');
    }
    // tables added to versions 1 and 2 without a version of their own; read-only, an older database reads as it is
    if (!readonly) createMissingTables(db);
    db.pragma('foreign_keys = ON');
    // FULL: a committed candidate survives a power cut, not only a crash (one fsync per candidate is cheap).
    if (!readonly) db.pragma('synchronous = FULL');
  } catch (e) {
    db.close();
    if (e instanceof EvomergeError) throw e;
    const code = (e as { code?: string }).code;
    if (code === 'SQLITE_NOTADB')
      throw new EvomergeError('store.not_a_database', 'file is not a SQLite database', { file });
    throw new EvomergeError('store.open_failed', `cannot open database: ${(e as Error).message}`, { file });
  }
  return new Store(db, file, readonly);
}

/** A campaign database. All methods are synchronous; writes outside `transaction` commit one by one. */
export class Store {
  /** The better-sqlite3 handle: SQL stays inside the store, every caller goes through the methods. */
  private readonly db: Database.Database;
  readonly path: string;
  readonly readonly: boolean;
  private readonly campaigns: CampaignTable;
  private readonly candidates: CandidateTable;
  private readonly scores: ScoreTable;
  private readonly verdicts: VerdictTable;
  private readonly states: OptimizerStateTable;
  private readonly itemValues: ItemValueTable;
  private readonly picks: FinalPickTable;
  private readonly modelFiles: ModelFileTable;
  private readonly inputs: InputTable;
  private readonly views: CampaignViews;

  constructor(db: Database.Database, file: string, readonly: boolean) {
    this.db = db;
    this.path = file;
    this.readonly = readonly;
    this.campaigns = new CampaignTable(db);
    this.candidates = new CandidateTable(db);
    this.scores = new ScoreTable(db);
    this.verdicts = new VerdictTable(db);
    this.states = new OptimizerStateTable(db);
    this.itemValues = new ItemValueTable(db);
    this.picks = new FinalPickTable(db);
    this.modelFiles = new ModelFileTable(db);
    this.inputs = new InputTable(db);
    this.views = new CampaignViews(db);
  }

  // ---- transactions and life cycle

  /** Run `fn` in one transaction: committed when it returns, rolled back if it throws (then rethrown).
   *  Nested calls become savepoints. `fn` must be synchronous: a returned promise is refused. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** The value of a pragma on this connection (journal_mode, foreign_keys, integrity_check), for checks. */
  readPragma(name: 'journal_mode' | 'foreign_keys' | 'synchronous' | 'integrity_check'): unknown {
    return this.db.pragma(name, { simple: true });
  }

  // ---- campaigns

  createCampaign(c: NewCampaign): CampaignRecord {
    this.writable();
    return this.getCampaign(this.campaigns.insert(c, now()));
  }

  getCampaign(campaignId: number): CampaignRecord {
    const c = this.campaigns.get(campaignId);
    if (!c) throw this.notFound('campaigns.campaign_id', `no campaign ${campaignId}`);
    return c;
  }

  /** The first campaign (lowest id) matching the query, or undefined. With no query: the first campaign. */
  findCampaign(query: { name?: string; configHash?: string } = {}): CampaignRecord | undefined {
    return this.campaigns
      .list()
      .find(
        (c) =>
          (query.name === undefined || c.name === query.name) &&
          (query.configHash === undefined || c.configHash === query.configHash),
      );
  }

  listCampaigns(): CampaignRecord[] {
    return this.campaigns.list();
  }

  // ---- candidates

  /** Insert a candidate (status 'pending' unless given). Refuses a content hash or ordinal already in the
   *  campaign (`store.duplicate_candidate`), so identical recipes are never recorded twice. */
  insertCandidate(c: NewCandidate): CandidateRecord {
    this.writable();
    return this.transaction(() => {
      const same = this.candidates.byHash(c.campaignId, c.contentHash);
      if (same) {
        throw new EvomergeError(
          'store.duplicate_candidate',
          `content hash ${c.contentHash} is already candidate ${same.candidateId} of campaign ${c.campaignId}`,
          { file: this.path, field: 'candidates.content_hash' },
        );
      }
      if (c.ordinal !== undefined && c.ordinal !== null) {
        const at = this.candidates.byOrdinal(c.campaignId, c.ordinal);
        if (at) {
          throw new EvomergeError(
            'store.duplicate_candidate',
            `ordinal ${c.ordinal} is already candidate ${at.candidateId} of campaign ${c.campaignId}`,
            { file: this.path, field: 'candidates.ordinal' },
          );
        }
      }
      this.getCampaign(c.campaignId);
      return this.getCandidate(this.candidates.insert(c, now()));
    });
  }

  getCandidate(candidateId: number): CandidateRecord {
    const c = this.candidates.get(candidateId);
    if (!c) throw this.notFound('candidates.candidate_id', `no candidate ${candidateId}`);
    return c;
  }

  findCandidateByHash(campaignId: number, contentHash: string): CandidateRecord | undefined {
    return this.candidates.byHash(campaignId, contentHash);
  }

  findCandidateByOrdinal(campaignId: number, ordinal: number): CandidateRecord | undefined {
    return this.candidates.byOrdinal(campaignId, ordinal);
  }

  /** Candidates in ask order (search candidates by ordinal, then sources and references by id). */
  listCandidates(campaignId: number, filter?: CandidateFilter): CandidateRecord[] {
    return this.candidates.list(campaignId, filter);
  }

  countCandidates(campaignId: number, filter?: CandidateFilter): number {
    return this.candidates.count(campaignId, filter);
  }

  /** 1 + the highest ordinal recorded in the campaign (0 for none). */
  nextOrdinal(campaignId: number): number {
    const m = this.candidates.maxOrdinal(campaignId);
    return m === null ? 0 : m + 1;
  }

  /** Set a candidate's status, objective, error and timings. A finished candidate (kept, rejected,
   *  failed) cannot change again (`store.candidate_finished`), as optuna refuses to update a finished trial.
   *  `finishedAt` defaults to now for finished statuses. */
  updateCandidate(candidateId: number, outcome: CandidateOutcome): CandidateRecord {
    this.writable();
    return this.transaction(() => {
      const current = this.getCandidate(candidateId);
      if (isFinished(current.status)) {
        throw new EvomergeError(
          'store.candidate_finished',
          `candidate ${candidateId} is already ${current.status}; finished candidates are not modified`,
          { file: this.path, field: 'candidates.status' },
        );
      }
      const finishedAt =
        outcome.finishedAt !== undefined ? outcome.finishedAt : isFinished(outcome.status) ? now() : null;
      this.candidates.update(candidateId, outcome, finishedAt);
      return this.getCandidate(candidateId);
    });
  }

  /**
   * The one write per finished candidate, atomic: its outcome, its scores, its gate verdicts and — when
   * its tell closed a generation — the optimiser state. Either all of it is committed or none.
   */
  recordOutcome(
    candidateId: number,
    r: {
      outcome: CandidateOutcome;
      scores?: readonly NewScore[];
      verdicts?: readonly NewGateVerdict[];
      optimizerState?: NewOptimizerState;
    },
  ): CandidateRecord {
    this.writable();
    return this.transaction(() => {
      const c = this.updateCandidate(candidateId, r.outcome);
      if (r.scores) this.addScores(candidateId, r.scores);
      if (r.verdicts) this.addVerdicts(candidateId, r.verdicts);
      if (r.optimizerState) this.saveOptimizerState(c.campaignId, r.optimizerState);
      return c;
    });
  }

  // ---- scores

  /** Add scores; a (task, metric, split) already scored for the candidate is refused (`store.duplicate_score`). */
  addScores(candidateId: number, scores: readonly NewScore[]): void {
    this.writable();
    this.transaction(() => {
      for (const s of scores) {
        try {
          this.scores.insert(candidateId, s);
        } catch (e) {
          throw this.constraint(e, 'scores', `${s.task}/${s.metric}/${s.split} of candidate ${candidateId}`);
        }
      }
    });
  }

  listScores(candidateId: number, split?: string): ScoreRecord[] {
    return this.scores.ofCandidate(candidateId, split);
  }

  /** Every score of every candidate of a campaign (for the report), by candidate then split, task, metric. */
  listCampaignScores(campaignId: number, split?: string): ScoreRecord[] {
    return this.scores.ofCampaign(campaignId, split);
  }

  // ---- gate verdicts

  /** Add verdicts (in gate order); a (gate, split) already judged for the candidate is refused. */
  addVerdicts(candidateId: number, verdicts: readonly NewGateVerdict[]): void {
    this.writable();
    this.transaction(() => {
      for (const v of verdicts) {
        try {
          this.verdicts.insert(candidateId, v);
        } catch (e) {
          throw this.constraint(e, 'gate_verdicts', `gate "${v.gate}" on split ${v.split} of candidate ${candidateId}`);
        }
      }
    });
  }

  listVerdicts(candidateId: number, split?: string): GateVerdictRecord[] {
    return this.verdicts.ofCandidate(candidateId, split);
  }

  listCampaignVerdicts(campaignId: number, split?: string): GateVerdictRecord[] {
    return this.verdicts.ofCampaign(campaignId, split);
  }

  // ---- optimiser states

  /** Save (or re-save) the optimiser state at (generation, toldCount). */
  saveOptimizerState(campaignId: number, s: NewOptimizerState): void {
    this.writable();
    this.states.save(campaignId, s, now());
  }

  /** The state with the highest (generation, toldCount), or undefined before the first save. */
  latestOptimizerState(campaignId: number): OptimizerStateRecord | undefined {
    return this.states.latest(campaignId);
  }

  listOptimizerStates(campaignId: number): OptimizerStateRecord[] {
    return this.states.list(campaignId);
  }

  // ---- item values and the final pick

  /** Add per-item pseudo-values of scores; a (task, metric, split) already stored is refused. */
  addItemValues(records: readonly ItemValuesRecord[]): void {
    this.writable();
    this.transaction(() => {
      for (const r of records) {
        try {
          this.itemValues.insert(r);
        } catch (e) {
          throw this.constraint(
            e,
            'scores',
            `item values ${r.task}/${r.metric}/${r.split} of candidate ${r.candidateId}`,
          );
        }
      }
    });
  }

  listItemValues(candidateId: number, split: string): ItemValuesRecord[] {
    return this.itemValues.ofCandidate(candidateId, split);
  }

  /** Record (or replace) the campaign's final pick. */
  saveFinalPick(p: Omit<FinalPickRecord, 'createdAt'>): void {
    this.writable();
    this.picks.save(p, now());
  }

  finalPick(campaignId: number): FinalPickRecord | undefined {
    return this.picks.get(campaignId);
  }

  // ---- model files (what remote workers check their copies of the input models against)

  recordModelFiles(campaignId: number, files: readonly ModelFileRecord[]): void {
    this.writable();
    this.transaction(() => this.modelFiles.insertAll(campaignId, files));
  }

  listModelFiles(campaignId: number): ModelFileRecord[] {
    return this.modelFiles.list(campaignId);
  }

  // ---- input fingerprints

  /** Record (or re-record) the fingerprints of the inputs a campaign reads, in one transaction. */
  saveInputFingerprints(campaignId: number, inputs: readonly { path: string; role: string; digest: string }[]): void {
    this.writable();
    const at = now();
    this.transaction(() => {
      for (const f of inputs) this.inputs.save(campaignId, { ...f, recordedAt: at });
    });
  }

  /** The recorded fingerprints, by path; none for a database of schema version 1. */
  listInputFingerprints(campaignId: number): InputFingerprintRecord[] {
    return this.inputs.list(campaignId);
  }

  /** Record changed inputs accepted on purpose and make their new digests the recorded ones, atomically. */
  acceptInputChanges(
    campaignId: number,
    changes: readonly { path: string; role: string; oldDigest: string; newDigest: string }[],
  ): void {
    this.writable();
    const at = now();
    this.transaction(() => {
      for (const c of changes) {
        this.inputs.addChange(campaignId, {
          path: c.path,
          oldDigest: c.oldDigest,
          newDigest: c.newDigest,
          acceptedAt: at,
        });
        this.inputs.save(campaignId, { path: c.path, role: c.role, digest: c.newDigest, recordedAt: at });
      }
    });
  }

  listInputChanges(campaignId: number): InputChangeRecord[] {
    return this.inputs.changes(campaignId);
  }

  // ---- slim campaign-wide views (the HTML report of a 100,000-candidate campaign, the item budget)

  /** Every search candidate without genome or recipe, by ordinal. */
  listSearchPoints(campaignId: number): SearchCandidatePoint[] {
    return this.views.searchPoints(campaignId);
  }

  /** Fit-split verdicts tallied per (generation, gate), with the rejections where the gate failed alone. */
  tallyFitGates(campaignId: number): GateTally[] {
    return this.views.fitGateTallies(campaignId);
  }

  /** The genome JSON of the search candidate at an ordinal (null: none recorded; undefined: no candidate). */
  genomeJsonAt(campaignId: number, ordinal: number): string | null | undefined {
    return this.views.genomeJson(campaignId, ordinal);
  }

  /** Candidates with a test-split score of (task, metric), by id. */
  listTestScoredCandidateIds(campaignId: number, task: string, metric: string): number[] {
    return this.views.testScoredCandidateIds(campaignId, task, metric);
  }

  /** Failed search candidates per error code, most frequent first. */
  countSearchFailures(campaignId: number): FailureCount[] {
    return this.views.searchFailures(campaignId);
  }

  /** The ids of the sources and references (the candidates without an ordinal). */
  listBaselineCandidateIds(campaignId: number): number[] {
    return this.views.baselineCandidateIds(campaignId);
  }

  /** When the last source or reference finished, or null. */
  baselinesLastFinishedAt(campaignId: number): string | null {
    return this.views.baselinesLastFinishedAt(campaignId);
  }

  /** The generations with a saved optimiser state, each with its highest told count. */
  listOptimizerStateGenerations(campaignId: number): { generation: number; told: number }[] {
    return this.views.optimizerStateGenerations(campaignId);
  }

  /** θ and the categorical genes of one saved CMA-ES state, as JSON text, without reading the whole state. */
  categoricalStateAt(campaignId: number, generation: number, toldCount: number): CategoricalStateJson | undefined {
    return this.views.categoricalState(campaignId, generation, toldCount);
  }

  /** Items scored by the search candidates: every rung and the val split, or fit where scored at one fidelity. */
  countSearchItemsScored(campaignId: number): number {
    return this.views.searchItemsScored(campaignId);
  }

  // ---- helpers

  private writable(): void {
    if (this.readonly) {
      throw new EvomergeError('store.readonly', 'opened read-only; cannot write', { file: this.path });
    }
  }

  private notFound(field: string, what: string): EvomergeError {
    return new EvomergeError('store.not_found', what, { file: this.path, field });
  }

  private constraint(e: unknown, table: string, what: string): unknown {
    const code = (e as { code?: string }).code ?? '';
    if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') {
      return new EvomergeError(
        `store.duplicate_${table === 'scores' ? 'score' : 'verdict'}`,
        `${what} is already recorded`,
        {
          file: this.path,
          field: table,
        },
      );
    }
    if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
      return new EvomergeError('store.not_found', `${what}: no such candidate`, { file: this.path, field: table });
    }
    return e;
  }
}

function now(): string {
  return new Date().toISOString();
}

/** Whether a path is a folder; a path under a plain file (ENOTDIR) is not, and fails later with the file named. */
function isFolder(file: string): boolean {
  try {
    return fs.statSync(file, { throwIfNoEntry: false })?.isDirectory() === true;
  } catch {
    return false;
  }
}
