// The sentence a user reads at the end of `evomerge report`: the 2-standard-error verdict on the test gain of the
// best kept candidate over the best rival, and what it says when nothing was kept. Real SQLite files.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildReport, formatReport } from '../../../src/report/report.ts';
import { openStore, type Store } from '../../../src/store/db.ts';
import type { CandidateStatus } from '../../../src/store/records.ts';

let dir: string;
let file: string;
let store: Store;

const config = {
  name: 'two-se',
  optimizer: 'cmaes',
  objective: [{ task: 'composite', weight: 1 }],
  ownMetrics: { composite: 'exact_match' },
  measures: [{ task: 'composite', metric: 'exact_match' }],
  models: [{ name: 'expert' }],
  references: [{ name: 'ties d=0.5' }],
};

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evomerge-report-'));
  file = path.join(dir, 'c.sqlite');
  store = openStore(file);
});

afterEach(() => {
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** One campaign: the base and a reference (test 0.50 ± 0.03 at best) and two search candidates. */
function campaign(statuses: [CandidateStatus, CandidateStatus], bestTest = { value: 0.6, se: 0.04 }): void {
  const { campaignId } = store.createCampaign({
    name: 'two-se',
    configJson: JSON.stringify(config),
    configHash: 'h',
    seed: 1,
    versionsJson: '{}',
    device: 'cpu',
  });
  const add = (
    kind: 'source' | 'reference' | 'search',
    label: string | null,
    ordinal: number | null,
    status: CandidateStatus,
    objective: number,
    test?: { value: number; se: number },
  ) => {
    const c = store.insertCandidate({
      campaignId,
      kind,
      label,
      ordinal,
      generation: ordinal === null ? null : 0,
      genomeJson: ordinal === null ? null : '{"method":"ties"}',
      recipeYaml: 'merge_method: ties\n',
      contentHash: `${kind}${label}${ordinal}`,
    });
    store.recordOutcome(c.candidateId, {
      outcome: { status, objective },
      scores: [
        { task: 'composite', metric: 'exact_match', split: 'fit', value: objective, se: 0.01, n: 150 },
        ...(test
          ? [{ task: 'composite', metric: 'exact_match', split: 'test', value: test.value, se: test.se, n: 150 }]
          : []),
      ],
    });
  };
  add('source', 'base', null, 'evaluated', 0.1, { value: 0.2, se: 0.02 });
  add('reference', 'ties d=0.5', null, 'evaluated', 0.3, { value: 0.5, se: 0.03 });
  add('search', null, 0, statuses[0], 0.7, statuses[0] === 'kept' ? bestTest : undefined);
  add('search', null, 1, statuses[1], 0.4);
}

describe('report conclusion', () => {
  it('states the test gain against 2 standard errors of the difference, √(se₁² + se₂²)', () => {
    campaign(['kept', 'rejected'], { value: 0.62, se: 0.04 });
    const r = buildReport(file);
    expect(r.conclusion.best).toEqual({ label: 'best kept #0', value: 0.62, se: 0.04 });
    expect(r.conclusion.rival).toEqual({ label: 'ties d=0.5', value: 0.5, se: 0.03 });
    expect(r.conclusion.seDiff).toBeCloseTo(0.05, 12);
    expect(r.conclusion.significant).toBe(true);
    expect(r.conclusion.sentence).toBe(
      'On the test split, the best kept candidate scores composite exact_match 0.620 ± 0.040 against 0.500 ± 0.030 ' +
        'for the best rival (ties d=0.5): ' +
        'a gain of 0.120, which is larger than 2 standard errors of the difference (2 × 0.050 = 0.100).',
    );
    expect(formatReport(r).trimEnd().split('\n').at(-1)).toBe(r.conclusion.sentence);
  });

  it('a gain of exactly 2 standard errors is not established', () => {
    campaign(['kept', 'rejected'], { value: 0.6, se: 0.04 });
    const c = buildReport(file).conclusion;
    expect(c.significant).toBe(false);
    expect(c.sentence).toMatch(
      new RegExp(
        'a gain of 0\\.100, which is not larger than 2 standard errors of the difference ' +
          '\\(2 × 0\\.050 = 0\\.100\\), so the gain is not established\\.$',
      ),
    );
  });

  it('says so when nothing was kept, in the JSON and as the last line of the text', () => {
    campaign(['rejected', 'failed']);
    const r = buildReport(file);
    expect(r.rows.some((row) => row.kind === 'best')).toBe(false);
    expect(r.conclusion).toEqual({
      task: 'composite',
      metric: 'exact_match',
      sentence:
        'No search candidate cleared every gate, so there is no candidate to compare with the sources and the reference merges.',
    });
    expect(formatReport(r).trimEnd().split('\n').at(-1)).toBe(r.conclusion.sentence);
  });

  it('a reference merge picked over every searched candidate: the pick sentence, its row, and no rival of itself', () => {
    campaign(['kept', 'rejected'], { value: 0.45, se: 0.04 });
    const id = store.listCampaigns()[0]!.campaignId;
    const ref = store.listCandidates(id, { kind: 'reference' })[0]!;
    const est = (value: number, se: number) => ({ value, se });
    store.saveFinalPick({
      campaignId: id,
      candidateId: ref.candidateId,
      rule: 'val',
      detailJson: JSON.stringify({
        lcb_z: 1,
        top_k: 1,
        considered: [{ ordinal: 0, fit: est(0.7, 0.01), val: est(0.52, 0.04) }],
        references: [{ label: 'ties d=0.5', fit: est(0.3, 0.01), val: est(0.5, 0.02), failed_gates: [] }],
        searched: 0,
        reference: 'ties d=0.5',
        by_reference: true,
      }),
    });
    const r = buildReport(file);
    const best = r.rows.find((row) => row.kind === 'best')!;
    expect(best).toMatchObject({ label: 'reference pick: ties d=0.5', ordinal: null, reference: 'ties d=0.5' });
    expect(r.pickNote).toBe(
      'No searched candidate beat ties d=0.5 on val by its lower confidence bound: the pick is the reference merge ' +
        'ties d=0.5 (value − 1·SE: 0.4800 against 0.4800 for the best searched candidate #0).',
    );
    // the reference is not its own rival: the best rival is the base
    expect(r.conclusion.rival!.label).toBe('base');
    expect(r.conclusion.sentence).toMatch(/^On the test split, the pick \(the reference merge ties d=0\.5\) scores/);
    expect(r.fitObjective.bestRival!.label).toBe('base');
    const text = formatReport(r).trimEnd().split('\n');
    expect(text).toContain(r.pickNote);
    expect(text.at(-1)).toBe(r.conclusion.sentence);
  });

  it('a searched pick that beat the best reference says so', () => {
    campaign(['kept', 'rejected'], { value: 0.62, se: 0.04 });
    const id = store.listCampaigns()[0]!.campaignId;
    const pick = store.listCandidates(id, { kind: 'search' })[0]!;
    store.saveFinalPick({
      campaignId: id,
      candidateId: pick.candidateId,
      rule: 'fit',
      detailJson: JSON.stringify({
        lcb_z: 0,
        considered: [{ ordinal: 0, fit: { value: 0.7, se: 0.01 } }],
        references: [{ label: 'ties d=0.5', fit: { value: 0.3, se: 0.01 }, failed_gates: [] }],
        searched: 0,
        reference: 'ties d=0.5',
        by_reference: false,
      }),
    });
    const r = buildReport(file);
    expect(r.rows.find((row) => row.kind === 'best')!.label).toBe('best kept #0');
    expect(r.pickNote).toBe(
      'The pick #0 beat the best reference merge that clears every gate, ties d=0.5, on fit by its lower confidence ' +
        'bound (value − 0·SE: 0.7000 against 0.3000).',
    );
    expect(r.conclusion.rival!.label).toBe('ties d=0.5');
  });
});
