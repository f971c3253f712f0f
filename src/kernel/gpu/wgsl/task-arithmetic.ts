// WGSL for the task-arithmetic family (mergekit generalized_task_arithmetic.py): per element, τᵢ = xᵢ − base,
// keep mask (none / DARE draw / precomputed bit mask), rescale, δᵢ = wᵢ·trim(τᵢ), sign consensus, normalise,
// lambda, out = base + mixed. Also the L1 norms of τᵢ and trim(τᵢ) for mergekit's rescale (sparsify.py).

import type { Sparsification } from '../../kernel.ts';
import { WGSL_CHUNK } from './chunk.ts';
import type { ReduceShaderParts } from './reduce.ts';
import { WGSL_RNG } from './rng.ts';
import { sourceBinding, type SourceFormat } from './source.ts';

/** Bytes of the Params uniform header and of one ModelParams entry. */
export const TA_HEADER_BYTES = 16;
export const TA_MODEL_BYTES = 32;

export interface TaskArithmeticShape {
  readonly models: number;
  readonly sparsification: Sparsification;
  readonly consensus: boolean;
  readonly normalize: boolean;
  /** Storage formats of the base and of each model's binding (DELLA: its f32 trim(τ) values). */
  readonly baseFormat: SourceFormat;
  readonly formats: readonly SourceFormat[];
}

/** Whether the keep decision reads a precomputed bit mask (rather than nothing or the RNG). */
export function usesMaskBuffer(s: Sparsification): boolean {
  return s === 'magnitude' || s === 'magnitude_outliers';
}

function paramsDecl(models: number): string {
  return /* wgsl */ `
struct ModelParams {
  weight: f32,
  scale: f32,
  thresh: u32,
  masked: u32,
  modelIndex: u32,
  maskBase: u32,
  div: f32,
  pad1: u32,
}
struct Params {
  lambda: f32,
  divisor: f32,
  key0: u32,
  key1: u32,
  models: array<ModelParams, ${models}>,
}
`;
}

/** `fn keep(m, g) -> bool`: is element g of model m's task vector kept by the sparsifier? */
function keepFn(s: Sparsification): string {
  if (s === 'none') return 'fn keep(m: u32, g: u32) -> bool { return true; }';
  if (s === 'random') {
    // rng.ts: kept iff (drawU32 >>> 8) < keepThreshold(density)
    return `${WGSL_RNG}
fn keep(m: u32, g: u32) -> bool {
  return (draw_u32(params.key0, params.key1, params.models[m].modelIndex, g) >> 8u) < params.models[m].thresh;
}`;
  }
  return `fn keep(m: u32, g: u32) -> bool {
  if (params.models[m].masked == 0u) { return true; }
  return ((masks[params.models[m].maskBase + (g >> 5u)] >> (g & 31u)) & 1u) == 1u;
}`;
}

/**
 * Bindings: 0 chunk, 1 params (uniform), 2 masks (magnitude / breadcrumbs only), 3 base, 4..4+N−1 the
 * models (for DELLA: their trim(τ) from the della pass), 4+N out.
 */
export function taskArithmeticShader(shape: TaskArithmeticShape): string {
  const n = shape.models;
  const decls: string[] = [];
  const body: string[] = [];
  const della = shape.sparsification === 'della_magprune';
  for (let m = 0; m < n; m++) {
    decls.push(sourceBinding(4 + m, `x${m}`, shape.formats[m]));
    if (della) {
      // DELLA: x${m} is bound to trim(τ) from the della pass; the L1 factor is applied as in CpuKernel.
      body.push(`let d${m} = (x${m}_at(i) * params.models[${m}].scale) * params.models[${m}].weight;`);
      continue;
    }
    // δ = w · trim(τ): sparsify with its rescale (τ·s or τ/density; one of the two is 1) first, then the
    // weight (generalized_task_arithmetic.py); the same float32 roundings as CpuKernel.
    body.push(
      `let d${m} = select(0.0, ((x${m}_at(i) - b) * params.models[${m}].scale) / params.models[${m}].div, keep(${m}u, ` +
        `g)) * params.models[${m}].weight;`,
    );
  }
  const deltas = Array.from({ length: n }, (_, m) => `d${m}`);
  let mix: string;
  if (shape.consensus) {
    // get_mask(method="sum"): elected sign of Σδ (ties → +); sign(δ) == elected; sign(0) = 0 never agrees.
    const agree = deltas.map((d, m) => `let a${m} = sign(${d}) == elected;`);
    const sum = deltas.map((d, m) => `select(0.0, ${d}, a${m})`).join(' + ');
    const div = deltas.map((_, m) => `select(0.0, params.models[${m}].weight, a${m})`).join(' + ');
    mix = `let total = ${deltas.join(' + ')};
  let elected = select(-1.0, 1.0, total >= 0.0);
  ${agree.join('\n  ')}
  var mixed = ${sum};
  ${
    shape.normalize
      ? `var divisor = ${div};
  if (divisor == 0.0) { divisor = 1.0; }
  mixed = mixed / divisor;`
      : ''
  }`;
  } else {
    mix = `var mixed = ${deltas.join(' + ')};
  ${shape.normalize ? 'mixed = mixed / params.divisor;' : ''}`;
  }
  return /* wgsl */ `
${WGSL_CHUNK}
${paramsDecl(n)}
@group(0) @binding(0) var<uniform> chunk: Chunk;
@group(0) @binding(1) var<uniform> params: Params;
${usesMaskBuffer(shape.sparsification) ? '@group(0) @binding(2) var<storage, read> masks: array<u32>;' : ''}
${sourceBinding(3, 'base', shape.baseFormat)}
${decls.join('\n')}
@group(0) @binding(${4 + n}) var<storage, read_write> out: array<f32>;

${della ? '' : keepFn(shape.sparsification)}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = workgroup_linear(wid, nwg) * 256u + lid.x;
  if (i >= chunk.count) { return; }
  let g = chunk.offset + i;
  let b = base_at(i);
  ${body.join('\n  ')}
  ${mix}
  if (params.lambda != 1.0) { mixed = mixed * params.lambda; }
  out[i] = b + mixed;
}
`;
}

/**
 * The reduction parts for the L1 rescale: for each model, Σ|τᵢ| and Σ|trim(τᵢ)| (sparsify.py
 * rescaled_masked_tensor, norm l1). Same bindings from 2 as the combine shader, without `out`.
 */
export function l1NormReduceParts(shape: TaskArithmeticShape): ReduceShaderParts {
  const n = shape.models;
  const decls = [
    paramsDecl(n),
    '@group(0) @binding(2) var<uniform> params: Params;',
    usesMaskBuffer(shape.sparsification) ? '@group(0) @binding(3) var<storage, read> masks: array<u32>;' : '',
    sourceBinding(4, 'base', shape.baseFormat),
  ];
  const prelude = ['let b = base_at(i);'];
  const terms: string[] = [];
  for (let m = 0; m < n; m++) {
    decls.push(sourceBinding(5 + m, `x${m}`, shape.formats[m]));
    prelude.push(`let t${m} = abs(x${m}_at(i) - b);`);
    terms.push(`t${m}`, `select(0.0, t${m}, keep(${m}u, g))`);
  }
  decls.push(keepFn(shape.sparsification));
  return { decls: decls.join('\n'), prelude: prelude.join('\n      '), terms };
}
