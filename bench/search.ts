// CMA-ES against random search at equal budgets on a search space (default: the micro-EvoLLM demo), over
// several seeds: the best kept candidate's fit objective and its test composite (the objective task's own
// metric) after b = each checkpoint budget. Every campaign is a real one (its database kept under --dir).
// `npm run bench -- search [--space search-spaces/micro-evollm.yaml] [--budgets 50,100,150] [--seeds 1,2,3]
//   [--optimizers cmaes,random] [--workers 2] [--dir runs/bench-search]`
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CpuKernel } from '../src/kernel/cpu/cpu-kernel.ts';
import { openStore } from '../src/store/db.ts';
import { runCampaign } from '../src/search/campaign/campaign.ts';
import { prepareCampaign } from '../src/search/campaign/campaign-setup.ts';
import type { OptimizerKind } from '../src/search/optimizers/optimizer.ts';
import { missingOnTestSplit, scoreOnTestSplit } from '../src/search/campaign/test-split.ts';
import { cpuScorerFor } from './cpu-test-scorer.ts';

interface Row {
  fit: number;
  test: number;
  seconds: number;
  /** Best fit objective among all candidates so far, kept or not (the optimiser's own progress). */
  anyFit: number;
  kept: number;
}

export async function main(args: string[]): Promise<void> {
  // --selection: the final-pick comparison (fit pick, val pick, + successive halving, + LCB) of search-selection.ts
  if (args[0] === '--selection') return (await import('./search-selection.ts')).main(args.slice(1));
  // --dfs: PS, DFS and PS + DFS side by side (search-dfs.ts)
  if (args[0] === '--dfs') return (await import('./search-dfs.ts')).main(args.slice(1));
  const { values } = parseArgs({
    args,
    options: {
      space: { type: 'string', default: 'search-spaces/micro-evollm.yaml' },
      budgets: { type: 'string', default: '50,100,150' },
      seeds: { type: 'string', default: '1,2,3' },
      optimizers: { type: 'string', default: 'cmaes,random' },
      workers: { type: 'string', default: '2' },
      dir: { type: 'string', default: 'runs/bench-search' },
    },
  });
  const budgets = values.budgets
    .split(',')
    .map(Number)
    .sort((a, b) => a - b);
  const seeds = values.seeds.split(',').map(Number);
  const optimizers = values.optimizers.split(',') as OptimizerKind[];
  const workers = Number(values.workers);
  const max = budgets[budgets.length - 1]!;

  // optimizer → budget → per-seed {fit objective, test metric} of the best kept candidate so far
  const results = new Map<string, Map<number, Row[]>>();
  for (const optimizer of optimizers) {
    const perBudget = new Map<number, Row[]>();
    results.set(optimizer, perBudget);
    for (const seed of seeds) {
      const db = path.join(values.dir, `${path.basename(values.space, '.yaml')}-${optimizer}-seed${seed}.sqlite`);
      const t0 = performance.now();
      await runCampaign({
        spaceFile: values.space,
        db,
        budget: max,
        seed,
        workers,
        optimizer,
        kernel: new CpuKernel(),
        testTop: 0,
      });
      const seconds = (performance.now() - t0) / 1000;
      const setup = prepareCampaign(values.space, { seed, workers, optimizer, budget: max });
      const task = setup.space.objective[0]!.task;
      const metric = setup.suite.tasks.find((t) => t.name === task)!.metric;
      const store = openStore(db);
      const scorer = await cpuScorerFor(setup);
      try {
        const [c] = store.listCampaigns();
        const kept = store.listCandidates(c!.campaignId, { kind: 'search', status: 'kept' });
        const all = store.listCandidates(c!.campaignId, { kind: 'search' });
        for (const b of budgets) {
          const best = kept
            .filter((k) => k.ordinal! < b)
            .sort((x, y) => y.objective! - x.objective! || x.ordinal! - y.ordinal!)[0];
          let test = NaN;
          if (best) {
            let s = store.listScores(best.candidateId, 'test').find((x) => x.task === task && x.metric === metric);
            if (!s) {
              await scoreOnTestSplit(
                store,
                scorer,
                setup.measures,
                missingOnTestSplit(store, [{ candidate: best }]),
                1,
              );
              s = store.listScores(best.candidateId, 'test').find((x) => x.task === task && x.metric === metric);
            }
            test = s!.value;
          }
          const list = perBudget.get(b) ?? [];
          const upTo = all.filter((x) => x.ordinal! < b);
          list.push({
            fit: best?.objective ?? NaN,
            test,
            seconds,
            anyFit: Math.max(...upTo.map((x) => x.objective ?? -Infinity)),
            kept: kept.filter((k) => k.ordinal! < b).length,
          });
          perBudget.set(b, list);
        }
      } finally {
        store.close();
        await scorer.close();
      }
      process.stderr.write(`${optimizer} seed ${seed}: ${max} candidates in ${seconds.toFixed(0)} s (${db})\n`);
    }
  }

  const setup = prepareCampaign(values.space, { budget: max });
  const task = setup.space.objective[0]!.task;
  const metric = setup.suite.tasks.find((t) => t.name === task)!.metric;
  const f = (xs: number[]) => {
    const ok = xs.filter(Number.isFinite);
    if (!ok.length) return 'none kept';
    const m = ok.reduce((a, b) => a + b, 0) / ok.length;
    return (
      `${m.toFixed(4)} [${Math.min(...ok).toFixed(3)}, ${Math.max(...ok).toFixed(3)}` +
      `]${ok.length < xs.length ? ` (${ok.length}/${xs.length} kept)` : ''}`
    );
  };
  console.log(
    `\n${setup.space.name}: best kept candidate after b evaluated candidates; mean [min, max] over seeds ${seeds.join(', ')}`,
  );
  console.log(
    `fit objective = ${setup.space.objective.map((t) => `${t.weight}×${t.task}/${t.metric ?? 'own'}`).join(' + ')}; ` +
      `test = ${task}/${metric}\n`,
  );
  console.log(
    `| optimizer | b | best kept fit objective | its test ${task} ${metric} | best fit objective, kept or not | kept candidates |`,
  );
  console.log('|---|---|---|---|---|---|');
  for (const [opt, per] of results) {
    for (const b of budgets) {
      const rs = per.get(b)!;
      console.log(
        `| ${opt} | ${b} | ${f(rs.map((r) => r.fit))} | ${f(rs.map((r) => r.test))} | ${f(rs.map((r) => r.anyFit))} | ` +
          `${rs.map((r) => r.kept).join(', ')} |`,
      );
    }
  }
}
