// `evomerge search` and `evomerge report` through the real CLI on a tiny campaign over the micro zoo: the
// records (every candidate, score, verdict, optimiser state), split hygiene, resume with a larger budget,
// the report, and every bad input refused with one line, exit ≠ 0 and the database untouched.
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/db.ts';
import { errorLines, runCli, tinySpace, writeSpace } from './search-fixtures.ts';

let tmp: string;
let space: string;
let db: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-e2e-search-'));
  space = writeSpace(tmp, 'tiny.yaml', tinySpace());
  db = path.join(tmp, 'runs/tiny.sqlite');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function read<T>(fn: (s: ReturnType<typeof openStore>) => T): T {
  const s = openStore(db, { readonly: true });
  try {
    return fn(s);
  } finally {
    s.close();
  }
}

describe('evomerge search', () => {
  it('runs a campaign to its budget, records everything, and prints the report', () => {
    const r = runCli(tmp, 'search', space, '--db', db, '--device', 'cpu');
    expect(errorLines(r.stderr).filter((l) => l.startsWith('evomerge:'))).toEqual([]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('campaign "tiny"');
    expect(r.stdout).toMatch(/candidates: 8 evaluated over 2 generation\(s\)/);
    expect(r.stdout).toMatch(/On the test split|No search candidate cleared every gate/);
    // progress: one line per generation on a non-terminal stderr
    expect(r.stderr).toMatch(/gen 0: \d+\/8 candidates/);
    expect(r.stderr).toMatch(/gen 1: \d+\/8 candidates/);

    read((s) => {
      const [c] = s.listCampaigns();
      const search = s.listCandidates(c!.campaignId, { kind: 'search' });
      expect(search.map((x) => x.ordinal)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(search.map((x) => x.generation)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
      expect(new Set(search.map((x) => x.contentHash)).size).toBe(8);
      expect(
        s
          .listCandidates(c!.campaignId, { kind: 'source' })
          .map((x) => x.label)
          .sort(),
      ).toEqual(['base', 'expert-lang', 'expert-math']);
      expect(s.listCandidates(c!.campaignId, { kind: 'reference' }).map((x) => x.label)).toEqual(['ties d=0.5']);
      for (const x of search) {
        expect(['kept', 'rejected']).toContain(x.status);
        const fit = s.listScores(x.candidateId, 'fit');
        // objective metric, the gates' metrics, and composite's own metric
        expect(fit.map((f) => `${f.task}/${f.metric}`).sort()).toEqual([
          'composite/answer_logprob',
          'composite/exact_match',
          'lang/loglik',
          'math_words/exact_match',
        ]);
        expect(fit.every((f) => f.n === 12)).toBe(true);
        const objective = fit.find((f) => f.task === 'composite' && f.metric === 'answer_logprob')!.value;
        expect(x.objective).toBeCloseTo(objective, 12);
        const verdicts = s.listVerdicts(x.candidateId, 'fit');
        expect(verdicts.map((v) => v.gate)).toEqual(['lang_floor', 'math_words_floor']);
        expect(x.status === 'kept').toBe(verdicts.every((v) => v.pass));
        // split hygiene: a rejected candidate is never scored on the test split
        if (x.status !== 'kept') expect(s.listScores(x.candidateId, 'test')).toEqual([]);
        const genome = JSON.parse(x.genomeJson!) as Record<string, unknown>;
        expect(['task_arithmetic', 'dare_ties']).toContain(genome.method);
      }
      // the optimiser state was saved when each generation closed
      expect(s.listOptimizerStates(c!.campaignId).map((st) => [st.generation, st.toldCount])).toEqual([
        [1, 4],
        [2, 8],
      ]);
      // sources and the reference have fit and test scores
      for (const x of [
        ...s.listCandidates(c!.campaignId, { kind: 'source' }),
        ...s.listCandidates(c!.campaignId, { kind: 'reference' }),
      ]) {
        expect(s.listScores(x.candidateId, 'fit')).toHaveLength(4);
        expect(s.listScores(x.candidateId, 'test')).toHaveLength(4);
      }
    });
  });

  it('the same command on a finished database evaluates nothing more; a larger --budget continues', () => {
    const again = runCli(tmp, 'search', space, '--db', db, '--device', 'cpu');
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/candidates: 8 evaluated/);
    const more = runCli(tmp, 'search', space, '--db', db, '--device', 'cpu', '--budget', '12');
    expect(more.status).toBe(0);
    expect(more.stdout).toMatch(/candidates: 12 evaluated over 3 generation\(s\)/);
    read((s) => {
      const [c] = s.listCampaigns();
      const search = s.listCandidates(c!.campaignId, { kind: 'search' });
      expect(search.map((x) => x.ordinal)).toEqual([...Array(12).keys()]);
      expect(search.slice(8).every((x) => x.generation === 2)).toBe(true);
      expect(new Set(search.map((x) => x.contentHash)).size).toBe(12);
    });
  });

  it('report --json gives sources, the reference and the best kept candidate with fit and test SEs', () => {
    const r = runCli(tmp, 'report', db, '--json');
    expect(r.status).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.counts.evaluated).toBe(12);
    expect(rep.rows.filter((x: { kind: string }) => x.kind === 'source')).toHaveLength(3);
    expect(rep.rows.filter((x: { kind: string }) => x.kind === 'reference')).toHaveLength(1);
    expect(rep.gates.map((g: { gate: string; judged: number }) => [g.gate, g.judged])).toEqual([
      ['lang_floor', 12],
      ['math_words_floor', 12],
    ]);
    expect(rep.generations.map((g: { generation: number }) => g.generation)).toEqual([0, 1, 2]);
    const best = rep.rows.find((x: { kind: string }) => x.kind === 'best');
    if (rep.counts.kept > 0) {
      expect(best.scores['composite/exact_match'].test.n).toBe(12);
      expect(typeof best.scores['composite/exact_match'].test.se).toBe('number');
      const c = rep.conclusion;
      expect(c.seDiff).toBeCloseTo(Math.sqrt(c.best.se ** 2 + c.rival.se ** 2), 12);
      expect(c.significant).toBe(c.gain > 2 * c.seDiff);
      expect(c.sentence).toMatch(/larger than 2 standard errors of the difference/);
    } else {
      expect(best).toBeUndefined();
      expect(rep.conclusion.sentence).toBe(
        'No search candidate cleared every gate, so there is no candidate to compare with the sources and the reference merges.',
      );
    }
    const text = runCli(tmp, 'report', db);
    expect(text.status).toBe(0);
    expect(text.stdout.trimEnd().split('\n').at(-1)).toBe(rep.conclusion.sentence);
    expect(text.stdout).toContain('gate pass rates (fit): lang_floor');
    expect(text.stdout).toContain('best genome per generation');
  });
});

describe('bad inputs: one line, exit ≠ 0, the database untouched', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      'a gate naming a task the suite lacks',
      tinySpace({ gates: [{ kind: 'floor', task: 'poetry', value: 0 }] }),
      /tiny-bad\.yaml: gates\[0\]\.task: the suite .* has no task "poetry"/,
    ],
    [
      'a range with min > max',
      tinySpace({}, { parameters: { weight: { min: 1, max: 0 } } }),
      /tiny-bad\.yaml: genome\.parameters\.weight: min 1 is greater than max 0/,
    ],
    [
      'an unknown method',
      tinySpace({}, { methods: ['task_arithmetic', 'frankenmerge'] }),
      /tiny-bad\.yaml: genome\.methods\[1\]: unknown merge method "frankenmerge"/,
    ],
    [
      'passthrough as a method',
      tinySpace({}, { methods: ['passthrough'] }),
      /tiny-bad\.yaml: genome\.methods\[0\]: "passthrough" copies tensors/,
    ],
    [
      'an objective metric the task lacks',
      tinySpace({ objective: [{ task: 'lang', metric: 'answer_logprob' }] }),
      /tiny-bad\.yaml: objective\[0\]\.metric: task "lang" \(loglik\) has no metric "answer_logprob"/,
    ],
    [
      'a database of another campaign',
      tinySpace({ name: 'other', seed: 8 }),
      /tiny\.sqlite: this database belongs to another campaign \(it holds campaign "tiny"/,
    ],
    [
      'a changed search space on resume',
      tinySpace({ seed: 8 }),
      /tiny\.sqlite: this database belongs to another campaign \(the search space has changed/,
    ],
  ];
  it.each(cases)('%s', (_name, doc, message) => {
    const before = readFileSync(db);
    const mtime = statSync(db).mtimeMs;
    const bad = writeSpace(tmp, 'tiny-bad.yaml', doc);
    const r = runCli(tmp, 'search', bad, '--db', db, '--device', 'cpu');
    expect(r.status).not.toBe(0);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(r.stdout).toBe('');
    expect(readFileSync(db).equals(before)).toBe(true);
    expect(statSync(db).mtimeMs).toBe(mtime);
  });

  it('a bad space never creates its database', () => {
    const bad = writeSpace(tmp, 'tiny-bad.yaml', tinySpace({}, { methods: ['frankenmerge'] }));
    const fresh = path.join(tmp, 'runs/fresh.sqlite');
    const r = runCli(tmp, 'search', bad, '--db', fresh);
    expect(r.status).not.toBe(0);
    expect(existsSync(fresh)).toBe(false);
  });
});
