// The optimisers side by side (issue 22 §5): real campaigns at an equal candidate budget, one per optimiser, space
// and seed, each scored on test as `evomerge report` scores it. Per seed: the pick's test objective minus the best
// naive merge (the reference merge with the highest test objective) with the paired SE over the same test items,
// whether the gain clears 2 paired SE, the candidates asked before the pick was (its ordinal + 1: how soon the
// optimiser found what it handed over), and the English log-likelihood the pick kept against the base (a
// capability no objective term of the bundled spaces asks for). Every campaign is a real one, its database kept
// under --dir, so any row can be read again with `evomerge report <db>`.
// `npm run bench -- optimizers [--space search-spaces/multitask-v3.yaml,search-spaces/micro-evollm.yaml]
//   [--optimizers random,cmaes,m2n2,pareto] [--seeds 1,2,3,4,5] [--budget N] [--workers 2] [--dir runs/bench-optimizers]`
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { CpuKernel } from '../src/kernel/cpu/cpu-kernel.ts';
import { isOptimizerKind } from '../src/search/optimizers/optimizer.ts';
import { runCampaign } from '../src/search/campaign/campaign.ts';
import { buildReport, type CampaignReport } from '../src/report/report.ts';
import { absoluteSpace } from './space-variant.ts';

/** What each name sets in the space: an optimiser kind, and for the Pareto front its objective mode too. */
const VARIANTS: Record<string, Record<string, unknown>> = {
  random: { optimizer: 'random' },
  cmaes: { optimizer: 'cmaes' },
  m2n2: { optimizer: 'm2n2' },
  pareto: { optimizer: 'nsga2', objective_mode: 'pareto' },
};

interface Outcome {
  space: string;
  optimizer: string;
  seed: number;
  /** The pick's label: `#N` or the reference it fell back to. */
  pick: string;
  /** Pick minus the best naive merge on the test objective, and its paired SE. */
  gain: number;
  pairedSe: number;
  naive: string;
  /** Candidates asked up to and including the pick (null: the pick is a reference merge). */
  toPick: number | null;
  /** The pick's English log-likelihood on test minus the base's. */
  englishKept: number | null;
  candidates: number;
  seconds: number;
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      space: { type: 'string', default: 'search-spaces/multitask-v3.yaml,search-spaces/micro-evollm.yaml' },
      optimizers: { type: 'string', default: Object.keys(VARIANTS).join(',') },
      seeds: { type: 'string', default: '1,2,3,4,5' },
      budget: { type: 'string' },
      workers: { type: 'string', default: '2' },
      dir: { type: 'string', default: 'runs/bench-optimizers' },
    },
  });
  const seeds = values.seeds.split(',').map(Number);
  const optimizers = values.optimizers.split(',');
  for (const o of optimizers) {
    const kind = VARIANTS[o]?.optimizer;
    if (typeof kind !== 'string' || !isOptimizerKind(kind))
      throw new Error(`optimizer ${o} is not available; expected some of: ${availableVariants().join(', ')}`);
  }
  mkdirSync(values.dir, { recursive: true });

  const outcomes: Outcome[] = [];
  const noPick: Pick<Outcome, 'space' | 'optimizer' | 'seed' | 'candidates' | 'seconds'>[] = [];
  for (const spaceArg of values.space.split(',')) {
    const doc = absoluteSpace(path.resolve(spaceArg));
    if (values.budget) doc.budget = { candidates: Number(values.budget) };
    for (const optimizer of optimizers) {
      const variant: Record<string, unknown> = {
        ...doc,
        ...VARIANTS[optimizer],
        name: `${doc.name as string}-${optimizer}`,
      };
      const file = path.join(values.dir, `${variant.name as string}.yaml`);
      writeFileSync(file, YAML.stringify(variant));
      for (const seed of seeds) {
        // the budget in the name: a database of another budget under --dir is never resumed as this one
        const db = path.join(
          values.dir,
          `${variant.name as string}-b${String((variant.budget as { candidates?: number }).candidates ?? 'space')}-seed${seed}.sqlite`,
        );
        const t0 = performance.now();
        const r = await runCampaign({
          spaceFile: file,
          db,
          seed,
          workers: Number(values.workers),
          kernel: new CpuKernel(),
        });
        const seconds = (performance.now() - t0) / 1000;
        const o = outcomeOf(buildReport(db), doc.name as string, optimizer, seed, r.evaluated, seconds);
        if (!o) {
          process.stderr.write(
            `${variant.name as string} seed ${seed}: no pick (${r.evaluated} candidates, nothing kept)\n`,
          );
          noPick.push({ space: doc.name as string, optimizer, seed, candidates: r.evaluated, seconds });
          continue;
        }
        outcomes.push(o);
        process.stderr.write(
          `${variant.name} seed ${seed}: ${r.evaluated} candidates in ${seconds.toFixed(0)} s; pick ${o.pick} − ` +
            `${o.naive}: ${o.gain.toFixed(3)} ± ${o.pairedSe.toFixed(3)} (${db})\n`,
        );
      }
    }
  }
  printTables(outcomes, noPick, seeds);
}

function availableVariants(): string[] {
  return Object.keys(VARIANTS).filter((v) => isOptimizerKind(VARIANTS[v]!.optimizer as string));
}

function outcomeOf(
  rep: CampaignReport,
  space: string,
  optimizer: string,
  seed: number,
  candidates: number,
  seconds: number,
): Outcome | undefined {
  const t = rep.testObjective;
  const best = rep.rows.find((r) => r.kind === 'best');
  if (!t || !best) return undefined;
  // the best naive merge: the reference with the highest test objective among those the pick was compared with,
  // or the pick itself when it is a reference merge that no other reference beats on test (gain 0 by definition)
  const references = new Set(rep.rows.filter((r) => r.kind === 'reference').map((r) => r.label));
  let naive: { rival: string; gain: number; pairedSe: number } | undefined;
  for (const d of t.differences)
    if (references.has(d.rival) && (naive === undefined || t.values[d.rival]!.value > t.values[naive.rival]!.value))
      naive = d;
  const pickValue = Object.values(t.values)[0]!.value; // the pick's row comes first (testObjectiveComparison)
  if (best.reference !== undefined && (naive === undefined || pickValue >= t.values[naive.rival]!.value))
    naive = { rival: best.reference, gain: 0, pairedSe: 0 };
  const english = (label: string | undefined) => {
    const row = rep.rows.find((r) => (label === undefined ? r === best : r.label === label));
    const key = row && Object.keys(row.scores).find((k) => k.startsWith('english/'));
    return key ? row.scores[key]!.test?.value : undefined;
  };
  const pickEnglish = english(undefined);
  const baseEnglish = english('base');
  return {
    space,
    optimizer,
    seed,
    pick: best.label,
    gain: naive?.gain ?? Number.NaN,
    pairedSe: naive?.pairedSe ?? Number.NaN,
    naive: naive?.rival ?? '—',
    toPick: best.ordinal === null ? null : best.ordinal + 1,
    englishKept: pickEnglish !== undefined && baseEnglish !== undefined ? pickEnglish - baseEnglish : null,
    candidates,
    seconds,
  };
}

function printTables(
  outcomes: readonly Outcome[],
  noPick: readonly Pick<Outcome, 'space' | 'optimizer' | 'seed' | 'candidates' | 'seconds'>[],
  seeds: readonly number[],
): void {
  const f = (v: number | null, d = 3) => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(d));
  const signed = (v: number) => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${f(v)}` : '—');
  console.log(`\nThe pick against the best naive merge on the test objective, seeds ${seeds.join(', ')}`);
  console.log(
    '\n| space | optimiser | seed | pick | pick − best naive (paired SE) | > 2 SE | candidates to the pick | ' +
      'English kept (nats/byte vs base) | candidates | seconds |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const o of outcomes)
    console.log(
      `| ${o.space} | ${o.optimizer} | ${o.seed} | ${o.pick} | ${signed(o.gain)} ± ${f(o.pairedSe)} (vs ${o.naive}) | ` +
        `${o.gain > 2 * o.pairedSe ? 'yes' : o.gain < -2 * o.pairedSe ? 'below' : 'no'} | ${o.toPick ?? 'reference'} | ` +
        `${o.englishKept === null ? '—' : signed(o.englishKept)} | ${o.candidates} | ${f(o.seconds, 0)} |`,
    );
  for (const o of noPick)
    console.log(
      `| ${o.space} | ${o.optimizer} | ${o.seed} | nothing kept | — | — | — | — | ${o.candidates} | ${f(o.seconds, 0)} |`,
    );
  console.log('\n| space | optimiser | seeds with a pick | > 2 SE above naive | > 2 SE below naive | mean gain |');
  console.log('|---|---|---|---|---|---|');
  const groups = new Map<string, Outcome[]>();
  for (const o of noPick) groups.set(`${o.space}|${o.optimizer}`, groups.get(`${o.space}|${o.optimizer}`) ?? []);
  for (const o of outcomes)
    groups.set(`${o.space}|${o.optimizer}`, [...(groups.get(`${o.space}|${o.optimizer}`) ?? []), o]);
  for (const [key, list] of groups) {
    const [space, optimizer] = key.split('|');
    const mean = list.length ? list.reduce((a, o) => a + o.gain, 0) / list.length : Number.NaN;
    console.log(
      `| ${space} | ${optimizer} | ${list.length}/${seeds.length} | ${list.filter((o) => o.gain > 2 * o.pairedSe).length} | ` +
        `${list.filter((o) => o.gain < -2 * o.pairedSe).length} | ${signed(mean)} |`,
    );
  }
}
