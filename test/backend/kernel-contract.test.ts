// The merge-kernel contract, run for every backend (describe.each): hand-checked vectors that any kernel
// must reproduce, then GPU ↔ CPU parity for every op (within 1e-6 relative per tensor, DARE masks identical),
// including a GPU kernel with a tiny chunk size so that chunk boundaries are crossed. GPU runs on whatever
// adapter Dawn finds (Mesa lavapipe in CI).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuKernel } from '../../src/kernel/cpu/cpu-kernel.ts';
import { GpuKernel } from '../../src/kernel/gpu/gpu-kernel.ts';
import { fusionStats } from '../../src/kernel/gpu/arcee-fusion.ts';
import type {
  MergeKernel,
  MergeOp,
  Rescale,
  SourceRef,
  Sparsification,
  TaskVectorInput,
  TensorJob,
} from '../../src/kernel/kernel.ts';
import { drawU32, keepThreshold, rngKey } from '../../src/kernel/rng.ts';
import { mulberry32 } from '../fixtures/seeded-random.ts';

/** Relative tolerance of GPU against CPU per tensor: max|gpu − cpu| / max|cpu|. */
const PARITY_TOLERANCE = 1e-6;
/**
 * multislerp, karcher and nuslerp take norms that the CPU kernel sums in torch's float32 lane order; on exactly-bf16
 * sources that order rounds the norms of these fixtures low by about 2.2e-6 (against float64), while the GPU's
 * tiled sums stay within about 1e-7, so there the kernels differ by the CPU's own rounding (measured ≤ 2.5e-6 on
 * lavapipe). Float32 sources keep PARITY_TOLERANCE.
 */
const SPHERE_BF16_TOLERANCE = 3e-6;
const SPHERE_OPS = new Set(['multislerp', 'karcher', 'nuslerp']);
/** A chunk of 8192 elements (the smallest allowed) makes the 20000-element fixture span three chunks. */
const TINY_CHUNK = 8192;

type Backend = 'cpu' | 'gpu' | 'gpu-chunked';

async function openKernel(backend: Backend): Promise<MergeKernel> {
  if (backend === 'cpu') return new CpuKernel();
  return GpuKernel.create({ allowSoftware: true, chunkElements: backend === 'gpu-chunked' ? TINY_CHUNK : undefined });
}

// ---- fixtures: deterministic pseudo-random tensors held in memory ----

class Zoo {
  private readonly tensors = new Map<string, Float32Array>();
  readonly reads: string[] = [];
  add(model: string, tensor: string, data: Float32Array): SourceRef {
    this.tensors.set(`${model}/${tensor}`, data);
    return { model, tensor };
  }
  read = (ref: SourceRef): Float32Array => {
    const t = this.tensors.get(`${ref.model}/${ref.tensor}`);
    if (t === undefined) throw new Error(`no tensor ${ref.model}/${ref.tensor}`);
    this.reads.push(`${ref.model}/${ref.tensor}`);
    return t;
  };
}

/**
 * base ~ N-ish(0, 1); each expert = base + τ with τ of scale 0.05. `levels` > 0: τ is quantised to that many
 * levels, so |τ| values repeat at any cut (16: ties everywhere, as with bf16 experts; 3000: a few per value).
 */
function family(
  zoo: Zoo,
  tensor: string,
  n: number,
  experts: number,
  seed: number,
  levels = 0,
  bf16 = false,
): { base: SourceRef; xs: SourceRef[] } {
  const rnd = mulberry32(seed);
  const base = new Float32Array(n);
  for (let e = 0; e < n; e++) base[e] = (rnd() + rnd() + rnd() - 1.5) * 0.8;
  if (bf16) toBf16(base);
  const xs: SourceRef[] = [];
  for (let m = 0; m < experts; m++) {
    const x = new Float32Array(n);
    for (let e = 0; e < n; e++) {
      let tau = (rnd() - 0.5) * 0.1;
      if (levels > 0) tau = Math.round(tau * levels * 10) / (levels * 10);
      x[e] = base[e] + tau;
    }
    if (bf16) toBf16(x);
    xs.push(zoo.add(`expert${m}`, tensor, x));
  }
  return { base: zoo.add('base', tensor, base), xs };
}

/** Truncates every value to bfloat16 in place (as a bf16 checkpoint upcast to float32 reads). */
function toBf16(values: Float32Array): void {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let e = 0; e < bits.length; e++) bits[e] = (bits[e] & 0xffff0000) >>> 0;
}

function tv(ref: SourceRef, m: number, over: Partial<TaskVectorInput> = {}): TaskVectorInput {
  return {
    ref,
    weight: [0.6, 0.3, -0.25, 0.9][m % 4],
    density: [0.3, 0.55, 0.7, 0.45][m % 4],
    gamma: 0.05,
    epsilon: 0.1,
    modelIndex: m + 1,
    ...over,
  };
}

function ta(
  name: string,
  f: { base: SourceRef; xs: SourceRef[] },
  sparsification: Sparsification,
  consensus: 'none' | 'sum',
  normalize: boolean,
  rescale: Rescale,
  lambda = 1,
  over: Partial<TaskVectorInput> = {},
): MergeOp {
  return {
    kind: 'task_arithmetic',
    base: f.base,
    inputs: f.xs.map((r, m) => tv(r, m, over)),
    sparsification,
    consensus,
    normalize,
    lambda,
    rescale,
    rng: rngKey(1234, name),
  };
}

interface Case {
  readonly label: string;
  readonly job: TensorJob;
}

/** Every op and option combination the parity suite covers, on the given tensor shape. */
function parityCases(zoo: Zoo, shape: number[], seed: number, bf16 = false): Case[] {
  const n = shape.reduce((a, b) => a * b, 1);
  const tag = shape.join('x') + (bf16 ? ' bf16' : '');
  const cases: Case[] = [];
  const add = (label: string, op: MergeOp, name: string) =>
    cases.push({ label: `${label} [${tag}]`, job: { name, shape, op } });
  const f3 = family(zoo, `t3.${tag}`, n, 3, seed, 0, bf16);
  const f2 = family(zoo, `t2.${tag}`, n, 2, seed + 1, 0, bf16);
  const fTies = family(zoo, `ties.${tag}`, n, 3, seed + 2, 16, bf16);
  const fFew = family(zoo, `few.${tag}`, n, 3, seed + 3, 3000, bf16);
  const nm3 = `t3.${tag}`;
  const nmT = `ties.${tag}`;
  add(
    'linear normalize',
    { kind: 'weighted_sum', inputs: f3.xs.map((ref, m) => ({ ref, weight: [0.2, 0.5, 0.45][m] })), normalize: true },
    nm3,
  );
  add(
    'linear no normalize',
    {
      kind: 'weighted_sum',
      inputs: [f3.base, ...f3.xs].map((ref, m) => ({ ref, weight: [1, 0.3, -0.7, 0.1][m] })),
      normalize: false,
    },
    nm3,
  );
  add('task_arithmetic', ta(nm3, f3, 'none', 'none', false, 'none'), nm3);
  add('task_arithmetic normalize lambda', ta(nm3, f3, 'none', 'none', true, 'none', 0.7), nm3);
  add('ties', ta(nm3, f3, 'magnitude', 'sum', true, 'none'), nm3);
  add('ties no normalize lambda', ta(nm3, f3, 'magnitude', 'sum', false, 'none', 1.3), nm3);
  add('ties rescale l1', ta(nm3, f3, 'magnitude', 'sum', true, 'l1'), nm3);
  add('ties on tied magnitudes', ta(nmT, fTies, 'magnitude', 'sum', true, 'none'), nmT);
  add('magnitude without consensus, rescale density', ta(nmT, fTies, 'magnitude', 'none', false, 'density'), nmT);
  add(
    'ties with a few equal magnitudes per value',
    ta(`few.${tag}`, fFew, 'magnitude', 'sum', true, 'l1'),
    `few.${tag}`,
  );
  add(
    'breadcrumbs with a few equal magnitudes per value',
    ta(`few.${tag}`, fFew, 'magnitude_outliers', 'none', false, 'none'),
    `few.${tag}`,
  );
  add('dare_linear (l1)', ta(nm3, f3, 'random', 'none', false, 'l1'), nm3);
  add('dare_ties (l1)', ta(nm3, f3, 'random', 'sum', false, 'l1'), nm3);
  add('dare rescale density', ta(nm3, f3, 'random', 'none', false, 'density'), nm3);
  add('dare rescale none normalize', ta(nm3, f3, 'random', 'none', true, 'none'), nm3);
  add('breadcrumbs', ta(nm3, f3, 'magnitude_outliers', 'none', false, 'none'), nm3);
  add('breadcrumbs_ties l1', ta(nm3, f3, 'magnitude_outliers', 'sum', true, 'l1'), nm3);
  add(
    'breadcrumbs on tied magnitudes',
    ta(nmT, fTies, 'magnitude_outliers', 'none', false, 'none', 1, { gamma: 0.1 }),
    nmT,
  );
  // DELLA ranks within rows (O(n · row length) on the GPU): only shapes with short rows, to keep CI fast.
  const rowLength = shape.length < 2 ? n : shape[1];
  if (rowLength <= 1024) {
    add('della (l1, sum, normalize)', ta(nm3, f3, 'della_magprune', 'sum', true, 'l1'), nm3);
    add('della_linear (l1)', ta(nm3, f3, 'della_magprune', 'none', false, 'l1'), nm3);
    add('della rescale density (per-element 1/p)', ta(nmT, fTies, 'della_magprune', 'none', false, 'density'), nmT);
    add('della rescale none lambda', ta(nmT, fTies, 'della_magprune', 'sum', false, 'none', 0.8), nmT);
  }
  const withDensities = (op: MergeOp, densities: number[]): MergeOp =>
    op.kind === 'task_arithmetic'
      ? { ...op, inputs: op.inputs.map((input, m) => ({ ...input, density: densities[m] })) }
      : op;
  add(
    'densities 0, 1 and 0.5 (dare_ties, l1)',
    withDensities(ta(nm3, f3, 'random', 'sum', false, 'l1'), [0, 1, 0.5]),
    nm3,
  );
  add(
    'magnitude at densities 1, 0.9, 1 (l1)',
    withDensities(ta(nm3, f3, 'magnitude', 'sum', true, 'l1'), [1, 0.9, 1]),
    nm3,
  );
  add('slerp', { kind: 'slerp', a: f2.base, b: f2.xs[0], t: 0.35 }, `t2.${tag}`);
  add('slerp far apart', { kind: 'slerp', a: f2.xs[0], b: f3.base, t: 0.6 }, `t2.${tag}`);
  add('model_stock 2', { kind: 'model_stock', base: f2.base, inputs: f2.xs }, `t2.${tag}`);
  add('model_stock 3', { kind: 'model_stock', base: f3.base, inputs: f3.xs }, nm3);
  const weighted = (refs: SourceRef[]) => refs.map((ref, m) => ({ ref, weight: [0.2, 0.5, 0.45][m] }));
  add('multislerp 3', { kind: 'multislerp', inputs: weighted(f3.xs), normalizeWeights: true, eps: 1e-8 }, nm3);
  add(
    'multislerp around base, weights as given',
    { kind: 'multislerp', inputs: weighted(f3.xs), base: f3.base, normalizeWeights: false, eps: 1e-8 },
    nm3,
  );
  add('karcher 3', { kind: 'karcher', inputs: f3.xs, maxIter: 10, tol: 1e-5 }, nm3);
  const sce = (fam: typeof f3, selectTopk: number): MergeOp => ({
    kind: 'sce',
    base: fam.base,
    inputs: fam.xs,
    selectTopk,
  });
  add('sce select_topk 0.3', sce(f3, 0.3), nm3);
  // Quantised τ: the variances repeat, so the cut falls inside a run of equal values (ties by lowest index).
  add('sce on tied variances', sce(fTies, 0.5), nmT);
  add('sce with a few equal variances per value', sce(fFew, 0.7), `few.${tag}`);
  add('sce 2 models, select_topk 0.45', sce(f2, 0.45), `t2.${tag}`);
  add('sce select_topk 1 (no mask)', sce(f2, 1), `t2.${tag}`);
  add('sce select_topk 0 (keeps nothing)', sce(f3, 0), nm3);
  add('sce with no model besides the base (the base)', sce({ base: f3.base, xs: [] }, 0.5), nm3);
  const nu = (flatten: boolean, rowWise: boolean, base?: SourceRef): MergeOp => ({
    kind: 'nuslerp',
    a: f2.xs[0],
    b: f2.xs[1],
    base,
    t: 0.35,
    flatten,
    rowWise,
  });
  add('nuslerp per row', nu(false, false), `t2.${tag}`);
  add('nuslerp per row around base', nu(false, false, f2.base), `t2.${tag}`);
  add('nuslerp per column around base', nu(false, true, f2.base), `t2.${tag}`);
  add('nuslerp flat around base', nu(true, false, f2.base), `t2.${tag}`);
  add('arcee_fusion', { kind: 'arcee_fusion', base: f2.base, other: f2.xs[0] }, `t2.${tag}`);
  add('arcee_fusion on quantised τ', { kind: 'arcee_fusion', base: fTies.base, other: fTies.xs[0] }, nmT);
  return cases;
}

function relErr(actual: Float32Array, expected: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let e = 0; e < expected.length; e++) {
    diff = Math.max(diff, Math.abs(actual[e] - expected[e]));
    scale = Math.max(scale, Math.abs(expected[e]));
  }
  return scale === 0 ? diff : diff / scale;
}

const BACKENDS: Backend[] = ['cpu', 'gpu', 'gpu-chunked'];

describe.each(BACKENDS)('kernel contract: %s', (backend) => {
  let kernel: MergeKernel;
  beforeAll(async () => {
    kernel = await openKernel(backend);
  });
  afterAll(async () => {
    await kernel?.close();
  });

  const zoo = new Zoo();
  const z = (m: string, values: number[]) => zoo.add(m, 'v', new Float32Array(values));
  const run = (shape: number[], op: MergeOp) => kernel.mergeTensor({ name: 'v', shape, op }, zoo.read);
  const ti = (ref: SourceRef, m: number, density = 1, weight = 1): TaskVectorInput => ({
    ref,
    weight,
    density,
    gamma: 0.01,
    epsilon: 0.1,
    modelIndex: m,
  });

  it('describes its device', () => {
    expect(kernel.device).toMatch(
      backend === 'cpu' ? /^cpu( \(.+\))?$/ : /^gpu: .+ \((vulkan|metal|d3d12)(, software)?\)$/,
    );
  });

  it('linear: Σ wᵢxᵢ / Σ wᵢ (hand-checked)', async () => {
    const a = z('a', [1, 2, 3, -4]);
    const b = z('b', [5, 6, 7, 8]);
    const out = await run([4], {
      kind: 'weighted_sum',
      inputs: [
        { ref: a, weight: 1 },
        { ref: b, weight: 3 },
      ],
      normalize: true,
    });
    expect(Array.from(out)).toEqual([4, 5, 6, 5]);
    const raw = await run([4], {
      kind: 'weighted_sum',
      inputs: [
        { ref: a, weight: 1 },
        { ref: b, weight: 3 },
      ],
      normalize: false,
    });
    expect(Array.from(raw)).toEqual([16, 20, 24, 20]);
  });

  it('TIES worked example gives [0, 1.1, 0, 0.75] (MERGEKIT-SEMANTICS §5)', async () => {
    const base = z('base', [0, 0, 0, 0]);
    const xs = [z('x0', [0, -0.5, 0, 0.8]), z('x1', [0, 1.1, 0, -0.6]), z('x2', [0, -0.4, 0, 0.7])];
    const out = await run([4], {
      kind: 'task_arithmetic',
      base,
      inputs: xs.map((r, m) => ti(r, m)),
      sparsification: 'magnitude',
      consensus: 'sum',
      normalize: true,
      lambda: 1,
      rescale: 'none',
      rng: rngKey(0, 'v'),
    });
    expect(Array.from(out)).toEqual([0, Math.fround(1.1), 0, Math.fround(0.75)]);
  });

  it('magnitude keeps exactly k = int(density·n), ties at the cut by lowest index', async () => {
    const base = z('zero6', [0, 0, 0, 0, 0, 0]);
    const x = z('tied', [3, -1, 2, 2, 2, 0.5]);
    const out = await run([6], {
      kind: 'task_arithmetic',
      base,
      inputs: [ti(x, 0, 0.5)],
      sparsification: 'magnitude',
      consensus: 'none',
      normalize: false,
      lambda: 1,
      rescale: 'none',
      rng: rngKey(0, 'v'),
    });
    expect(Array.from(out)).toEqual([3, 0, 2, 2, 0, 0]);
  });

  it('breadcrumbs drops the n_top largest and n_bot smallest (gamma 0.2, density 0.6 of 10)', async () => {
    const base = z('zero10', new Array(10).fill(0));
    const x = z('ramp', [1, -2, 3, -4, 5, -6, 7, -8, 9, -10]);
    const out = await run([10], {
      kind: 'task_arithmetic',
      base,
      inputs: [{ ...ti(x, 0, 0.6), gamma: 0.2 }],
      sparsification: 'magnitude_outliers',
      consensus: 'none',
      normalize: false,
      lambda: 1,
      rescale: 'none',
      rng: rngKey(0, 'v'),
    });
    // target 6, n_top 2, n_bot 2: |τ| 1, 2 and 9, 10 go.
    expect(Array.from(out)).toEqual([0, 0, 3, -4, 5, -6, 7, -8, 0, 0]);
  });

  it('DARE keeps exactly the elements whose counter-based draw is under the threshold', async () => {
    const n = 3000;
    const base = zoo.add('dbase', 'v', new Float32Array(n));
    const x = zoo.add(
      'dx',
      'v',
      Float32Array.from({ length: n }, (_, e) => 1 + (e % 7)),
    );
    const key = rngKey(99, 'v');
    const out = await run([n], {
      kind: 'task_arithmetic',
      base,
      inputs: [ti(x, 5, 0.3)],
      sparsification: 'random',
      consensus: 'none',
      normalize: false,
      lambda: 1,
      rescale: 'none',
      rng: key,
    });
    const thr = keepThreshold(0.3);
    let mismatches = 0;
    for (let e = 0; e < n; e++) {
      const kept = drawU32(key, 5, e) >>> 8 < thr;
      if ((out[e] !== 0) !== kept) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it('slerp of orthogonal unit vectors at t = 0.5 is their normalised bisector', async () => {
    const out = await run([2], { kind: 'slerp', a: z('e1', [1, 0]), b: z('e2', [0, 1]), t: 0.5 });
    expect(out[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(out[1]).toBeCloseTo(Math.SQRT1_2, 6);
  });

  it('model_stock with orthogonal offsets (cos 0) returns the base', async () => {
    const out = await run([2], {
      kind: 'model_stock',
      base: z('mb', [1, 1]),
      inputs: [z('m1', [2, 1]), z('m2', [1, 2])],
    });
    expect(Array.from(out)).toEqual([1, 1]);
  });

  // The methods added since 2024 that run as WGSL on the GPU. Orthogonal inputs make each result a closed form.
  it('multislerp of orthogonal unit task vectors, equal weights, is base + their normalised bisector', async () => {
    const op = (base?: SourceRef): MergeOp => ({
      kind: 'multislerp',
      inputs: [
        { ref: z(base ? 'ms.x1' : 'ms.e1', base ? [2, 1, 5] : [1, 0, 0]), weight: 0.5 },
        { ref: z(base ? 'ms.x2' : 'ms.e2', base ? [1, 2, 5] : [0, 1, 0]), weight: 0.5 },
      ],
      base,
      normalizeWeights: true,
      eps: 1e-8,
    });
    // mean of the units = (½, ½, 0), normalised (√½, √½, 0); the tangent sum is 0; the mean norm is 1.
    const plain = await run([3], op());
    [Math.SQRT1_2, Math.SQRT1_2, 0].forEach((v, e) => expect(plain[e]).toBeCloseTo(v, 6));
    const around = await run([3], op(z('ms.base', [1, 1, 5])));
    [1 + Math.SQRT1_2, 1 + Math.SQRT1_2, 5].forEach((v, e) => expect(around[e]).toBeCloseTo(v, 6));
  });

  it('karcher of orthogonal directions is their bisector scaled by the mean norm (‖3e₁‖, ‖4e₂‖ → 3.5)', async () => {
    const out = await run([3], {
      kind: 'karcher',
      inputs: [z('k.a', [3, 0, 0]), z('k.b', [0, 4, 0])],
      maxIter: 10,
      tol: 1e-5,
    });
    // Start at the normalised mean (√½, √½, 0): the tangents of e₁ and e₂ cancel, so it is the fixed point.
    [3.5 * Math.SQRT1_2, 3.5 * Math.SQRT1_2, 0].forEach((v, e) => expect(out[e]).toBeCloseTo(v, 5));
  });

  it('nuslerp per row and per column slerps each vector on its own (θ = π/2 everywhere, t = ½)', async () => {
    const s = Math.SQRT1_2;
    // Rows of [[1, 0], [3, 0]] and [[0, 1], [0, −2]]: sin(π/4)/sin(π/2) of each, row by row.
    const rows = await run([2, 2], {
      kind: 'nuslerp',
      a: z('nu.ra', [1, 0, 3, 0]),
      b: z('nu.rb', [0, 1, 0, -2]),
      t: 0.5,
      flatten: false,
      rowWise: false,
    });
    [s, s, 3 * s, -2 * s].forEach((v, e) => expect(rows[e]).toBeCloseTo(v, 6));
    // Columns (row-wise: vectors along dim 0) of task vectors around a base: (1, 0)·(0, 1) and (2, 0)·(0, 2).
    const cols = await run([2, 2], {
      kind: 'nuslerp',
      a: z('nu.ca', [2, 3, 1, 1]),
      b: z('nu.cb', [1, 1, 2, 3]),
      base: z('nu.cbase', [1, 1, 1, 1]),
      t: 0.5,
      flatten: false,
      rowWise: true,
    });
    [1 + s, 1 + 2 * s, 1 + s, 1 + 2 * s].forEach((v, e) => expect(cols[e]).toBeCloseTo(v, 6));
  });

  it.each([
    ['magnitude keeping int(density·n) = 0', 'magnitude', [8, 8], 0.01, 0.1, 'merge.density_zero'],
    ['della with density ± epsilon outside (0, 1)', 'della_magprune', [8, 8], 0.1, 0.2, 'merge.della_epsilon'],
    ['della on a single column', 'della_magprune', [64, 1], 0.5, 0.1, 'merge.della_single_column'],
  ] as const)(
    'refuses %s with the same code as every backend',
    async (_what, sparsification, shape, density, epsilon, code) => {
      const n = shape[0] * shape[1];
      const base = zoo.add('rb', `r${n}`, new Float32Array(n));
      const x = zoo.add(
        'rx',
        `r${n}`,
        Float32Array.from({ length: n }, (_, e) => e + 1),
      );
      const err = await kernel
        .mergeTensor(
          {
            name: 'bad.weight',
            shape: [...shape],
            op: {
              kind: 'task_arithmetic',
              base,
              inputs: [{ ref: x, weight: 1, density, gamma: 0.01, epsilon, modelIndex: 0 }],
              sparsification,
              consensus: 'none',
              normalize: false,
              lambda: 1,
              rescale: 'l1',
              rng: rngKey(0, 'bad.weight'),
            },
          },
          zoo.read,
        )
        .catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe(code);
      expect((err as Error).message).toMatch(/^tensor "bad.weight": /);
    },
  );

  it('breadcrumbs on a tensor with gamma·n < 1 drops the whole task vector (mergekit slice quirk)', async () => {
    const base = z(
      'q.base',
      Array.from({ length: 16 }, (_, e) => e / 8),
    );
    const x = z(
      'q.x',
      Array.from({ length: 16 }, (_, e) => e / 8 + 0.25 * ((e % 3) - 1) + 0.1),
    );
    const out = await run([16], {
      kind: 'task_arithmetic',
      base,
      inputs: [{ ...ti(x, 0, 0.7), gamma: 0.05 }],
      sparsification: 'magnitude_outliers',
      consensus: 'none',
      normalize: false,
      lambda: 1,
      rescale: 'l1',
      rng: rngKey(0, 'v'),
    });
    expect(Array.from(out)).toEqual(Array.from(zoo.read(base)));
  });

  it('is deterministic: the same job twice gives the same bits', async () => {
    const f = family(zoo, 'det', 5000, 2, 7);
    const job: TensorJob = { name: 'det', shape: [50, 100], op: ta('det', f, 'random', 'sum', false, 'l1') };
    const a = await kernel.mergeTensor(job, zoo.read);
    const b = await kernel.mergeTensor(job, zoo.read);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });
});

describe('GPU ↔ CPU parity on edge values', () => {
  it('−0, subnormals, tiny and bf16-max magnitudes merge within tolerance with the same kept set', async () => {
    const gpu = await openKernel('gpu');
    const cpu = new CpuKernel();
    const zoo = new Zoo();
    const n = 4096;
    const rnd = mulberry32(77);
    const special = [-0, 0, 1e-40, -1e-42, 1.4e-45, 1e-30, 3.3895313892515355e38 / 1e6];
    const base = Float32Array.from({ length: n }, (_, e) => (e % 11 === 0 ? special[e % special.length] : rnd() - 0.5));
    const xs = [0, 1, 2].map((m) =>
      zoo.add(
        `edge${m}`,
        'e',
        Float32Array.from({ length: n }, (_, e) =>
          e % 7 === m ? base[e] + special[(e + m) % special.length] : base[e] + (rnd() - 0.5) * 0.01,
        ),
      ),
    );
    const f = { base: zoo.add('edgebase', 'e', base), xs };
    for (const op of [
      ta('e', f, 'magnitude', 'sum', true, 'l1'),
      ta('e', f, 'random', 'sum', false, 'l1'),
      ta('e', f, 'none', 'none', true, 'none'),
    ]) {
      const job: TensorJob = { name: 'e', shape: [64, 64], op };
      const want = await cpu.mergeTensor(job, zoo.read);
      const got = await gpu.mergeTensor(job, zoo.read);
      expect(relErr(got, want)).toBeLessThanOrEqual(PARITY_TOLERANCE);
    }
    await gpu.close();
  });
});

describe('GPU ↔ CPU parity of sce on tiny variances', () => {
  it('decides entries whose variance underflows or is subnormal in float32 as the CPU kernel does', async () => {
    const gpu = await openKernel('gpu');
    const cpu = new CpuKernel();
    const zoo = new Zoo();
    const n = 4000;
    const rnd = mulberry32(5);
    const base = Float32Array.from({ length: n }, (_, e) => (e % 5 < 3 ? 0 : rnd() - 0.5));
    // e % 5: 0 all τ equal (variance 0); 1 τ a few ulps apart at 1e-20 (the float64 variance rounds to 0 in
    // float32); 2 τ 1e-22 apart at 1e-18 (a subnormal variance, nonzero); 3, 4 ordinary τ.
    const value = (e: number, m: number): number => {
      if (e % 5 === 0) return 1e-3;
      if (e % 5 === 1) return Math.fround(1e-20) * (1 + m * 2 ** -22);
      if (e % 5 === 2) return 1e-18 * (1 + m * 1e-4 * (1 + (e % 7)));
      return base[e] + (rnd() - 0.5) * 0.1;
    };
    const xs = [0, 1, 2].map((m) =>
      zoo.add(
        `tiny${m}`,
        't',
        Float32Array.from({ length: n }, (_, e) => value(e, m)),
      ),
    );
    const baseRef = zoo.add('tinybase', 't', base);
    // Nonzero variances: 3/5 of n; select_topk 0.9 puts the cut among the subnormal ones.
    for (const selectTopk of [0.9, 0.5]) {
      const job: TensorJob = {
        name: 't',
        shape: [40, 100],
        op: { kind: 'sce', base: baseRef, inputs: xs, selectTopk },
      };
      const want = await cpu.mergeTensor(job, zoo.read);
      const got = await gpu.mergeTensor(job, zoo.read);
      expect(relErr(got, want)).toBeLessThanOrEqual(PARITY_TOLERANCE);
      let differ = 0;
      let keptTiny = 0;
      for (let e = 0; e < n; e++) {
        if ((got[e] === base[e]) !== (want[e] === base[e])) differ++;
        if (e % 5 === 2 && want[e] !== base[e]) keptTiny++;
      }
      expect(differ).toBe(0);
      // The cut at 0.9 falls inside the subnormal-variance entries: some of them are kept, not all.
      if (selectTopk === 0.9) expect(keptTiny > 0 && keptTiny < n / 5).toBe(true);
    }
    await gpu.close();
  });
});

describe('GPU ↔ CPU parity of arcee_fusion on special rows', () => {
  // Row kinds by row index % 6: 0 identical to the base (KL 0), 1 one entry changed, 2 small random δ, 3 large
  // δ (KL far from 0), 4 an entry 60 below the row's max (its exp is under 2⁻⁵⁹: p = 1e-8 exactly), 5 a constant
  // row against a random one. Shapes not multiples of the workgroup or of torch's 8 lanes, 1-D and 0-D.
  const shapes: number[][] = [[37, 53], [61, 7], [6, 1], [1000], [1], []];
  const zoo = new Zoo();
  let gpu: MergeKernel;
  beforeAll(async () => {
    gpu = await openKernel('gpu');
  });
  afterAll(async () => {
    await gpu?.close();
  });

  it.each(shapes.map((s) => [s.join('x') || 'scalar', s] as const))("%s: the CPU kernel's bits", async (tag, shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const length = shape.length === 0 ? 1 : shape[shape.length - 1]!;
    const rnd = mulberry32(700 + n);
    const base = Float32Array.from({ length: n }, () => (rnd() - 0.5) * 2);
    const x = new Float32Array(n);
    for (let e = 0; e < n; e++) {
      const row = Math.floor(e / length);
      const j = e % length;
      const kind = row % 6;
      x[e] =
        kind === 0
          ? base[e]!
          : kind === 1
            ? base[e]! + (j === length >> 1 ? 0.25 : 0)
            : kind === 2
              ? base[e]! + (rnd() - 0.5) * 1e-3
              : kind === 3
                ? base[e]! + (rnd() - 0.5) * 4
                : kind === 4
                  ? j === 0 && length > 1
                    ? -60
                    : base[e]! + (rnd() - 0.5) * 0.1
                  : 0.5;
    }
    const op: MergeOp = {
      kind: 'arcee_fusion',
      base: zoo.add('base', tag, base),
      other: zoo.add('x', tag, x),
    };
    const job: TensorJob = { name: tag, shape, op };
    const want = await new CpuKernel().mergeTensor(job, zoo.read);
    const got = await gpu.mergeTensor(job, zoo.read);
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    // The host recomputed only the rows the device could not prove (a few percent at most), never the tensor.
    expect(fusionStats.rows).toBe(n / length);
    expect(fusionStats.flaggedRows).toBeLessThanOrEqual(Math.max(1, fusionStats.rows / 10));
  });

  it('rows the device flags are recomputed on the host: 300×200 random rows, some flagged, same bits', async () => {
    const shape = [300, 200];
    const rnd = mulberry32(808);
    const base = Float32Array.from({ length: 60000 }, () => (rnd() - 0.5) * 0.2);
    const x = base.map((b) => b + (rnd() - 0.5) * 0.01);
    const op: MergeOp = { kind: 'arcee_fusion', base: zoo.add('base', 'big', base), other: zoo.add('x', 'big', x) };
    const job: TensorJob = { name: 'big', shape, op };
    const want = await new CpuKernel().mergeTensor(job, zoo.read);
    const got = await gpu.mergeTensor(job, zoo.read);
    expect(fusionStats.flaggedRows).toBeGreaterThan(0);
    expect(fusionStats.flaggedRows).toBeLessThanOrEqual(30);
    expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
  });

  it('a tensor over several storage bindings runs in blocks of whole rows (rows 1e-6 apart, bf16 base)', async () => {
    const chunked = await openKernel('gpu-chunked');
    try {
      // 400 rows of 90 over 8192-element bindings: blocks of 64 rows (128-aligned starts), 7 of them.
      const shape = [400, 90];
      const rnd = mulberry32(909);
      const base = Float32Array.from({ length: 36000 }, () => (rnd() - 0.5) * 0.05);
      toBf16(base);
      const x = base.map((b) => b + (rnd() - 0.5) * 1e-6);
      const op: MergeOp = {
        kind: 'arcee_fusion',
        base: zoo.add('base', 'blocks', base),
        other: zoo.add('x', 'blocks', x),
      };
      const job: TensorJob = { name: 'blocks', shape, op };
      const want = await new CpuKernel().mergeTensor(job, zoo.read);
      const got = await chunked.mergeTensor(job, zoo.read);
      expect(fusionStats.rows).toBe(400);
      expect(fusionStats.flaggedRows).toBeLessThanOrEqual(8);
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    } finally {
      await chunked.close();
    }
  });
});

describe.each(['gpu', 'gpu-chunked'] as const)('GPU ↔ CPU parity: %s', (backend) => {
  let gpu: MergeKernel;
  const cpu = new CpuKernel();
  const zoo = new Zoo();
  // bf16: exactly-bf16 sources, which the GPU keeps packed two per word (odd sizes test the last half word).
  const shapes: [number[], boolean][] =
    backend === 'gpu'
      ? [
          [[64, 96], false],
          [[300, 200], false],
          [[129], false],
          [[64, 96], true],
          [[129], true],
        ]
      : [
          [[20000], false],
          [[3, 8192], false],
          [[200, 90], false],
          [[20001], true],
          [[200, 90], true],
        ];
  const cases = shapes.flatMap(([s, bf16], i) => parityCases(zoo, s, 100 + i * 10, bf16));
  beforeAll(async () => {
    gpu = await openKernel(backend);
  });
  afterAll(async () => {
    await gpu?.close();
  });

  it.each(cases.map((c) => [c.label, c] as const))('%s', async (_label, c) => {
    const want = await cpu.mergeTensor(c.job, zoo.read);
    const got = await gpu.mergeTensor(c.job, zoo.read);
    expect(got.length).toBe(want.length);
    const op = c.job.op;
    const bf16 = c.label.endsWith(' bf16]');
    const tolerance = bf16 && SPHERE_OPS.has(op.kind) ? SPHERE_BF16_TOLERANCE : PARITY_TOLERANCE;
    expect(relErr(got, want)).toBeLessThanOrEqual(tolerance);
    if (SPHERE_OPS.has(op.kind)) {
      // Host sums of fixed tile partials, fixed per-vector orders: the same bits on a rerun.
      const again = await gpu.mergeTensor(c.job, zoo.read);
      expect(Buffer.from(again.buffer).equals(Buffer.from(got.buffer))).toBe(true);
    }
    // arcee_fusion: the CPU kernel's importances and threshold, so its bits (a flipped keep is a large error).
    if (op.kind === 'arcee_fusion') expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    if ((op.kind === 'task_arithmetic' && op.sparsification !== 'none') || op.kind === 'sce') {
      // Same kept set: an element is unchanged from the base on one backend iff on the other (τ ≠ 0 here).
      const base = zoo.read(op.base);
      let differ = 0;
      for (let e = 0; e < want.length; e++) if ((got[e] === base[e]) !== (want[e] === base[e])) differ++;
      expect(differ).toBe(0);
    }
  });
});
