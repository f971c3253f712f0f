// Pareto mode's pure parts on hand-made points: the front, the knee, maximin and weighted picks (with their ties),
// and each objective term's value as its own objective (share terms as the share kept).
import { describe, expect, it } from 'vitest';
import { termKey, termValues } from '../../../src/gates/objective.ts';
import {
  dominates,
  kneeScores,
  lcb,
  maximinScores,
  orderByRule,
  paretoFront,
  pickRuleSentence,
} from '../../../src/gates/pareto.ts';

describe('the front', () => {
  it('keeps the non-dominated points, equal ones both, never a non-finite one', () => {
    const pts = [
      [0, 1],
      [0.5, 0.5],
      [0.4, 0.4], // dominated by [0.5, 0.5]
      [1, 0],
      [1, 0], // equal to the previous: both stay
      [2, -Infinity], // not finite: never on the front
      [0.2, 0.9],
    ];
    expect(paretoFront(pts)).toEqual([0, 1, 3, 4, 6]);
    expect(dominates([1, 1], [1, 0.5])).toBe(true);
    expect(dominates([1, 1], [1, 1])).toBe(false);
  });
});

describe('pick rules on a hand-made front', () => {
  // already in [0, 1]: A and D are the extremes; the line through them is f0 + f1 = 1
  const front = [
    { ordinal: 1, f: [0, 1], weighted: 0.2 }, // A
    { ordinal: 2, f: [0.9, 0.6], weighted: 0.5 }, // B: farthest beyond the line (1.5 − 1)/√2
    { ordinal: 3, f: [0.7, 0.7], weighted: 0.4 }, // C: the best worst objective (0.7)
    { ordinal: 4, f: [1, 0], weighted: 0.9 }, // D: the best weighted
  ];

  it('knee: the largest distance beyond the hyperplane through the extremes', () => {
    const k = kneeScores(front.map((m) => m.f));
    expect(k[0]).toBeCloseTo(0, 12);
    expect(k[1]).toBeCloseTo(0.5 / Math.SQRT2, 12);
    expect(k[2]).toBeCloseTo(0.4 / Math.SQRT2, 12);
    expect(k[3]).toBeCloseTo(0, 12);
    expect(orderByRule(front, 'knee')[0]!.ordinal).toBe(2);
  });

  it('knee after min–max normalisation, in three objectives (the plane through the three extremes)', () => {
    const pts = [
      [10, 0, 0],
      [0, 100, 0],
      [0, 0, 1],
      [6, 60, 0.6], // beyond the plane x/10 + y/100 + z = 1 by (1.8 − 1)/√3
      [2, 20, 0.2], // short of it
    ];
    const k = kneeScores(pts);
    expect(k[3]).toBeCloseTo(0.8 / Math.sqrt(3), 12);
    expect(k[4]).toBeCloseTo(-0.4 / Math.sqrt(3), 12);
  });

  it('maximin: the best worst normalised objective', () => {
    expect(maximinScores(front.map((m) => m.f))).toEqual([0, 0.6, 0.7, 0]);
    expect(orderByRule(front, 'maximin')[0]!.ordinal).toBe(3);
  });

  it('weighted: the best weighted value; ties to the better weighted value, then the lower ordinal', () => {
    expect(orderByRule(front, 'weighted').map((m) => m.ordinal)).toEqual([4, 2, 3, 1]);
    // A and D tie on knee (0) and maximin (0): D has the better weighted value
    expect(orderByRule(front, 'maximin').map((m) => m.ordinal)).toEqual([3, 2, 4, 1]);
    const twins = [
      { ordinal: 7, f: [1, 1], weighted: 1 },
      { ordinal: 5, f: [1, 1], weighted: 1 },
    ];
    expect(orderByRule(twins, 'knee').map((m) => m.ordinal)).toEqual([5, 7]);
  });

  it('LCB: value − z·SE, an unknown SE as 0, a failure as −∞', () => {
    expect(lcb({ value: 1, se: 0.1 }, 2)).toBeCloseTo(0.8, 12);
    expect(lcb({ value: 1, se: NaN }, 2)).toBe(1);
    expect(lcb({ value: -Infinity, se: 0 }, 0)).toBe(-Infinity);
  });

  it('names the rule in one sentence', () => {
    expect(pickRuleSentence('knee', 2, 'val', 1)).toMatch(/^#2 is the front's knee: .*on val, each value − 1·SE/);
    expect(pickRuleSentence('maximin', 3, 'fit', 0)).toMatch(/^#3 best keeps its worst task: .*\(on fit\)\.$/);
    expect(pickRuleSentence('weighted', 4, 'val', 0)).toBe("#4 has the front's best weighted objective (on val).");
  });
});

describe('objective terms as objectives', () => {
  it('gives each term its unweighted value on the split, share terms as the share kept, keyed task/metric', () => {
    const own = (t: string) => (t === 'spam' ? 'auc' : 'loglik');
    const terms = [
      { task: 'spam', weight: 0.5, shareOf: 'expert-spam' },
      { task: 'lang', weight: 3 },
    ];
    const sources = new Map([
      ['base', [{ task: 'spam', metric: 'auc', split: 'fit', value: 0.8, se: 0.01 }]],
      ['expert-spam', [{ task: 'spam', metric: 'auc', split: 'fit', value: 0.9, se: 0.01 }]],
    ]);
    const scores = [
      { task: 'spam', metric: 'auc', split: 'fit', value: 0.85, se: 0.02 },
      { task: 'lang', metric: 'loglik', split: 'fit', value: -1.5, se: 0.1 },
    ];
    const v = termValues(terms, own, scores, sources, 'fit');
    expect(v.map((t) => t.key)).toEqual(['spam/auc:share_of:expert-spam', 'lang/loglik']);
    expect(v[0]!.value).toBeCloseTo(0.5, 12);
    expect(v[0]!.se).toBeCloseTo(0.2, 12);
    expect(v[1]).toEqual({ key: 'lang/loglik', value: -1.5, se: 0.1 });
    expect(termKey({ task: 'math', metric: 'exact_match', weight: 1 }, own)).toBe('math/exact_match');
  });
});
