// Which scorer a campaign scores with: the embedded one (this process, on worker threads when the kernel is the
// CPU's) or one that a factory builds once the campaign's record exists (the job queue's remote workers).
import path from 'node:path';
import type { ExecutionProvider } from '../../eval/onnx-session.ts';
import type { MergeKernel } from '../../kernel/kernel.ts';
import type { Store } from '../../store/db.ts';
import type { CampaignSetup } from '../campaign/campaign-setup.ts';
import { Scorer, type CandidateScorer } from './scorer.ts';
import { ThreadedScorer } from './scorer-threads.ts';

/** Builds a campaign's scorer once its record exists (a remote scorer checks inputs against the record). */
export type ScorerFactory = (context: {
  readonly setup: CampaignSetup;
  readonly store: Store;
  readonly campaignId: number;
}) => Promise<CandidateScorer>;

/**
 * The scorer in this process. On the CPU, candidates are merged and scored on worker threads (onnxruntime-node
 * runs inference on the calling thread, so only threads use several cores); a GPU kernel lives in this thread,
 * so it scores here.
 */
export async function embeddedScorer(
  setup: CampaignSetup,
  kernel: MergeKernel,
  ep: ExecutionProvider,
): Promise<CandidateScorer> {
  const scoring = {
    graph: setup.space.graph,
    baseModelDir: setup.space.baseModel.path,
    ep,
    workers: setup.workers,
    limit: setup.space.evalLimit,
    baseDir: path.dirname(setup.space.file),
  } as const;
  return kernel.device.startsWith('cpu') && setup.workers > 1
    ? await ThreadedScorer.create({ ...scoring, suiteFile: setup.space.suite })
    : await Scorer.create({ ...scoring, suite: setup.suite, kernel });
}
