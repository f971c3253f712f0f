// PS, DFS and PS + DFS side by side on the micro zoo, over seeds: a parameter-space campaign (the micro-EvoLLM
// demo space), a data-flow campaign over expert-math's and expert-lang's layers (search-spaces/micro-dfs.yaml),
// and a data-flow campaign whose model A is the PS campaign's winner, exported. For each: the winner (the pick,
// else — none kept — the best fit objective) and its test composite exact match ± its binomial SE, the mean
// over seeds ± the SE over seeds. Every campaign is real (databases and exports kept under --dir); the spaces
// are the demo's with --budget candidates and --eval-limit items per task (a size that fits a shared machine).
// `npm run bench -- search --dfs [--budget 48] [--seeds 1,2] [--eval-limit 50] [--workers 2] [--dir runs/bench-dfs]`
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { CpuKernel } from '../src/kernel/cpu/cpu-kernel.ts';
import { exportCandidate } from '../src/release/export.ts';
import { runCampaign } from '../src/search/campaign/campaign.ts';
import { prepareCampaign } from '../src/search/campaign/campaign-setup.ts';
import { missingOnTestSplit, scoreOnTestSplit } from '../src/search/campaign/test-split.ts';
import { openStore } from '../src/store/db.ts';
import { pickedCandidate } from '../src/report/report.ts';
import { cpuScorerFor } from './cpu-test-scorer.ts';

interface Outcome {
  method: string;
  seed: number;
  candidates: number;
  kept: number;
  ordinal: number;
  status: string;
  fit: number;
  test: number;
  se: number;
  seconds: number;
  db: string;
}

/** The space file with its paths made absolute and the run's size set, written under `dir`. */
function sizedSpace(file: string, dir: string, name: string, changes: Record<string, unknown>): string {
  const doc = YAML.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const abs = (p: unknown) => path.resolve(path.dirname(file), p as string);
  doc.base_model = abs(doc.base_model);
  doc.models = (doc.models as unknown[]).map(abs);
  doc.suite = abs(doc.suite);
  Object.assign(doc, { name }, changes);
  const out = path.join(dir, `${name}.yaml`);
  writeFileSync(out, YAML.stringify(doc));
  return out;
}

async function campaign(method: string, space: string, db: string, seed: number, workers: number): Promise<Outcome> {
  const t0 = performance.now();
  await runCampaign({ spaceFile: space, db, seed, workers, kernel: new CpuKernel(), testTop: 0 });
  const seconds = (performance.now() - t0) / 1000;
  const setup = prepareCampaign(space, { seed, workers });
  const task = setup.space.objective[0]!.task;
  const metric = setup.suite.tasks.find((t) => t.name === task)!.metric;
  const store = openStore(db);
  try {
    const [c] = store.listCampaigns();
    const all = store.listCandidates(c!.campaignId, { kind: 'search' });
    const winner =
      pickedCandidate(store, c!.campaignId)?.candidate ??
      all
        .filter((x) => x.objective !== null && Number.isFinite(x.objective))
        .sort((x, y) => y.objective! - x.objective! || x.ordinal! - y.ordinal!)[0]!;
    const scorer = await cpuScorerFor(setup);
    try {
      await scoreOnTestSplit(store, scorer, setup.measures, missingOnTestSplit(store, [{ candidate: winner }]), 1);
    } finally {
      await scorer.close();
    }
    const s = store.listScores(winner.candidateId, 'test').find((x) => x.task === task && x.metric === metric)!;
    return {
      method,
      seed,
      candidates: all.length,
      kept: all.filter((x) => x.status === 'kept').length,
      ordinal: winner.ordinal!,
      status: winner.status,
      fit: winner.objective!,
      test: s.value,
      se: s.se,
      seconds,
      db,
    };
  } finally {
    store.close();
  }
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      budget: { type: 'string', default: '48' },
      seeds: { type: 'string', default: '1,2' },
      'eval-limit': { type: 'string', default: '50' },
      workers: { type: 'string', default: '2' },
      dir: { type: 'string', default: 'runs/bench-dfs' },
      ps: { type: 'string', default: 'search-spaces/micro-evollm.yaml' },
      dfs: { type: 'string', default: 'search-spaces/micro-dfs.yaml' },
    },
  });
  const dir = path.resolve(values.dir);
  mkdirSync(dir, { recursive: true });
  const size = { budget: { candidates: Number(values.budget) }, eval_limit: Number(values['eval-limit']) };
  const workers = Number(values.workers);
  const out: Outcome[] = [];
  for (const seed of values.seeds.split(',').map(Number)) {
    const ps = await campaign(
      'PS',
      sizedSpace(values.ps, dir, `ps-seed${seed}`, size),
      path.join(dir, `ps-seed${seed}.sqlite`),
      seed,
      workers,
    );
    out.push(ps);
    const dfs = sizedSpace(values.dfs, dir, `dfs-seed${seed}`, size);
    out.push(await campaign('DFS', dfs, path.join(dir, `dfs-seed${seed}.sqlite`), seed, workers));
    // PS + DFS: the PS winner, exported (gates re-checked on test, forced: the bench compares whatever won)
    const psExport = path.join(dir, `ps-seed${seed}-export`);
    await exportCandidate({
      db: ps.db,
      candidate: ps.status === 'kept' ? 'best' : String(ps.ordinal),
      outDir: psExport,
      force: true,
      kernel: async () => new CpuKernel(),
    });
    const psDfs = sizedSpace(values.dfs, dir, `psdfs-seed${seed}`, size);
    const doc = YAML.parse(readFileSync(psDfs, 'utf8')) as { models: string[] };
    doc.models[0] = psExport;
    writeFileSync(psDfs, YAML.stringify(doc));
    out.push(await campaign('PS + DFS', psDfs, path.join(dir, `psdfs-seed${seed}.sqlite`), seed, workers));
    for (const o of out.slice(-3))
      process.stderr.write(`${o.method} seed ${seed}: ${o.candidates} candidates in ${o.seconds.toFixed(0)} s\n`);
  }

  console.log(
    `\nmicro zoo, composite (arithmetic asked in Zorbish): the winner of each campaign (the pick, else the best fit ` +
      `objective when none was kept), ${values.budget} candidates, ${values['eval-limit']} items per task\n`,
  );
  console.log('| method | seed | winner | kept / candidates | fit objective | test composite EM ± SE | minutes |');
  console.log('|---|---|---|---|---|---|---|');
  for (const o of out)
    console.log(
      `| ${o.method} | ${o.seed} | #${o.ordinal} (${o.status}) | ${o.kept} / ${o.candidates} | ${o.fit.toFixed(4)} | ` +
        `${o.test.toFixed(3)} ± ${o.se.toFixed(3)} | ${(o.seconds / 60).toFixed(1)} |`,
    );
  console.log('\n| method | mean test composite EM ± SE over seeds | mean binomial SE within a seed |');
  console.log('|---|---|---|');
  for (const method of ['PS', 'DFS', 'PS + DFS']) {
    const xs = out.filter((o) => o.method === method);
    const m = xs.reduce((a, o) => a + o.test, 0) / xs.length;
    const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, o) => a + (o.test - m) ** 2, 0) / (xs.length - 1)) : NaN;
    const within = xs.reduce((a, o) => a + o.se, 0) / xs.length;
    console.log(
      `| ${method} | ${m.toFixed(3)} ± ${Number.isFinite(sd) ? (sd / Math.sqrt(xs.length)).toFixed(3) : 'n/a'} ` +
        `| ${within.toFixed(3)} |`,
    );
  }
}
