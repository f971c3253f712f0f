// Data-flow-space (DFS) search, after Sakana's evolutionary model merge (arXiv 2403.13187 §3.2): the weights of
// two models A and B stay as they are; the genome decides which of their layers a token passes through, in
// which order, and by how much the hidden state is scaled on each hop.
//
// Layout: A's layers then B's (M in all), repeated r times: T = M·r slots. Gene t (an indicator) includes slot
// t's layer in the path when it is > 0. A's embeddings, final norm, lm_head and tokenizer are used, and A's
// first and last layers start and end the path (added when the included slots do not already). A scaling matrix
// W (M × M genes) scales the hidden state passed from layer i to layer j by W_ij; the first layer reads the
// embeddings unscaled (scale_model: none leaves every scale at 1: a plain layer splice). The optimiser starts
// with A's first-repetition indicators at 2σ (likely included), the others at 0, and W at 1.
//
// A candidate's "recipe" is its path: `{data_flow: {models: [A, B], path: [{model, layer, scale}, …]}}`, with
// scales rounded to 4 decimals; only the path and the scales of the hops it takes enter it, so two genomes that
// give the same path and scales share one content hash. It is evaluated without a merge or a checkpoint (the
// graph builder's slots, bound to both checkpoints' tensors) and exported as a checkpoint whose layers follow it.
import path from 'node:path';
import { EvomergeError } from '../../errors.ts';
import { openModelDir } from '../../checkpoint/model-dir.ts';
import { parseDecoderConfig } from '../../graph/decoder-config.ts';
import { buildDecoderGraph, checkCheckpointShapes } from '../../graph/decoder-graph.ts';
import { SlotTensors } from '../../graph/slot-tensors.ts';
import type { GenomeDomain, GenomeValues } from './genome.ts';
import type { DataFlowDoc, PathStep } from './recipe-doc.ts';
import type { SearchSpace, SourceModel } from './space.ts';

/** A data-flow candidate as recorded: the model folders (A first) and the path. */
export interface DataFlowPath {
  readonly models: readonly string[];
  readonly path: readonly PathStep[];
}

export interface DataFlowLayout {
  readonly domain: GenomeDomain;
  /** The optimiser's initial mean (domain units). */
  readonly x0: readonly number[];
  /** Layers of A and of B. */
  readonly layers: readonly [number, number];
  readonly repeats: number;
}

/** Indicator genes range over [−1, 1]: included when > 0; σ0 = 1/6 of the range, so 2σ = 2/3. */
const INDICATOR = { lower: -1, upper: 1 };
const INDICATOR_START = (2 * (INDICATOR.upper - INDICATOR.lower)) / 6;

/** The M = layersA + layersB layers in the slot order, as (model, layer). */
function layerOf(g: number, layersA: number): { model: number; layer: number } {
  return g < layersA ? { model: 0, layer: g } : { model: 1, layer: g - layersA };
}

export function buildDataFlowLayout(space: SearchSpace, layersA: number, layersB: number): DataFlowLayout {
  const flow = space.dataFlow!;
  const [a, b] = space.models.map((m) => m.name) as [string, string];
  const label = (g: number) => {
    const l = layerOf(g, layersA);
    return `${l.model === 0 ? a : b}.${l.layer}`;
  };
  const M = layersA + layersB;
  const continuous: GenomeDomain['continuous'][number][] = [];
  const x0: number[] = [];
  for (let r = 0; r < flow.repeats; r++) {
    for (let g = 0; g < M; g++) {
      continuous.push({ name: `include.r${r + 1}.${label(g)}`, ...INDICATOR });
      x0.push(r === 0 && g < layersA ? INDICATOR_START : 0);
    }
  }
  const neutral = Math.min(flow.scales.max, Math.max(flow.scales.min, 1));
  for (let i = 0; i < (flow.scaleModel === 'matrix' ? M : 0); i++) {
    for (let j = 0; j < M; j++) {
      continuous.push({ name: `scale.${label(i)}>${label(j)}`, lower: flow.scales.min, upper: flow.scales.max });
      x0.push(neutral);
    }
  }
  return { domain: { continuous, categorical: [] }, x0, layers: [layersA, layersB], repeats: flow.repeats };
}

/** Decodes a solution into its path (the recipe document) and the genes a person reads: the path in words. */
export function decodeDataFlow(
  layout: DataFlowLayout,
  space: SearchSpace,
  x: readonly number[],
): { genome: GenomeValues; recipe: DataFlowDoc } {
  const [layersA, layersB] = layout.layers;
  const M = layersA + layersB;
  const T = M * layout.repeats;
  const order: number[] = [];
  for (let t = 0; t < T; t++) if (x[t]! > 0) order.push(t % M);
  if (order[0] !== 0) order.unshift(0);
  if (order[order.length - 1] !== layersA - 1) order.push(layersA - 1);
  const domain = layout.domain.continuous;
  const steps: PathStep[] = order.map((g, k) => {
    if (k === 0 || domain.length === T) return { ...layerOf(g, layersA), scale: 1 };
    const i = T + order[k - 1]! * M + g;
    const gene = domain[i]!;
    return { ...layerOf(g, layersA), scale: round4(Math.min(gene.upper, Math.max(gene.lower, x[i]!))) };
  });
  const names = space.models.map((m) => m.name);
  const genome: GenomeValues = {
    path: steps.map((s) => `${names[s.model]}.${s.layer}×${s.scale}`).join(' '),
    layers: steps.length,
  };
  return {
    genome,
    recipe: dataFlowRecipe(
      space.models.map((m) => m.path),
      steps,
    ),
  };
}

export function dataFlowRecipe(models: readonly string[], steps: readonly PathStep[]): DataFlowDoc {
  return { data_flow: { models: [...models], path: steps.map((s) => ({ ...s })) } };
}

/** Reads a data-flow document (a recorded candidate or an export's data_flow.yaml); `file` names it in errors,
 *  `resolve` turns its model entries into folders. */
export function parseDataFlowDoc(
  doc: object,
  file: string,
  resolve: (model: string) => string = (m) => m,
): DataFlowPath {
  const fail = (field: string, what: string): never => {
    throw new EvomergeError('recipe.bad_data_flow', what, { file, field });
  };
  const keys = Object.keys(doc);
  if (keys.length !== 1) fail(keys.find((k) => k !== 'data_flow') ?? 'data_flow', 'unknown key beside data_flow');
  const flow = (doc as { data_flow?: unknown }).data_flow as Record<string, unknown> | null;
  if (flow === null || typeof flow !== 'object' || Array.isArray(flow)) return fail('data_flow', 'expected a mapping');
  for (const k of Object.keys(flow))
    if (k !== 'models' && k !== 'path') fail(`data_flow.${k}`, 'unknown key; expected models, path');
  const models = flow.models;
  if (!Array.isArray(models) || models.length !== 2 || models.some((m) => typeof m !== 'string' || m === ''))
    fail('data_flow.models', 'expected two model folders (A, whose embeddings and head are used, then B)');
  const raw = flow.path;
  if (!Array.isArray(raw) || raw.length === 0)
    return fail('data_flow.path', 'expected a non-empty list of {model, layer, scale}');
  const steps = raw.map((s, i): PathStep => {
    const field = `data_flow.path[${i}]`;
    if (s === null || typeof s !== 'object' || Array.isArray(s)) return fail(field, 'expected {model, layer, scale}');
    const o = s as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (!['model', 'layer', 'scale'].includes(k)) fail(`${field}.${k}`, 'unknown key; expected model, layer, scale');
    if (o.model !== 0 && o.model !== 1)
      fail(`${field}.model`, `expected 0 (A) or 1 (B), got ${JSON.stringify(o.model)}`);
    if (!Number.isInteger(o.layer) || (o.layer as number) < 0)
      fail(`${field}.layer`, `expected a layer index, got ${JSON.stringify(o.layer)}`);
    const scale = o.scale ?? 1;
    if (typeof scale !== 'number' || !Number.isFinite(scale))
      fail(`${field}.scale`, `expected a finite number, got ${JSON.stringify(scale)}`);
    return { model: o.model as number, layer: o.layer as number, scale: scale as number };
  });
  return { models: (models as string[]).map(resolve), path: steps };
}

function round4(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}

/**
 * Checks, before a campaign opens its database, that A's config.json describes a decoder evomerge builds and
 * that B's tensors fit it: every layer of both, as slots of one graph, against the shapes A's config implies.
 * Returns the layer counts of A and B.
 */
export function checkDataFlowModels(space: SearchSpace): [number, number] {
  const [a, b] = space.models as [SourceModel, SourceModel];
  const A = openModelDir(a.path);
  const B = openModelDir(b.path);
  try {
    const config = parseDecoderConfig(A.config, path.join(a.path, 'config.json'));
    const layersB = B.config.num_hidden_layers;
    if (!Number.isSafeInteger(layersB) || (layersB as number) < 1)
      throw new EvomergeError('space.bad_model', 'config.json has no positive num_hidden_layers', {
        file: path.join(b.path, 'config.json'),
        field: 'num_hidden_layers',
      });
    if (layersB !== config.layers)
      throw new EvomergeError(
        'space.bad_model',
        `${layersB} layers, A (${a.name}) has ${config.layers}: a data-flow search takes two models of one shape`,
        { file: path.join(b.path, 'config.json'), field: 'num_hidden_layers' },
      );
    const slots = [0, 1].flatMap((source) => Array.from({ length: config.layers }, (_, layer) => ({ source, layer })));
    const built = buildDecoderGraph(config, { slots });
    checkCheckpointShapes(config, built.weights, new SlotTensors([A.tensors, B.tensors]));
    return [config.layers, layersB as number];
  } finally {
    A.close();
    B.close();
  }
}
