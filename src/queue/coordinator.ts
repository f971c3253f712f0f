// `evomerge search … --queue`: the campaign's scorer becomes a queue of jobs answered by `evomerge worker`
// processes, here or on other hosts. The campaign (optimiser, record) stays in this process; the input
// models' files are recorded with the campaign the first time, and every job carries that record so a
// worker whose copy differs refuses the job.
import path from 'node:path';
import type { ExecutionProvider } from '../eval/onnx-session.ts';
import type { ScorerFactory } from '../search/scoring/scorer-factory.ts';
import { lmEvalDocCounts, suiteItemCount } from './answer.ts';
import { fingerprintModelDir } from './model-files.ts';
import { QueueScorer, type JobTiming } from './queue-scorer.ts';
import type { QueueConnection } from './job.ts';

export interface QueueCampaignOptions {
  readonly connection: QueueConnection;
  readonly queueName?: string;
  readonly ep: ExecutionProvider;
  readonly sweepMs?: number;
  readonly log?: (line: string) => void;
  /** Receives the scorer's per-job timings when the campaign closes it (the bench). */
  readonly onTimings?: (timings: readonly JobTiming[]) => void;
}

export function queueScorerFactory(options: QueueCampaignOptions): ScorerFactory {
  return async ({ setup, store, campaignId }) => {
    let modelFiles = store.listModelFiles(campaignId);
    if (modelFiles.length === 0) {
      modelFiles = [setup.space.baseModel, ...setup.space.models].flatMap((m) => fingerprintModelDir(m.path));
      store.recordModelFiles(campaignId, modelFiles);
    }
    return QueueScorer.create({
      connection: options.connection,
      ...(options.queueName ? { queueName: options.queueName } : {}),
      ...(options.sweepMs ? { sweepMs: options.sweepMs } : {}),
      ...(options.log ? { log: options.log } : {}),
      campaign: setup.configHash,
      evaluator: {
        suiteFile: setup.space.suite,
        ...(setup.space.graph ? { graph: setup.space.graph } : {}),
        baseModelDir: setup.space.baseModel.path,
        ep: options.ep,
        ...(setup.space.evalLimit !== undefined ? { limit: setup.space.evalLimit } : {}),
        baseDir: path.dirname(setup.space.file),
      },
      modelFiles,
      itemCount: suiteItemCount(setup.suite, setup.space.evalLimit, await lmEvalDocCounts(setup.suite)),
      // recorded (or checked against the record) before the factory is called
      inputs: store.listInputFingerprints(campaignId).map(({ path: p, role, digest }) => ({ path: p, role, digest })),
      ...(options.onTimings ? { onClose: options.onTimings } : {}),
    });
  };
}
