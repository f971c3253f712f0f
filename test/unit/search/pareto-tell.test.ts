// What a Pareto campaign tells NSGA-II: each objective term's fit value keyed task/metric (a share term as the share
// kept), and every gate as a constraint floor on fit: floor (its value), share floor (on the share kept),
// no_regression (the source's fit score − tolerance), min_gain (the best source's fit score + delta).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Suite } from '../../../src/eval/suite.ts';
import { paretoObjectives, paretoPerTask } from '../../../src/search/campaign/pareto.ts';
import type { CampaignSetup } from '../../../src/search/campaign/campaign-setup.ts';
import type { Score } from '../../../src/search/space/measures.ts';
import { parseSpace } from '../../../src/search/space/space.ts';
import { moPoint } from '../../../src/search/optimizers/nsga-ii.ts';

const repo = path.resolve(__dirname, '../../..');
const models = path.join(repo, 'models/micro');
const space = parseSpace(
  {
    base_model: `${models}/base`,
    models: [`${models}/expert-math`, `${models}/expert-lang`],
    suite: path.join(repo, 'evals/micro.yaml'),
    genome: { methods: ['task_arithmetic'], parameters: { weight: { min: 0, max: 1 } } },
    objective: [
      { task: 'math', share_of: 'expert-math', weight: 0.5 },
      { task: 'lang', weight: 0.5 },
    ],
    gates: [
      { name: 'lang_floor', kind: 'floor', task: 'lang', value: -2.5 },
      { name: 'math_half', kind: 'floor', task: 'math', share_of: 'expert-math', value: 0.5 },
      { name: 'lang_kept', kind: 'no_regression', task: 'lang', source: 'expert-lang', tolerance: 0.2 },
      { name: 'math_gain', kind: 'min_gain', task: 'math', delta: 0.1 },
    ],
    optimizer: 'nsga2',
    objective_mode: 'pareto',
    selection: { lcb_z: 1 },
    budget: { candidates: 10 },
  },
  'p.yaml',
);
const suite = {
  tasks: [
    { name: 'math', metric: 'exact_match' },
    { name: 'lang', metric: 'loglik' },
  ],
} as unknown as Suite;
const setup = { space, suite } as unknown as CampaignSetup;
const score = (task: string, metric: string, value: number, se = 0.01): Score =>
  ({ task, metric, split: 'fit', value, se, n: 10 }) as Score;
const baselines = new Map([
  ['base', [score('math', 'exact_match', 0.2), score('lang', 'loglik', -2)]],
  ['expert-math', [score('math', 'exact_match', 0.6), score('lang', 'loglik', -2.4)]],
  ['expert-lang', [score('math', 'exact_match', 0.1), score('lang', 'loglik', -1.5)]],
]);

describe('Pareto tells', () => {
  it('names the terms as objectives and every gate as a floor on its fit value', () => {
    const mo = paretoObjectives(setup, baselines);
    expect(mo.objectives).toEqual(['math/exact_match:share_of:expert-math', 'lang/loglik']);
    expect(mo.lcbZ).toBe(1);
    expect(mo.constraints!.map((c) => c.key)).toEqual([
      'lang/loglik',
      'math/exact_match:share_of:expert-math',
      'lang/loglik',
      'math/exact_match',
    ]);
    const floors = mo.constraints!.map((c) => c.floor);
    expect(floors[0]).toBe(-2.5);
    expect(floors[1]).toBe(0.5);
    expect(floors[2]).toBeCloseTo(-1.7, 12); // expert-lang − 0.2
    expect(floors[3]).toBeCloseTo(0.7, 12); // best source (expert-math 0.6) + 0.1
  });

  it('tells a candidate its terms and gate values; NSGA-II turns them into objectives and a violation', () => {
    const scores = [score('math', 'exact_match', 0.5, 0.04), score('lang', 'loglik', -1.8, 0.05)];
    const perTask = paretoPerTask(setup, scores, baselines);
    expect(perTask['math/exact_match:share_of:expert-math']!.value).toBeCloseTo(0.75, 12);
    expect(perTask['math/exact_match:share_of:expert-math']!.se).toBeCloseTo(0.1, 12);
    expect(perTask['lang/loglik']).toEqual({ value: -1.8, se: 0.05 });
    expect(perTask['math/exact_match']!.value).toBe(0.5);
    const p = moPoint({ solution: { x: [], c: [] }, value: 0, perTask }, paretoObjectives(setup, baselines));
    expect(p.f[0]).toBeCloseTo(0.65, 12);
    expect(p.f[1]).toBeCloseTo(-1.85, 12);
    // lang_kept: −1.8 < −1.7 by 0.1; math_gain: 0.5 < 0.7 by 0.2; the others pass
    expect(p.violation).toBeCloseTo(0.3, 12);
  });
});
