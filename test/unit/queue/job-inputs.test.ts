// What a worker checks before it scores a job, without a queue: the queue URL, job ids, the model-file
// fingerprints (size + header hash) and the refusal of a job that names files outside the worker's roots
// or whose model files differ from the campaign's record.
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EvomergeError } from '../../../src/errors.ts';
import { jobIdOf, parseQueueUrl, type CandidateJob } from '../../../src/queue/job.ts';
import { fingerprintModelDir, modelFilesDiffer } from '../../../src/queue/model-files.ts';
import { checkJobInputs, checkJobProvider, checkJobSize, LocalDigests } from '../../../src/queue/worker.ts';
import { checkpointDigest, fileDigest } from '../../../src/search/campaign/fingerprint.ts';
import type { MergeRecipeDoc } from '../../../src/search/space/recipe-doc.ts';

const repo = path.resolve(__dirname, '../../..');
const zoo = path.join(repo, 'models/micro');
let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-queue-unit-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function job(overrides: Partial<CandidateJob> = {}): CandidateJob {
  return {
    campaign: 'c'.repeat(64),
    kind: 'recipe',
    doc: {
      merge_method: 'task_arithmetic',
      base_model: `${zoo}/base`,
      models: [{ model: `${zoo}/expert-math`, parameters: { weight: 0.5 } }],
    },
    split: 'fit',
    measures: [{ task: 'lang', metric: 'loglik' }],
    evaluator: {
      suiteFile: path.join(repo, 'evals/micro.yaml'),
      baseModelDir: `${zoo}/base`,
      ep: 'cpu',
      baseDir: repo,
    },
    modelFiles: [...fingerprintModelDir(`${zoo}/base`), ...fingerprintModelDir(`${zoo}/expert-math`)],
    inputs: [
      { path: `${zoo}/base`, role: 'checkpoint base', digest: checkpointDigest(`${zoo}/base`) },
      { path: `${zoo}/expert-math`, role: 'checkpoint expert-math', digest: checkpointDigest(`${zoo}/expert-math`) },
      {
        path: path.join(repo, 'evals/micro.yaml'),
        role: 'eval suite',
        digest: fileDigest(path.join(repo, 'evals/micro.yaml')),
      },
    ],
    ...overrides,
  };
}

/** The job's document, a merge recipe (job() builds one). */
function mergeDoc(j: CandidateJob): MergeRecipeDoc {
  return j.doc as MergeRecipeDoc;
}

function refusal(fn: () => void): EvomergeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EvomergeError);
    expect((err as EvomergeError).code).toBe('scorer.refused');
    return err as EvomergeError;
  }
  throw new Error('expected a refusal');
}

describe('queue URL', () => {
  it('reads host, port, db, credentials and TLS, and hides the password in messages', () => {
    expect(parseQueueUrl('redis://10.0.0.5:6380')).toMatchObject({ host: '10.0.0.5', port: 6380 });
    const c = parseQueueUrl('rediss://evo:s%40cret@queue.lan:6390/2');
    expect(c).toMatchObject({
      host: 'queue.lan',
      port: 6390,
      db: 2,
      username: 'evo',
      password: 's@cret',
      tls: { servername: 'queue.lan' },
    });
    expect(c.display).not.toContain('cret');
    expect(parseQueueUrl('redis://localhost').port).toBe(6379);
  });

  it('refuses other schemes and malformed URLs as usage errors naming --queue', () => {
    for (const bad of ['http://localhost:6379', 'localhost:6379x', 'redis://h:1/x']) {
      const err = (() => {
        try {
          parseQueueUrl(bad);
        } catch (e) {
          return e as EvomergeError;
        }
      })();
      expect(err?.exitCode).toBe(2);
      expect(err?.message).toMatch(/^--queue: /);
    }
  });
});

describe('job ids', () => {
  it('are the same for the same content and differ by split, recipe and campaign', () => {
    const j = job();
    expect(jobIdOf(j)).toBe(jobIdOf(job()));
    expect(jobIdOf({ ...j, split: 'test' })).not.toBe(jobIdOf(j));
    expect(jobIdOf({ ...j, doc: { ...mergeDoc(j), merge_method: 'ties' } })).not.toBe(jobIdOf(j));
    expect(jobIdOf({ ...j, campaign: 'd'.repeat(64) })).not.toBe(jobIdOf(j));
    expect(jobIdOf(j)).not.toContain(':');
  });

  it("differ by the campaign's recorded input digests (an eval file changed between two campaigns), not their order", () => {
    const j = job();
    const changed = j.inputs.map((f) => (f.role === 'eval suite' ? { ...f, digest: '0'.repeat(64) } : f));
    expect(jobIdOf({ ...j, inputs: changed })).not.toBe(jobIdOf(j));
    expect(jobIdOf({ ...j, inputs: [...j.inputs].reverse() })).toBe(jobIdOf(j));
  });
});

describe('model files', () => {
  it('fingerprints each safetensors file by size and header hash', () => {
    const [f] = fingerprintModelDir(`${zoo}/expert-math`);
    expect(f).toMatchObject({ modelDir: `${zoo}/expert-math`, file: 'model.safetensors' });
    expect(f!.size).toBeGreaterThan(1000);
    expect(f!.headerSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('names the file that differs: another dtype, a missing or an extra file', () => {
    const recorded = fingerprintModelDir(`${zoo}/expert-math`);
    const bf16 = fingerprintModelDir(`${zoo}/expert-math-bf16`).map((f) => ({ ...f, modelDir: `${zoo}/expert-math` }));
    expect(modelFilesDiffer(recorded, recorded)).toBeUndefined();
    expect(modelFilesDiffer(recorded, bf16)?.message).toMatch(
      /expert-math\/model\.safetensors: size: differs from the campaign's copy/,
    );
    expect(modelFilesDiffer(recorded, [])?.message).toMatch(/model\.safetensors: missing on this worker/);
    expect(modelFilesDiffer(recorded, [...recorded, { ...recorded[0]!, file: 'extra.safetensors' }])?.message).toMatch(
      /extra\.safetensors: not in the campaign's record/,
    );
    const sameSizeOtherHeader = recorded.map((f) => ({ ...f, headerSha256: '0'.repeat(64) }));
    expect(modelFilesDiffer(recorded, sameSizeOtherHeader)?.message).toMatch(/header: differs/);
  });
});

describe('a worker checks a job before scoring it', () => {
  it('accepts a job whose files lie under its root and match the record', () => {
    expect(() => checkJobInputs(job(), [repo])).not.toThrow();
  });

  it('refuses a file outside its roots, naming it', () => {
    const err = refusal(() => checkJobInputs(job(), [zoo]));
    expect(err.message).toMatch(/evals\/micro\.yaml: outside this worker's models roots/);
    const elsewhere = path.join(tmp, 'expert-math');
    cpSync(`${zoo}/expert-math`, elsewhere, { recursive: true });
    const doc = { ...mergeDoc(job()), models: [{ model: elsewhere, parameters: { weight: 0.5 } }] };
    expect(refusal(() => checkJobInputs(job({ doc }), [repo])).message).toContain(`${elsewhere}: outside`);
    // neither `..` nor a symbolic link inside a root leads out of it: the real path is checked
    expect(
      refusal(() =>
        checkJobInputs(job({ doc: { ...doc, models: [{ model: `${repo}/../../../..${elsewhere}` }] } }), [repo]),
      ).message,
    ).toMatch(/outside/);
    const root = path.join(tmp, 'root');
    mkdirSync(root);
    symlinkSync(elsewhere, path.join(root, 'link'));
    expect(
      refusal(() =>
        checkJobInputs(job({ doc: { ...doc, models: [{ model: path.join(root, 'link') }] } }), [repo, root]),
      ).message,
    ).toMatch(/link: outside/);
  });

  it('refuses a model whose files differ from the campaign record', () => {
    const copy = path.join(tmp, 'models/base');
    cpSync(`${zoo}/base`, copy, { recursive: true });
    const modelFiles = fingerprintModelDir(copy);
    writeFileSync(path.join(copy, 'model.safetensors'), Buffer.alloc(64));
    const err = refusal(() => checkJobInputs(job({ modelFiles }), [repo, tmp]));
    expect(err.message).toMatch(/models\/base\/model\.safetensors: (size|header): /);
  });

  it("refuses an input whose bytes differ from the campaign's digest, and sees a file changed after an earlier job", () => {
    const evals = path.join(tmp, 'digests');
    mkdirSync(evals);
    const file = path.join(evals, 'lang.fit.jsonl');
    writeFileSync(file, '{"text": "a"}\n');
    const recorded = { path: file, role: 'eval file of task lang', digest: fileDigest(file) };
    const digests = new LocalDigests();
    const withFile = job({ inputs: [...job().inputs, recorded] });
    expect(() => checkJobInputs(withFile, [repo, tmp], new Map(), digests)).not.toThrow();
    writeFileSync(file, '{"text": "b"}\n'); // same size, other bytes
    const err = refusal(() => checkJobInputs(withFile, [repo, tmp], new Map(), digests));
    expect(err.message).toMatch(
      /^.*lang\.fit\.jsonl: eval file of task lang differs from the campaign's copy: sha256 [0-9a-f]{12}… here, [0-9a-f]{12}… recorded/,
    );
    // a worker's checkpoint whose weights differ from the record (the header may be the same): refused
    const ck = job({
      inputs: job().inputs.map((f) => (f.role === 'checkpoint base' ? { ...f, digest: 'f'.repeat(64) } : f)),
    });
    expect(refusal(() => checkJobInputs(ck, [repo])).message).toMatch(/base: checkpoint base differs/);
    // a job from a coordinator that sends no fingerprints
    const { inputs: _none, ...old } = job();
    expect(refusal(() => checkJobInputs(old as CandidateJob, [repo])).message).toMatch(/no input fingerprints/);
  });

  it("refuses a job asking for another execution provider than the worker's --ep, naming both", () => {
    expect(() => checkJobProvider(job(), 'cpu')).not.toThrow();
    const webgpu = job({ evaluator: { ...job().evaluator, ep: 'webgpu' } });
    expect(refusal(() => checkJobProvider(webgpu, 'cpu')).message).toBe(
      '--ep: the campaign scores on webgpu but this worker was started with --ep cpu; start a worker with --ep ' +
        'webgpu (or the campaign with --ep cpu)',
    );
  });

  it('refuses a relative path and one missing on the worker', () => {
    expect(refusal(() => checkJobInputs(job({ dir: 'models/micro/base', kind: 'model' }), [repo])).message).toMatch(
      /absolute paths/,
    );
    expect(refusal(() => checkJobInputs(job({ dir: `${zoo}/no-such-model`, kind: 'model' }), [repo])).message).toMatch(
      /does not exist on this worker/,
    );
  });
});

describe('a data-flow job', () => {
  /** A data-flow path over expert-math (A) and expert-lang (B), as a DFS campaign puts it on the queue. */
  function flowJob(models = [`${zoo}/expert-math`, `${zoo}/expert-lang`], overrides: Partial<CandidateJob> = {}) {
    const base = job();
    return job({
      doc: {
        data_flow: {
          models,
          path: [
            { model: 0, layer: 0, scale: 1 },
            { model: 1, layer: 2, scale: 0.5 },
          ],
        },
      },
      evaluator: { ...base.evaluator, graph: 'auto' },
      modelFiles: [`${zoo}/base`, `${zoo}/expert-math`, `${zoo}/expert-lang`].flatMap((m) => fingerprintModelDir(m)),
      inputs: [
        ...base.inputs,
        ...['expert-math', 'expert-lang'].map((m) => ({
          path: `${zoo}/${m}`,
          role: `checkpoint ${m}`,
          digest: checkpointDigest(`${zoo}/${m}`),
        })),
      ],
      ...overrides,
    });
  }

  it('is accepted when its models lie under the roots and match the record (graph: auto names no file)', () => {
    expect(() => checkJobInputs(flowJob(), [repo])).not.toThrow();
  });

  it("refuses a path model outside its roots, or one that is not among the campaign's recorded checkpoints", () => {
    const elsewhere = path.join(tmp, 'flow-expert-lang');
    cpSync(`${zoo}/expert-lang`, elsewhere, { recursive: true });
    const outside = flowJob([`${zoo}/expert-math`, elsewhere]);
    expect(refusal(() => checkJobInputs(outside, [repo])).message).toContain(`${elsewhere}: outside`);
    const unrecorded = flowJob([`${zoo}/expert-math`, `${zoo}/expert-math-bf16`]);
    expect(refusal(() => checkJobInputs(unrecorded, [repo])).message).toMatch(
      /expert-math-bf16: not among the campaign's recorded checkpoints/,
    );
    // a recorded model whose weights differ here from the campaign's digest
    const changed = flowJob(undefined, {
      inputs: flowJob().inputs.map((f) => (f.role === 'checkpoint expert-lang' ? { ...f, digest: '0'.repeat(64) } : f)),
    });
    expect(refusal(() => checkJobInputs(changed, [repo])).message).toMatch(
      /expert-lang: checkpoint expert-lang differs/,
    );
  });
});

describe('job size', () => {
  it('refuses a job heavier than 16 MiB as JSON before reading it further, and takes a usual one', () => {
    expect(() => checkJobSize(job())).not.toThrow();
    const heavy = job({ items: { lang: Array.from({ length: 3_000_000 }, (_, i) => i) } });
    const e = refusal(() => checkJobSize(heavy));
    expect(e.message).toBe("the job weighs more than 16 MiB as JSON (a campaign's jobs are far smaller)");
  });
});
