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
  [0, '6e6b75445131fe6a', 'task_arithmetic', 0.01114],
  [1, '5c1eddb351d71a1c', 'ties', -0.062132],
  [2, 'd7a0110176ffdb04', 'dare_ties', -0.003539],
  [3, '2f7bb28918aefc0a', 'ties', -0.077493],
  [4, 'e5b36a0d89aac45e', 'ties', -0.065676],
  [5, '9ee0a3223b050e52', 'dare_ties', -0.023372],
  [6, '022238654efcde46', 'task_arithmetic', 0.007926],
  [7, '5c9f65e24ef286de', 'ties', -0.061037],
  [8, '195df32793d88300', 'ties', -0.055117],
  [9, '7faebd6aba54404a', 'dare_ties', 0.004813],
  [10, '64804512b6e25fbc', 'task_arithmetic', -0.00386],
  [11, 'c8ce4d2db3510de1', 'ties', -0.078616],
  [12, '7e5c183a66d3fae4', 'ties', -0.070838],
  [13, '063206ee02266043', 'dare_ties', -0.074449],
];
// The README table's first five rows (fit objective).
const BASELINES: Record<string, number> = {
  base: -0.143774,
  'expert-math': 0.034755,
  'expert-lang': -0.144706,
  'ties d=0.5': -0.069894,
  'dare_ties d=0.5': 0.014643,
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
