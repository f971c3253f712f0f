// A campaign's search space: the YAML under search-spaces/ parsed and validated at the door. It says which
// models are merged, which genes the optimiser controls, what it maximises and which gates a candidate must
// clear. Checks that need other files (the suite's task list, the models' layer count) are the campaign's.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { editDistance, EvomergeError } from '../../errors.ts';
import { parseSelection, type Selection } from '../campaign/selection.ts';
import { parseGateSpecs, type NamedGateSpec } from '../../gates/gates.ts';
import { paretoPicks, type ParetoPick } from '../../gates/pareto.ts';
import { isOptimizerKind, optimizerKinds, type OptimizerKind } from '../optimizers/optimizer.ts';
import { parseM2n2Settings, type M2n2Settings } from './m2n2-settings.ts';

/** A parameter range for one kind of gene, e.g. `weight: {min: 0, max: 1.5}`. */
export interface GeneRange {
  readonly min: number;
  readonly max: number;
}

/** The `genome:` of a data-flow space (search/data-flow.ts). */
export interface DataFlowGenome {
  /** r: how many times the sequence of A's then B's layers is repeated (the paper: 3). */
  readonly repeats: number;
  /** The range of each W_ij; 1 is the neutral value and the optimiser's start. */
  readonly scales: GeneRange;
  /** matrix: one W_ij gene per pair of layers; none: every hop at scale 1 (a plain layer splice). */
  readonly scaleModel: 'matrix' | 'none';
}

/** How transformer blocks are grouped: one gene set per group of contiguous layers. */
export type LayerGroups = number | 'per_layer';

export interface ObjectiveTerm {
  readonly task: string;
  /** The metric maximised; defaults to the task's own metric. `answer_logprob` is the continuous fitness. */
  readonly metric?: string;
  readonly weight: number;
  /** A source's name: the term is then the share of that source's gain over the base that the candidate keeps,
   *  (score − base) / (source − base) on the same split. */
  readonly shareOf?: string;
}

export interface SourceModel {
  /** Short name used by gates and reports (the folder name unless given). */
  readonly name: string;
  /** Absolute folder path. */
  readonly path: string;
}

export interface SearchSpace {
  readonly file: string;
  readonly name: string;
  readonly baseModel: SourceModel;
  readonly models: readonly SourceModel[];
  /** Absolute path of the eval suite YAML. */
  readonly suite: string;
  /** Absolute path of the ONNX graph, when the space overrides the suite's. */
  readonly graph?: string;
  readonly genome: {
    readonly layerGroups: LayerGroups;
    /** Separate gene sets for tensors whose names contain these substrings (mergekit filters). */
    readonly filters: readonly string[];
    /** Merge methods the search chooses among: a categorical gene. */
    readonly methods: readonly string[];
    /** Ranges of the per-model genes (weight, density, …) and of method-wide genes (t). */
    readonly ranges: Readonly<Record<string, GeneRange>>;
    /** Method-wide parameters held fixed (normalize, lambda, rescale…). */
    readonly fixed: Readonly<Record<string, number | boolean | string>>;
    /**
     * genome.method_models: the names of the models a method merges, when not all of them (nearswap and
     * arcee_fusion merge one model into the base, nuslerp two). Absent for a method: every model.
     */
    readonly methodModels?: Readonly<Record<string, readonly string[]>>;
  };
  readonly objective: readonly ObjectiveTerm[];
  readonly gates: readonly NamedGateSpec[];
  /** items: search candidates stop once this many eval items (summed over the measures, fit and val) are scored. */
  readonly budget: { readonly candidates?: number; readonly minutes?: number; readonly items?: number };
  readonly optimizer: OptimizerKind;
  readonly populationSize?: number;
  /** optimizer: grid — values per continuous gene (1: the range centres only, so the grid is the method gene). */
  readonly gridPoints?: number;
  /** optimizer: m2n2's settings (the `m2n2:` block). */
  readonly m2n2?: M2n2Settings;
  readonly seed: number;
  readonly workers: number;
  /** References merged and scored alongside the sources: un-optimised merges (equal weights). */
  readonly references: readonly ReferenceMerge[];
  /** Score only the first N items of each eval file (quick trial campaigns and tests); absent = all. */
  readonly evalLimit?: number;
  /** How the final pick is chosen and how fit items are spent (absent: best kept by fit, every item). */
  readonly selection?: Selection;
  /** genome.kind: data_flow — the search evolves a path through the layers of models[0] (A) and models[1] (B)
   *  instead of merge parameters (`genome` then holds no genes of its own). */
  readonly dataFlow?: DataFlowGenome;
  /** `objective_mode: pareto`: the objective's terms are separate objectives (optimizer nsga2), and the final pick
   *  is chosen from the front by `pareto_pick`. Absent: the weighted sum (`objective_mode: weighted`). */
  readonly pareto?: { readonly pick: ParetoPick };
}

/** An un-optimised merge to compare the search against, e.g. TIES with density 0.5 and equal weights. */
export interface ReferenceMerge {
  readonly name: string;
  readonly method: string;
  readonly weight: number;
  readonly density?: number;
  /** Set when the entry listed several weights: the entry's name. Of the group, the member with the best fit
   *  objective is the rival (one λ chosen on fit); the others are shown, not compared with. */
  readonly group?: string;
}

const TOP_KEYS = [
  'name',
  'base_model',
  'models',
  'suite',
  'graph',
  'genome',
  'objective',
  'gates',
  'budget',
  'optimizer',
  'population_size',
  'grid_points',
  'seed',
  'workers',
  'references',
  'eval_limit',
  'selection',
  'm2n2',
  'objective_mode',
  'pareto_pick',
];
const GENOME_KEYS = ['kind', 'layer_groups', 'filters', 'methods', 'parameters', 'fixed', 'method_models'];
const DATA_FLOW_KEYS = ['kind', 'repeats', 'scales', 'scale_model'];
const GENOME_KINDS = ['parameters', 'data_flow'];

type Doc = Record<string, unknown>;

/** Reads and validates a search-space YAML. Paths inside are resolved relative to the file's folder. */
export function parseSpaceFile(file: string): SearchSpace {
  if (!existsSync(file)) throw new EvomergeError('space.missing_file', 'search space file not found', { file });
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new EvomergeError('space.bad_yaml', `not valid YAML: ${(err as Error).message.split('\n')[0]}`, { file });
  }
  return parseSpace(doc, file);
}

export function parseSpace(doc: unknown, file: string): SearchSpace {
  const dir = path.dirname(path.resolve(file));
  const fail = (code: string, field: string, what: string): never => {
    throw new EvomergeError(code, what, { file, field });
  };
  const top = asObject(doc, file, '(top level)');
  checkKeys(top, TOP_KEYS, file, '');

  // -- sources
  const modelPath = (value: unknown, field: string): SourceModel => {
    let name: string | undefined;
    let rel: unknown = value;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const o = value as Doc;
      checkKeys(o, ['name', 'model'], file, field);
      rel = o.model;
      if (o.name !== undefined) name = asString(o.name, file, `${field}.name`);
    }
    const p = path.resolve(dir, asString(rel, file, field));
    if (!existsSync(p)) fail('space.missing_model', field, `model folder not found: ${p}`);
    return { name: name ?? path.basename(p), path: p };
  };
  const baseModel = modelPath(required(top, 'base_model', file), 'base_model');
  const modelsRaw = required(top, 'models', file);
  if (!Array.isArray(modelsRaw) || modelsRaw.length === 0)
    fail('space.bad_value', 'models', 'expected a non-empty list of model folders');
  const models = (modelsRaw as unknown[]).map((m, i) => modelPath(m, `models[${i}]`));
  const names = new Set<string>(['base']);
  models.forEach((m, i) => {
    if (names.has(m.name))
      fail(
        'space.duplicate_model',
        `models[${i}]`,
        `model name "${m.name}" is used twice; give each model a distinct name`,
      );
    names.add(m.name);
  });

  const suite = path.resolve(dir, asString(required(top, 'suite', file), file, 'suite'));
  if (!existsSync(suite)) fail('space.missing_file', 'suite', `eval suite not found: ${suite}`);
  let graph: string | undefined;
  if (top.graph === 'auto') graph = 'auto';
  else if (top.graph !== undefined) {
    graph = path.resolve(dir, asString(top.graph, file, 'graph'));
    if (!existsSync(graph)) fail('space.missing_file', 'graph', `ONNX graph not found: ${graph}`);
  }

  // -- genome
  const g = asObject(required(top, 'genome', file), file, 'genome');
  const kind = g.kind === undefined ? 'parameters' : asString(g.kind, file, 'genome.kind');
  if (!GENOME_KINDS.includes(kind))
    fail('space.bad_value', 'genome.kind', `unknown kind "${kind}"; expected one of: ${GENOME_KINDS.join(', ')}`);
  let dataFlow: DataFlowGenome | undefined;
  if (kind === 'data_flow') {
    checkKeys(g, DATA_FLOW_KEYS, file, 'genome');
    dataFlow = parseDataFlowGenome(g, file);
    if (models.length !== 2)
      fail('space.bad_value', 'models', 'a data-flow search takes exactly two models: A (embeddings, head) and B');
    if (graph !== undefined && graph !== 'auto')
      fail('space.bad_value', 'graph', 'a data-flow search builds its graph per path (graph: auto); remove graph:');
    graph = 'auto';
  }
  const genome = dataFlow
    ? { layerGroups: 1 as LayerGroups, filters: [], methods: [], ranges: {}, fixed: {} }
    : parseParameterGenome(g, file);
  for (const [method, list] of Object.entries(genome.methodModels ?? {})) {
    list.forEach((name, i) => {
      if (!models.some((m) => m.name === name))
        fail(
          'space.bad_value',
          `genome.method_models.${method}[${i}]`,
          `unknown model "${name}"; expected one of models: ${models.map((m) => m.name).join(', ')}`,
        );
    });
  }

  // -- objective
  const objRaw = required(top, 'objective', file);
  if (!Array.isArray(objRaw) || objRaw.length === 0)
    fail('space.bad_value', 'objective', 'expected a non-empty list of {task, metric?, weight?}');
  const objective = (objRaw as unknown[]).map((o, i): ObjectiveTerm => {
    const field = `objective[${i}]`;
    const t = asObject(o, file, field);
    checkKeys(t, ['task', 'metric', 'weight', 'share_of'], file, field);
    const shareOf = t.share_of === undefined ? undefined : asString(t.share_of, file, `${field}.share_of`);
    if (shareOf !== undefined && (shareOf === 'base' || !names.has(shareOf))) {
      fail(
        'space.unknown_source',
        `${field}.share_of`,
        `unknown source "${shareOf}"; expected one of the models: ${models.map((m) => m.name).join(', ')}`,
      );
    }
    return {
      task: asString(required(t, 'task', file, field), file, `${field}.task`),
      metric: t.metric === undefined ? undefined : asString(t.metric, file, `${field}.metric`),
      weight: t.weight === undefined ? 1 : asNumber(t.weight, file, `${field}.weight`),
      ...(shareOf !== undefined ? { shareOf } : {}),
    };
  });

  // -- gates (their rules are gates/gates.ts's; task names are checked against the suite with the measures)
  const gates = parseGateSpecs(top.gates ?? [], { sources: [...names], base: 'base' }, { file });

  // -- budget and run settings
  const budgetDoc = top.budget === undefined ? {} : asObject(top.budget, file, 'budget');
  checkKeys(budgetDoc, ['candidates', 'minutes', 'items'], file, 'budget');
  const budget = {
    candidates:
      budgetDoc.candidates === undefined ? undefined : asPositiveInt(budgetDoc.candidates, file, 'budget.candidates'),
    minutes: budgetDoc.minutes === undefined ? undefined : asNumber(budgetDoc.minutes, file, 'budget.minutes'),
    ...(budgetDoc.items !== undefined ? { items: asPositiveInt(budgetDoc.items, file, 'budget.items') } : {}),
  };
  if (budget.candidates === undefined && budget.minutes === undefined && budget.items === undefined)
    fail('space.bad_value', 'budget', 'give budget.candidates, budget.minutes and/or budget.items');
  const optimizerName = top.optimizer === undefined ? 'cmaes' : asString(top.optimizer, file, 'optimizer');
  if (top.grid_points !== undefined && optimizerName !== 'grid')
    fail('space.bad_value', 'grid_points', `grid_points applies to optimizer: grid, not ${optimizerName}`);
  const optimizer: OptimizerKind = isOptimizerKind(optimizerName)
    ? optimizerName
    : fail(
        'space.bad_value',
        'optimizer',
        `unknown optimizer "${optimizerName}"; expected one of: ${optimizerKinds.join(', ')}`,
      );

  const pareto = parseParetoMode(top, optimizer, objective.length, file);

  const refsRaw = top.references ?? [];
  if (!Array.isArray(refsRaw))
    fail('space.bad_value', 'references', 'expected a list of {name, method, weight, density?}');
  const references = (refsRaw as unknown[]).flatMap((o, i): ReferenceMerge[] => {
    const field = `references[${i}]`;
    const t = asObject(o, file, field);
    checkKeys(t, ['name', 'method', 'weight', 'density'], file, field);
    const name = asString(required(t, 'name', file, field), file, `${field}.name`);
    const method = asString(required(t, 'method', file, field), file, `${field}.method`);
    const density = t.density === undefined ? undefined : asNumber(t.density, file, `${field}.density`);
    // weight: [a, b, …] — one merge per weight; the best on the fit objective is the reference (λ chosen on fit)
    if (Array.isArray(t.weight)) {
      if (t.weight.length < 2)
        fail('space.bad_value', `${field}.weight`, 'a list of weights needs at least two (the best on fit is chosen)');
      return (t.weight as unknown[]).map((w, k) => ({
        name: `${name} w=${asNumber(w, file, `${field}.weight[${k}]`)}`,
        method,
        weight: w as number,
        density,
        group: name,
      }));
    }
    return [
      { name, method, weight: t.weight === undefined ? 1 : asNumber(t.weight, file, `${field}.weight`), density },
    ];
  });

  return {
    file: path.resolve(file),
    name: top.name === undefined ? path.basename(file).replace(/\.ya?ml$/, '') : asString(top.name, file, 'name'),
    baseModel: { name: 'base', path: baseModel.path },
    models,
    suite,
    graph,
    genome,
    objective,
    gates,
    budget,
    optimizer,
    populationSize:
      top.population_size === undefined ? undefined : asPositiveInt(top.population_size, file, 'population_size'),
    ...(top.grid_points !== undefined ? { gridPoints: asPositiveInt(top.grid_points, file, 'grid_points') } : {}),
    seed: top.seed === undefined ? 0 : asNonNegativeInt(top.seed, file, 'seed'),
    workers: top.workers === undefined ? 1 : asPositiveInt(top.workers, file, 'workers'),
    references,
    evalLimit: top.eval_limit === undefined ? undefined : asPositiveInt(top.eval_limit, file, 'eval_limit'),
    ...(top.selection !== undefined ? { selection: parseSelection(top.selection, file) } : {}),
    ...(top.m2n2 !== undefined ? { m2n2: parseM2n2Settings(top.m2n2, file, optimizer) } : {}),
    ...(dataFlow ? { dataFlow } : {}),
    ...(pareto ? { pareto } : {}),
  };
}

/** `objective_mode` (weighted | pareto) and `pareto_pick`; pareto needs a multi-objective optimiser and the
 *  multi-objective optimiser needs pareto. Absent for weighted, so a weighted space's identity is unchanged. */
function parseParetoMode(top: Doc, optimizer: OptimizerKind, terms: number, file: string): SearchSpace['pareto'] {
  const fail = (field: string, what: string): never => {
    throw new EvomergeError('space.bad_value', what, { file, field });
  };
  const mode = top.objective_mode === undefined ? 'weighted' : asString(top.objective_mode, file, 'objective_mode');
  if (mode !== 'weighted' && mode !== 'pareto')
    fail('objective_mode', `unknown mode "${mode}"; expected one of: weighted, pareto`);
  if (mode === 'weighted') {
    if (top.pareto_pick !== undefined) fail('pareto_pick', 'applies to objective_mode: pareto only');
    if (optimizer === 'nsga2')
      fail('optimizer', 'nsga2 is a multi-objective optimiser: it needs objective_mode: pareto');
    return undefined;
  }
  if (optimizer !== 'nsga2')
    fail('objective_mode', `pareto needs a multi-objective optimiser: set optimizer: nsga2 (got ${optimizer})`);
  if (terms < 2) fail('objective_mode', `pareto needs at least two objective terms (got ${terms})`);
  const pick = top.pareto_pick === undefined ? 'weighted' : asString(top.pareto_pick, file, 'pareto_pick');
  if (!(paretoPicks as readonly string[]).includes(pick))
    fail('pareto_pick', `unknown rule "${pick}"; expected one of: ${paretoPicks.join(', ')}`);
  return { pick: pick as ParetoPick };
}

/** The genome of a merge-parameter search: layer groups, filters, methods, gene ranges, fixed values. */
function parseParameterGenome(g: Doc, file: string): SearchSpace['genome'] {
  const fail = (code: string, field: string, what: string): never => {
    throw new EvomergeError(code, what, { file, field });
  };
  checkKeys(g, GENOME_KEYS, file, 'genome');
  let layerGroups: LayerGroups = 1;
  if (g.layer_groups !== undefined) {
    if (g.layer_groups === 'per_layer') layerGroups = 'per_layer';
    else if (Number.isInteger(g.layer_groups) && (g.layer_groups as number) >= 1)
      layerGroups = g.layer_groups as number;
    else
      fail(
        'space.bad_value',
        'genome.layer_groups',
        `expected a positive integer or "per_layer", got ${JSON.stringify(g.layer_groups)}`,
      );
  }
  const filters = g.filters === undefined ? [] : asStringList(g.filters, file, 'genome.filters');
  const methods = asStringList(required(g, 'methods', file, 'genome'), file, 'genome.methods');
  if (methods.length === 0) fail('space.bad_value', 'genome.methods', 'expected at least one merge method');
  const ranges: Record<string, GeneRange> = {};
  const params = asObject(required(g, 'parameters', file, 'genome'), file, 'genome.parameters');
  for (const [key, value] of Object.entries(params)) {
    const field = `genome.parameters.${key}`;
    const r = asObject(value, file, field);
    checkKeys(r, ['min', 'max'], file, field);
    const min = asNumber(required(r, 'min', file, field), file, `${field}.min`);
    const max = asNumber(required(r, 'max', file, field), file, `${field}.max`);
    if (min > max) fail('space.range_inverted', field, `min ${min} is greater than max ${max}`);
    ranges[key] = { min, max };
  }
  if (!ranges.weight) fail('space.bad_value', 'genome.parameters.weight', 'a weight range is required');
  const fixed: Record<string, number | boolean | string> = {};
  if (g.fixed !== undefined) {
    for (const [key, value] of Object.entries(asObject(g.fixed, file, 'genome.fixed'))) {
      if (typeof value !== 'number' && typeof value !== 'boolean' && typeof value !== 'string') {
        fail('space.bad_value', `genome.fixed.${key}`, 'expected a number, a boolean or a string');
      }
      fixed[key] = value as number | boolean | string;
    }
  }

  let methodModels: Record<string, string[]> | undefined;
  if (g.method_models !== undefined) {
    methodModels = {};
    for (const [method, list] of Object.entries(asObject(g.method_models, file, 'genome.method_models'))) {
      const field = `genome.method_models.${method}`;
      if (!methods.includes(method))
        fail('space.bad_value', field, `"${method}" is not in genome.methods (${methods.join(', ')})`);
      const names = asStringList(list, file, field);
      if (names.length === 0) fail('space.bad_value', field, 'expected at least one model name');
      methodModels[method] = names;
    }
  }

  return { layerGroups, filters, methods, ranges, fixed, ...(methodModels ? { methodModels } : {}) };
}

/** genome.kind: data_flow — repeats (r, default 3), the range of the scales (default 0…2), scale_model. */
function parseDataFlowGenome(g: Doc, file: string): DataFlowGenome {
  const repeats = g.repeats === undefined ? 3 : asPositiveInt(g.repeats, file, 'genome.repeats');
  if (g.scale_model !== undefined && g.scale_model !== 'matrix' && g.scale_model !== 'none')
    throw new EvomergeError(
      'space.bad_value',
      `${JSON.stringify(g.scale_model)} is not supported; expected matrix (one W_ij gene per pair of layers) or ` +
        `none (every scale 1)`,
      { file, field: 'genome.scale_model' },
    );
  const scaleModel = (g.scale_model ?? 'matrix') as DataFlowGenome['scaleModel'];
  if (scaleModel === 'none' && g.scales !== undefined)
    throw new EvomergeError('space.bad_value', 'scale_model: none has no scales to range over', {
      file,
      field: 'genome.scales',
    });
  let scales = { min: 0, max: 2 };
  if (g.scales !== undefined) {
    const r = asObject(g.scales, file, 'genome.scales');
    checkKeys(r, ['min', 'max'], file, 'genome.scales');
    scales = {
      min: asNumber(required(r, 'min', file, 'genome.scales'), file, 'genome.scales.min'),
      max: asNumber(required(r, 'max', file, 'genome.scales'), file, 'genome.scales.max'),
    };
    if (!(scales.min < scales.max))
      throw new EvomergeError('space.range_inverted', `min ${scales.min} must be below max ${scales.max}`, {
        file,
        field: 'genome.scales',
      });
  }
  return { repeats, scales, scaleModel };
}

// -- small validators: each names the file and the field

function asObject(v: unknown, file: string, field: string): Doc {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new EvomergeError('space.bad_value', 'expected a mapping', { file, field });
  return v as Doc;
}

function required(o: Doc, key: string, file: string, parent = ''): unknown {
  if (o[key] === undefined || o[key] === null) {
    throw new EvomergeError('space.missing_key', 'required key is missing', {
      file,
      field: parent ? `${parent}.${key}` : key,
    });
  }
  return o[key];
}

function checkKeys(o: Doc, allowed: readonly string[], file: string, parent: string): void {
  for (const key of Object.keys(o)) {
    if (allowed.includes(key)) continue;
    const near = allowed.find((a) => editDistance(a, key) <= 2);
    const field = parent ? `${parent}.${key}` : key;
    throw new EvomergeError(
      'space.unknown_key',
      `unknown key${near ? `; did you mean "${near}"?` : `; expected one of: ${allowed.join(', ')}`}`,
      { file, field },
    );
  }
}

function asString(v: unknown, file: string, field: string): string {
  if (typeof v !== 'string' || v.length === 0)
    throw new EvomergeError('space.bad_value', `expected a string, got ${JSON.stringify(v)}`, { file, field });
  return v;
}

function asStringList(v: unknown, file: string, field: string): string[] {
  if (!Array.isArray(v)) throw new EvomergeError('space.bad_value', 'expected a list of strings', { file, field });
  return v.map((s, i) => asString(s, file, `${field}[${i}]`));
}

function asNumber(v: unknown, file: string, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new EvomergeError('space.bad_value', `expected a finite number, got ${JSON.stringify(v)}`, { file, field });
  return v;
}

function asPositiveInt(v: unknown, file: string, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 1)
    throw new EvomergeError('space.bad_value', `expected a positive integer, got ${JSON.stringify(v)}`, {
      file,
      field,
    });
  return v as number;
}

function asNonNegativeInt(v: unknown, file: string, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 0)
    throw new EvomergeError('space.bad_value', `expected a non-negative integer, got ${JSON.stringify(v)}`, {
      file,
      field,
    });
  return v as number;
}
