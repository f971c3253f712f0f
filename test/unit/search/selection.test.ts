// The selection pieces that need no model: the `selection:` block's validation, rank values (LCB), the top-k
// and the final pick, successive halving's rungs, the seeded val partition, share-of-gain objectives and the
// paired SE of an objective difference.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSpace } from '../../../src/search/space/space.ts';
import { EvomergeError } from '../../../src/errors.ts';
import {
  finalPick,
  neverWorseThanNaive,
  parseSelection,
  rankValue,
  topByFit,
} from '../../../src/search/campaign/selection.ts';
import {
  partitionFit,
  promotedCount,
  rungCount,
  rungItems,
  rungSizes,
  seededPermutation,
} from '../../../src/search/scoring/fidelity.ts';
import { objectiveEstimate, pairedObjectiveDifference, shareKept } from '../../../src/gates/objective.ts';
import type { ObjectiveTerm } from '../../../src/search/space/space.ts';

describe('selection block', () => {
  it('has defaults and reads every key', () => {
    expect(parseSelection({}, 's.yaml')).toEqual({ valFraction: 0.3, topK: 8, lcbZ: 0 });
    expect(parseSelection({ val_fraction: 0.2, top_k: 0, lcb_z: 1.5, halving: { min_items: 30 } }, 's.yaml')).toEqual({
      valFraction: 0.2,
      topK: 0,
      lcbZ: 1.5,
      halving: { minItems: 30, eta: 3 },
    });
  });

  it('refuses bad values in one line naming the file and the key', () => {
    const cases: [unknown, string][] = [
      [{ val_fraction: 1 }, 's.yaml: selection.val_fraction: expected a number between 0 and 1'],
      [{ top_k: -1 }, 's.yaml: selection.top_k:'],
      [{ lcb_z: 'x' }, 's.yaml: selection.lcb_z:'],
      [{ halving: { min_items: 1 } }, 's.yaml: selection.halving.min_items:'],
      [{ halving: { min_items: 10, eta: 1 } }, 's.yaml: selection.halving.eta:'],
      [{ halvng: {} }, 's.yaml: selection.halvng: unknown key'],
      [[], 's.yaml: selection: expected a mapping'],
    ];
    for (const [raw, msg] of cases) {
      try {
        parseSelection(raw, 's.yaml');
        expect.unreachable(JSON.stringify(raw));
      } catch (e) {
        expect(e).toBeInstanceOf(EvomergeError);
        expect((e as Error).message).toContain(msg);
        expect((e as Error).message).not.toContain('\n');
      }
    }
  });
});

describe('ranking and the final pick', () => {
  it('LCB prefers a well-measured score to a lucky one', () => {
    const lucky = { value: 0.7, se: 0.2 };
    const solid = { value: 0.6, se: 0.02 };
    expect(rankValue(lucky, 0)).toBeGreaterThan(rankValue(solid, 0));
    expect(rankValue(lucky, 1)).toBeLessThan(rankValue(solid, 1));
    expect(rankValue({ value: 0.5, se: Number.NaN }, 1)).toBe(0.5);
    expect(rankValue({ value: Number.NaN, se: 0 }, 1)).toBe(-Infinity);
  });

  it('picks the best of the top-k by fit on val, never one outside the top-k', () => {
    const entries = [
      { ordinal: 0, fit: { value: 0.9, se: 0.01 }, val: { value: 0.5, se: 0.01 } },
      { ordinal: 1, fit: { value: 0.8, se: 0.01 }, val: { value: 0.7, se: 0.01 } },
      { ordinal: 2, fit: { value: 0.1, se: 0.01 }, val: { value: 0.99, se: 0.01 } },
    ];
    const top = topByFit(entries, 2, 0);
    expect(top.map((e) => e.ordinal)).toEqual([0, 1]);
    expect(finalPick(top, 0)!.ordinal).toBe(1);
    // without val scores: the best by fit
    expect(
      finalPick(
        entries.map(({ ordinal, fit }) => ({ ordinal, fit })),
        0,
      )!.ordinal,
    ).toBe(0);
    // ties go to the better fit, then the lower ordinal
    const tie = [
      { ordinal: 5, fit: { value: 0.5, se: 0 }, val: { value: 0.6, se: 0 } },
      { ordinal: 3, fit: { value: 0.5, se: 0 }, val: { value: 0.6, se: 0 } },
    ];
    expect(finalPick(tie, 0)!.ordinal).toBe(3);
  });
});

describe('never worse than naive: the references take part in the pick', () => {
  const cand = (ordinal: number, val: number, se = 0.01) => ({
    ordinal,
    fit: { value: 0.9, se: 0.01 },
    val: { value: val, se },
  });
  const ref = (label: string, val: number, se = 0.01, failedGates: string[] = [], fit = 0.5) => ({
    label,
    fit: { value: fit, se: 0.01 },
    val: { value: val, se },
    failedGates,
  });

  it('hands over the searched pick only when its lower confidence bound beats the best reference', () => {
    const refs = [ref('ties', 0.55), ref('dare', 0.6)];
    // beaten: the searched pick stays
    const won = neverWorseThanNaive(cand(4, 0.7), refs, 1, 'val');
    expect(won.pick).toEqual(cand(4, 0.7));
    expect(won.byReference).toBe(false);
    expect(won.reference!.label).toBe('dare');
    // better on the plain value, not by the lower confidence bound (0.65 − 0.1 < 0.6 − 0.01): the reference
    const lucky = cand(4, 0.65, 0.1);
    expect(neverWorseThanNaive(lucky, refs, 0, 'val').pick).toBe(lucky);
    const lcb = neverWorseThanNaive(lucky, refs, 1, 'val');
    expect(lcb.byReference).toBe(true);
    expect((lcb.pick as { label: string }).label).toBe('dare');
    expect(lcb.searched).toBe(lucky);
  });

  it('a tie goes to the reference: a one-line recipe needs no search', () => {
    const tie = neverWorseThanNaive(cand(2, 0.6), [ref('dare', 0.6)], 1, 'val');
    expect(tie.byReference).toBe(true);
    expect((tie.pick as { label: string }).label).toBe('dare');
  });

  it('a reference that fails a gate cannot be picked; the next one that clears every gate can', () => {
    const refs = [ref('dare', 0.9, 0.01, ['composite_gain']), ref('ties', 0.65)];
    const r = neverWorseThanNaive(cand(1, 0.7), refs, 0, 'val');
    expect(r.byReference).toBe(false);
    expect(r.reference!.label).toBe('ties');
    expect(neverWorseThanNaive(cand(1, 0.6), refs, 0, 'val').pick).toBe(refs[1]);
    // every reference fails a gate: the searched pick, whatever its score; nothing kept: no pick at all
    const failing = [ref('dare', 0.9, 0.01, ['composite_gain'])];
    expect(neverWorseThanNaive(cand(1, 0.1), failing, 0, 'val')).toMatchObject({ byReference: false });
    expect(neverWorseThanNaive(undefined, failing, 0, 'val').pick).toBeUndefined();
  });

  it('with nothing kept the best reference clearing every gate is the pick; without val, fit decides', () => {
    expect(
      (neverWorseThanNaive(undefined, [ref('a', 0.5), ref('b', 0.7)], 0, 'val').pick as { label: string }).label,
    ).toBe('b');
    // on fit: the val estimates play no part
    const onFit = [ref('a', 0.99, 0.01, [], 0.3), ref('b', 0.1, 0.01, [], 0.6)];
    const fitCand = { ordinal: 0, fit: { value: 0.5, se: 0.01 } };
    const r = neverWorseThanNaive(fitCand, onFit, 0, 'fit');
    expect(r.reference!.label).toBe('b');
    expect(r.byReference).toBe(true);
    expect(neverWorseThanNaive({ ordinal: 0, fit: { value: 0.61, se: 0 } }, onFit, 0, 'fit').byReference).toBe(false);
    // references tied on the split: the better fit, then the space's order
    const tied = [ref('x', 0.5, 0.01, [], 0.2), ref('y', 0.5, 0.01, [], 0.4), ref('z', 0.5, 0.01, [], 0.4)];
    expect(neverWorseThanNaive(undefined, tied, 0, 'val').reference!.label).toBe('y');
  });
});

describe('successive halving', () => {
  it('rungs grow by eta up to the whole fit set', () => {
    expect(rungSizes(210, 30, 3)).toEqual([30, 90, 210]);
    expect(rungSizes(140, 30, 3)).toEqual([30, 90, 140]);
    expect(rungSizes(20, 30, 3)).toEqual([20]);
    expect(rungCount([210, 140, 20], 30, 3)).toBe(3);
    expect(promotedCount(13, 3)).toBe(5);
  });

  it('rung subsets are nested prefixes of one order, returned ascending', () => {
    const order = seededPermutation(50, 4, 'halving:x');
    const r0 = rungItems(order, 10, 2, 0);
    const r1 = rungItems(order, 10, 2, 1);
    expect(r0).toHaveLength(10);
    expect(r1).toHaveLength(20);
    expect(r0.every((i) => r1.includes(i))).toBe(true);
    expect(r1).toEqual([...r1].sort((a, b) => a - b));
    expect(rungItems(order, 10, 2, 9)).toHaveLength(50);
  });

  it('the val partition is seeded, disjoint and covers the fit file', () => {
    const a = partitionFit(300, 0.3, 1, 'spam');
    expect(a.val).toHaveLength(90);
    expect(a.fit).toHaveLength(210);
    expect(new Set([...a.fit, ...a.val]).size).toBe(300);
    expect(partitionFit(300, 0.3, 1, 'spam')).toEqual(a);
    expect(partitionFit(300, 0.3, 2, 'spam')).not.toEqual(a);
    expect(partitionFit(300, 0.3, 1, 'lang')).not.toEqual(a);
    expect(partitionFit(2, 0.01, 1, 't').val).toHaveLength(1);
  });
});

describe('share-of-gain objective', () => {
  const terms: ObjectiveTerm[] = [
    { task: 'math', metric: 'answer_loglik', weight: 0.5, shareOf: 'expert-math' },
    { task: 'spam', metric: 'auc', weight: 0.5, shareOf: 'expert-spam' },
  ];
  const own = () => 'unused';
  const sc = (task: string, metric: string, value: number, se = 0.01) => ({ task, metric, split: 'test', value, se });
  const sources = new Map([
    ['base', [sc('math', 'answer_loglik', -2.0), sc('spam', 'auc', 0.8)]],
    ['expert-math', [sc('math', 'answer_loglik', -1.8), sc('spam', 'auc', 0.8)]],
    ['expert-spam', [sc('math', 'answer_loglik', -2.0), sc('spam', 'auc', 0.84)]],
  ]);

  it('is 0 for the base, the mean of shares for a merge, with the SE scaled by the gains', () => {
    expect(shareKept(-1.9, -2, -1.8)).toBeCloseTo(0.5, 12);
    const base = objectiveEstimate(terms, own, sources.get('base')!, sources, 'test');
    expect(base.value).toBeCloseTo(0, 12);
    const merge = objectiveEstimate(
      terms,
      own,
      [sc('math', 'answer_loglik', -1.85, 0.02), sc('spam', 'auc', 0.83, 0.004)],
      sources,
      'test',
    );
    expect(merge.value).toBeCloseTo(0.5 * 0.75 + 0.5 * 0.75, 12);
    expect(merge.se).toBeCloseTo(Math.hypot((0.5 * 0.02) / 0.2, (0.5 * 0.004) / 0.04), 12);
    // a missing source score: NaN (not a silent 0); a missing own score: −∞
    expect(objectiveEstimate(terms, own, sources.get('base')!, new Map(), 'test').value).toBeNaN();
    expect(objectiveEstimate(terms, own, [], sources, 'test').value).toBe(-Infinity);
  });

  it('the paired difference uses the per-item values of both models on the same items', () => {
    const a = new Map([
      ['math/answer_loglik', [-1.7, -1.9, -1.8, -2.0]],
      ['spam/auc', [0.9, 0.8, 0.85, 0.83]],
    ]);
    const b = new Map([
      ['math/answer_loglik', [-1.8, -2.0, -1.9, -2.1]],
      ['spam/auc', [0.9, 0.8, 0.85, 0.83]],
    ]);
    // the sources' item values, consistent with their scores: the experts' gains are exact on every item
    const items = (math: number, spam: number) =>
      new Map([
        ['math/answer_loglik', [math + 0.1, math - 0.1, math, math]],
        ['spam/auc', [spam, spam, spam + 0.01, spam - 0.01]],
      ]);
    const sourceItems = new Map([
      ['base', items(-2.0, 0.8)],
      ['expert-math', items(-1.8, 0.8)],
      ['expert-spam', items(-2.0, 0.84)],
    ]);
    const d = pairedObjectiveDifference(terms, own, a, b, sources, 'test', sourceItems)!;
    // math differs by exactly 0.1 on every item: a gain of 0.5 × 0.1 / 0.2 = 0.25 with no paired variance
    expect(d.value).toBeCloseTo(0.25, 12);
    expect(d.se).toBeCloseTo(0, 12);
    // a noisy gain of the expert over the base adds to the SE of the normalised difference
    const noisy = new Map(sourceItems);
    noisy.set(
      'expert-math',
      new Map([
        ['math/answer_loglik', [-1.6, -2.0, -1.7, -1.9]],
        ['spam/auc', [0.8, 0.8, 0.81, 0.79]],
      ]),
    );
    expect(pairedObjectiveDifference(terms, own, a, b, sources, 'test', noisy)!.se).toBeGreaterThan(0.01);
    expect(pairedObjectiveDifference(terms, own, a, new Map(), sources, 'test', sourceItems)).toBeUndefined();
  });
});

describe('search-space keys of the selection machinery', () => {
  const root = path.resolve(import.meta.dirname, '../../..');
  const doc = (over: Record<string, unknown> = {}) => ({
    name: 't',
    base_model: `${root}/models/zoo-v3/base`,
    models: [`${root}/models/zoo-v3/expert-math`, `${root}/models/zoo-v3/expert-spam`],
    suite: `${root}/evals/zoo-v3.yaml`,
    genome: { methods: ['task_arithmetic'], parameters: { weight: { min: 0, max: 1 } } },
    objective: [{ task: 'spam', share_of: 'expert-spam' }],
    budget: { items: 1000 },
    ...over,
  });

  it('reads share_of terms and gates, reference weight lists and budget.items', () => {
    const s = parseSpace(
      doc({
        gates: [{ kind: 'floor', task: 'spam', share_of: 'expert-spam', value: 0.5 }],
        references: [{ name: 'TA', method: 'task_arithmetic', weight: [0.5, 1] }],
      }),
      's.yaml',
    );
    expect(s.objective[0]).toEqual({ task: 'spam', weight: 1, shareOf: 'expert-spam' });
    expect(s.gates[0]!.shareOf).toBe('expert-spam');
    expect(s.references.map((r) => [r.name, r.weight, r.group])).toEqual([
      ['TA w=0.5', 0.5, 'TA'],
      ['TA w=1', 1, 'TA'],
    ]);
    expect(s.budget.items).toBe(1000);
  });

  it('refuses a share of an unknown source or of the base, a share_of on a non-floor gate, a one-weight list', () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        { objective: [{ task: 'spam', share_of: 'expert-lang' }] },
        's.yaml: objective[0].share_of: unknown source "expert-lang"',
      ],
      [{ objective: [{ task: 'spam', share_of: 'base' }] }, 's.yaml: objective[0].share_of: unknown source "base"'],
      [
        { gates: [{ kind: 'min_gain', task: 'spam', share_of: 'expert-spam' }] },
        's.yaml: gates[0].share_of: only for floor gates',
      ],
      [
        { references: [{ name: 'TA', method: 'task_arithmetic', weight: [0.5] }] },
        's.yaml: references[0].weight: a list of weights needs at least two',
      ],
      [{ budget: { items: 0 } }, 's.yaml: budget.items: expected a positive integer'],
    ];
    for (const [over, msg] of cases) expect(() => parseSpace(doc(over), 's.yaml')).toThrow(msg);
  });
});
