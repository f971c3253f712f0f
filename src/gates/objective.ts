// The objective on any split, with its standard error, and the paired comparison of two models on it.
// A term may be normalised against a named source: the share of that source's gain over the base that a model
// keeps, (score − base) / (source − base) on the same split — the multi-task merging objective (Task
// Arithmetic, TIES, AdaMerging) that puts metrics of different units (nats, AUC) on one scale: 0 = the base,
// 1 = the expert. Base and source scores are taken as constants (they are measured once, on the same items).
// Pure, imports nothing, and open to the report, which compares the final pick with its rivals on the test objective.

/** One objective term as a search space writes it (search/space.ts's ObjectiveTerm fits). */
export interface ObjectiveTerm {
  readonly task: string;
  /** The metric; defaults to the task's own metric. */
  readonly metric?: string;
  readonly weight: number;
  /** A source's name: the term is then the share of that source's gain over the base that the model keeps. */
  readonly shareOf?: string;
}

/** An objective's value with its SE (Estimate's value and se; the items are those of several tasks, so no single n). */
export interface ObjectiveValue {
  readonly value: number;
  readonly se: number;
}

/** A score as the objective reads it (the campaign's Score and the store's ScoreRecord both fit). */
export interface ScoreLike {
  readonly task: string;
  readonly metric: string;
  readonly split: string;
  readonly value: number;
  readonly se: number | null;
}

/** Source name ('base' included) → its scores (any splits). */
export type SourceScoreLists = ReadonlyMap<string, readonly ScoreLike[]>;

/** The share of a source's gain kept: (value − base) / (source − base). */
export function shareKept(value: number, base: number, source: number): number {
  return (value - base) / (source - base);
}

/** The metric name under which a derived share score is judged and shown, e.g. `auc:share_of:expert-spam`. */
export function shareMetric(metric: string, source: string): string {
  return `${metric}:share_of:${source}`;
}

interface Coefficient {
  readonly task: string;
  readonly metric: string;
  /** d objective / d score. */
  readonly scale: number;
  /** The constant part: −scale·base for a share term, 0 otherwise. */
  readonly offset: number;
}

/** Each term as offset + scale·score on `split`; undefined when a source score it needs is missing. */
function coefficients(
  terms: readonly ObjectiveTerm[],
  ownMetric: (task: string) => string,
  sources: SourceScoreLists | undefined,
  split: string,
): Coefficient[] | undefined {
  const out: Coefficient[] = [];
  for (const t of terms) {
    const metric = t.metric ?? ownMetric(t.task);
    if (t.shareOf === undefined) {
      out.push({ task: t.task, metric, scale: t.weight, offset: 0 });
      continue;
    }
    const find = (name: string) =>
      sources?.get(name)?.find((s) => s.split === split && s.task === t.task && s.metric === metric)?.value;
    const base = find('base');
    const src = find(t.shareOf);
    if (base === undefined || src === undefined || !Number.isFinite(base) || !Number.isFinite(src) || src === base)
      return undefined;
    const scale = t.weight / (src - base);
    out.push({ task: t.task, metric, scale, offset: -scale * base });
  }
  return out;
}

/**
 * The objective on `split` (a weighted sum of terms, share terms normalised against their sources) with its SE,
 * √Σ (scale·se)² (terms taken as independent: they are different tasks in practice). −∞ when a score is
 * missing or not finite; NaN when a share term's source or base scores on that split are missing.
 */
export function objectiveEstimate(
  terms: readonly ObjectiveTerm[],
  ownMetric: (task: string) => string,
  scores: readonly ScoreLike[],
  sources: SourceScoreLists | undefined,
  split: string,
): ObjectiveValue {
  const coefs = coefficients(terms, ownMetric, sources, split);
  if (!coefs) return { value: Number.NaN, se: Number.NaN };
  let value = 0;
  let variance = 0;
  for (const c of coefs) {
    const s = scores.find((x) => x.split === split && x.task === c.task && x.metric === c.metric);
    if (!s || !Number.isFinite(s.value)) return { value: -Infinity, se: Number.NaN };
    value += c.offset + c.scale * s.value;
    variance += (c.scale * (s.se ?? Number.NaN)) ** 2;
  }
  return { value, se: Math.sqrt(variance) };
}

/** `task/metric` → per-item pseudo-values on one split (what the store keeps for test scores). */
export type ItemValues = ReadonlyMap<string, readonly number[]>;

/**
 * The objective of model a minus that of model b on `split`, with the paired SE over items. Per task, each term's
 * difference is linearised per item — a plain term w·(aᵢ − bᵢ); a share term, a ratio (A − B)/(S − Z) of the two
 * models' difference over the source's gain S − Z (Z the base), w·[(aᵢ − bᵢ) − d·(sᵢ − zᵢ)]/(S − Z) with
 * d = (A − B)/(S − Z), so the noise of the gain that normalises the term counts too (every model is scored on
 * the same items) — and the SE is that of the per-item sums; tasks are independent item sets, so their
 * variances add. `sourceItems`: source name ('base' included) → its item values. Undefined when item values or
 * source scores are missing.
 */
export function pairedObjectiveDifference(
  terms: readonly ObjectiveTerm[],
  ownMetric: (task: string) => string,
  a: ItemValues,
  b: ItemValues,
  sources: SourceScoreLists,
  split: string,
  sourceItems: ReadonlyMap<string, ItemValues>,
): ObjectiveValue | undefined {
  const coefs = coefficients(terms, ownMetric, sources, split);
  if (!coefs) return undefined;
  const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const byTask = new Map<string, number[]>();
  let value = 0;
  for (const [k, c] of coefs.entries()) {
    const key = `${c.task}/${c.metric}`;
    const xa = a.get(key);
    const xb = b.get(key);
    if (!xa || !xb || xa.length !== xb.length) return undefined;
    const d = byTask.get(c.task) ?? new Array<number>(xa.length).fill(0);
    if (d.length !== xa.length) return undefined;
    const diff = mean(xa) - mean(xb);
    value += c.scale * diff;
    const shareOf = terms[k]!.shareOf;
    if (shareOf === undefined) {
      xa.forEach((v, i) => (d[i]! += c.scale * (v - xb[i]!)));
    } else {
      const xs = sourceItems.get(shareOf)?.get(key);
      const xz = sourceItems.get('base')?.get(key);
      if (!xs || !xz || xs.length !== xa.length || xz.length !== xa.length) return undefined;
      const gain = mean(xs) - mean(xz);
      const ratio = diff / gain;
      xa.forEach((v, i) => (d[i]! += c.scale * (v - xb[i]! - ratio * (xs[i]! - xz[i]!))));
    }
    byTask.set(c.task, d);
  }
  let variance = 0;
  // the sample variance of the per-item sums over n (SE² of their mean)
  for (const d of byTask.values()) {
    const m = mean(d);
    variance += d.reduce((s, x) => s + (x - m) ** 2, 0) / (d.length - 1) / d.length;
  }
  return { value, se: Math.sqrt(variance) };
}

/** One objective of Pareto mode (gates/pareto.ts): a term of the objective, keyed `task/metric` (a share term's metric is
 *  `<metric>:share_of:<source>`), with its value and SE on a split. */
export interface TermValue {
  readonly key: string;
  readonly value: number;
  readonly se: number;
}

/** The key of a term: `task/metric`, or `task/<metric>:share_of:<source>` for a share term. */
export function termKey(term: ObjectiveTerm, ownMetric: (task: string) => string): string {
  const metric = term.metric ?? ownMetric(term.task);
  return `${term.task}/${term.shareOf === undefined ? metric : shareMetric(metric, term.shareOf)}`;
}

/** Each term's value on `split` (unweighted; a share term as the share kept, as the weighted objective reads it). */
export function termValues(
  terms: readonly ObjectiveTerm[],
  ownMetric: (task: string) => string,
  scores: readonly ScoreLike[],
  sources: SourceScoreLists | undefined,
  split: string,
): TermValue[] {
  return terms.map((t) => ({
    key: termKey(t, ownMetric),
    ...objectiveEstimate([{ ...t, weight: 1 }], ownMetric, scores, sources, split),
  }));
}
