// The space keys of Pareto mode: objective_mode and pareto_pick, each misuse one line naming the key.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSpace } from '../../../src/search/space/space.ts';

const repo = path.resolve(__dirname, '../../..');
const models = path.join(repo, 'models/micro');
const doc = (extra: Record<string, unknown>) => ({
  base_model: `${models}/base`,
  models: [`${models}/expert-math`, `${models}/expert-lang`],
  suite: path.join(repo, 'evals/micro.yaml'),
  genome: { methods: ['task_arithmetic'], parameters: { weight: { min: 0, max: 1 } } },
  objective: [
    { task: 'math', metric: 'answer_logprob' },
    { task: 'lang', weight: 0.5 },
  ],
  budget: { candidates: 10 },
  ...extra,
});

describe('objective_mode and pareto_pick', () => {
  it('reads pareto mode with its pick rule (default weighted); a weighted space carries no pareto key', () => {
    expect(parseSpace(doc({ optimizer: 'nsga2', objective_mode: 'pareto' }), 's.yaml').pareto).toEqual({
      pick: 'weighted',
    });
    const knee = parseSpace(doc({ optimizer: 'nsga2', objective_mode: 'pareto', pareto_pick: 'knee' }), 's.yaml');
    expect(knee.pareto).toEqual({ pick: 'knee' });
    expect(knee.optimizer).toBe('nsga2');
    expect('pareto' in parseSpace(doc({ objective_mode: 'weighted' }), 's.yaml')).toBe(false);
  });

  it('refuses each misuse in one line naming the key', () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        { objective_mode: 'pareto' },
        's.yaml: objective_mode: pareto needs a multi-objective optimiser: set optimizer: nsga2 (got cmaes)',
      ],
      [
        { optimizer: 'nsga2' },
        's.yaml: optimizer: nsga2 is a multi-objective optimiser: it needs objective_mode: pareto',
      ],
      [{ pareto_pick: 'knee' }, 's.yaml: pareto_pick: applies to objective_mode: pareto only'],
      [{ objective_mode: 'front' }, 's.yaml: objective_mode: unknown mode "front"; expected one of: weighted, pareto'],
      [
        { optimizer: 'nsga2', objective_mode: 'pareto', pareto_pick: 'elbow' },
        's.yaml: pareto_pick: unknown rule "elbow"; expected one of: weighted, knee, maximin',
      ],
      [
        { optimizer: 'nsga2', objective_mode: 'pareto', objective: [{ task: 'math' }] },
        's.yaml: objective_mode: pareto needs at least two objective terms (got 1)',
      ],
    ];
    for (const [extra, message] of cases) expect(() => parseSpace(doc(extra), 's.yaml')).toThrow(message);
  });
});
