// Data-flow-space campaigns on the micro zoo through the real CLI: a DFS campaign (expert-math's and
// expert-lang's layers) killed with SIGKILL mid-search and resumed ends with exactly the records of an
// uninterrupted run; its export, scored by `evomerge eval` (graph: auto from the export's config.json, or its
// model.onnx), reproduces the recorded fit scores; a PS + DFS campaign (A = a PS campaign's export) does the
// same; an unscaled path exports a mergekit passthrough recipe that `evomerge merge` turns into the same tensors,
// which are also what mergekit's passthrough semantics (slices renumbered, embeddings from the first slice's
// model, final norm and lm_head from the last's) take from A and B.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { openModelDir } from '../../src/checkpoint/model-dir.ts';
import { openStore } from '../../src/store/db.ts';
import { mulberry32 } from '../fixtures/seeded-random.ts';
import { recordSnapshot, repoRoot, runAndKill, runCli, searchCount, tinySpace, writeSpace } from './search-fixtures.ts';

const zoo = path.join(repoRoot, 'models/micro');
const BUDGET = 8;
let tmp: string;

/** A small DFS campaign: A = `a`, B = expert-lang, r = 2, 8 candidates of 8 items per task. */
function dfsSpace(name: string, a: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    base_model: `${zoo}/base`,
    models: [a, `${zoo}/expert-lang`],
    suite: path.join(tmp, 'suite.yaml'),
    genome: { kind: 'data_flow', repeats: 2, scales: { min: 0.5, max: 1.5 } },
    objective: [{ task: 'composite', metric: 'answer_logprob', weight: 1 }],
    gates: [{ name: 'lang_floor', kind: 'floor', task: 'lang', value: -3.5 }],
    optimizer: 'cmaes',
    population_size: 4,
    budget: { candidates: BUDGET },
    seed: 3,
    workers: 2,
    eval_limit: 8,
    ...overrides,
  };
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-dfs-'));
  // the zoo's composite and lang tasks with the metrics the campaign records, so `evomerge eval` prints them
  const data = path.join(repoRoot, 'evals/micro');
  writeFileSync(
    path.join(tmp, 'suite.yaml'),
    YAML.stringify({
      graph: 'auto',
      base_model: `${zoo}/base`,
      tokenizer: 'byte',
      tasks: {
        composite: {
          kind: 'generate',
          metric: 'answer_logprob',
          fit: `${data}/composite.fit.jsonl`,
          test: `${data}/composite.test.jsonl`,
          max_new_tokens: 4,
          stop: '\n',
        },
        lang: { kind: 'loglik', metric: 'loglik', fit: `${data}/lang.fit.jsonl`, test: `${data}/lang.test.jsonl` },
      },
    }),
  );
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('data-flow campaigns', () => {
  it('a DFS campaign killed twice mid-search and resumed records what an uninterrupted run records', async () => {
    const space = writeSpace(tmp, 'dfs.yaml', dfsSpace('dfs', `${zoo}/expert-math`));
    const straightDb = path.join(tmp, 'dfs-straight.sqlite');
    const straight = runCli(tmp, 'search', space, '--db', straightDb, '--device', 'cpu');
    expect(straight.status, straight.stderr).toBe(0);
    const a = recordSnapshot(straightDb);
    const search = a.candidates.filter((c) => c.kind === 'search');
    expect(search).toHaveLength(BUDGET);
    // real paths were scored: every candidate has scores, and the paths differ
    expect(search.every((c) => c.scores.length > 0 && c.status !== 'failed')).toBe(true);
    expect(new Set(search.map((c) => c.genome)).size).toBe(BUDGET);

    const killedDb = path.join(tmp, 'dfs-killed.sqlite');
    const rand = mulberry32(16);
    const kills: number[] = [];
    for (let i = 0; i < 2; i++) {
      // a random moment after the run's first new candidate, but by a third (then two thirds) of the budget at the
      // latest: the kill lands mid-search however fast this machine records candidates
      const atMost = Math.floor((BUDGET * (i + 1)) / 3);
      const r = await runAndKill(tmp, space, killedDb, { afterNewMs: 1500 * rand(), atMost });
      expect(r.killed, `run ${i + 1} ended before its kill, at ${searchCount(killedDb)} candidates: ${r.stderr}`).toBe(
        true,
      );
      kills.push(searchCount(killedDb));
    }
    expect(
      kills.every((n) => n > 0 && n < BUDGET),
      `search candidates at each kill: ${kills.join(', ')}`,
    ).toBe(true);
    const last = runCli(tmp, 'search', space, '--db', killedDb, '--device', 'cpu');
    expect(last.status, last.stderr).toBe(0);
    expect(recordSnapshot(killedDb)).toEqual(a);
  }, 600_000); // four campaigns: 30 s on an idle 2-core machine, past the default 120 s under load

  it('the DFS export, scored by evomerge eval, reproduces the recorded fit scores', async () => {
    const db = path.join(tmp, 'dfs-straight.sqlite');
    const out = path.join(tmp, 'dfs-export');
    const r = await cli$('export', db, '--candidate', bestOrdinal(db), '--force', '-o', out, '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('data_flow.yaml, model.onnx');
    await checkExportReproduces(out);
  });

  it('the report and the HTML report draw the winning path slot by slot', async () => {
    const db = path.join(tmp, 'dfs-straight.sqlite');
    const json = JSON.parse((await cli$('report', db, '--json')).stdout) as {
      winningPath: { ordinal: number; steps: { step: number; model: string; layer: number; scale: number }[] };
    };
    const w = json.winningPath;
    expect(String(w.ordinal)).toBe(bestOrdinal(db));
    // the path the export wrote is the path the report shows
    const exported = YAML.parse(readFileSync(path.join(tmp, 'dfs-export', 'data_flow.yaml'), 'utf8')) as {
      data_flow: { path: { model: number; layer: number; scale: number }[] };
    };
    expect(w.steps.map((s) => [s.model, s.layer, s.scale])).toEqual(
      exported.data_flow.path.map((p) => [p.model === 0 ? 'expert-math' : 'expert-lang', p.layer, p.scale]),
    );
    const text = (await cli$('report', db)).stdout;
    expect(text).toContain(`winning path: #${w.ordinal}`);
    expect(text).toContain(`${w.steps.length} layers, slot by slot`);
    const html = path.join(tmp, 'dfs.html');
    expect((await cli$('report', db, '--html', html)).status).toBe(0);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('data-plot="winning-path"');
    expect(page).toContain('data flow over expert-math (A) and expert-lang (B): r = 2, scales 0.5…1.5');
    // one hover title per step, naming model, layer and scale
    const titles = page.match(/<title>step \d+: [^<]+<\/title>/g) ?? [];
    expect(titles).toHaveLength(w.steps.length);
    expect(titles[1]).toContain(`${w.steps[1]!.model} layer ${w.steps[1]!.layer}, scale`);
  });

  it('PS + DFS: a PS campaign exported becomes model A of a DFS campaign, whose export reproduces its scores', async () => {
    const ps = writeSpace(
      tmp,
      'ps.yaml',
      tinySpace({ name: 'ps', gates: [], references: [], budget: { candidates: 4 }, eval_limit: 8 }),
    );
    const psDb = path.join(tmp, 'ps.sqlite');
    expect((await cli$('search', ps, '--db', psDb, '--device', 'cpu')).status).toBe(0);
    const psOut = path.join(tmp, 'ps-export');
    const e = await cli$('export', psDb, '-o', psOut, '--device', 'cpu');
    expect(e.status, e.stderr).toBe(0);

    const space = writeSpace(tmp, 'psdfs.yaml', dfsSpace('ps-dfs', psOut, { budget: { candidates: 4 }, gates: [] }));
    const db = path.join(tmp, 'psdfs.sqlite');
    const run = await cli$('search', space, '--db', db, '--device', 'cpu');
    expect(run.status, run.stderr).toBe(0);
    const out = path.join(tmp, 'psdfs-export');
    const x = await cli$('export', db, '-o', out, '--device', 'cpu');
    expect(x.status, x.stderr).toBe(0);
    // model A of the path is the PS export
    const doc = YAML.parse(readFileSync(path.join(out, 'data_flow.yaml'), 'utf8')) as {
      data_flow: { models: string[] };
    };
    expect(path.resolve(out, doc.data_flow.models[0]!)).toBe(psOut);
    await checkExportReproduces(out);
  });

  it('an unscaled path exports a passthrough recipe: evomerge merge and mergekit semantics give its tensors', async () => {
    const space = writeSpace(
      tmp,
      'splice.yaml',
      dfsSpace('splice', `${zoo}/expert-math`, {
        genome: { kind: 'data_flow', repeats: 2, scale_model: 'none' },
        budget: { candidates: 4 },
        gates: [],
        seed: 5,
      }),
    );
    const db = path.join(tmp, 'splice.sqlite');
    expect((await cli$('search', space, '--db', db, '--device', 'cpu')).status).toBe(0);
    const out = path.join(tmp, 'splice-export');
    const x = await cli$('export', db, '-o', out, '--device', 'cpu');
    expect(x.status, x.stderr).toBe(0);
    await checkExportReproduces(out);
    const recipe = YAML.parse(readFileSync(path.join(out, 'recipe.yaml'), 'utf8')) as {
      merge_method: string;
      slices: { sources: { model: string; layer_range: [number, number] }[] }[];
    };
    expect(recipe.merge_method).toBe('passthrough');
    expect(recipe.slices.length).toBeGreaterThan(1);
    expect(new Set(recipe.slices.map((s) => s.sources[0]!.model)).size).toBe(2); // both models' layers

    const merged = path.join(tmp, 'splice-merged');
    const m = await cli$('merge', path.join(out, 'recipe.yaml'), '-o', merged, '--device', 'cpu');
    expect(m.status, m.stderr).toBe(0);
    const exported = openModelDir(out);
    const viaMerge = openModelDir(merged);
    const sources = new Map<string, ReturnType<typeof openModelDir>>();
    const source = (rel: string) => {
      const dir = path.resolve(out, rel);
      if (!sources.has(dir)) sources.set(dir, openModelDir(dir));
      return sources.get(dir)!;
    };
    try {
      // mergekit passthrough, written out: slices in order, layers renumbered from 0; embeddings from the first
      // slice's model, final norm and lm_head from the last slice's
      const expected = new Map<string, { from: ReturnType<typeof openModelDir>; name: string }>();
      const first = source(recipe.slices[0]!.sources[0]!.model);
      const last = source(recipe.slices[recipe.slices.length - 1]!.sources[0]!.model);
      expected.set('model.embed_tokens.weight', { from: first, name: 'model.embed_tokens.weight' });
      expected.set('model.norm.weight', { from: last, name: 'model.norm.weight' });
      expected.set('lm_head.weight', { from: last, name: 'lm_head.weight' });
      let k = 0;
      for (const slice of recipe.slices) {
        const src = source(slice.sources[0]!.model);
        for (let l = slice.sources[0]!.layer_range[0]; l < slice.sources[0]!.layer_range[1]; l++, k++)
          for (const n of src.tensors.tensorNames())
            if (n.startsWith(`model.layers.${l}.`))
              expected.set(`model.layers.${k}.${n.slice(`model.layers.${l}.`.length)}`, { from: src, name: n });
      }
      expect(exported.config.num_hidden_layers).toBe(k);
      expect(exported.tensors.tensorNames().sort()).toEqual([...expected.keys()].sort());
      expect(viaMerge.tensors.tensorNames().sort()).toEqual([...expected.keys()].sort());
      for (const [name, e] of expected) {
        const want = e.from.tensors.readTensor(e.name).data;
        expect(exported.tensors.readTensor(name).data, name).toEqual(want);
        expect(viaMerge.tensors.readTensor(name).data, name).toEqual(want);
      }
    } finally {
      exported.close();
      viaMerge.close();
      for (const s of sources.values()) s.close();
    }
  });
});

/** The best candidate by fit objective (any status): what an export of a gate-less campaign would take. */
function bestOrdinal(db: string): string {
  const s = openStore(db, { readonly: true });
  try {
    const c = s
      .listCandidates(s.listCampaigns()[0]!.campaignId, { kind: 'search' })
      .sort((a, b) => (b.objective ?? -Infinity) - (a.objective ?? -Infinity))[0]!;
    return String(c.ordinal);
  } finally {
    s.close();
  }
}

/** `evomerge eval` of an export (graph auto, and its model.onnx) against the fit scores its campaign recorded. */
async function checkExportReproduces(out: string): Promise<void> {
  expect(existsSync(path.join(out, 'model.onnx'))).toBe(true);
  const recorded = (
    JSON.parse(readFileSync(path.join(out, 'scores.json'), 'utf8')) as {
      fit: { task: string; metric: string; value: number }[];
    }
  ).fit;
  expect(recorded.length).toBeGreaterThan(0);
  const suite = path.join(tmp, 'suite.yaml');
  for (const graph of ['auto', path.join(out, 'model.onnx')]) {
    const r = await cli$('eval', out, '--suite', suite, '--limit', '8', '--threads', '1', '--json', '--graph', graph);
    expect(r.status, r.stderr).toBe(0);
    const scores = (JSON.parse(r.stdout) as { scores: { task: string; metric: string; value: number }[] }).scores;
    for (const want of recorded) {
      const got = scores.find((s) => s.task === want.task && s.metric === want.metric)!;
      // graph: auto is the campaign's own graph (ORT's fused CPU kernels): the same numbers; model.onnx runs
      // standard ops, equal to float32 rounding
      if (graph === 'auto') expect(got.value, `${want.task}/${want.metric}`).toBe(want.value);
      else expect(got.value, `${want.task}/${want.metric}`).toBeCloseTo(want.value, 4);
    }
  }
}

/** The CLI run to completion, after giving the test runner's event loop a turn (a long synchronous test stalls
 *  its reporting). */
async function cli$(...args: string[]) {
  await new Promise((resolve) => setTimeout(resolve, 0));
  return runCli(tmp, ...args);
}
