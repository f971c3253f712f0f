// What the campaign tells an optimiser beside each value (tell-details.ts), read back from a real store: per
// objective term the fit score, SE, weight and — only when asked for — the kept per-item values; a failure's
// code; the fidelity under successive halving. Only the objective's measures' items are kept.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { prepareCampaign } from '../../../src/search/campaign/campaign-setup.ts';
import { fitItemValues, recordedTellDetails, withItemValues } from '../../../src/search/campaign/tell-details.ts';
import type { Score } from '../../../src/search/space/measures.ts';
import { openStore } from '../../../src/store/db.ts';

const repo = path.resolve(__dirname, '../../..');
const zoo = path.join(repo, 'models/micro');
const dir = mkdtempSync(path.join(os.tmpdir(), 'evomerge-tell-details-'));

function setupOf(extra: Record<string, unknown> = {}) {
  const file = path.join(dir, `space-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    YAML.stringify({
      name: 'unit',
      base_model: `${zoo}/base`,
      models: [`${zoo}/expert-math`, `${zoo}/expert-lang`],
      suite: path.join(repo, 'evals/micro.yaml'),
      genome: { layer_groups: 1, methods: ['task_arithmetic'], parameters: { weight: { min: 0, max: 1 } } },
      objective: [
        { task: 'composite', weight: 1 },
        { task: 'composite', metric: 'answer_logprob', weight: 0.02 },
      ],
      gates: [{ kind: 'floor', task: 'lang', value: -3 }],
      optimizer: 'm2n2',
      budget: { candidates: 4 },
      eval_limit: 10,
      ...extra,
    }),
  );
  return prepareCampaign(file);
}

const scores: Score[] = [
  { task: 'composite', metric: 'exact_match', split: 'fit', value: 0.5, se: 0.2, n: 4, pseudo: [1, 0, 1, 0] },
  {
    task: 'composite',
    metric: 'answer_logprob',
    split: 'fit',
    value: -2,
    se: Number.NaN,
    n: 4,
    pseudo: [-1, -2, -3, -2],
  },
  { task: 'lang', metric: 'loglik', split: 'fit', value: -1.5, se: 0.1, n: 4, pseudo: [-1, -2, -1, -2] },
];

describe('what an optimiser is told', () => {
  it('per objective term: value, SE, weight, and the kept per-item values only when asked', () => {
    const setup = setupOf();
    const store = openStore(path.join(dir, `t-${Math.random()}.sqlite`));
    const c = store.createCampaign({
      name: 'unit',
      configJson: '{}',
      configHash: 'h',
      seed: 0,
      versionsJson: '{}',
      device: 'cpu',
    });
    const cand = store.insertCandidate({
      campaignId: c.campaignId,
      kind: 'search',
      ordinal: 0,
      generation: 0,
      contentHash: 'x',
    });
    store.recordOutcome(cand.candidateId, { outcome: { status: 'kept', objective: 0.46 }, scores });
    const kept = fitItemValues(setup, cand.candidateId, scores, 'fit');
    // only the objective's measures: the gate's lang/loglik is not kept
    expect(kept.map((r) => `${r.task}/${r.metric}`)).toEqual(['composite/exact_match', 'composite/answer_logprob']);
    store.addItemValues(kept);

    const told = recordedTellDetails(setup, store, c.campaignId, 'x', true);
    expect(told).toEqual({
      perTask: {
        'composite/exact_match': { value: 0.5, se: 0.2, weight: 1, items: [1, 0, 1, 0] },
        'composite/answer_logprob': { value: -2, se: Number.NaN, weight: 0.02, items: [-1, -2, -3, -2] },
      },
    });
    expect(recordedTellDetails(setup, store, c.campaignId, 'x', false).perTask!['composite/exact_match']).toEqual({
      value: 0.5,
      se: 0.2,
      weight: 1,
    });
    expect(recordedTellDetails(setup, store, c.campaignId, 'unknown', true)).toEqual({});
    // read back with their items, as the scorer returned them
    const back = withItemValues(
      store,
      cand.candidateId,
      scores.map(({ pseudo: _, ...s }) => s),
      'fit',
    );
    expect(back[1]!.pseudo).toEqual([-1, -2, -3, -2]);
    expect(back[2]!.pseudo).toBeUndefined();

    const failed = store.insertCandidate({
      campaignId: c.campaignId,
      kind: 'search',
      ordinal: 1,
      generation: 0,
      contentHash: 'y',
    });
    store.recordOutcome(failed.candidateId, {
      outcome: { status: 'failed', objective: -Infinity, errorCode: 'merge.shape_mismatch', errorMessage: 'no' },
    });
    expect(recordedTellDetails(setup, store, c.campaignId, 'y', true)).toEqual({
      failure: { code: 'merge.shape_mismatch' },
    });
    store.close();
  });

  it('under successive halving, the fidelity reached: items scored of the fit items, over the terms', () => {
    const setup = setupOf({ selection: { val_fraction: 0.3, top_k: 1, halving: { min_items: 4, eta: 2 } } });
    const fitItems = setup.items!.fit['composite']!.length; // 10 items, 3 held out
    expect(fitItems).toBe(7);
    const store = openStore(path.join(dir, `t-${Math.random()}.sqlite`));
    const c = store.createCampaign({
      name: 'unit',
      configJson: '{}',
      configHash: 'h',
      seed: 0,
      versionsJson: '{}',
      device: 'cpu',
    });
    const cand = store.insertCandidate({
      campaignId: c.campaignId,
      kind: 'search',
      ordinal: 0,
      generation: 0,
      contentHash: 'x',
    });
    store.recordOutcome(cand.candidateId, { outcome: { status: 'rejected', objective: 0.46 }, scores });
    expect(recordedTellDetails(setup, store, c.campaignId, 'x', false).fidelity).toEqual({
      items: 8,
      of: 2 * fitItems,
    });
    store.close();
  });
});
