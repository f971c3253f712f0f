// CMA-ES over the continuous genes plus a categorical distribution per categorical gene (the merge method),
// both updated from the same ranking each generation — the structure of CatCMA (Hamano et al., GECCO 2024).
// Equation numbers refer to Hansen, "The CMA Evolution Strategy: A Tutorial" (arXiv:1604.00772, 2016).
//
// Continuous part. Search runs in normalised coordinates u ∈ [0,1]^n (u = (x − lower)/(upper − lower)), with
// m0 = the centre (or x0) and σ0 = sigma0Fraction (1/6) of each range. Active CMA (negative weights, eq. 53).
// Bounds: like cmaes `_cma.py`, a sample outside [0,1]^n is redrawn up to MAX_RESAMPLE times, and the last
// draw is then clipped to the box; the update uses the point actually returned (clipped or not). Mirroring
// was not taken: it folds mass back inside and biases the mean towards the centre when the optimum lies
// on a bound (weight 0, density 1), which is common in merges.
//
// Categorical part. θ_i (probabilities over the K_i choices of gene i), sampled independently of the
// Gaussian, updated by the ASNG rule (Akimoto et al., "Adaptive Stochastic Natural Gradient Method for
// One-Shot Neural Architecture Search", ICML 2019, Alg. 1 with the Fisher square-root of its App. B):
// natural gradient Σ_k w_k (c_k − θ) with CatCMA's utility (the positive recombination weights of the
// same ranking), step size adapted from the gradient's signal-to-noise, then CatCMA's margin: every
// probability stays ≥ (1 − 0.73^{1/N_ca}) / (K_i − 1) (Hamano et al. 2024, §4.2), so no method dies early.
// Why this and not independent random sampling (optuna) or a fixed method (mergekit-evolve): the method
// that ranks well is sampled more often, but never to extinction, at no extra evaluations.

import { EvomergeError } from '../../errors.ts';
import { symmetricEigen } from './eigen.ts';
import { GenerationalOptimizer, readScalar, readVector, type RankedGeneration } from './generation.ts';
import type { OptimizerOptions, OptimizerState, SearchDomain, Solution } from './optimizer.ts';
import { Rng } from './rng.ts';

/** Samples outside the box are redrawn at most this often before clipping (cmaes `n_max_resampling`). */
const MAX_RESAMPLE = 100;
/** Eigenvalues of C below this are raised to it (C stays positive definite; 1/√λ stays finite). */
const MIN_EIGENVALUE = 1e-20;
/** σ is kept within [SIGMA_MIN, SIGMA_MAX] in normalised units (cmaes caps σ at 1e32; the box is [0,1]). */
const SIGMA_MIN = 1e-12;
const SIGMA_MAX = 1e3;
/** ASNG constants (Akimoto et al. 2019, §4): α = 1.5, δ_init = 1. */
const ASNG_ALPHA = 1.5;
const ASNG_DELTA_INIT = 1;

/** Strategy parameters: a pure function of (n, λ); recomputed on restore, never stored. */
interface Strategy {
  n: number;
  lambda: number;
  mu: number;
  weights: number[];
  muEff: number;
  cc: number;
  c1: number;
  cMu: number;
  cSigma: number;
  dSigma: number;
  cm: number;
  chiN: number;
}

function strategy(n: number, lambda: number): Strategy {
  const mu = Math.floor(lambda / 2);
  // (eq. 49) preliminary weights w'_i = ln((λ+1)/2) − ln i, i = 1..λ
  const wPrime = Array.from({ length: lambda }, (_, i) => Math.log((lambda + 1) / 2) - Math.log(i + 1));
  const pos = wPrime.slice(0, mu);
  const neg = wPrime.slice(mu);
  const sum = (v: number[]) => v.reduce((s, e) => s + e, 0);
  const sumSq = (v: number[]) => v.reduce((s, e) => s + e * e, 0);
  const muEff = sum(pos) ** 2 / sumSq(pos); // μ_eff (p. 31)
  const muEffMinus = neg.length > 0 && sumSq(neg) > 0 ? sum(neg) ** 2 / sumSq(neg) : 0;

  const nn = Math.max(n, 1); // n = 0 (categorical genes only): the Gaussian part is unused
  const alphaCov = 2;
  const c1 = alphaCov / ((nn + 1.3) ** 2 + muEff); // (eq. 57)
  const cMu = Math.min(1 - c1, (alphaCov * (muEff - 2 + 1 / muEff)) / ((nn + 2) ** 2 + (alphaCov * muEff) / 2)); // (eq. 58)

  const alphaMuMinus = 1 + c1 / cMu; // (eq. 50)
  const alphaMuEffMinus = 1 + (2 * muEffMinus) / (muEff + 2); // (eq. 51)
  const alphaPosDefMinus = (1 - c1 - cMu) / (nn * cMu); // (eq. 52)
  const alphaMin = Math.min(alphaMuMinus, alphaMuEffMinus, alphaPosDefMinus);

  // (eq. 53) positive weights sum to 1, negative ones to −α_min (all finite: cMu = 0 only gives +∞ terms
  // that `min` discards, and μ_eff⁻ is finite).
  const posSum = sum(wPrime.filter((w) => w > 0));
  const negSum = -sum(wPrime.filter((w) => w < 0));
  const weights = wPrime.map((w) => (w >= 0 ? w / posSum : negSum > 0 ? (alphaMin * w) / negSum : 0));

  const cSigma = (muEff + 2) / (nn + muEff + 5); // (eq. 55)
  const dSigma = 1 + 2 * Math.max(0, Math.sqrt((muEff - 1) / (nn + 1)) - 1) + cSigma; // (eq. 55)
  const cc = (4 + muEff / nn) / (nn + 4 + (2 * muEff) / nn); // (eq. 56)
  const chiN = Math.sqrt(nn) * (1 - 1 / (4 * nn) + 1 / (21 * nn * nn)); // E‖N(0, I)‖ (p. 28)
  return { n, lambda, mu, weights, muEff, cc, c1, cMu, cSigma, dSigma, cm: 1 /* (eq. 54) */, chiN };
}

/** The distribution: everything that changes from generation to generation. */
interface Distribution {
  mean: number[];
  sigma: number;
  /** Covariance, row-major n×n, exactly symmetric. */
  C: number[][];
  pSigma: number[];
  pc: number[];
  /** θ_i: probabilities over the choices of each categorical gene. */
  theta: number[][];
  /** ASNG accumulators: Δ (inverse step size), s (smoothed normalised gradient), γ (its expected ‖s‖²). */
  asngDelta: number;
  asngS: number[];
  asngGamma: number;
}

/**
 * CMA-ES with categorical genes (CatCMA-style, see file header). Create with `createOptimizer('cmaes', …)`.
 * Read-only views (`mean`, `sigma`, `probabilities`) are for reports and tests.
 */
export class CmaOptimizer extends GenerationalOptimizer {
  readonly name = 'cmaes' as const;
  private readonly s: Strategy;
  private readonly d: Distribution;
  /** C = B diag(D²) Bᵀ, recomputed whenever C changes (a pure function of C). */
  private B: number[][] = [];
  private D: number[] = [];
  /** Per categorical gene: the margin θ_min, 0 for genes with a single choice. */
  private readonly thetaMin: number[];
  /** Σ (K_i − 1) over genes with K_i ≥ 2: the dimension of the categorical parameter (ASNG's D). */
  private readonly catDim: number;

  private constructor(domain: SearchDomain, lambda: number, rng: Rng, d: Distribution, restored?: OptimizerState) {
    super(domain, lambda, rng, restored);
    this.s = strategy(domain.continuous.length, lambda);
    this.d = d;
    const free = domain.categorical.filter((g) => g.choices.length >= 2).length;
    this.thetaMin = domain.categorical.map((g) =>
      g.choices.length >= 2 ? (1 - 0.73 ** (1 / free)) / (g.choices.length - 1) : 0,
    );
    this.catDim = domain.categorical.reduce((acc, g) => acc + Math.max(0, g.choices.length - 1), 0);
    this.decompose();
  }

  static create(domain: SearchDomain, lambda: number, opts: OptimizerOptions): CmaOptimizer {
    const n = domain.continuous.length;
    const frac = opts.sigma0Fraction ?? 1 / 6;
    if (!(Number.isFinite(frac) && frac > 0)) {
      throw new EvomergeError('optimizer.bad_option', `must be a positive number, got ${frac}`, {
        field: 'sigma0Fraction',
      });
    }
    let mean = Array.from({ length: n }, () => 0.5);
    if (opts.x0 !== undefined) {
      if (!Array.isArray(opts.x0) || opts.x0.length !== n) {
        throw new EvomergeError('optimizer.bad_option', `needs ${n} values, one per continuous gene`, { field: 'x0' });
      }
      mean = opts.x0.map((v, i) => {
        const g = domain.continuous[i];
        if (!(Number.isFinite(v) && v >= g.lower && v <= g.upper)) {
          throw new EvomergeError('optimizer.bad_option', `${v} is outside [${g.lower}, ${g.upper}]`, {
            field: `x0[${i}] (${g.name})`,
          });
        }
        return (v - g.lower) / (g.upper - g.lower);
      });
    }
    const d: Distribution = {
      mean,
      sigma: frac,
      C: identity(n),
      pSigma: zeros(n),
      pc: zeros(n),
      theta: domain.categorical.map((g) => g.choices.map(() => 1 / g.choices.length)),
      asngDelta: 1,
      asngS: zeros(domain.categorical.reduce((acc, g) => acc + Math.max(0, g.choices.length - 1), 0)),
      asngGamma: 0,
    };
    return new CmaOptimizer(domain, lambda, Rng.fromSeed(opts.seed), d);
  }

  static restore(state: OptimizerState): CmaOptimizer {
    GenerationalOptimizer.checkState(state, 'cmaes');
    const a = state.algorithm ?? {};
    const n = state.domain.continuous.length;
    const catDim = state.domain.categorical.reduce((acc, g) => acc + Math.max(0, g.choices.length - 1), 0);
    const cTri = readVector(a, 'covarianceUpper', (n * (n + 1)) / 2);
    const thetaRaw = a.theta;
    if (!Array.isArray(thetaRaw) || thetaRaw.length !== state.domain.categorical.length) {
      throw new EvomergeError('optimizer.bad_state', 'one probability vector per categorical gene', {
        field: 'algorithm.theta',
      });
    }
    const theta = state.domain.categorical.map((g, i) => readVector({ theta: thetaRaw[i] }, 'theta', g.choices.length));
    const d: Distribution = {
      mean: readVector(a, 'mean', n),
      sigma: readScalar(a, 'sigma'),
      C: fromUpper(cTri, n),
      pSigma: readVector(a, 'pSigma', n),
      pc: readVector(a, 'pc', n),
      theta,
      asngDelta: readScalar(a, 'asngDelta'),
      asngS: readVector(a, 'asngS', catDim),
      asngGamma: readScalar(a, 'asngGamma'),
    };
    return new CmaOptimizer(state.domain, state.populationSize, Rng.fromState(state.rng), d, state);
  }

  /** Current mean in domain units. */
  get mean(): number[] {
    return this.d.mean.map((u, i) => {
      const g = this.domain.continuous[i];
      return g.lower + u * (g.upper - g.lower);
    });
  }

  /** Current step size σ, in normalised units (fractions of each range). */
  get sigma(): number {
    return this.d.sigma;
  }

  /** Current categorical probabilities θ, one vector per categorical gene. */
  get probabilities(): number[][] {
    return this.d.theta.map((t) => t.slice());
  }

  protected algorithmState(): Record<string, unknown> {
    return {
      mean: this.d.mean.slice(),
      sigma: this.d.sigma,
      covarianceUpper: toUpper(this.d.C),
      pSigma: this.d.pSigma.slice(),
      pc: this.d.pc.slice(),
      theta: this.d.theta.map((t) => t.slice()),
      asngDelta: this.d.asngDelta,
      asngS: this.d.asngS.slice(),
      asngGamma: this.d.asngGamma,
    };
  }

  protected sample(): Solution {
    const n = this.s.n;
    let u: number[] = [];
    if (n > 0) {
      for (let attempt = 0; attempt <= MAX_RESAMPLE; attempt++) {
        u = this.sampleGaussian();
        if (u.every((e) => e >= 0 && e <= 1)) break;
        if (attempt === MAX_RESAMPLE) u = u.map((e) => Math.min(1, Math.max(0, e))); // clip the last draw
      }
    }
    const x = u.map((e, i) => {
      const g = this.domain.continuous[i];
      return Math.min(g.upper, Math.max(g.lower, g.lower + e * (g.upper - g.lower)));
    });
    const c = this.d.theta.map((theta) => {
      if (theta.length === 1) return 0;
      const r = this.rng.uniform();
      let cum = 0;
      for (let j = 0; j < theta.length; j++) {
        cum += theta[j];
        if (r < cum) return j;
      }
      return theta.length - 1; // rounding: Σθ may fall a hair short of 1
    });
    return { x, c };
  }

  /** u = m + σ B D z, z ~ N(0, I): u ~ N(m, σ² C). */
  private sampleGaussian(): number[] {
    const n = this.s.n;
    const z = Array.from({ length: n }, () => this.rng.normal()); // ~ N(0, I)
    const dz = z.map((e, k) => this.D[k] * e);
    const u = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      let y = 0; // y = B D z ~ N(0, C)
      for (let k = 0; k < n; k++) y += this.B[i][k] * dz[k];
      u[i] = this.d.mean[i] + this.d.sigma * y; // ~ N(m, σ² C)
    }
    return u;
  }

  protected update(ranked: RankedGeneration): void {
    // One ranking for both parts. Ties (equal values; all failures) keep ask order, which is random with
    // respect to the distribution, like the stable sort in cmaes. Averaging tied weights (the IGO quantile
    // rule) was tried and dropped: on a flat stretch (exact match stuck at 0) it shortens y_w, so CSA
    // (eq. 44) shrinks σ every generation and the search stalls exactly where it needs to explore.
    const lambda = ranked.solutions.length;
    const w = this.s.weights.slice(0, lambda);
    const wPos = w.map((e) => Math.max(0, e));
    if (this.s.n > 0) this.updateGaussian(ranked, w, wPos);
    if (this.catDim > 0) this.updateCategorical(ranked, wPos);
  }

  private updateGaussian(ranked: RankedGeneration, w: number[], wPos: number[]): void {
    const { n, muEff, cc, c1, cMu, cSigma, dSigma, cm, chiN } = this.s;
    const d = this.d;
    const g = this.generation; // generations completed before this one
    const ys = ranked.solutions.map((sol) =>
      sol.x.map((x, i) => {
        const gene = this.domain.continuous[i];
        const u = (x - gene.lower) / (gene.upper - gene.lower);
        return (u - d.mean[i]) / d.sigma; // y_k = (x_k − m)/σ ~ N(0, C)
      }),
    );

    // (eq. 41) y_w = Σ_{i≤μ} w_i y_{i:λ}  (wPos is zero beyond μ)
    const yw = zeros(n);
    ys.forEach((y, k) => {
      if (wPos[k] !== 0) for (let i = 0; i < n; i++) yw[i] += wPos[k] * y[i];
    });
    // (eq. 42) m ← m + c_m σ y_w
    for (let i = 0; i < n; i++) d.mean[i] += cm * d.sigma * yw[i];

    // (eq. 43) p_σ ← (1 − c_σ) p_σ + √(c_σ(2 − c_σ) μ_eff) C^{-1/2} y_w
    const invSqrtYw = this.invSqrtC(yw);
    const kSigma = Math.sqrt(cSigma * (2 - cSigma) * muEff);
    for (let i = 0; i < n; i++) d.pSigma[i] = (1 - cSigma) * d.pSigma[i] + kSigma * invSqrtYw[i];
    const normPSigma = norm(d.pSigma);

    // (eq. 44) σ ← σ exp((c_σ/d_σ)(‖p_σ‖/E‖N(0,I)‖ − 1))
    d.sigma *= Math.exp((cSigma / dSigma) * (normPSigma / chiN - 1));
    d.sigma = Math.min(SIGMA_MAX, Math.max(SIGMA_MIN, d.sigma));

    // h_σ (p. 28): stall p_c when p_σ is long (σ is growing fast)
    const hSigma = normPSigma / Math.sqrt(1 - (1 - cSigma) ** (2 * (g + 1))) < (1.4 + 2 / (n + 1)) * chiN ? 1 : 0;

    // (eq. 45) p_c ← (1 − c_c) p_c + h_σ √(c_c(2 − c_c) μ_eff) y_w
    const kc = hSigma * Math.sqrt(cc * (2 - cc) * muEff);
    for (let i = 0; i < n; i++) d.pc[i] = (1 - cc) * d.pc[i] + kc * yw[i];

    // (eq. 46) w°_i = w_i for w_i ≥ 0, else w_i · n / ‖C^{-1/2} y_i‖²
    const wCirc = ys.map((y, k) => {
      if (w[k] >= 0) return w[k];
      const t = this.invSqrtC(y);
      return (w[k] * n) / (t.reduce((s, e) => s + e * e, 0) + 1e-8);
    });

    // (eq. 47) C ← (1 + c1 δ(h_σ) − c1 − c_μ Σw_j) C + c1 p_c p_cᵀ + c_μ Σ w°_i y_i y_iᵀ,
    //         δ(h_σ) = (1 − h_σ) c_c (2 − c_c)
    const deltaH = (1 - hSigma) * cc * (2 - cc);
    const sumW = w.reduce((s, e) => s + e, 0);
    const decay = 1 + c1 * deltaH - c1 - cMu * sumW;
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        let rankMu = 0;
        for (let k = 0; k < ys.length; k++) rankMu += wCirc[k] * ys[k][i] * ys[k][j];
        const v = decay * d.C[i][j] + c1 * d.pc[i] * d.pc[j] + cMu * rankMu;
        d.C[i][j] = v;
        d.C[j][i] = v;
      }
    }
    this.decompose();
  }

  /** ASNG step on θ (Akimoto et al. 2019, Alg. 1 / App. B) with CatCMA's margin (Hamano et al. 2024). */
  private updateCategorical(ranked: RankedGeneration, wPos: number[]): void {
    const d = this.d;
    // Natural gradient of the ranking-weighted log-likelihood: Σ_k w_k (onehot(c_k) − θ), per gene.
    const ngrad = d.theta.map((theta, i) => {
      const grad = theta.map(() => 0);
      ranked.solutions.forEach((sol, k) => {
        if (wPos[k] === 0) return;
        for (let j = 0; j < theta.length; j++) grad[j] += wPos[k] * ((sol.c[i] === j ? 1 : 0) - theta[j]);
      });
      return grad;
    });
    // F^{1/2} · ngrad in the (K−1)-dim parameterisation (App. B): its norm measures the step in the
    // Fisher metric, used to normalise the step and to accumulate the signal-to-noise estimate.
    const sqrtF: number[] = [];
    d.theta.forEach((theta, i) => {
      const K = theta.length;
      if (K < 2) return;
      const last = theta[K - 1];
      let gsum = 0;
      for (let j = 0; j < K - 1; j++) gsum += ngrad[i][j];
      for (let j = 0; j < K - 1; j++) {
        sqrtF.push(ngrad[i][j] / Math.sqrt(theta[j]) + (Math.sqrt(theta[j]) * gsum) / (last + Math.sqrt(last)));
      }
    });
    const pnorm = norm(sqrtF) + 1e-30;
    const delta = ASNG_DELTA_INIT / d.asngDelta; // δ_t = δ_init / Δ_t
    const eps = delta / pnorm; // ε_t = δ_t / ‖F^{1/2} ∇‖: a step of Fisher length δ_t
    d.theta.forEach((theta, i) => {
      for (let j = 0; j < theta.length; j++) theta[j] += eps * ngrad[i][j];
    });
    // Step-size adaptation: s accumulates normalised gradients; ‖s‖² above its noise-only expectation γ
    // (scaled by α) shrinks Δ (bigger steps), below it grows Δ (smaller steps).
    const beta = delta / Math.sqrt(this.catDim);
    for (let k = 0; k < d.asngS.length; k++) {
      d.asngS[k] = (1 - beta) * d.asngS[k] + (Math.sqrt(beta * (2 - beta)) * sqrtF[k]) / pnorm;
    }
    d.asngGamma = (1 - beta) ** 2 * d.asngGamma + beta * (2 - beta);
    const sNormSq = d.asngS.reduce((s, e) => s + e * e, 0);
    d.asngDelta *= Math.exp(beta * (d.asngGamma - sNormSq / ASNG_ALPHA));
    d.asngDelta = Math.max(d.asngDelta, 1e-12);

    // Margin (CatCMA): θ_ij ≥ θ_min,i, excess taken proportionally from the mass above the margin.
    d.theta.forEach((theta, i) => {
      const K = theta.length;
      if (K < 2) return;
      const tmin = this.thetaMin[i];
      for (let j = 0; j < K; j++) theta[j] = Math.max(theta[j], tmin);
      const sum = theta.reduce((s, e) => s + e, 0);
      const above = sum - tmin * K;
      for (let j = 0; j < K; j++) theta[j] -= ((sum - 1) * (theta[j] - tmin)) / above;
      const total = theta.reduce((s, e) => s + e, 0);
      for (let j = 0; j < K; j++) theta[j] /= total;
    });
  }

  /** C^{-1/2} v = B D^{-1} Bᵀ v. */
  private invSqrtC(v: number[]): number[] {
    const n = this.s.n;
    const t = zeros(n);
    for (let k = 0; k < n; k++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += this.B[i][k] * v[i];
      t[k] = s / this.D[k];
    }
    const out = zeros(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += this.B[i][k] * t[k];
      out[i] = s;
    }
    return out;
  }

  /** B, D from C (C itself is left as is, so B and D stay a pure function of the stored state). */
  private decompose(): void {
    if (this.s.n === 0) return;
    const { values, vectors } = symmetricEigen(this.d.C);
    this.B = vectors;
    this.D = values.map((e) => Math.sqrt(Math.max(e, MIN_EIGENVALUE)));
  }
}

/** Euclidean norm as √Σv² (not Math.hypot, whose rounding is engine-specific). */
function norm(v: readonly number[]): number {
  let s = 0;
  for (const e of v) s += e * e;
  return Math.sqrt(s);
}

function zeros(n: number): number[] {
  return new Array<number>(n).fill(0);
}

function identity(n: number): number[][] {
  return Array.from<unknown, number[]>({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
}

/** Upper triangle, row by row (cmaes `_compress_symmetric`): n(n+1)/2 numbers. */
function toUpper(C: number[][]): number[] {
  const out: number[] = [];
  for (let i = 0; i < C.length; i++) for (let j = i; j < C.length; j++) out.push(C[i][j]);
  return out;
}

function fromUpper(tri: number[], n: number): number[][] {
  const C = identity(n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      C[i][j] = tri[k];
      C[j][i] = tri[k];
      k++;
    }
  }
  return C;
}
