// The genome codec: one place that turns an optimiser's vector (continuous genes + the method gene) into a
// mergekit recipe, so any candidate can be reproduced with `evomerge merge`. Layer groups become mergekit
// filter lists (`layers.3.` matches exactly the tensors of block 3), so the recipe needs nothing mergekit lacks.
import { createHash } from 'node:crypto';
import { isMethodWide } from '../../merge/registry.ts';
import type { ReferenceMerge, SearchSpace } from './space.ts';
import type { MergeRecipeDoc, RecipeDoc } from './recipe-doc.ts';

/** What the optimiser sees: bounded continuous genes and categorical genes (here: the merge method). */
export interface GenomeDomain {
  readonly continuous: { readonly name: string; readonly lower: number; readonly upper: number }[];
  readonly categorical: { readonly name: string; readonly choices: string[] }[];
}

/** One cell of the genome: a set of tensors (a layer group, optionally one filter) sharing a gene set. */
interface Cell {
  readonly label: string;
  /** mergekit filter substrings selecting this cell's tensors; empty = the catch-all (non-layer tensors). */
  readonly filters: readonly string[];
}

export interface GenomeLayout {
  readonly cells: readonly Cell[];
  readonly domain: GenomeDomain;
  readonly space: SearchSpace;
}

/** Decoded genes, keyed the way a person reads them: `method`, `<cell>.<model>.<param>` and `<cell>.<param>`. */
export type GenomeValues = Record<string, number | string>;

/**
 * Builds the gene layout for a space on a model with `numLayers` transformer blocks.
 * Cells, in recipe filter order: for each layer group, one cell per `genome.filters` entry then the rest of
 * the group's tensors; last, the non-layer tensors (embeddings, final norm, lm_head) as their own group.
 */
export function buildLayout(space: SearchSpace, numLayers: number): GenomeLayout {
  const groups = space.genome.layerGroups === 'per_layer' ? numLayers : Math.min(space.genome.layerGroups, numLayers);
  const cells: Cell[] = [];
  for (let g = 0; g < groups; g++) {
    // contiguous, as even as possible: group g covers [floor(g·L/G), floor((g+1)·L/G))
    const from = Math.floor((g * numLayers) / groups);
    const to = Math.floor(((g + 1) * numLayers) / groups);
    const layers = Array.from({ length: to - from }, (_, i) => from + i);
    const label = groups === 1 ? 'layers' : to - from === 1 ? `layer${from}` : `layers${from}-${to - 1}`;
    for (const f of space.genome.filters)
      cells.push({ label: `${label}.${f}`, filters: layers.map((l) => `layers.${l}.${f}`) });
    cells.push({
      label: space.genome.filters.length ? `${label}.other` : label,
      filters: layers.map((l) => `layers.${l}.`),
    });
  }
  cells.push({ label: 'nonlayer', filters: [] });

  const continuous: GenomeDomain['continuous'][number][] = [];
  for (const cell of cells) {
    for (const [param, range] of Object.entries(space.genome.ranges)) {
      // per-model parameters vary per source model; method-wide ones (t, lambda: the registry says) are one per cell
      if (isMethodWide(param)) {
        continuous.push({ name: `${cell.label}.${param}`, lower: range.min, upper: range.max });
      } else {
        for (const m of space.models)
          continuous.push({ name: `${cell.label}.${m.name}.${param}`, lower: range.min, upper: range.max });
      }
    }
  }
  const categorical = space.genome.methods.length > 1 ? [{ name: 'method', choices: [...space.genome.methods] }] : [];
  return { cells, domain: { continuous, categorical }, space };
}

/** Which parameters each searchable method reads (mergekit's registry; others are left out of the recipe). */
export type MethodParameters = (method: string) => { perModel: readonly string[]; methodWide: readonly string[] };

/**
 * Decodes a solution into genes and a recipe document. Genes a method does not read (density under
 * task_arithmetic, say) are left out of the recipe, so two genomes that merge identically share one recipe
 * and one content hash, and are evaluated once.
 */
export function decodeGenome(
  layout: GenomeLayout,
  x: readonly number[],
  c: readonly number[],
  methodParameters: MethodParameters,
  campaignSeed: number,
): { genome: GenomeValues; recipe: MergeRecipeDoc } {
  const { space, cells, domain } = layout;
  const method = domain.categorical.length ? domain.categorical[0].choices[c[0]] : space.genome.methods[0];
  const genome: GenomeValues = { method };
  const value = new Map<string, number>();
  domain.continuous.forEach((gene, i) => {
    // 4 decimals: readable recipes, and near-identical proposals collapse onto one content hash
    const v = round4(Math.min(gene.upper, Math.max(gene.lower, x[i])));
    value.set(gene.name, v);
    genome[gene.name] = v;
  });
  const used = methodParameters(method);

  // A per-cell value as a mergekit filter list; the catch-all cell becomes the final `{value}` entry.
  const filterList = (key: (cell: Cell) => string) => {
    const list: { filter?: string; value: number }[] = [];
    for (const cell of cells) {
      const v = value.get(key(cell));
      if (v === undefined) continue;
      if (cell.filters.length === 0) list.push({ value: v });
      else for (const f of cell.filters) list.push({ filter: f, value: v });
    }
    return list;
  };

  const parameters: Record<string, unknown> = { ...space.genome.fixed };
  for (const p of used.methodWide) {
    if (space.genome.ranges[p]) parameters[p] = filterList((cell) => `${cell.label}.${p}`);
  }
  for (const key of Object.keys(parameters)) if (!used.methodWide.includes(key)) delete parameters[key];

  const models = modelsOf(space, method).map((m) => {
    const params: Record<string, unknown> = {};
    for (const p of used.perModel) {
      if (space.genome.ranges[p]) params[p] = filterList((cell) => `${cell.label}.${m.name}.${p}`);
    }
    return { model: m.path, parameters: params };
  });
  const recipe = finishRecipe(method, space, models, parameters, campaignSeed);
  return { genome, recipe };
}

/** An un-optimised reference merge (equal weights, one density) as a recipe document. */
export function referenceRecipe(
  space: SearchSpace,
  ref: ReferenceMerge,
  methodParameters: MethodParameters,
  campaignSeed: number,
): MergeRecipeDoc {
  const used = methodParameters(ref.method);
  const models = modelsOf(space, ref.method).map((m) => {
    const params: Record<string, unknown> = {};
    if (used.perModel.includes('weight')) params.weight = ref.weight;
    if (used.perModel.includes('density') && ref.density !== undefined) params.density = ref.density;
    return { model: m.path, parameters: params };
  });
  const parameters: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(space.genome.fixed)) if (used.methodWide.includes(k)) parameters[k] = v;
  return finishRecipe(ref.method, space, models, parameters, campaignSeed);
}

/** The models a method merges: those genome.method_models names for it, in the order of `models`; else all. */
function modelsOf(space: SearchSpace, method: string): SearchSpace['models'] {
  const only = space.genome.methodModels?.[method];
  return only === undefined ? space.models : space.models.filter((m) => only.includes(m.name));
}

function finishRecipe(
  method: string,
  space: SearchSpace,
  models: unknown[],
  parameters: Record<string, unknown>,
  campaignSeed: number,
): MergeRecipeDoc {
  const recipe: MergeRecipeDoc = { merge_method: method, base_model: space.baseModel.path, dtype: 'float32', models };
  if (Object.keys(parameters).length) recipe.parameters = parameters;
  // The DARE/DELLA seed is derived from the recipe itself: the same genome gets the same mask in any run, on
  // any machine (model folders enter by their names in the space, not by where they lie).
  recipe.random_seed = parseInt(
    sha256(`${campaignSeed}\n${canonicalJson(portableRecipe(recipe, space))}`).slice(0, 8),
    16,
  );
  return recipe;
}

/** The sources of a space by name: what a recipe's identity knows of its model folders. */
export type SourceNames = Pick<SearchSpace, 'baseModel' | 'models'>;

/**
 * A recipe with each model folder replaced by its name in the space. Two checkouts of one campaign at
 * different paths (a fresh clone, another host) then give every merge the same identity and DARE seed.
 */
export function portableRecipe<D extends RecipeDoc>(recipe: D, space: SourceNames): D {
  const names = new Map([space.baseModel, ...space.models].map((m) => [m.path, `source:${m.name}`]));
  const rename = (v: unknown): unknown => {
    if (typeof v === 'string') return names.get(v) ?? v;
    if (Array.isArray(v)) return v.map(rename);
    if (v !== null && typeof v === 'object')
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rename(x)]));
    return v;
  };
  return rename(recipe) as D;
}

/** The identity of a candidate: sha256 of its canonical, portable recipe (seed included). */
export function contentHash(recipe: RecipeDoc, space: SourceNames): string {
  return sha256(canonicalJson(portableRecipe(recipe, space)));
}

/** JSON with sorted object keys, so equal documents give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function round4(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}
