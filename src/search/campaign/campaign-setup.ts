// Everything a campaign checks before it writes a byte: the space, the suite's tasks and metrics, the merge
// methods (every method's recipe is planned once on the real models), and the configuration hash that
// identifies the campaign in its database (a changed search space is refused on resume).
import { createHash } from 'node:crypto';
import path from 'node:path';
import { EvomergeError } from '../../errors.ts';
import { readConfig } from '../../checkpoint/model-dir.ts';
import { parseSuiteFile, type Suite } from '../../eval/suite.ts';
import { readEvalFile } from '../../eval/eval-file.ts';
import { partitionFit, seededPermutation } from '../scoring/fidelity.ts';
import type { ItemSubset } from '../scoring/scorer.ts';
import { describeProtocol } from '../../eval/lm-eval/protocol.ts';
import { openRecipeModels } from '../../merge/engine.ts';
import { planMerge } from '../../merge/plan.ts';
import { parseRecipe } from '../../recipe/parse.ts';
import {
  buildLayout,
  canonicalJson,
  decodeGenome,
  referenceRecipe,
  type GenomeLayout,
  type GenomeValues,
} from '../space/genome.ts';
import type { RecipeDoc } from '../space/recipe-doc.ts';
import { campaignMeasures, type Measure } from '../space/measures.ts';
import { buildDataFlowLayout, checkDataFlowModels, decodeDataFlow } from '../space/data-flow.ts';
import { checkSpaceMethods, registryMethodParameters } from '../space/method-parameters.ts';
import { parseSpaceFile, type SearchSpace } from '../space/space.ts';

export interface RunOverrides {
  readonly budget?: number;
  readonly workers?: number;
  readonly seed?: number;
  /** Replaces the space's optimizer (benchmarks compare optimisers on one space). */
  readonly optimizer?: SearchSpace['optimizer'];
}

export interface CampaignSetup {
  readonly space: SearchSpace;
  readonly suite: Suite;
  readonly layout: GenomeLayout;
  /** A solution → its genes in words and the candidate's recipe (a mergekit recipe, or a data-flow path). */
  readonly decode: (x: readonly number[], c: readonly number[]) => { genome: GenomeValues; recipe: RecipeDoc };
  /** The optimiser's initial mean, when the genome has one other than the centre of each range. */
  readonly x0?: readonly number[];
  readonly measures: readonly Measure[];
  /** Candidates evaluated at most (the space's budget.candidates or --budget; Infinity if only minutes). */
  readonly budget: number;
  readonly minutes?: number;
  readonly workers: number;
  readonly seed: number;
  /** sha256 of what decides the results: the space without budget and workers, the effective seed. */
  readonly configHash: string;
  readonly configJson: string;
  /** With a `selection:` block: the items each split scores, per measured task (recorded in the config). */
  readonly items?: CampaignItems;
  /** budget.items: search stops once this many items (fit and val) have been scored. */
  readonly itemBudget?: number;
}

/** Which eval items a campaign with a `selection:` block scores, per measured task (file indices). */
export interface CampaignItems {
  /** What the optimiser sees: the fit file minus the held-out part (all of it when the task has a val file). */
  readonly fit: ItemSubset;
  /** The held-out part of the fit file, for tasks without a val file (the others score their val file). */
  readonly val: ItemSubset;
  /** Successive halving's order: a seeded permutation of `fit`; rung r scores its first rungSizes[r]. */
  readonly order: ItemSubset;
  /** Val items scored per candidate, summed over the measures (the val pick's cost in items). */
  readonly valPerCandidate: number;
}

/** Parses and checks a search space with the command-line overrides applied; touches no database. */
export function prepareCampaign(spaceFile: string, overrides: RunOverrides = {}): CampaignSetup {
  const parsed = parseSpaceFile(spaceFile);
  const space: SearchSpace = {
    ...parsed,
    ...(overrides.seed !== undefined ? { seed: overrides.seed } : {}),
    ...(overrides.workers !== undefined ? { workers: overrides.workers } : {}),
    ...(overrides.optimizer !== undefined ? { optimizer: overrides.optimizer } : {}),
  };
  checkSpaceMethods(space);
  const suite = parseSuiteFile(space.suite);
  const measures = campaignMeasures(space, suite);
  const flow = space.dataFlow ? buildDataFlowLayout(space, ...checkDataFlowModels(space)) : undefined;
  const numLayers = readConfig(space.baseModel.path).num_hidden_layers;
  if (!Number.isInteger(numLayers) || (numLayers as number) < 1) {
    throw new EvomergeError(
      'space.bad_model',
      'config.json has no positive num_hidden_layers; cannot lay out layer groups',
      { file: path.join(space.baseModel.path, 'config.json'), field: 'num_hidden_layers' },
    );
  }
  const layout = flow ? { cells: [], domain: flow.domain, space } : buildLayout(space, numLayers as number);
  for (const g of layout.domain.continuous) {
    if (!(g.lower < g.upper)) {
      throw new EvomergeError(
        'space.bad_value',
        `min equals max (${g.lower}); a gene needs a range, put a constant under genome.fixed`,
        { file: space.file, field: `genome.parameters.${g.name.split('.').pop()}` },
      );
    }
  }
  checkRecipesPlan(space, layout);

  const items = space.selection ? campaignItems(space, suite, measures) : undefined;
  const budget = overrides.budget ?? space.budget.candidates ?? Infinity;
  // What decides the results: everything but the stopping rule and the parallelism.
  // The tasks' own metrics ride along: the report reads them without the suite file.
  const ownMetrics = Object.fromEntries(
    [...new Set(measures.map((m) => m.task))].map((t) => [t, suite.tasks.find((x) => x.name === t)!.metric]),
  );
  // lm-eval tasks: how their fit and test docs and few-shot examples are chosen (a changed rule is another campaign)
  const lmEvalTasks = suite.tasks.filter((t) => t.lmEval && measures.some((m) => m.task === t.name));
  const lmEvalProtocols = lmEvalTasks.length
    ? Object.fromEntries(lmEvalTasks.map((t) => [t.name, describeProtocol(t.lmEval!)]))
    : undefined;
  const identity = {
    ...space,
    budget: undefined,
    workers: undefined,
    file: undefined,
    ownMetrics,
    measures,
    lmEvalProtocols,
    ...(items ? { items: { fit: items.fit, val: items.val } } : {}),
  };
  const configJson = canonicalJson(identity);
  const configHash = createHash('sha256').update(configJson).digest('hex');
  return {
    space,
    suite,
    layout,
    decode: flow
      ? (x) => decodeDataFlow(flow, space, x)
      : (x, c) => decodeGenome(layout, x, c, registryMethodParameters, space.seed),
    ...(flow ? { x0: flow.x0 } : {}),
    measures,
    budget,
    minutes: space.budget.minutes,
    workers: space.workers,
    seed: space.seed,
    configHash,
    configJson,
    ...(items ? { items } : {}),
    ...(space.budget.items !== undefined ? { itemBudget: space.budget.items } : {}),
  };
}

/** The seeded partition of each measured task's fit items into fit and val (tasks with a val file keep all of
 *  fit), and successive halving's order of the fit part; seeded by the campaign seed. */
function campaignItems(space: SearchSpace, suite: Suite, measures: readonly Measure[]): CampaignItems {
  const fit: Record<string, number[]> = {};
  const val: Record<string, number[]> = {};
  const order: Record<string, number[]> = {};
  let valPerCandidate = 0;
  const cap = (n: number) => (space.evalLimit !== undefined ? Math.min(n, space.evalLimit) : n);
  for (const task of new Set(measures.map((m) => m.task))) {
    const spec = suite.tasks.find((t) => t.name === task)!;
    if (spec.lmEval)
      throw new EvomergeError(
        'space.bad_value',
        `task "${task}" is an lm-eval task: a val split and successive halving read JSONL tasks only`,
        { file: space.file, field: 'selection' },
      );
    const n = cap(readEvalFile(spec.files.fit, spec.fields).length);
    let nVal: number;
    if (spec.files.val) {
      fit[task] = Array.from({ length: n }, (_, i) => i);
      nVal = cap(readEvalFile(spec.files.val, spec.fields).length);
    } else {
      if (n < 2)
        throw new EvomergeError(
          'space.bad_value',
          `task "${task}" has ${n} fit item(s): too few to hold out a val part`,
          { file: space.file, field: 'selection.val_fraction' },
        );
      const p = partitionFit(n, space.selection!.valFraction, space.seed, task);
      fit[task] = p.fit;
      val[task] = p.val;
      nVal = p.val.length;
    }
    order[task] = seededPermutation(fit[task]!.length, space.seed, `halving:${task}`).map((i) => fit[task]![i]!);
    valPerCandidate += nVal * measures.filter((m) => m.task === task).length;
  }
  return { fit, val, order, valPerCandidate };
}

/** Plans one recipe per method (the range centres) and each reference on the real models: a method that
 *  cannot merge these models (slerp of three, say) is refused now, not after an hour of search. */
function checkRecipesPlan(space: SearchSpace, layout: GenomeLayout): void {
  const centre = layout.domain.continuous.map((g) => (g.lower + g.upper) / 2);
  const docs: { doc: RecipeDoc; field: string }[] = [];
  // a data-flow genome has no methods (its models were checked by checkDataFlowModels): only references plan
  space.genome.methods.forEach((m, i) => {
    const c = layout.domain.categorical.length ? [layout.domain.categorical[0]!.choices.indexOf(m)] : [];
    docs.push({
      doc: decodeGenome(layout, centre, c, registryMethodParameters, space.seed).recipe,
      field: `genome.methods[${i}]`,
    });
  });
  space.references.forEach((r, i) =>
    docs.push({ doc: referenceRecipe(space, r, registryMethodParameters, space.seed), field: `references[${i}]` }),
  );
  for (const { doc, field } of docs) {
    try {
      const recipe = parseRecipe(doc, { file: space.file, baseDir: path.dirname(space.file) });
      const models = openRecipeModels(recipe);
      try {
        planMerge(recipe, models);
      } finally {
        models.forEach((m) => m.close());
      }
    } catch (err) {
      if (!(err instanceof EvomergeError)) throw err;
      const what = err.message.slice(err.message.lastIndexOf(': ') + 2);
      throw new EvomergeError(
        'space.bad_method',
        `this merge cannot be made: ${err.field ? `${err.field}: ` : ''}${what}`,
        { file: space.file, field },
      );
    }
  }
}
