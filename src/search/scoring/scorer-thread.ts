// The body of one scoring thread (see scorer-threads.ts): a Scorer with one evaluator, one intra-op thread
// and its own CPU merge kernel, answering requests from the campaign's thread one at a time.
import { parentPort, workerData } from 'node:worker_threads';
import { EvomergeError } from '../../errors.ts';
import { parseSuiteFile } from '../../eval/suite.ts';
import { CpuKernel } from '../../kernel/cpu/cpu-kernel.ts';
import { Scorer } from './scorer.ts';
import type { ScoreReply, ScoreRequest, ThreadedScorerOptions } from './scorer-threads.ts';

function errorReply(id: number, err: unknown): ScoreReply {
  const e = err as EvomergeError;
  return {
    id,
    ok: false,
    error: {
      isEvomerge: err instanceof EvomergeError,
      code: e.code,
      message: e.message ?? String(err),
      file: e.file,
      field: e.field,
      line: e.line,
      exitCode: e.exitCode,
    },
  };
}

const options = workerData as ThreadedScorerOptions;
const port = parentPort!;
try {
  const scorer = await Scorer.create({
    suite: parseSuiteFile(options.suiteFile),
    graph: options.graph,
    baseModelDir: options.baseModelDir,
    kernel: new CpuKernel(),
    ep: options.ep,
    workers: 1,
    threads: 1,
    limit: options.limit,
    baseDir: options.baseDir,
  });
  port.on('message', async (req: ScoreRequest) => {
    try {
      const result =
        req.kind === 'recipe'
          ? await scorer.scoreRecipe(req.doc, req.split, req.measures, req.items)
          : await scorer.scoreModelDir(req.dir, req.split, req.measures, req.items);
      port.postMessage({ id: req.id, ok: true, result } satisfies ScoreReply);
    } catch (err) {
      port.postMessage(errorReply(req.id, err));
    }
  });
  port.postMessage('ready');
} catch (err) {
  port.postMessage(errorReply(0, err));
}
