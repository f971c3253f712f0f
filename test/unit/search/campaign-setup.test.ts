// The campaign's checks before any database is written, and its pure pieces: measures and evaluation rounds,
// the objective, gate thresholds from the sources, the registry's method parameters, the configuration hash.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { EvomergeError } from '../../../src/errors.ts';
import { prepareCampaign } from '../../../src/search/campaign/campaign-setup.ts';
import { evaluationRounds, objectiveValue, type Score } from '../../../src/search/space/measures.ts';
import { registryMethodParameters } from '../../../src/search/space/method-parameters.ts';
import { judgeGates } from '../../../src/search/campaign/verdicts.ts';

const repo = path.resolve(__dirname, '../../..');
const zoo = path.join(repo, 'models/micro');
const dir = mkdtempSync(path.join(os.tmpdir(), 'evomerge-campaign-setup-'));

function spaceFile(extra: Record<string, unknown> = {}, genome: Record<string, unknown> = {}): string {
  const file = path.join(dir, `space-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    YAML.stringify({
      name: 'unit',
      base_model: `${zoo}/base`,
      models: [`${zoo}/expert-math`, `${zoo}/expert-lang`],
      suite: path.join(repo, 'evals/micro.yaml'),
      genome: {
        layer_groups: 3,
        methods: ['task_arithmetic', 'ties', 'dare_ties'],
        parameters: { weight: { min: 0, max: 1 }, density: { min: 0.1, max: 1 } },
        ...genome,
      },
      objective: [{ task: 'composite', metric: 'answer_logprob' }],
      gates: [
        { name: 'gain', kind: 'min_gain', task: 'composite', delta: 0.01 },
        { kind: 'no_regression', task: 'lang', source: 'expert-lang', tolerance: 0.5 },
        { kind: 'floor', task: 'math_words', value: 0.2 },
      ],
      budget: { candidates: 10 },
      ...extra,
    }),
  );
  return file;
}

function refusal(fn: () => unknown): EvomergeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EvomergeError);
    return err as EvomergeError;
  }
  throw new Error('expected a refusal');
}

describe('prepareCampaign', () => {
  it('lists the measures: objective terms, gate metrics, then own metrics of the tasks named', () => {
    const s = prepareCampaign(spaceFile());
    expect(s.measures.map((m) => `${m.task}/${m.metric}`)).toEqual([
      'composite/answer_logprob',
      'composite/exact_match',
      'lang/loglik',
      'math_words/exact_match',
    ]);
    expect(s.layout.domain.continuous).toHaveLength(4 * 2 * 2);
    expect(s.budget).toBe(10);
  });

  it('hashes what decides the results: not the budget or the workers, but the seed', () => {
    const file = spaceFile();
    const a = prepareCampaign(file);
    expect(prepareCampaign(file, { budget: 99, workers: 3 }).configHash).toBe(a.configHash);
    expect(prepareCampaign(file, { seed: 5 }).configHash).not.toBe(a.configHash);
    expect(prepareCampaign(spaceFile({}, { layer_groups: 2 })).configHash).not.toBe(a.configHash);
  });

  it('refuses, naming the field: unknown task, unknown metric, unknown method, unread parameter, out-of-bounds range', () => {
    expect(
      refusal(() => prepareCampaign(spaceFile({ gates: [{ kind: 'floor', task: 'poetry', value: 1 }] }))).message,
    ).toMatch(/gates\[0\]\.task: the suite .* has no task "poetry"/);
    expect(refusal(() => prepareCampaign(spaceFile({ objective: [{ task: 'math', metric: 'accuracy' }] }))).code).toBe(
      'space.unknown_metric',
    );
    expect(refusal(() => prepareCampaign(spaceFile({}, { methods: ['ties', 'nope'] }))).message).toMatch(
      /genome\.methods\[1\]: unknown merge method "nope"/,
    );
    expect(refusal(() => prepareCampaign(spaceFile({}, { methods: ['task_arithmetic'] }))).message).toMatch(
      /genome\.parameters\.density: no method of genome\.methods \(task_arithmetic\) reads "density"/,
    );
    expect(
      refusal(() =>
        prepareCampaign(spaceFile({}, { parameters: { weight: { min: 0, max: 1 }, density: { min: 0, max: 1.5 } } })),
      ).message,
    ).toMatch(/genome\.parameters\.density: max 1\.5 is above the largest allowed density, 1/);
    expect(
      refusal(() =>
        prepareCampaign(spaceFile({}, { parameters: { weight: { min: 1, max: 1 } }, methods: ['task_arithmetic'] })),
      ).message,
    ).toMatch(/min equals max/);
  });

  it('plans each method on the real models first: slerp of two experts is refused before any search', () => {
    const e = refusal(() =>
      prepareCampaign(
        spaceFile({}, { methods: ['slerp'], parameters: { weight: { min: 0, max: 1 }, t: { min: 0, max: 1 } } }),
      ),
    );
    expect(e.code).toMatch(/^space\./);
    expect(e.message).toMatch(/genome\.(methods\[0\]|parameters\.weight)/);
  });
});

describe('pure pieces', () => {
  const sc = (task: string, metric: string, value: number, split: 'fit' | 'test' = 'fit'): Score => ({
    task,
    metric,
    split,
    value,
    se: 0.01,
    n: 10,
  });

  it('evaluation rounds score each task at most once per round', () => {
    const rounds = evaluationRounds([
      { task: 'a', metric: 'x' },
      { task: 'a', metric: 'y' },
      { task: 'b', metric: 'x' },
    ]);
    expect(rounds).toEqual([
      [
        { task: 'a', metric: 'x' },
        { task: 'b', metric: 'x' },
      ],
      [{ task: 'a', metric: 'y' }],
    ]);
  });

  it('the objective is the weighted sum of fit metrics, −∞ when one is missing or not finite', () => {
    const s = prepareCampaign(
      spaceFile({
        objective: [
          { task: 'composite', metric: 'answer_logprob', weight: 2 },
          { task: 'math_words', weight: 0.5 },
        ],
      }),
    );
    expect(
      objectiveValue(s.space, s.suite, [sc('composite', 'answer_logprob', -1.5), sc('math_words', 'exact_match', 0.4)]),
    ).toBeCloseTo(-2.8, 12);
    expect(objectiveValue(s.space, s.suite, [sc('composite', 'answer_logprob', -1.5)])).toBe(-Infinity);
    expect(
      objectiveValue(s.space, s.suite, [sc('composite', 'answer_logprob', NaN), sc('math_words', 'exact_match', 0.4)]),
    ).toBe(-Infinity);
  });

  it('gate thresholds come from the sources on the same split', () => {
    const s = prepareCampaign(spaceFile());
    const sources = new Map<string, Score[]>([
      ['base', [sc('composite', 'exact_match', 0), sc('lang', 'loglik', -2.0)]],
      ['expert-math', [sc('composite', 'exact_match', 0.07), sc('lang', 'loglik', -2.6)]],
      ['expert-lang', [sc('composite', 'exact_match', 0), sc('lang', 'loglik', -1.4)]],
    ]);
    const v = judgeGates(
      s.space,
      s.suite,
      [sc('composite', 'exact_match', 0.08), sc('lang', 'loglik', -1.95), sc('math_words', 'exact_match', 0.2)],
      sources,
      'fit',
    );
    expect(v.map((x) => [x.gate, x.threshold, x.pass])).toEqual([
      ['gain', 0.08, true], // best source 0.07 + delta 0.01; 0.08 ≥ 0.08
      ['no_regression:lang', -1.9, false], // expert-lang −1.4 − tolerance 0.5 = −1.9
      ['floor:math_words', 0.2, true],
    ]);
    expect(v[0]!.threshold).toBeCloseTo(0.08, 12);
    // a missing score fails
    expect(judgeGates(s.space, s.suite, [], sources, 'fit').every((x) => !x.pass)).toBe(true);
  });

  it('method parameters come from the merge registry', () => {
    expect(registryMethodParameters('task_arithmetic').perModel).toEqual(['weight']);
    expect(registryMethodParameters('dare_ties').perModel).toEqual(['weight', 'density']);
    expect(registryMethodParameters('ties').methodWide).toEqual(
      expect.arrayContaining(['normalize', 'lambda', 'rescale']),
    );
    expect(registryMethodParameters('slerp')).toEqual({ perModel: [], methodWide: ['t'] });
  });
});
