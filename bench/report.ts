// Render time and size of the HTML report on long campaigns: synthetic campaign databases shaped like the
// micro-EvoLLM demo (2 experts, 7 cells × weight and density = 28 genes plus the method, population 14,
// 3 gates, 4 measures, a CMA-ES state with its 28×28 covariance saved per generation) with N search
// candidates, written through the store. Timed: `renderHtmlReport` (open, read, thin, render every plot,
// assemble), best of --reps, on a fresh process's first render excluded (vega's own start-up is reported apart).
// `npm run bench -- report [--sizes 10000,100000] [--reps 3] [--dir runs/bench-report] [--keep] [--reuse]`
// (--keep leaves the databases; --reuse renders a kept one again instead of rewriting it: same seed, same records)
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openStore } from '../src/store/db.ts';
import { renderHtmlReport } from '../src/report/html/page.ts';
import { mulberry32 } from '../test/fixtures/seeded-random.ts';

const MODELS = ['expert-math', 'expert-lang'];
const CELLS = ['layer0', 'layer1', 'layer2', 'layer3', 'layer4', 'layer5', 'nonlayer'];
const METHODS = ['task_arithmetic', 'ties', 'dare_ties'];
const POPULATION = 14;
const MEASURES = [
  { task: 'composite', metric: 'exact_match' },
  { task: 'composite', metric: 'answer_logprob' },
  { task: 'math_words', metric: 'exact_match' },
  { task: 'lang', metric: 'loglik' },
];
const GATES = [
  { name: 'composite_gain', kind: 'min_gain', task: 'composite', metric: 'exact_match' },
  { name: 'math_words_floor', kind: 'floor', task: 'math_words', metric: 'exact_match' },
  { name: 'lang_floor', kind: 'floor', task: 'lang', metric: 'loglik' },
];

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      sizes: { type: 'string', default: '10000,100000' },
      reps: { type: 'string', default: '3' },
      dir: { type: 'string', default: 'runs/bench-report' },
      keep: { type: 'boolean', default: false },
      reuse: { type: 'boolean', default: false },
    },
  });
  mkdirSync(values.dir, { recursive: true });
  const reps = Number(values.reps);
  // vega's parser and scenegraph warm up on a first render; a campaign rewrites its report every generation
  const warm = path.join(values.dir, 'warm-up.sqlite');
  syntheticCampaign(warm, 200);
  const t0 = performance.now();
  await renderHtmlReport(warm);
  const firstMs = performance.now() - t0;
  console.log(`first render in this process (vega start-up, 200 candidates): ${firstMs.toFixed(0)} ms`);
  console.log(
    `| candidates | database | write (not timed) | render, wall (best of ${reps}) | render, CPU (best of ${reps}) | ` +
      `HTML size | candidates drawn |`,
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const n of values.sizes.split(',').map(Number)) {
    const db = path.join(values.dir, `synthetic-${n}.sqlite`);
    const w0 = performance.now();
    const reused = values.reuse && existsSync(db);
    if (!reused) syntheticCampaign(db, n);
    const write = reused ? 'reused' : `${((performance.now() - w0) / 1000).toFixed(1)} s`;
    let best = Infinity;
    let bestCpu = Infinity;
    let html = '';
    for (let r = 0; r < reps; r++) {
      const s = performance.now();
      const c = process.cpuUsage();
      html = await renderHtmlReport(db);
      best = Math.min(best, performance.now() - s);
      const u = process.cpuUsage(c);
      bestCpu = Math.min(bestCpu, (u.user + u.system) / 1000);
    }
    const points = (html.match(/<title>#/g) ?? []).length;
    const { size } = statSync(db);
    console.log(
      `| ${n.toLocaleString('en')} | ${(size / 1e6).toFixed(0)} MB | ${write} | ${(best / 1000).toFixed(2)} s | ` +
        `${(bestCpu / 1000).toFixed(2)} s | ${(Buffer.byteLength(html) / 1e6).toFixed(2)} MB | ${points} |`,
    );
    if (!values.keep) for (const f of [db, `${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });
  }
  for (const f of [warm, `${warm}-wal`, `${warm}-shm`]) rmSync(f, { force: true });
}

/** A campaign database with `n` search candidates, fresh (an existing file is replaced). */
export function syntheticCampaign(file: string, n: number, seed = 1): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  const rand = mulberry32(seed);
  const store = openStore(file);
  try {
    const config = {
      name: 'synthetic',
      baseModel: { name: 'base', path: '/models/base' },
      models: MODELS.map((m) => ({ name: m, path: `/models/${m}` })),
      suite: '/evals/micro.yaml',
      genome: {
        layerGroups: 'per_layer',
        filters: [],
        methods: METHODS,
        ranges: { weight: { min: 0, max: 1.5 }, density: { min: 0.1, max: 1 } },
        fixed: {},
      },
      objective: [{ task: 'composite', metric: 'exact_match', weight: 1 }],
      gates: GATES,
      references: [{ name: 'TIES d=0.5', method: 'ties', weight: 1, density: 0.5 }],
      optimizer: 'cmaes',
      populationSize: POPULATION,
      seed,
      ownMetrics: { composite: 'exact_match', math_words: 'exact_match', lang: 'loglik' },
      measures: MEASURES,
    };
    const campaign = store.createCampaign({
      name: 'synthetic',
      configJson: JSON.stringify(config),
      configHash: `synthetic-${n}`,
      seed,
      versionsJson: JSON.stringify({ evomerge: 'bench' }),
      device: 'cpu (synthetic)',
    });
    const id = campaign.campaignId;
    const scoresOf = (quality: number, split: string) =>
      MEASURES.map((m) => ({
        task: m.task,
        metric: m.metric,
        split,
        value:
          m.metric === 'loglik'
            ? -2.6 + quality
            : m.metric === 'answer_logprob'
              ? -5 + 4 * quality
              : Math.min(1, Math.max(0, quality + 0.05 * (rand() - 0.5))),
        se: 0.02,
        n: 150,
      }));
    const t = Date.parse('2026-01-01T00:00:00Z');
    store.transaction(() => {
      for (const [i, label] of ['base', ...MODELS, 'TIES d=0.5'].entries()) {
        const c = store.insertCandidate({
          campaignId: id,
          kind: i > MODELS.length ? 'reference' : 'source',
          label,
          contentHash: `baseline-${label}`,
        });
        const q = [0, 0.035, -0.1, 0.02][i]!;
        store.recordOutcome(c.candidateId, {
          outcome: { status: 'evaluated', objective: q },
          scores: [...scoresOf(q, 'fit'), ...scoresOf(q, 'test')],
        });
      }
      const theta = [1 / 3, 1 / 3, 1 / 3];
      for (let i = 0; i < n; i++) {
        const generation = Math.floor(i / POPULATION);
        // a noisy climb that flattens: the shape of a real campaign's objective cloud
        const progress = 1 - Math.exp(-i / (n / 5));
        const quality = 0.1 * progress + 0.05 * (rand() - 0.5);
        const genome: Record<string, number | string> = { method: METHODS[Math.floor(rand() * 3)]! };
        for (const cell of CELLS)
          for (const m of MODELS)
            for (const p of ['weight', 'density']) genome[`${cell}.${m}.${p}`] = Math.round(rand() * 1e6) / 1e6;
        const c = store.insertCandidate({
          campaignId: id,
          kind: 'search',
          ordinal: i,
          generation,
          genomeJson: JSON.stringify(genome),
          recipeYaml: 'merge_method: ties\n',
          contentHash: `c${i}`,
          createdAt: new Date(t + i * 1000).toISOString(),
        });
        const failed = rand() < 0.03;
        const verdicts = failed
          ? []
          : GATES.map((g, k) => ({
              gate: g.name,
              kind: g.kind,
              task: g.task,
              metric: g.metric,
              split: 'fit',
              value: quality,
              threshold: 0.03 * k,
              pass: rand() < [0.3, 0.8, 0.9][k]!,
            }));
        const status = failed ? 'failed' : verdicts.every((v) => v.pass) ? 'kept' : 'rejected';
        const closes = i % POPULATION === POPULATION - 1;
        if (closes) {
          const w = Math.min(0.9, 1 / 3 + generation / (n / POPULATION));
          theta.splice(0, 3, w, (1 - w) / 2, (1 - w) / 2);
        }
        store.recordOutcome(c.candidateId, {
          outcome: {
            status,
            objective: failed ? -Infinity : quality,
            ...(failed ? { errorCode: 'merge.non_finite', errorMessage: 'a NaN weight' } : {}),
            finishedAt: new Date(t + i * 1000 + 900).toISOString(),
          },
          scores: failed ? [] : scoresOf(quality, 'fit'),
          verdicts,
          ...(closes
            ? {
                optimizerState: {
                  generation: generation + 1,
                  toldCount: i + 1,
                  stateJson: JSON.stringify(cmaState(theta, rand)),
                },
              }
            : {}),
        });
      }
    });
    // the three best kept, scored on the test split as a finished campaign does
    const kept = store
      .listCandidates(id, { kind: 'search', status: 'kept' })
      .sort((a, b) => (b.objective ?? 0) - (a.objective ?? 0))
      .slice(0, 3);
    for (const c of kept) store.addScores(c.candidateId, scoresOf((c.objective ?? 0) - 0.01, 'test'));
  } finally {
    store.close();
  }
}

/** A CMA-ES state of the demo's size (28 genes): what makes optimizer_states heavy. */
function cmaState(theta: number[], rand: () => number): Record<string, unknown> {
  const dim = 28;
  const vec = () => Array.from({ length: dim }, () => rand());
  return {
    kind: 'cmaes',
    version: 1,
    domain: {
      continuous: Array.from({ length: dim }, (_, i) => ({ name: `g${i}`, lower: 0, upper: 1 })),
      categorical: [{ name: 'method', choices: METHODS }],
    },
    algorithm: {
      mean: vec(),
      sigma: 0.2,
      C: Array.from({ length: dim }, vec),
      pc: vec(),
      ps: vec(),
      theta: [theta.slice()],
    },
  };
}
