import { describe, expect, it } from 'vitest';
import {
  allPass,
  checkGateSpecs,
  evaluateGates,
  gateName,
  parseGateSpecs,
  type GateContext,
  type GateScore,
  type GateSpec,
} from '../../../src/gates/gates.ts';

const em = (task: string, value: number): GateScore => ({ task, metric: 'exact_match', value });

// Zoo-like numbers: base, math expert, language expert on three tasks.
const ctx: GateContext = {
  base: 'base',
  sources: {
    base: [em('math_words', 0.1), em('lang', 0.2), em('composite', 0.0)],
    'expert-math': [em('math_words', 0.89), em('lang', 0.15), em('composite', 0.073)],
    'expert-lang': [em('math_words', 0.05), em('lang', 0.9), em('composite', 0.0)],
  },
};

const candidate: GateScore[] = [
  em('math_words', 0.6),
  em('lang', 0.85),
  em('composite', 0.1),
  { task: 'composite', metric: 'mean_logprob', value: -3.2 },
];

describe('evaluateGates', () => {
  const cases: { spec: GateSpec; threshold: number; pass: boolean; against: string[]; name: string; value?: number }[] =
    [
      {
        spec: { kind: 'floor', task: 'math_words', value: 0.5 },
        threshold: 0.5,
        pass: true,
        against: [],
        name: 'floor:math_words',
      },
      {
        spec: { kind: 'floor', task: 'math_words', value: 0.6 },
        threshold: 0.6,
        pass: true,
        against: [],
        name: 'floor:math_words',
      }, // equality passes
      {
        spec: { kind: 'floor', task: 'math_words', value: 0.61 },
        threshold: 0.61,
        pass: false,
        against: [],
        name: 'floor:math_words',
      },
      {
        spec: { kind: 'no_regression', task: 'lang', source: 'expert-lang' },
        threshold: 0.9,
        pass: false,
        against: ['expert-lang'],
        name: 'no_regression:lang',
      },
      {
        spec: { kind: 'no_regression', task: 'lang', source: 'expert-lang', tolerance: 0.05 },
        threshold: 0.9 - 0.05,
        pass: true,
        against: ['expert-lang'],
        name: 'no_regression:lang',
      },
      {
        spec: { kind: 'no_regression', task: 'math_words' },
        threshold: 0.1,
        pass: true,
        against: ['base'],
        name: 'no_regression:math_words',
      }, // default: the base
      {
        spec: { kind: 'no_regression', task: 'math_words', source: 'base', tolerance: 0 },
        threshold: 0.1,
        pass: true,
        against: ['base'],
        name: 'no_regression:math_words',
      },
      {
        spec: { kind: 'min_gain', task: 'composite' },
        threshold: 0.073,
        pass: true,
        against: ['expert-math'],
        name: 'min_gain:composite',
      }, // default: all sources
      {
        spec: { kind: 'min_gain', task: 'composite', delta: 0.03 },
        threshold: 0.073 + 0.03,
        pass: false,
        against: ['expert-math'],
        name: 'min_gain:composite',
      },
      {
        spec: { kind: 'min_gain', task: 'composite', sources: ['base', 'expert-lang'], delta: 0.1 },
        threshold: 0.1,
        pass: true,
        against: ['base', 'expert-lang'],
        name: 'min_gain:composite',
      }, // tie: both named
      {
        spec: { kind: 'floor', task: 'lang', value: 0.8, name: 'lang_alive' },
        threshold: 0.8,
        pass: true,
        against: [],
        name: 'lang_alive',
      },
    ];

  it.each(cases.map((c) => [gateName(c.spec), c]))('%s', (_n, c) => {
    const [v] = evaluateGates(candidate, [c.spec], {
      ...ctx,
      defaultMetrics: { math_words: 'exact_match', lang: 'exact_match', composite: 'exact_match' },
    });
    expect(v).toEqual({
      gate: c.name,
      kind: c.spec.kind,
      task: c.spec.task,
      metric: 'exact_match',
      value: candidate.find((s) => s.task === c.spec.task && s.metric === 'exact_match')!.value,
      threshold: c.threshold,
      against: c.against,
      pass: c.pass,
    });
  });

  it('treats differences of float rounding as equal (0.1 + 0.2 vs 0.3)', () => {
    const [v] = evaluateGates(
      [em('composite', 0.3)],
      [{ kind: 'min_gain', task: 'composite', sources: ['s'], delta: 0.2 }],
      {
        sources: { s: [em('composite', 0.1)] },
      },
    );
    expect(v.threshold).toBe(0.30000000000000004);
    expect(v.pass).toBe(true);
    const [w] = evaluateGates([em('composite', 0.2999)], [{ kind: 'floor', task: 'composite', value: 0.3 }], ctx);
    expect(w.pass).toBe(false);
  });

  it('fails a gate on a missing or non-finite candidate score', () => {
    const specs: GateSpec[] = [
      { kind: 'floor', task: 'math_words', value: -1 },
      { kind: 'floor', task: 'lang', value: -1 },
      { kind: 'floor', task: 'composite', value: -1, metric: 'exact_match' },
    ];
    const vs = evaluateGates([em('math_words', NaN), em('lang', -Infinity)], specs, {
      ...ctx,
      defaultMetrics: { math_words: 'exact_match', lang: 'exact_match' },
    });
    expect(vs.map((v) => [v.pass, v.value])).toEqual([
      [false, NaN],
      [false, -Infinity],
      [false, NaN],
    ]);
    expect(allPass(vs)).toBe(false);
  });

  it('uses the suite metric, else the only metric of the task, else asks for one', () => {
    const spec: GateSpec = { kind: 'floor', task: 'composite', value: -5 };
    expect(
      evaluateGates(candidate, [spec], { ...ctx, defaultMetrics: { composite: 'mean_logprob' } })[0],
    ).toMatchObject({
      metric: 'mean_logprob',
      value: -3.2,
      pass: true,
    });
    expect(evaluateGates(candidate, [{ kind: 'floor', task: 'lang', value: 0 }], ctx)[0].metric).toBe('exact_match');
    expect(() => evaluateGates(candidate, [spec], ctx)).toThrow(
      'floor:composite: task "composite" has metrics exact_match, mean_logprob; name one with "metric"',
    );
  });

  it('kept = every gate passes; no gates keeps; inputs untouched', () => {
    const specs: GateSpec[] = [
      { kind: 'min_gain', task: 'composite', sources: ['expert-math', 'expert-lang'] },
      { kind: 'floor', task: 'math_words', value: 0.5 },
      { kind: 'floor', task: 'lang', value: 0.5 },
    ];
    const frozen = JSON.parse(JSON.stringify({ candidate, specs, ctx }));
    const suite = { ...ctx, defaultMetrics: { composite: 'exact_match' } };
    const vs = evaluateGates(candidate, specs, suite);
    expect(vs.map((v) => v.gate)).toEqual(['min_gain:composite', 'floor:math_words', 'floor:lang']);
    expect(allPass(vs)).toBe(true);
    expect(allPass(evaluateGates([em('math_words', 0.4), em('lang', 0.9), em('composite', 0.2)], specs, suite))).toBe(
      false,
    );
    expect(allPass([])).toBe(true);
    expect({ candidate, specs, ctx }).toEqual(frozen);
  });

  it('refuses a source without the needed score, or an unknown source', () => {
    expect(() => evaluateGates(candidate, [{ kind: 'no_regression', task: 'lang', source: 'ghost' }], ctx)).toThrow(
      expect.objectContaining({ code: 'gates.unknown_source' }),
    );
    expect(() =>
      evaluateGates(candidate, [{ kind: 'no_regression', task: 'lang', metric: 'mean_logprob' }], ctx),
    ).toThrow('no_regression:lang: source "base" has no lang/mean_logprob score');
    expect(() => evaluateGates(candidate, [{ kind: 'no_regression', task: 'lang' }], { sources: ctx.sources })).toThrow(
      /no source named and no base model given/,
    );
  });
});

describe('checkGateSpecs', () => {
  const targets = {
    tasks: ['math_words', 'lang', 'composite'],
    sources: ['base', 'expert-math', 'expert-lang'],
    base: 'base',
    metrics: { composite: ['exact_match', 'mean_logprob'] },
  };
  const place = { file: 'search-spaces/micro.yaml' };

  it('accepts a valid list and returns typed specs', () => {
    const raw = [
      { kind: 'min_gain', task: 'composite', delta: 0.01 },
      { kind: 'floor', task: 'math_words', value: 0.3, name: 'math_alive' },
      { kind: 'no_regression', task: 'lang', source: 'expert-lang', tolerance: 0.2 },
      { kind: 'no_regression', task: 'lang', tolerance: 0.2, name: 'lang_vs_base' },
      {
        kind: 'min_gain',
        task: 'composite',
        metric: 'mean_logprob',
        sources: ['expert-math'],
        name: 'composite_logprob_gain',
      },
    ];
    expect(checkGateSpecs(raw, targets, place)).toEqual([]);
    expect(parseGateSpecs(raw, targets, place)).toEqual(
      raw.map((g) => ({ ...g, name: g.name ?? `${g.kind}:${g.task}` })),
    );
    expect(parseGateSpecs(raw, targets, place).map((g) => g.name)).toEqual([
      'min_gain:composite',
      'math_alive',
      'no_regression:lang',
      'lang_vs_base',
      'composite_logprob_gain',
    ]);
  });

  it.each([
    [
      [{ kind: 'floor', task: 'mathx', value: 0.1 }],
      'search-spaces/micro.yaml: gates[0].task: unknown task "mathx"; the suite has: math_words, lang, composite',
    ],
    [
      [
        { kind: 'floor', task: 'lang', value: 0.1 },
        { kind: 'ceiling', task: 'lang' },
      ],
      'search-spaces/micro.yaml: gates[1].kind: unknown kind "ceiling"; expected one of: floor, no_regression, min_gain',
    ],
    [[{ task: 'lang' }], 'gates[0].kind: missing; expected one of: floor, no_regression, min_gain'],
    [[{ kind: 'floor', task: 'lang' }], 'gates[0].value: missing; a floor gate needs a finite number'],
    [[{ kind: 'floor', task: 'lang', value: '0.5' }], 'gates[0].value: got "0.5"; a floor gate needs a finite number'],
    [
      [{ kind: 'floor', task: 'lang', value: 0.5, valeu: 1 }],
      'gates[0].valeu: unknown key for a floor gate (did you mean "value"?); allowed: kind, task, metric, value, name',
    ],
    [
      [{ kind: 'floor', task: 'lang', value: 0.5, tolerance: 0.1 }],
      'gates[0].tolerance: unknown key for a floor gate (only for no_regression)',
    ],
    [
      [{ kind: 'no_regression', task: 'lang', source: 'expert-fr' }],
      'gates[0].source: unknown source "expert-fr"; sources: base, expert-math, expert-lang',
    ],
    [[{ kind: 'no_regression', task: 'lang', tolerance: -0.1 }], 'gates[0].tolerance: got -0.1; expected a number ≥ 0'],
    [
      [{ kind: 'min_gain', task: 'composite', sources: ['expert-math', 'x'] }],
      'gates[0].sources[1]: unknown source "x"',
    ],
    [
      [{ kind: 'min_gain', task: 'composite', sources: [] }],
      'gates[0].sources: expected a non-empty list of source names',
    ],
    [
      [{ kind: 'min_gain', task: 'composite', metric: 'accuracy' }],
      'gates[0].metric: unknown metric "accuracy" for task composite; it has: exact_match, mean_logprob',
    ],
    [
      [
        { kind: 'floor', task: 'lang', value: 0.1 },
        { kind: 'floor', task: 'lang', value: 0.2 },
      ],
      'gates[1].name: gate name "floor:lang" is already used by gates[0]; give one a distinct name',
    ],
    [{ kind: 'floor' }, 'gates: expected a list of gates'],
    [[null], 'gates[0]: expected a mapping with kind and task'],
  ])('reports %j as one line naming the key', (raw, line) => {
    const errors = checkGateSpecs(raw, targets, place);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0].message).toContain(line);
    expect(errors[0].message).not.toContain('\n');
    expect(errors[0].file).toBe('search-spaces/micro.yaml');
    expect(() => parseGateSpecs(raw, targets, place)).toThrow(errors[0].message);
  });

  it('two gates of one kind on one task need a name each (the default name is <kind>:<task>)', () => {
    const errors = checkGateSpecs(
      [
        { kind: 'no_regression', task: 'lang', source: 'expert-lang' },
        { kind: 'no_regression', task: 'lang', source: 'expert-math' },
      ],
      targets,
      place,
    );
    expect(errors.map((e) => e.message)).toEqual([
      'search-spaces/micro.yaml: gates[1].name: gate name "no_regression:lang" is already used by gates[0]; give one a distinct name',
    ]);
  });

  it('leaves task names to the caller when it gives no task list', () => {
    expect(
      checkGateSpecs([{ kind: 'floor', task: 'anything', value: 0 }], { sources: ['base'], base: 'base' }),
    ).toEqual([]);
  });

  it('needs a source for no_regression when there is no base; reports every problem; uses the given key', () => {
    const errors = checkGateSpecs(
      [
        { kind: 'no_regression', task: 'lang' },
        { kind: 'floor', task: 'nope', value: 1 },
      ],
      { tasks: ['lang'], sources: ['a', 'b'] },
      { key: 'export.gates' },
    );
    expect(errors.map((e) => e.message)).toEqual([
      'export.gates[0].source: missing and there is no base model; sources: a, b',
      'export.gates[1].task: unknown task "nope"; the suite has: lang',
    ]);
    expect(errors.map((e) => e.code)).toEqual(['gates.unknown_source', 'gates.unknown_task']);
  });
});
