// The Pareto section's scatter: front members and the pick are always drawn, the rest thinned evenly past the cap;
// each point's hover text names the candidate and every objective's value.
import { describe, expect, it } from 'vitest';
import { drawnCandidates, paretoPairSpec } from '../../../src/report/html/pareto.ts';
import { formatParetoFront, type ParetoFrontReport } from '../../../src/report/pareto-front.ts';

const front: ParetoFrontReport = {
  rule: 'knee',
  objectives: ['math/answer_logprob', 'lang/loglik', 'spam/auc'],
  lcbZ: 0,
  candidates: Array.from({ length: 100 }, (_, i) => ({
    ordinal: i,
    status: i % 3 === 1 ? 'rejected' : 'kept',
    values: [i / 100, 1 - i / 100, 0.5],
    se: [0.01, NaN, 0.02],
    front: i === 97 || i === 42,
  })),
  front: [42, 97],
  chosen: 42,
  sentence: 'The pick, by pareto_pick: knee: #42 …',
};

describe('Pareto scatter', () => {
  it('draws every front member and the pick, and thins the others evenly to the cap', () => {
    const drawn = drawnCandidates(front, 12);
    expect(drawn).toHaveLength(12);
    expect(drawn.map((c) => c.ordinal)).toEqual(expect.arrayContaining([42, 97]));
    expect(drawn.map((c) => c.ordinal)).toEqual([...drawn.map((c) => c.ordinal)].sort((a, b) => a - b));
    expect(drawnCandidates(front)).toHaveLength(100);
  });

  it('projects a pair of objectives, with the pick marked and hover text naming every objective', () => {
    const spec = paretoPairSpec(front, drawnCandidates(front, 12), 0, 2) as {
      data: { values: { x: number; y: number; cls: string; hover: string; label: string }[] }[];
    };
    const points = spec.data[0]!.values;
    const pick = points.find((p) => p.cls === 'picked')!;
    expect(pick).toMatchObject({ x: 0.42, y: 0.5, label: '#42' });
    expect(pick.hover).toBe(
      '#42 (kept, on the front, the pick): math/answer_logprob 0.420 ± 0.010, lang/loglik 0.580 ± —, spam/auc 0.500 ± 0.020',
    );
    expect(points.filter((p) => p.cls === 'front').map((p) => p.hover.split(' ')[0])).toEqual(['#97']);
    expect(points.at(-1)!.cls).toBe('picked'); // drawn last, over the others
  });

  it("when never worse than naive handed over a reference, marks the member as the rule's choice, not the pick", () => {
    const byRef = { ...front, reference: 'ties d=0.5' };
    const spec = paretoPairSpec(byRef, drawnCandidates(byRef, 12), 0, 1) as {
      data: { values: { cls: string; hover: string }[] }[];
    };
    expect(spec.data[0]!.values.find((p) => p.hover.startsWith('#42 '))!.hover).toMatch(
      /^#42 \(kept, on the front, the rule's choice; the reference merge ties d=0\.5 was handed over\): /,
    );
    const text = formatParetoFront(byRef);
    expect(text.some((l) => /^ {2}#42 \(the rule's choice\)/.test(l))).toBe(true);
    expect(text.join('\n')).not.toContain('(picked)');
    expect(formatParetoFront(front).some((l) => /^ {2}#42 \(picked\)/.test(l))).toBe(true);
  });
});
