// Campaigns end to end on the families added to graph: auto after the zoo's Llama: `evomerge search` through the
// real CLI over two tiny fine-tunes (random checkpoints with the family's tensor names and config keys), scored
// through the graph built from config.json. Gemma 2 (soft-capping, sandwich norms, alternating sliding windows):
// six candidates, every one merged, scored and recorded, and the report printed. Every family — Gemma 2 again,
// Qwen3, Phi-3 (fused qkv_proj and gate_up_proj, merged as one tensor each), Gemma 3 and Mistral-Nemo (explicit
// head_dim): three candidates each, then the best exported, and the exported checkpoint scored from disk gives
// exactly the score recorded.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.ts';
import { openStore } from '../../src/store/db.ts';
import { writeTinyDecoder, type TinyName } from '../fixtures/tiny-decoders.ts';
import { errorLines, repoRoot, runCli, runCliAsync, writeSpace } from './search-fixtures.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-gemma2-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A base of the family, two fine-tunes of it, and a search space over them (byte tokenizer: vocab_size 256). */
function familySpace(dir: string, family: TinyName = 'gemma2', candidates = 6): string {
  const config = { vocab_size: 256, max_position_embeddings: 256 };
  for (const [name, seed] of [
    ['base', 1],
    ['ft-a', 2],
    ['ft-b', 3],
  ] as const)
    writeTinyDecoder(path.join(dir, name), family, { seed, config, dtype: 'BF16' });
  const data = path.join(repoRoot, 'evals/micro');
  const suite = writeSpace(dir, 'suite.yaml', {
    graph: 'auto',
    base_model: path.join(dir, 'base'),
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
  });
  return writeSpace(dir, `${family}.yaml`, {
    name: `${family}-tiny`,
    base_model: path.join(dir, 'base'),
    models: [path.join(dir, 'ft-a'), path.join(dir, 'ft-b')],
    suite,
    genome: {
      layer_groups: 2,
      methods: ['task_arithmetic', 'ties'],
      parameters: { weight: { min: 0, max: 1 }, density: { min: 0.3, max: 1 } },
    },
    objective: [{ task: 'composite', metric: 'answer_logprob', weight: 1 }],
    optimizer: 'cmaes',
    population_size: 3,
    budget: { candidates },
    seed: 5,
    workers: 1,
    eval_limit: 6,
  });
}

describe('a campaign over tiny Gemma 2 fine-tunes (graph: auto)', () => {
  it('runs six candidates to the budget, each merged, scored and recorded, and prints the report', () => {
    const space = familySpace(tmp);
    const db = path.join(tmp, 'gemma2.sqlite');
    const r = runCli(tmp, 'search', space, '--db', db, '--device', 'cpu');
    expect(errorLines(r.stderr).filter((l) => l.startsWith('evomerge:'))).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('campaign "gemma2-tiny"');
    expect(r.stdout).toMatch(/candidates: 6 evaluated over 2 generation\(s\)/);
    const s = openStore(db, { readonly: true });
    try {
      const [c] = s.listCampaigns();
      const search = s.listCandidates(c!.campaignId, { kind: 'search' });
      expect(search.map((x) => x.ordinal)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(new Set(search.map((x) => x.contentHash)).size).toBe(6);
      for (const x of search) {
        expect(x.status).not.toBe('failed');
        const fit = s.listScores(x.candidateId, 'fit');
        expect(fit.some((f) => f.task === 'composite' && Number.isFinite(f.value))).toBe(true);
      }
      // the candidates differ in what they score, so the search sees a landscape, not a constant
      const objectives = new Set(search.map((x) => x.objective));
      expect(objectives.size).toBeGreaterThan(1);
    } finally {
      s.close();
    }
  });
});

const FAMILIES: TinyName[] = ['gemma2', 'qwen3', 'phi3', 'gemma3', 'mistral-nemo'];

describe.each(FAMILIES)('a campaign over tiny %s fine-tunes (graph: auto), exported and re-scored', (family) => {
  it('merges, scores and records three candidates; the exported best scores what the campaign recorded', async () => {
    const dir = path.join(tmp, family);
    const space = familySpace(dir, family, 3);
    const db = path.join(dir, 'campaign.sqlite');
    const r = await runCliAsync(dir, 'search', space, '--db', db, '--device', 'cpu');
    expect(errorLines(r.stderr).filter((l) => l.startsWith('evomerge:'))).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/candidates: 3 evaluated/);
    const s = openStore(db, { readonly: true });
    let recorded: Map<number, number>;
    try {
      const [c] = s.listCampaigns();
      const search = s.listCandidates(c!.campaignId, { kind: 'search' });
      expect(search).toHaveLength(3);
      for (const x of search) expect(x.status, `${x.errorCode}: ${x.errorMessage}`).not.toBe('failed');
      recorded = new Map(
        search.map((x) => [x.ordinal!, s.listScores(x.candidateId, 'fit').find((f) => f.task === 'composite')!.value]),
      );
    } finally {
      s.close();
    }

    const out = path.join(dir, 'export');
    const ex = await runCliAsync(dir, 'export', db, '-o', out, '--device', 'cpu');
    expect(ex.status, ex.stderr).toBe(0);
    const scores = JSON.parse(readFileSync(path.join(out, 'scores.json'), 'utf8')) as { candidate: number };
    expect(existsSync(path.join(out, 'config.json'))).toBe(true);
    const names = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    try {
      if (family === 'phi3') {
        // mergekit merges Phi-3's fused projections as one tensor each: the export keeps them fused.
        expect(names.tensorNames()).toContain('model.layers.0.self_attn.qkv_proj.weight');
        expect(names.tensorNames()).toContain('model.layers.0.mlp.gate_up_proj.weight');
        expect(
          names
            .tensorNames()
            .some((t) => t.includes('q_proj.') || (t.includes('up_proj.weight') && !t.includes('gate_up'))),
        ).toBe(false);
      }
      if (family === 'qwen3' || family === 'gemma3')
        expect(names.tensorNames()).toContain('model.layers.0.self_attn.q_norm.weight');
    } finally {
      names.close();
    }

    // The exported checkpoint, scored from disk through graph: auto, gives the recorded fit score.
    const ev = await runCliAsync(
      dir,
      'eval',
      out,
      '--suite',
      path.join(dir, 'suite.yaml'),
      '--limit',
      '6',
      '--tasks',
      'composite',
      '--json',
    );
    expect(ev.status, ev.stderr).toBe(0);
    const got = (JSON.parse(ev.stdout).scores as { task: string; value: number }[]).find(
      (x) => x.task === 'composite',
    )!;
    expect(got.value).toBe(recorded.get(scores.candidate)!);
  });
});
