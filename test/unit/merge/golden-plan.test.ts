// The planner against what mergekit's own planner resolved for every golden recipe
// (shared/mergekit-goldens/golden/NAME.params.json): output names in order, the input models in stacking
// order with the tensor each reads, and every per-model and method-wide parameter. Only the first set has a
// params.json (the fixture README: the twelve recipes of methods added since 2024 have none, by design).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openModelDir, type ModelDir } from '../../../src/checkpoint/model-dir.ts';
import { planMerge } from '../../../src/merge/plan.ts';
import { parseRecipeFile } from '../../../src/recipe/parse.ts';
import type { TaskVectorInput } from '../../../src/kernel/kernel.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const goldens = path.resolve(repoRoot, '../shared/mergekit-goldens');
const have = existsSync(goldens);
const recipes = have
  ? readdirSync(path.join(goldens, 'recipes'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.replace(/\.yaml$/, ''))
  : [];
const hasParams = (name: string) => existsSync(path.join(goldens, 'golden', `${name}.params.json`));
const names = recipes.filter(hasParams);
/** The fixture README's "second set": recipes without a params.json. */
const SECOND_SET = [
  'arcee_fusion',
  'karcher',
  'multislerp',
  'multislerp_base_nonorm',
  'nearswap',
  'nearswap_gradient',
  'nuslerp_flat',
  'nuslerp_rows',
  'nuslerp_task_flat',
  'nuslerp_task_rowwise',
  'sce_topk05',
  'sce_topk1',
];

const opened = new Map<string, ModelDir>();
afterAll(() => opened.forEach((m) => m.close()));
function models(dirs: string[]): Map<string, ModelDir> {
  for (const d of dirs) if (!opened.has(d)) opened.set(d, openModelDir(d));
  return opened;
}

interface GoldenInput {
  model: string;
  tensor: string;
  loaded_as?: string;
  is_base?: boolean;
  weight?: number | null;
  density?: number;
  gamma?: number;
  scale?: number | null;
}
interface GoldenTensor {
  method: string;
  normalize?: boolean;
  lambda?: number;
  rescale?: string | boolean | null;
  t?: number;
  inputs: GoldenInput[];
}

describe.runIf(have)("plan matches mergekit's planner", () => {
  it('only the second set lacks a params.json', () => {
    expect(recipes.filter((n) => !hasParams(n)).sort()).toEqual(SECOND_SET);
  });

  it.each(names)('%s', (name) => {
    const recipePath = path.join(goldens, 'recipes', `${name}.yaml`);
    const recipe = parseRecipeFile(recipePath);
    const dirs = [
      ...new Set([
        ...(recipe.models ?? []).map((m) => m.model),
        ...(recipe.slices ?? []).flatMap((s) => s.sources.map((x) => x.model)),
        ...(recipe.baseModel ? [recipe.baseModel] : []),
      ]),
    ];
    const plan = planMerge(recipe, models(dirs));
    const golden = JSON.parse(readFileSync(path.join(goldens, 'golden', `${name}.params.json`), 'utf8'));
    const g = golden.tensors as Record<string, GoldenTensor>;
    const abs = (p: string) => path.resolve(path.join(goldens, 'recipes'), p);

    expect(plan.tensors.map((t) => t.name)).toEqual(Object.keys(g));
    expect(plan.config.num_hidden_layers).toBe(golden.output_config.num_hidden_layers);
    expect(plan.config.torch_dtype).toBe(golden.output_config.torch_dtype);

    for (const t of plan.tensors) {
      const want = g[t.name]!;
      const op = t.job.op;
      const nonBase = want.inputs.filter((i) => !i.is_base);
      const base = want.inputs.find((i) => i.is_base);
      switch (op.kind) {
        case 'weighted_sum':
          expect(op.inputs.map((i) => [i.ref.model, i.ref.tensor])).toEqual(
            want.inputs.map((i) => [abs(i.model), i.loaded_as ?? i.tensor]),
          );
          if (want.method === 'linear') {
            expect(op.normalize).toBe(want.normalize);
            op.inputs.forEach((i, k) => expect(i.weight).toBeCloseTo(want.inputs[k]!.weight as number, 12));
          } else {
            op.inputs.forEach((i, k) => expect(i.weight).toBe(want.inputs[k]!.scale ?? 1));
          }
          break;
        case 'task_arithmetic': {
          expect([op.base.model, op.base.tensor]).toEqual([abs(base!.model), base!.loaded_as ?? base!.tensor]);
          expect(op.inputs.map((i: TaskVectorInput) => [i.ref.model, i.ref.tensor])).toEqual(
            nonBase.map((i) => [abs(i.model), i.loaded_as ?? i.tensor]),
          );
          op.inputs.forEach((i, k) => {
            const w = nonBase[k]!;
            expect(i.weight).toBeCloseTo(w.weight as number, 12);
            expect(i.density).toBeCloseTo(w.density ?? 1, 12);
            if (w.gamma !== undefined) expect(i.gamma).toBeCloseTo(w.gamma, 12);
            expect(i.modelIndex).toBe(want.inputs.indexOf(w));
          });
          expect(op.normalize).toBe(want.normalize);
          expect(op.lambda).toBe(want.lambda);
          expect(op.rescale).toBe(want.rescale === 'l1' || want.rescale === true ? 'l1' : 'none');
          break;
        }
        case 'slerp':
          expect([op.a.model, op.a.tensor]).toEqual([abs(base!.model), base!.tensor]);
          expect([op.b.model, op.b.tensor]).toEqual([abs(nonBase[0]!.model), nonBase[0]!.tensor]);
          expect(op.t).toBeCloseTo(want.t!, 12);
          break;
        case 'model_stock':
          expect([op.base.model, op.base.tensor]).toEqual([abs(base!.model), base!.tensor]);
          expect(op.inputs.map((r) => [r.model, r.tensor])).toEqual(nonBase.map((i) => [abs(i.model), i.tensor]));
          break;
      }
    }
  });
});

describe.skipIf(have)("plan matches mergekit's planner", () => {
  it.skip(`skipped: ${goldens} is absent`, () => {});
});
