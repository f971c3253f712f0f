// The README's demo (`evomerge search search-spaces/micro-evollm.yaml`, seed 1) pinned by its first
// generation: the 14 genomes CMA-ES asks for (content hashes, methods) and their fit objectives, and the
// sources' and references' fit objectives. A change to any of these numbers changes what the demo prints,
// so it must come with a new README table (section "The demo: EvoLLM-JP in miniature") — and a new pin here.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { cli, repoRoot } from './search-fixtures.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-demo-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// [ordinal, content hash prefix, method, fit objective] of generation 0, as the full demo run recorded them.
const GENERATION_0: [number, string, string, number][] = [
  [0, '746d1a20fdb93d56', 'task_arithmetic', 0.01114],
  [1, 'bc2c5b53307532a1', 'ties', -0.062132],
  [2, '21eeea1b8a6993a0', 'dare_ties', -0.029018],
  [3, '22086dd557fb1a6b', 'ties', -0.077493],
  [4, '035ed38c7c2599c6', 'ties', -0.065676],
  [5, '1e5964da12e99c6f', 'dare_ties', 0.025655],
  [6, '402d7b9bfa2fc2f0', 'task_arithmetic', 0.007926],
  [7, '3b7122091d4f6330', 'ties', -0.061037],
  [8, '3a5560d84729b985', 'ties', -0.055117],
  [9, '62059d10ca3569cd', 'dare_ties', -0.018196],
  [10, '2b7c79c5191efd87', 'task_arithmetic', -0.00386],
  [11, 'ad1300d64f4a6763', 'ties', -0.078616],
  [12, '2d676b4dc6fd4f53', 'ties', -0.070838],
  [13, 'be75220eef1ba276', 'dare_ties', -0.061126],
];
// The README table's first five rows (fit objective).
const BASELINES: Record<string, number> = {
  base: -0.143774,
  'expert-math': 0.034755,
  'expert-lang': -0.144706,
  'ties d=0.5': -0.069894,
  'dare_ties d=0.5': 0.006004,
};

describe('the README demo', () => {
  it('records the pinned first generation (budget = one generation of λ = 14)', async () => {
    const db = path.join(tmp, 'demo.sqlite');
    // asynchronous: a campaign of minutes must not block the test worker's own messages
    await promisify(execFile)(
      process.execPath,
      [
        cli,
        'search',
        path.join(repoRoot, 'search-spaces/micro-evollm.yaml'),
        '--db',
        db,
        '--budget',
        '14',
        '--device',
        'cpu',
      ],
      { cwd: tmp },
    );
    const s = openStore(db, { readonly: true });
    try {
      const id = s.listCampaigns()[0]!.campaignId;
      const gen0 = s
        .listCandidates(id, { kind: 'search' })
        .map((c) => [
          c.ordinal,
          c.contentHash.slice(0, 16),
          JSON.parse(c.genomeJson!).method,
          Number(c.objective!.toFixed(6)),
        ]);
      expect(gen0).toEqual(GENERATION_0);
      const baselines = Object.fromEntries(
        s
          .listCandidates(id)
          .filter((c) => c.kind !== 'search')
          .map((c) => [c.label, Number(c.objective!.toFixed(6))]),
      );
      expect(baselines).toEqual(BASELINES);
    } finally {
      s.close();
    }
  }, 900_000);
});
