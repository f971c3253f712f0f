// M2N2 (`optimizer: m2n2`) on the micro zoo through the real CLI: a campaign SIGKILLed at seeded moments and
// resumed records exactly what an uninterrupted run records (candidates, scores, the per-item fit values the
// archive competes on, every optimiser state with its archive); two workers record what one records, with
// successive halving and the val pick on; the seeds (sources and reference as genomes) are asked first.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { mulberry32 } from '../fixtures/seeded-random.ts';
import { recordSnapshot, runAndKill, runCli, searchCount, tinySpace, writeSpace } from './search-fixtures.ts';

const BUDGET = 16;
let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-m2n2-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** recordSnapshot plus every kept per-item value (by candidate identity, split, task, metric). */
function snapshot(db: string) {
  const base = recordSnapshot(db);
  const s = openStore(db, { readonly: true });
  try {
    const [c] = s.listCampaigns();
    const items = s
      .listCandidates(c!.campaignId)
      .flatMap((x) =>
        ['fit', 'fit@0', 'fit@1', 'fit@2', 'test'].flatMap((split) =>
          s.listItemValues(x.candidateId, split).map((r) => [`${x.kind}:${x.contentHash}`, split, r.task, r.values]),
        ),
      )
      .sort((p, q) => `${p[0]}${p[1]}`.localeCompare(`${q[0]}${q[1]}`));
    return { ...base, items };
  } finally {
    s.close();
  }
}

function lastArchive(db: string): { x: number[]; value: number; items: number[] }[] {
  const s = openStore(db, { readonly: true });
  try {
    const states = s.listOptimizerStates(s.listCampaigns()[0]!.campaignId);
    return (JSON.parse(states[states.length - 1]!.stateJson) as { algorithm: { archive: never[] } }).algorithm.archive;
  } finally {
    s.close();
  }
}

describe('optimizer: m2n2 campaigns', () => {
  it('kill -9 at seeded moments and resume records what an uninterrupted run records', async () => {
    const space = writeSpace(
      tmp,
      'm2n2-kill.yaml',
      tinySpace({
        name: 'm2n2-kill',
        optimizer: 'm2n2',
        m2n2: { archive_size: 5 },
        budget: { candidates: BUDGET },
        eval_limit: 8,
        seed: 11,
      }),
    );
    const straightDb = path.join(tmp, 'straight.sqlite');
    const straight = runCli(tmp, 'search', space, '--db', straightDb, '--device', 'cpu');
    expect(straight.status, straight.stderr).toBe(0);

    const killedDb = path.join(tmp, 'killed.sqlite');
    const rand = mulberry32(20261207);
    const first = await runAndKill(tmp, space, killedDb, { afterMs: 300 + 1500 * rand() });
    expect(first.killed).toBe(true);
    const s0 = openStore(straightDb, { readonly: true });
    const perCandidate = (() => {
      try {
        const xs = s0.listCandidates(s0.listCampaigns()[0]!.campaignId, { kind: 'search' });
        return xs.reduce((a, x) => a + (x.mergeMs ?? 0) + (x.evalMs ?? 0), 0) / xs.length;
      } finally {
        s0.close();
      }
    })();
    const kills: number[] = [];
    for (let i = 0; i < 3; i++) {
      // by a quarter, a half, three quarters of the budget at the latest: mid-search on any machine
      const atMost = Math.floor((BUDGET * (i + 1)) / 4);
      const r = await runAndKill(tmp, space, killedDb, { afterNewMs: 1.5 * perCandidate * rand(), atMost });
      expect(r.killed).toBe(true);
      kills.push(searchCount(killedDb));
    }
    expect(
      kills.every((n) => n > 0 && n < BUDGET),
      `candidates at each kill: ${kills.join(', ')}`,
    ).toBe(true);
    const last = runCli(tmp, 'search', space, '--db', killedDb, '--device', 'cpu');
    expect(last.status, last.stderr).toBe(0);

    const a = snapshot(straightDb);
    const b = snapshot(killedDb);
    expect(b.candidates.filter((x) => x.kind === 'search')).toHaveLength(BUDGET);
    expect(b.candidates).toEqual(a.candidates);
    expect(b.states).toEqual(a.states);
    expect(b.items).toEqual(a.items);
    // the per-item fit values were kept (the archive competes on them) and the archive holds them
    expect(a.items.filter((r) => r[1] === 'fit').length).toBeGreaterThanOrEqual(BUDGET);
    const archive = lastArchive(straightDb);
    expect(archive).toHaveLength(5);
    expect(archive.every((m) => m.items.length === 8)).toBe(true);
  }, 300_000);

  it('two workers record what one records, with successive halving and the val pick; seeds come first', () => {
    const doc = (workers: number) =>
      tinySpace({
        name: 'm2n2-workers',
        optimizer: 'm2n2',
        budget: { candidates: 12 },
        eval_limit: 10,
        workers,
        selection: { val_fraction: 0.3, top_k: 2, halving: { min_items: 4, eta: 2 } },
      });
    const one = path.join(tmp, 'one.sqlite');
    const two = path.join(tmp, 'two.sqlite');
    const r1 = runCli(tmp, 'search', writeSpace(tmp, 'w1.yaml', doc(1)), '--db', one, '--device', 'cpu');
    expect(r1.status, r1.stderr).toBe(0);
    const r2 = runCli(tmp, 'search', writeSpace(tmp, 'w2.yaml', doc(2)), '--db', two, '--device', 'cpu');
    expect(r2.status, r2.stderr).toBe(0);
    const a = snapshot(one);
    const b = snapshot(two);
    expect(b.candidates).toEqual(a.candidates);
    expect(b.states).toEqual(a.states);
    expect(b.items).toEqual(a.items);
    // halving kept rung item values; only full-fidelity results entered the archive
    expect(a.items.some((r) => r[1] === 'fit@0')).toBe(true);
    // (10 items, 3 held out as val: 7 fit items; rung 0 scores 4)
    expect(lastArchive(one).length).toBeGreaterThan(0);
    expect(lastArchive(one).every((m) => m.items.length === 7)).toBe(true);
    // generation 0 asks the seeds: the base (all weights 0), each expert alone, the reference's weights
    const s = openStore(one, { readonly: true });
    try {
      const gen0 = s
        .listCandidates(s.listCampaigns()[0]!.campaignId, { kind: 'search' })
        .filter((c) => c.generation === 0)
        .sort((p, q) => p.ordinal! - q.ordinal!)
        .map((c) => JSON.parse(c.genomeJson!) as Record<string, number | string>);
      const weights = (g: Record<string, number | string>) =>
        Object.keys(g)
          .filter((k) => k.endsWith('.weight'))
          .map((k) => g[k]);
      expect(weights(gen0[0]!).every((w) => w === 0)).toBe(true);
      expect(weights(gen0[1]!)).toEqual([1, 0, 1, 0, 1, 0]);
      expect(weights(gen0[2]!)).toEqual([0, 1, 0, 1, 0, 1]);
      expect(weights(gen0[3]!).every((w) => w === 1)).toBe(true);
    } finally {
      s.close();
    }
  }, 300_000);
});
