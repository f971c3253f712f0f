// The scorer the search benches score their winners with on the test split: one worker on the CPU kernel.
// Its own module so that bench/search.ts (which loads search-dfs.ts) and bench/search-dfs.ts share it without a cycle.
import path from 'node:path';
import { CpuKernel } from '../src/kernel/cpu/cpu-kernel.ts';
import type { prepareCampaign } from '../src/search/campaign/campaign-setup.ts';
import { Scorer } from '../src/search/scoring/scorer.ts';

/** A one-worker CPU scorer for a prepared campaign's suite, to score its winners on the test split. */
export function cpuScorerFor(setup: ReturnType<typeof prepareCampaign>): Promise<Scorer> {
  return Scorer.create({
    suite: setup.suite,
    graph: setup.space.graph,
    baseModelDir: setup.space.baseModel.path,
    kernel: new CpuKernel(),
    ep: 'cpu',
    workers: 1,
    limit: setup.space.evalLimit,
    baseDir: path.dirname(setup.space.file),
  });
}
