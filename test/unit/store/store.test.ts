// The campaign store on real SQLite files in a temporary folder.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, SCHEMA_VERSION, type Store } from '../../../src/store/db.ts';
import { isFinished, type NewCampaign } from '../../../src/store/records.ts';

let dir: string;
let file: string;
let store: Store;

const campaign: NewCampaign = {
  name: 'micro-evollm',
  configJson: '{"seed":1}',
  configHash: 'sha256:aaaa',
  seed: 1,
  versionsJson: '{"evomerge":"0.1.0"}',
  device: 'cpu',
};

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evomerge-store-'));
  file = path.join(dir, 'runs', 'c.sqlite');
  store = openStore(file);
});

afterEach(() => {
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function searchCandidate(campaignId: number, ordinal: number, hash = `h${ordinal}`) {
  return store.insertCandidate({
    campaignId,
    kind: 'search',
    ordinal,
    generation: Math.floor(ordinal / 4),
    genomeJson: JSON.stringify({ x: [ordinal / 10], c: [0] }),
    recipeYaml: 'merge_method: ties\n',
    contentHash: hash,
  });
}

describe('openStore', () => {
  it('creates the schema with its version, in WAL mode, with foreign keys on', () => {
    expect(fs.existsSync(file)).toBe(true);
    expect(store.readPragma('journal_mode')).toBe('wal');
    expect(store.readPragma('foreign_keys')).toBe(1);
    const sql = new Database(file, { readonly: true });
    const tables = sql
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .all()
      .map((r) => r.name);
    expect(tables).toEqual([
      'campaigns',
      'candidates',
      'final_picks',
      'gate_verdicts',
      'input_changes',
      'input_fingerprints',
      'item_values',
      'model_files',
      'optimizer_states',
      'schema_version',
      'scores',
    ]);
    expect(sql.prepare('SELECT version FROM schema_version').pluck().get()).toBe(SCHEMA_VERSION);
    sql.close();
  });

  it('reopens after close with the data intact, read-write and read-only', () => {
    const c = store.createCampaign(campaign);
    searchCandidate(c.campaignId, 0);
    store.close();
    const again = openStore(file);
    expect(again.findCampaign()).toEqual(c);
    expect(again.countCandidates(c.campaignId)).toBe(1);
    again.close();
    const ro = openStore(file, { readonly: true });
    expect(ro.findCampaign({ configHash: 'sha256:aaaa' })?.name).toBe('micro-evollm');
    expect(() => ro.createCampaign(campaign)).toThrow(expect.objectContaining({ code: 'store.readonly' }));
    ro.close();
  });

  it('refuses a missing file read-only, a non-database, a foreign database, another schema version, bad options', () => {
    const missing = path.join(dir, 'nope.sqlite');
    expect(() => openStore(missing, { readonly: true })).toThrow(`${missing}: no such database file`);
    expect(fs.existsSync(missing)).toBe(false);

    const text = path.join(dir, 'notes.sqlite');
    fs.writeFileSync(text, 'this is not a database, just some text that is long enough to have a header...'.repeat(20));
    expect(() => openStore(text)).toThrow(expect.objectContaining({ code: 'store.not_a_database' }));

    const foreign = path.join(dir, 'foreign.sqlite');
    const fdb = new Database(foreign);
    fdb.exec('CREATE TABLE trials (id INTEGER)');
    fdb.close();
    expect(() => openStore(foreign)).toThrow(`${foreign}: not an evomerge campaign database (tables: trials)`);

    const future = path.join(dir, 'future.sqlite');
    openStore(future).close();
    const fut = new Database(future);
    fut.prepare('UPDATE schema_version SET version = 99').run();
    fut.close();
    expect(() => openStore(future)).toThrow(
      `${future}: schema_version: schema version 99; this evomerge reads version ${SCHEMA_VERSION}`,
    );

    expect(() => openStore(file, { readOnly: true } as never)).toThrow(
      'unknown option "readOnly"; did you mean "readonly"?',
    );
  });
});

describe('records round trip', () => {
  it('campaigns: create, get, find by name and hash, list', () => {
    const a = store.createCampaign({ ...campaign, createdAt: '2026-01-01T00:00:00.000Z' });
    const b = store.createCampaign({ ...campaign, name: 'other', configHash: 'sha256:bbbb', seed: 2 });
    expect(a).toEqual({ ...campaign, campaignId: a.campaignId, createdAt: '2026-01-01T00:00:00.000Z' });
    expect(store.getCampaign(b.campaignId).seed).toBe(2);
    expect(store.findCampaign({ configHash: 'sha256:bbbb' })).toEqual(b);
    expect(store.findCampaign({ name: 'micro-evollm', configHash: 'sha256:bbbb' })).toBeUndefined();
    expect(store.findCampaign()).toEqual(a);
    expect(store.listCampaigns()).toEqual([a, b]);
    expect(() => store.getCampaign(99)).toThrow(`${file}: campaigns.campaign_id: no campaign 99`);
  });

  it('candidates: insert, update, query by hash, ordinal, status, generation and kind', () => {
    const { campaignId } = store.createCampaign(campaign);
    const src = store.insertCandidate({ campaignId, kind: 'source', label: 'expert-math', contentHash: 'src-math' });
    expect(src.ordinal).toBeNull();
    expect(src.status).toBe('pending');
    const c0 = searchCandidate(campaignId, 0);
    const c1 = searchCandidate(campaignId, 1);
    const c5 = searchCandidate(campaignId, 5);
    expect(store.nextOrdinal(campaignId)).toBe(6);
    expect(store.findCandidateByHash(campaignId, 'h1')).toEqual(c1);
    expect(store.findCandidateByOrdinal(campaignId, 5)).toEqual(c5);
    expect(store.findCandidateByHash(campaignId, 'zzz')).toBeUndefined();

    const merged = store.updateCandidate(c0.candidateId, { status: 'merged', mergeMs: 12.5 });
    expect(merged.finishedAt).toBeNull();
    const done = store.updateCandidate(c0.candidateId, { status: 'kept', objective: 0.125, mergeMs: 12.5, evalMs: 40 });
    expect(done).toMatchObject({ status: 'kept', objective: 0.125, mergeMs: 12.5, evalMs: 40, errorCode: null });
    expect(done.finishedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    store.updateCandidate(c1.candidateId, {
      status: 'failed',
      objective: NaN,
      errorCode: 'eval.nan_score',
      errorMessage: 'math_words: NaN log-probability',
    });
    expect(store.getCandidate(c1.candidateId)).toMatchObject({
      status: 'failed',
      objective: NaN,
      errorCode: 'eval.nan_score',
    });
    store.updateCandidate(c5.candidateId, { status: 'rejected', objective: -Infinity });
    expect(store.getCandidate(c5.candidateId).objective).toBe(-Infinity);

    expect(store.listCandidates(campaignId).map((c) => c.candidateId)).toEqual([
      c0.candidateId,
      c1.candidateId,
      c5.candidateId,
      src.candidateId,
    ]);
    expect(store.listCandidates(campaignId, { kind: 'source' })).toEqual([src]);
    expect(store.countCandidates(campaignId, { status: ['kept', 'rejected'] })).toBe(2);
    expect(store.countCandidates(campaignId, { status: 'pending' })).toBe(1);
    expect(store.listCandidates(campaignId, { generation: 1 }).map((c) => c.ordinal)).toEqual([5]);
    expect(store.countCandidates(campaignId, { status: [] })).toBe(0);
    expect(isFinished('kept') && isFinished('failed') && !isFinished('evaluated')).toBe(true);
  });

  it('refuses a second candidate with the same content hash or ordinal, and changes to finished ones', () => {
    const { campaignId } = store.createCampaign(campaign);
    const other = store.createCampaign({ ...campaign, configHash: 'sha256:other' });
    const c0 = searchCandidate(campaignId, 0, 'same');
    expect(() => searchCandidate(campaignId, 1, 'same')).toThrow(
      `${file}: candidates.content_hash: content hash same is already candidate ${c0.candidateId} of campaign ${campaignId}`,
    );
    expect(() => searchCandidate(campaignId, 0, 'different')).toThrow(/candidates\.ordinal: ordinal 0 is already/);
    expect(() => store.insertCandidate({ campaignId, kind: 'reference', contentHash: 'same' })).toThrow(
      expect.objectContaining({ code: 'store.duplicate_candidate' }),
    );
    // The same hash in another campaign is fine.
    expect(searchCandidate(other.campaignId, 0, 'same').campaignId).toBe(other.campaignId);
    expect(store.countCandidates(campaignId)).toBe(1);
    // The database itself enforces it too, whatever the caller does.
    const sql = new Database(file);
    expect(() =>
      sql
        .prepare(
          "INSERT INTO candidates (campaign_id, kind, ordinal, content_hash, status, created_at) VALUES (?, 'search', " +
            "7, 'same', 'pending', 'x')",
        )
        .run(campaignId),
    ).toThrow(/UNIQUE constraint failed: candidates.campaign_id, candidates.content_hash/);
    sql.close();

    store.updateCandidate(c0.candidateId, { status: 'rejected', objective: 0.01 });
    expect(() => store.updateCandidate(c0.candidateId, { status: 'kept' })).toThrow(
      expect.objectContaining({ code: 'store.candidate_finished' }),
    );
    expect(() => store.insertCandidate({ campaignId: 42, kind: 'source', contentHash: 'x' })).toThrow(/no campaign 42/);
  });

  it('scores and verdicts keep NaN, ±Inf, an unknown SE (NULL in the table) and gate order', () => {
    const { campaignId } = store.createCampaign(campaign);
    const c = searchCandidate(campaignId, 0);
    store.addScores(c.candidateId, [
      { task: 'math_words', metric: 'exact_match', split: 'fit', value: 0.5, se: 0.05, n: 100 },
      { task: 'composite', metric: 'exact_match', split: 'fit', value: NaN, se: NaN, n: 0 },
      { task: 'composite', metric: 'mean_logprob', split: 'fit', value: -Infinity, se: Infinity, n: 50 },
      { task: 'composite', metric: 'exact_match', split: 'test', value: 0.1, se: 0.03, n: 100 },
    ]);
    expect(store.listScores(c.candidateId, 'fit')).toEqual([
      { candidateId: c.candidateId, task: 'composite', metric: 'exact_match', split: 'fit', value: NaN, se: NaN, n: 0 },
      {
        candidateId: c.candidateId,
        task: 'composite',
        metric: 'mean_logprob',
        split: 'fit',
        value: -Infinity,
        se: NaN,
        n: 50,
      },
      {
        candidateId: c.candidateId,
        task: 'math_words',
        metric: 'exact_match',
        split: 'fit',
        value: 0.5,
        se: 0.05,
        n: 100,
      },
    ]);
    expect(store.listScores(c.candidateId)).toHaveLength(4);
    const sql = new Database(file, { readonly: true });
    expect(
      sql
        .prepare('SELECT se FROM scores WHERE candidate_id = ? ORDER BY split, task, metric')
        .pluck()
        .all(c.candidateId),
    ).toEqual([null, null, 0.05, 0.03]);
    sql.close();
    expect(store.listCampaignScores(campaignId, 'test').map((s) => s.value)).toEqual([0.1]);
    expect(() =>
      store.addScores(c.candidateId, [
        { task: 'math_words', metric: 'exact_match', split: 'fit', value: 1, se: 0, n: 1 },
      ]),
    ).toThrow(`${file}: scores: math_words/exact_match/fit of candidate ${c.candidateId} is already recorded`);

    const verdicts = [
      {
        gate: 'composite_gain',
        kind: 'min_gain',
        task: 'composite',
        metric: 'exact_match',
        split: 'fit',
        value: 0.1,
        threshold: 0.083,
        pass: true,
      },
      {
        gate: 'math_floor',
        kind: 'floor',
        task: 'math_words',
        metric: 'exact_match',
        split: 'fit',
        value: NaN,
        threshold: 0.5,
        pass: false,
      },
      {
        gate: 'lang_keep',
        kind: 'no_regression',
        task: 'lang',
        metric: 'exact_match',
        split: 'fit',
        value: 0.2,
        threshold: -Infinity,
        pass: true,
      },
    ];
    store.addVerdicts(c.candidateId, verdicts);
    expect(store.listVerdicts(c.candidateId)).toEqual(verdicts.map((v) => ({ candidateId: c.candidateId, ...v })));
    expect(store.listCampaignVerdicts(campaignId, 'test')).toEqual([]);
    expect(() => store.addScores(999, [{ task: 't', metric: 'm', split: 'fit', value: 1, se: 0, n: 1 }])).toThrow(
      /no such candidate/,
    );
  });

  it('optimizer states: save, re-save, latest by (generation, told count)', () => {
    const { campaignId } = store.createCampaign(campaign);
    expect(store.latestOptimizerState(campaignId)).toBeUndefined();
    store.saveOptimizerState(campaignId, { generation: 1, toldCount: 8, stateJson: '{"g":1}' });
    store.saveOptimizerState(campaignId, { generation: 2, toldCount: 16, stateJson: '{"g":2}' });
    store.saveOptimizerState(campaignId, { generation: 0, toldCount: 0, stateJson: '{"g":0}' });
    store.saveOptimizerState(campaignId, { generation: 2, toldCount: 16, stateJson: '{"g":2,"again":true}' });
    expect(store.latestOptimizerState(campaignId)?.stateJson).toBe('{"g":2,"again":true}');
    expect(store.listOptimizerStates(campaignId).map((s) => [s.generation, s.toldCount])).toEqual([
      [0, 0],
      [1, 8],
      [2, 16],
    ]);
  });
});

describe('transactions', () => {
  it('recordOutcome commits outcome, scores, verdicts and optimiser state together', () => {
    const { campaignId } = store.createCampaign(campaign);
    const c = searchCandidate(campaignId, 0);
    store.recordOutcome(c.candidateId, {
      outcome: { status: 'kept', objective: 0.2, mergeMs: 5, evalMs: 9 },
      scores: [{ task: 'composite', metric: 'exact_match', split: 'fit', value: 0.2, se: 0.04, n: 100 }],
      verdicts: [
        {
          gate: 'g',
          kind: 'floor',
          task: 'composite',
          metric: 'exact_match',
          split: 'fit',
          value: 0.2,
          threshold: 0.1,
          pass: true,
        },
      ],
      optimizerState: { generation: 1, toldCount: 1, stateJson: '{}' },
    });
    store.close();
    store = openStore(file, { readonly: true });
    expect(store.getCandidate(c.candidateId).status).toBe('kept');
    expect(store.listScores(c.candidateId)).toHaveLength(1);
    expect(store.listVerdicts(c.candidateId)).toHaveLength(1);
    expect(store.latestOptimizerState(campaignId)?.generation).toBe(1);
  });

  it('rolls everything back when any part fails', () => {
    const { campaignId } = store.createCampaign(campaign);
    const c = searchCandidate(campaignId, 0);
    const score = { task: 'composite', metric: 'exact_match', split: 'fit', value: 0.2, se: 0.04, n: 100 };
    expect(() =>
      store.recordOutcome(c.candidateId, {
        outcome: { status: 'kept', objective: 0.2 },
        scores: [score, score], // the duplicate fails after the outcome and first score were written
        optimizerState: { generation: 1, toldCount: 1, stateJson: '{}' },
      }),
    ).toThrow(expect.objectContaining({ code: 'store.duplicate_score' }));
    expect(store.getCandidate(c.candidateId).status).toBe('pending');
    expect(store.listScores(c.candidateId)).toEqual([]);
    expect(store.latestOptimizerState(campaignId)).toBeUndefined();
  });

  it('store.transaction commits on return and rolls back on throw, and survives reopening', () => {
    const { campaignId } = store.createCampaign(campaign);
    const result = store.transaction(() => {
      searchCandidate(campaignId, 0);
      searchCandidate(campaignId, 1);
      return 'done';
    });
    expect(result).toBe('done');
    expect(() =>
      store.transaction(() => {
        searchCandidate(campaignId, 2);
        throw new Error('merge crashed');
      }),
    ).toThrow('merge crashed');
    expect(store.countCandidates(campaignId)).toBe(2);
    expect(() => store.transaction((() => Promise.resolve(1)) as () => unknown)).toThrow(/promise/i);
    store.close();
    store = openStore(file);
    expect(store.listCandidates(campaignId).map((c) => c.ordinal)).toEqual([0, 1]);
  });

  it('a committed candidate is visible to another connection at once (WAL), an open transaction is not', () => {
    const { campaignId } = store.createCampaign(campaign);
    const reader = openStore(file, { readonly: true });
    searchCandidate(campaignId, 0);
    expect(reader.countCandidates(campaignId)).toBe(1);
    store.transaction(() => {
      searchCandidate(campaignId, 1);
      expect(reader.countCandidates(campaignId)).toBe(1);
    });
    expect(reader.countCandidates(campaignId)).toBe(2);
    reader.close();
  });
});

describe('crash safety', () => {
  it('a process killed (SIGKILL) inside a transaction leaves the committed rows and nothing else', async () => {
    const { campaignId } = store.createCampaign(campaign);
    searchCandidate(campaignId, 0);
    store.close();
    const { spawnSync } = await import('node:child_process');
    const dbUrl = new URL('../../../src/store/db.ts', import.meta.url).href;
    const script = `
      import { openStore } from ${JSON.stringify(dbUrl)};
      const s = openStore(${JSON.stringify(file)});
      s.insertCandidate({ campaignId: ${campaignId}, kind: 'search', ordinal: 1, contentHash: 'h1' });
      s.transaction(() => {
        s.insertCandidate({ campaignId: ${campaignId}, kind: 'search', ordinal: 2, contentHash: 'h2' });
        process.kill(process.pid, 'SIGKILL');
      });`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(child.signal).toBe('SIGKILL');
    store = openStore(file);
    expect(store.listCandidates(campaignId).map((c) => c.ordinal)).toEqual([0, 1]);
    expect(store.readPragma('integrity_check')).toBe('ok');
  });
});

describe('item values and the final pick', () => {
  it('round-trip exactly, the pick is replaced, and a database that predates them reads them as empty', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evomerge-picks-'));
    try {
      const f = path.join(dir, 'p.sqlite');
      const s = openStore(f);
      const c = s.createCampaign(campaign);
      const a = s.insertCandidate({ campaignId: c.campaignId, kind: 'source', label: 'base', contentHash: 'a' });
      const b = s.insertCandidate({ campaignId: c.campaignId, kind: 'source', label: 'x', contentHash: 'b' });
      const values = [0.1, -2.5, 1 / 3, 1e-300];
      s.addItemValues([{ candidateId: a.candidateId, task: 't', metric: 'auc', split: 'test', values }]);
      expect(s.listItemValues(a.candidateId, 'test')).toEqual([
        { candidateId: a.candidateId, task: 't', metric: 'auc', split: 'test', values },
      ]);
      expect(() =>
        s.addItemValues([{ candidateId: a.candidateId, task: 't', metric: 'auc', split: 'test', values }]),
      ).toThrow(/already recorded/);
      s.saveFinalPick({ campaignId: c.campaignId, candidateId: a.candidateId, rule: 'fit', detailJson: '{}' });
      s.saveFinalPick({ campaignId: c.campaignId, candidateId: b.candidateId, rule: 'val', detailJson: '{"k":1}' });
      expect(s.finalPick(c.campaignId)).toMatchObject({
        candidateId: b.candidateId,
        rule: 'val',
        detailJson: '{"k":1}',
      });
      s.close();
      const sql = new Database(f);
      sql.exec('DROP TABLE item_values; DROP TABLE final_picks');
      sql.close();
      const ro = openStore(f, { readonly: true });
      expect(ro.finalPick(c.campaignId)).toBeUndefined();
      expect(ro.listItemValues(a.candidateId, 'test')).toEqual([]);
      ro.close();
      const rw = openStore(f); // writable: the tables come back
      expect(rw.finalPick(c.campaignId)).toBeUndefined();
      rw.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
