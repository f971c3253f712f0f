// Float32 reductions as torch (1.13+, CPU) computes them, for the newer methods' scalars (norms, dot products,
// sums): mergekit's results on nearly-cancelling quantities (cos θ near 1, KL divergences) depend on them.
// torch reduces float32 in float32, in SIMD lanes: the norm with one vector accumulator, the sum with a
// cascade of vector accumulators (aten/src/ATen/native/cpu/ReduceOpsKernel.cpp, SumKernel.cpp).

/** float32 lanes of torch's CPU vectors (AVX2: 8; the goldens' machine). */
export const TORCH_LANES = 8;

/**
 * ‖x[start], x[start+stride], …‖₂ (count entries) as torch.norm over a contiguous last dim: lane l accumulates
 * x² of every TORCH_LANES-th element in float32, lanes are added in order, the tail after, then sqrt.
 */
export function norm32(x: Float32Array, start = 0, count = x.length, stride = 1): number {
  if (stride !== 1) return stridedNorm32(x, start, count, stride);
  const lanes = new Float64Array(TORCH_LANES);
  const full = count - (count % TORCH_LANES);
  let j = 0;
  for (; j < full; j += TORCH_LANES) {
    for (let l = 0; l < TORCH_LANES; l++) {
      const v = x[start + (j + l) * stride]!;
      lanes[l] = Math.fround(lanes[l]! + Math.fround(v * v));
    }
  }
  let acc = lanes[0]!;
  for (let l = 1; l < TORCH_LANES; l++) acc = Math.fround(acc + lanes[l]!);
  for (; j < count; j++) {
    const v = x[start + j * stride]!;
    acc = Math.fround(acc + Math.fround(v * v));
  }
  return Math.fround(Math.sqrt(acc));
}

/**
 * torch.sum of `count` float32 terms over a contiguous dim (SumKernel.cpp cascade_sum, vectorized inner sum):
 * the terms in vectors of TORCH_LANES, the vectors summed as 4 interleaved rows (ilp), each row a 4-level
 * cascade of float32 accumulators; then the rows, the scalar tail and the lanes, in float32.
 */
export function sum32(term: (j: number) => number, count: number): number {
  const L = TORCH_LANES;
  const vecCount = Math.floor(count / L);
  // row_sum over vectors: ilp 4 partial rows of vecCount/4 vectors each.
  const ILP = 4;
  const sizeIlp = Math.floor(vecCount / ILP);
  const partial = multiRowSum(term, sizeIlp, ILP, L);
  const addVec = (acc: Float64Array, v: number): void => {
    for (let l = 0; l < L; l++) acc[l] = Math.fround(acc[l]! + term(v * L + l));
  };
  for (let v = sizeIlp * ILP; v < vecCount; v++) addVec(partial[0]!, v);
  for (let k = 1; k < ILP; k++)
    for (let l = 0; l < L; l++) partial[0]![l] = Math.fround(partial[0]![l]! + partial[k]![l]!);
  let acc = 0;
  for (let j = vecCount * L; j < count; j++) acc = Math.fround(acc + term(j));
  for (let l = 0; l < L; l++) acc = Math.fround(acc + partial[0]![l]!);
  return acc;
}

/** SumKernel.cpp multi_row_sum: rows k of vectors (i·rows + k), a 4-level cascade of float32 accumulators. */
export function multiRowSum(term: (j: number) => number, size: number, rows: number, L: number): Float64Array[] {
  const LEVELS = 4;
  const levelPower = Math.max(4, Math.floor(ceilLog2(size) / LEVELS));
  const levelStep = 1 << levelPower;
  const levelMask = levelStep - 1;
  const acc: Float64Array[][] = Array.from({ length: LEVELS }, () =>
    Array.from({ length: rows }, () => new Float64Array(L)),
  );
  const load = (dst: Float64Array, vec: number): void => {
    for (let l = 0; l < L; l++) dst[l] = Math.fround(dst[l]! + term(vec * L + l));
  };
  let i = 0;
  while (i + levelStep <= size) {
    for (let j = 0; j < levelStep; j++, i++) for (let k = 0; k < rows; k++) load(acc[0]![k]!, i * rows + k);
    for (let j = 1; j < LEVELS; j++) {
      for (let k = 0; k < rows; k++) {
        for (let l = 0; l < L; l++) acc[j]![k]![l] = Math.fround(acc[j]![k]![l]! + acc[j - 1]![k]![l]!);
        acc[j - 1]![k]!.fill(0);
      }
      // `(i & (level_mask << j·level_power)) != 0`, without 32-bit overflow.
      if (Math.floor(i / 2 ** (j * levelPower)) % levelStep !== 0) break;
    }
  }
  for (; i < size; i++) for (let k = 0; k < rows; k++) load(acc[0]![k]!, i * rows + k);
  for (let j = 1; j < LEVELS; j++)
    for (let k = 0; k < rows; k++)
      for (let l = 0; l < L; l++) acc[0]![k]![l] = Math.fround(acc[0]![k]![l]! + acc[j]![k]![l]!);
  return acc[0]!;
}

function ceilLog2(x: number): number {
  if (x <= 2) return 1;
  return Math.ceil(Math.log2(x));
}

/** Σ fround(a·b) over the same strided window of both, as torch.sum(a * b, dim=-1). */
export function dot32(a: Float32Array, b: Float32Array, start = 0, count = a.length, stride = 1): number {
  const term = (j: number): number => Math.fround(a[start + j * stride]! * b[start + j * stride]!);
  // A strided dim is an outer reduction in torch: each output's lane runs the cascade alone.
  return stride === 1 ? sum32(term, count) : multiRowSum(term, count, 1, 1)[0]![0]!;
}

/** torch.norm over a dim that is not the contiguous last one: the generic reduction, sequential in float32. */
function stridedNorm32(x: Float32Array, start: number, count: number, stride: number): number {
  let acc = 0;
  for (let j = 0, e = start; j < count; j++, e += stride) acc = Math.fround(acc + Math.fround(x[e]! * x[e]!));
  return Math.fround(Math.sqrt(acc));
}

/** Σ vᵢ in order, rounding after every add: torch's sum of a handful of float32 scalars or over a stacked dim 0. */
export function sequentialSum32(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s = Math.fround(s + Math.fround(v));
  return s;
}
