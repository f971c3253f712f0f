// Release gates: the gate type, the parsing and validation of a gate list (a search space's `gates:`), and a
// pure function from (candidate scores, source scores, gate specs) to verdicts, used by search (fit split) and
// export (test split). The one definition of a gate: nothing else declares, parses or names one.

import { editDistance, EvomergeError } from '../errors.ts';

export const gateKinds = ['floor', 'no_regression', 'min_gain'] as const;
export type GateKind = (typeof gateKinds)[number];

/**
 * One gate as written in a search space:
 * - `floor`: metric ≥ `value` (with `shareOf`: the share of that source's gain over the base kept ≥ `value`, see GateSpec.shareOf).
 * - `no_regression`: metric ≥ score of `source` (default: the base model) − `tolerance` (default 0).
 * - `min_gain`: metric ≥ max over `sources` (default: every source, base included) + `delta` (default 0).
 */
export interface GateSpec {
  kind: GateKind;
  task: string;
  /** Default: the task's own metric (GateContext.defaultMetrics), or the only metric scored for the task. */
  metric?: string;
  /** floor only: the threshold. */
  value?: number;
  /** no_regression only: the source model to compare with (a source name, or "base"). */
  source?: string;
  /** min_gain only: the source models whose best score must be beaten. */
  sources?: string[];
  /** no_regression only: allowed drop, ≥ 0. */
  tolerance?: number;
  /** min_gain only: required gain over the best source. */
  delta?: number;
  /** Unique within a spec list; default `<kind>:<task>` (give a name to tell two gates of a kind and task apart). */
  name?: string;
  /**
   * floor only (`share_of:` in YAML): the floor is on the share of this source's gain over the base that the
   * candidate keeps, (score − base) / (source − base). The caller derives that score (objective.ts's shareKept)
   * and hands the gate over with `metric` set to `<metric>:share_of:<source>` (shareMetric) and no `shareOf`.
   */
  shareOf?: string;
}

/** A gate as parsed: its name filled in. */
export type NamedGateSpec = GateSpec & { readonly name: string };

/** A score as gates need it (the store's ScoreRecord fits). */
export interface GateScore {
  task: string;
  metric: string;
  value: number;
}

export interface GateContext {
  /** Scores of every source model, base included, by source name (same split as the candidate's). */
  sources: Readonly<Record<string, readonly GateScore[]>>;
  /** The name of the base model among `sources`: the default of no_regression, and what "base" means. */
  base?: string;
  /** The suite's own metric per task, used when a spec names no metric. */
  defaultMetrics?: Readonly<Record<string, string>>;
}

export interface GateVerdict {
  gate: string;
  kind: GateKind;
  task: string;
  metric: string;
  /** The candidate's score (NaN when missing or failed: such a gate fails). */
  value: number;
  threshold: number;
  /** The source(s) whose score set the threshold (none for floor). */
  against: string[];
  pass: boolean;
}

/** Scores that differ from the threshold by float rounding only (e.g. 0.1 + 0.2 vs 0.3) count as equal. */
const ROUNDING = 1e-12;

/** The name a gate is recorded under: its own, else `<kind>:<task>`. */
export function gateName(spec: GateSpec): string {
  return spec.name ?? `${spec.kind}:${spec.task}`;
}

/**
 * Judge one candidate against every gate, in spec order. Pure: no I/O, inputs unchanged. A missing or
 * non-finite candidate score fails its gate (a failed candidate is data); a missing *source* score is a
 * caller error (`gates.missing_score`). Validate specs first with `checkGateSpecs`.
 */
export function evaluateGates(
  candidate: readonly GateScore[],
  specs: readonly GateSpec[],
  ctx: GateContext,
): GateVerdict[] {
  return specs.map((spec) => {
    const gate = gateName(spec);
    const metric = resolveMetric(spec, candidate, ctx, gate);
    const value = lookup(candidate, spec.task, metric) ?? NaN;
    let threshold: number;
    let against: string[] = [];
    switch (spec.kind) {
      case 'floor':
        threshold = spec.value as number;
        break;
      case 'no_regression': {
        const ref = resolveSource(spec.source, ctx, gate);
        against = [ref];
        threshold = sourceScore(ctx, ref, spec.task, metric, gate) - (spec.tolerance ?? 0);
        break;
      }
      case 'min_gain': {
        const refs = spec.sources ?? Object.keys(ctx.sources);
        if (refs.length === 0) {
          throw new EvomergeError('gates.missing_score', 'no source scores to compare with', { field: gate });
        }
        const scores = refs.map((r) => sourceScore(ctx, resolveSource(r, ctx, gate), spec.task, metric, gate));
        const best = Math.max(...scores);
        against = refs.filter((_, i) => scores[i] === best).map((r) => resolveSource(r, ctx, gate));
        threshold = best + (spec.delta ?? 0);
        break;
      }
      default:
        throw new EvomergeError('gates.bad_spec', `unknown gate kind "${String((spec as GateSpec).kind)}"`, {
          field: gate,
        });
    }
    const pass =
      Number.isFinite(value) &&
      !Number.isNaN(threshold) &&
      value >= threshold - ROUNDING * Math.max(1, Math.abs(threshold));
    return { gate, kind: spec.kind, task: spec.task, metric, value, threshold, against, pass };
  });
}

/** A candidate is kept only if it clears every gate (no gates: kept). */
export function allPass(verdicts: readonly GateVerdict[]): boolean {
  return verdicts.every((v) => v.pass);
}

function lookup(scores: readonly GateScore[], task: string, metric: string): number | undefined {
  return scores.find((s) => s.task === task && s.metric === metric)?.value;
}

function resolveMetric(spec: GateSpec, candidate: readonly GateScore[], ctx: GateContext, gate: string): string {
  if (spec.metric !== undefined) return spec.metric;
  const fromSuite = ctx.defaultMetrics?.[spec.task];
  if (fromSuite !== undefined) return fromSuite;
  const metrics = new Set<string>();
  for (const s of candidate) if (s.task === spec.task) metrics.add(s.metric);
  for (const scores of Object.values(ctx.sources))
    for (const s of scores) if (s.task === spec.task) metrics.add(s.metric);
  if (metrics.size === 1) return [...metrics][0];
  throw new EvomergeError(
    'gates.ambiguous_metric',
    metrics.size === 0
      ? `no scores for task "${spec.task}"`
      : `task "${spec.task}" has metrics ${[...metrics].join(', ')}; name one with "metric"`,
    { field: gate },
  );
}

function resolveSource(name: string | undefined, ctx: GateContext, gate: string): string {
  if (name !== undefined && name in ctx.sources) return name;
  if ((name === undefined || name === 'base') && ctx.base !== undefined) return ctx.base;
  throw new EvomergeError(
    'gates.unknown_source',
    name === undefined ? 'no source named and no base model given' : `unknown source "${name}"`,
    { field: gate },
  );
}

function sourceScore(ctx: GateContext, source: string, task: string, metric: string, gate: string): number {
  const v = lookup(ctx.sources[source] ?? [], task, metric);
  if (v === undefined) {
    throw new EvomergeError('gates.missing_score', `source "${source}" has no ${task}/${metric} score`, {
      field: gate,
    });
  }
  return v;
}

// ---- validation of spec lists (the caller knows the suite and the sources)

/** What a spec list may refer to. */
export interface GateTargets {
  /** Task names of the eval suite; absent: not checked here (the caller checks them against its suite). */
  tasks?: readonly string[];
  /** Source model names (base included). */
  sources: readonly string[];
  /** Name of the base model among `sources`, if any ("base" then also refers to it). */
  base?: string;
  /** Metrics available per task; when given, `metric` is checked against it. */
  metrics?: Readonly<Record<string, readonly string[]>>;
}

const allowedKeys: Record<GateKind, readonly string[]> = {
  floor: ['kind', 'task', 'metric', 'value', 'name', 'share_of'],
  no_regression: ['kind', 'task', 'metric', 'source', 'tolerance', 'name'],
  min_gain: ['kind', 'task', 'metric', 'sources', 'delta', 'name'],
};

/**
 * Check raw gate specs (as parsed from YAML) against the suite's tasks and the sources. Returns every
 * problem as a one-line EvomergeError naming the key, e.g.
 * `space.yaml: gates[2].task: unknown task "mathx"; the suite has: math_words, lang, composite`.
 * An empty array means `raw` is a valid `GateSpec[]`.
 */
export function checkGateSpecs(
  raw: unknown,
  targets: GateTargets,
  place: { file?: string; key?: string } = {},
): EvomergeError[] {
  const key = place.key ?? 'gates';
  const errors: EvomergeError[] = [];
  const err = (code: string, field: string, what: string) =>
    errors.push(new EvomergeError(code, what, { file: place.file, field }));
  if (!Array.isArray(raw)) {
    err('gates.bad_spec', key, 'expected a list of gates');
    return errors;
  }
  const sourceNames = [
    ...targets.sources,
    ...(targets.base !== undefined && !targets.sources.includes('base') ? ['base'] : []),
  ];
  const names = new Map<string, number>();
  raw.forEach((spec, i) => {
    const at = `${key}[${i}]`;
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
      err('gates.bad_spec', at, 'expected a mapping with kind and task');
      return;
    }
    const s = spec as Record<string, unknown>;
    if (!gateKinds.includes(s.kind as GateKind)) {
      err(
        'gates.bad_spec',
        `${at}.kind`,
        `${s.kind === undefined ? 'missing' : `unknown kind ${JSON.stringify(s.kind)}`}; expected one of: ${gateKinds.join(', ')}`,
      );
      return;
    }
    const kind = s.kind as GateKind;
    for (const k of Object.keys(s)) {
      if (k === 'share_of' && kind !== 'floor') {
        err(
          'gates.bad_spec',
          `${at}.share_of`,
          "only for floor gates (a floor on the share of that source's gain kept)",
        );
      } else if (!allowedKeys[kind].includes(k)) {
        const elsewhere = gateKinds.filter((g) => allowedKeys[g].includes(k));
        const hint = elsewhere.length > 0 ? ` (only for ${elsewhere.join(', ')})` : suggest(k, allowedKeys[kind]);
        err(
          'gates.unknown_key',
          `${at}.${k}`,
          `unknown key for a ${kind} gate${hint}; allowed: ${allowedKeys[kind].join(', ')}`,
        );
      }
    }
    if (typeof s.task !== 'string') {
      err('gates.bad_spec', `${at}.task`, 'missing; expected a task name');
    } else if (targets.tasks && !targets.tasks.includes(s.task)) {
      err(
        'gates.unknown_task',
        `${at}.task`,
        `unknown task ${JSON.stringify(s.task)}; the suite has: ${targets.tasks.join(', ')}`,
      );
    }
    if (s.metric !== undefined) {
      if (typeof s.metric !== 'string') err('gates.bad_spec', `${at}.metric`, 'expected a metric name');
      else if (
        targets.metrics &&
        typeof s.task === 'string' &&
        targets.metrics[s.task] &&
        !targets.metrics[s.task].includes(s.metric)
      ) {
        err(
          'gates.unknown_metric',
          `${at}.metric`,
          `unknown metric ${JSON.stringify(s.metric)} for task ${s.task}; it has: ${targets.metrics[s.task].join(', ')}`,
        );
      }
    }
    if (kind === 'floor' && !(typeof s.value === 'number' && Number.isFinite(s.value))) {
      err(
        'gates.bad_spec',
        `${at}.value`,
        `${s.value === undefined ? 'missing' : `got ${JSON.stringify(s.value)}`}; a floor gate needs a finite number`,
      );
    }
    if (kind === 'floor' && s.share_of !== undefined) {
      if (
        typeof s.share_of !== 'string' ||
        s.share_of === 'base' ||
        s.share_of === targets.base ||
        !targets.sources.includes(s.share_of)
      ) {
        const models = targets.sources.filter((n) => n !== 'base' && n !== targets.base);
        err(
          'gates.unknown_source',
          `${at}.share_of`,
          `unknown source ${JSON.stringify(s.share_of)}; expected one of the models: ${models.join(', ')}`,
        );
      }
    }
    if (kind === 'no_regression') {
      if (s.source === undefined) {
        if (targets.base === undefined)
          err(
            'gates.unknown_source',
            `${at}.source`,
            `missing and there is no base model; sources: ${targets.sources.join(', ')}`,
          );
      } else if (typeof s.source !== 'string' || !sourceNames.includes(s.source)) {
        err(
          'gates.unknown_source',
          `${at}.source`,
          `unknown source ${JSON.stringify(s.source)}; sources: ${sourceNames.join(', ')}`,
        );
      }
      if (
        s.tolerance !== undefined &&
        !(typeof s.tolerance === 'number' && Number.isFinite(s.tolerance) && s.tolerance >= 0)
      ) {
        err('gates.bad_spec', `${at}.tolerance`, `got ${JSON.stringify(s.tolerance)}; expected a number ≥ 0`);
      }
    }
    if (kind === 'min_gain') {
      if (s.sources !== undefined) {
        if (!Array.isArray(s.sources) || s.sources.length === 0) {
          err('gates.bad_spec', `${at}.sources`, 'expected a non-empty list of source names');
        } else {
          s.sources.forEach((name, j) => {
            if (typeof name !== 'string' || !sourceNames.includes(name)) {
              err(
                'gates.unknown_source',
                `${at}.sources[${j}]`,
                `unknown source ${JSON.stringify(name)}; sources: ${sourceNames.join(', ')}`,
              );
            }
          });
        }
      } else if (targets.sources.length === 0) {
        err('gates.unknown_source', `${at}.sources`, 'no sources to compare with');
      }
      if (s.delta !== undefined && !(typeof s.delta === 'number' && Number.isFinite(s.delta))) {
        err('gates.bad_spec', `${at}.delta`, `got ${JSON.stringify(s.delta)}; expected a number`);
      }
    }
    if (s.name !== undefined && (typeof s.name !== 'string' || s.name === '')) {
      err('gates.bad_spec', `${at}.name`, 'expected a non-empty string');
      return;
    }
    if (typeof s.task === 'string') {
      const name = gateName(s as unknown as GateSpec);
      const first = names.get(name);
      if (first !== undefined) {
        err(
          'gates.duplicate_name',
          `${at}.name`,
          `gate name ${JSON.stringify(name)} is already used by ${key}[${first}]; give one a distinct name`,
        );
      } else {
        names.set(name, i);
      }
    }
  });
  return errors;
}

/** `checkGateSpecs`, throwing the first error; returns the specs typed, each with its name. */
export function parseGateSpecs(
  raw: unknown,
  targets: GateTargets,
  place: { file?: string; key?: string } = {},
): NamedGateSpec[] {
  const errors = checkGateSpecs(raw, targets, place);
  if (errors.length > 0) throw errors[0];
  return (raw as (GateSpec & { share_of?: string })[]).map(({ share_of, ...s }) => ({
    ...s,
    name: gateName(s),
    ...(s.sources ? { sources: [...s.sources] } : {}),
    ...(share_of !== undefined ? { shareOf: share_of } : {}),
  }));
}

/** ` did you mean "x"?` for a near-miss key (edit distance ≤ 2), else ''. */
function suggest(key: string, allowed: readonly string[]): string {
  let best = '';
  let bestD = 3;
  for (const a of allowed) {
    const d = editDistance(key, a);
    if (d < bestD) {
      bestD = d;
      best = a;
    }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}
