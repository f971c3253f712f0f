// The method registry against MERGEKIT-SEMANTICS.md §5 (defaults table) and the recipe vocabulary.
import { describe, expect, it } from 'vitest';
import { EvomergeError } from '../../../src/errors.ts';
import { findMethod, MERGE_METHODS, methodParameter } from '../../../src/merge/registry.ts';
import { PARAMETER_NAMES } from '../../../src/recipe/recipe.ts';

describe('MERGE_METHODS', () => {
  it('lists the twelve methods of the foundation issue, then the six added to mergekit since 2024', () => {
    expect(MERGE_METHODS.map((m) => m.name)).toEqual([
      'linear',
      'task_arithmetic',
      'ties',
      'dare_ties',
      'dare_linear',
      'breadcrumbs',
      'breadcrumbs_ties',
      'della',
      'della_linear',
      'slerp',
      'model_stock',
      'passthrough',
      'sce',
      'nuslerp',
      'multislerp',
      'karcher',
      'arcee_fusion',
      'nearswap',
    ]);
  });

  it('uses exactly the parameter names a recipe may contain (one vocabulary)', () => {
    const union = new Set(MERGE_METHODS.flatMap((m) => m.parameters.map((p) => p.name)));
    expect([...union].sort()).toEqual([...PARAMETER_NAMES].sort());
  });

  // MERGEKIT-SEMANTICS.md §5: | method | sparsify | consensus | normalize default | rescale default |
  it.each([
    ['task_arithmetic', 'none', 'none', false, false],
    ['ties', 'magnitude', 'sum', true, false],
    ['dare_linear', 'random', 'none', false, true],
    ['dare_ties', 'random', 'sum', false, true],
    ['breadcrumbs', 'magnitude_outliers', 'none', false, false],
    ['breadcrumbs_ties', 'magnitude_outliers', 'sum', false, false],
    ['della', 'della_magprune', 'sum', true, true],
    ['della_linear', 'della_magprune', 'none', false, true],
  ])(
    '%s: sparsify %s, consensus %s, normalize %s, rescale %s',
    (name, sparsification, consensus, normalize, rescale) => {
      const m = findMethod(name, 'r.yaml');
      expect(m.family).toBe('task_arithmetic');
      expect(m.sparsification).toBe(sparsification);
      expect(m.consensus).toBe(consensus);
      expect(methodParameter(m, 'normalize')?.default).toBe(normalize);
      expect(methodParameter(m, 'rescale')?.default).toBe(rescale);
      expect(methodParameter(m, 'lambda')?.default).toBe(1.0);
      expect(methodParameter(m, 'weight')).toMatchObject({ scope: 'per_model', required: true });
      if (sparsification !== 'none') expect(methodParameter(m, 'density')?.default).toBe(1.0);
      expect(methodParameter(m, 'gamma')?.default).toBe(sparsification === 'magnitude_outliers' ? 0.01 : undefined);
      expect(methodParameter(m, 'epsilon')?.default).toBe(sparsification === 'della_magprune' ? 0.15 : undefined);
    },
  );

  it('linear normalizes by default; slerp requires t; passthrough takes an optional scale', () => {
    expect(methodParameter(findMethod('linear', 'r'), 'normalize')?.default).toBe(true);
    expect(methodParameter(findMethod('slerp', 'r'), 't')).toMatchObject({ required: true, scope: 'global' });
    expect(methodParameter(findMethod('passthrough', 'r'), 'scale')).toMatchObject({
      required: false,
      scope: 'per_model',
    });
    expect(methodParameter(findMethod('model_stock', 'r'), 'filter_wise')?.default).toBe(false);
  });

  it('every parameter has a description and consistent bounds', () => {
    for (const m of MERGE_METHODS) {
      for (const p of m.parameters) {
        expect(p.description.length, `${m.name}.${p.name}`).toBeGreaterThan(10);
        if (p.min !== undefined && p.max !== undefined) expect(p.min).toBeLessThan(p.max);
        if (p.required) expect(p.default).toBeUndefined();
      }
    }
  });

  it('an unknown method is one line naming merge_method', () => {
    try {
      findMethod('slurp', 'r.yaml');
      expect.unreachable();
    } catch (e) {
      expect((e as EvomergeError).code).toBe('recipe.unknown_method');
      expect((e as EvomergeError).message).toMatch(
        /^r\.yaml: merge_method: unknown merge method "slurp"; evomerge implements linear, /,
      );
    }
  });
});
