// How the final pick generalises: real campaigns on a search space at an equal evaluation budget (items scored,
// fit and val together), over several seeds, in four configurations — the pick by fit alone; the val pick (the
// best of the top-k by fit on a held-out 30% of fit); the val pick with successive halving over fit items; and
// that with LCB ranking (value − 1·SE). For each: the final pick's test objective minus the best rival's (the
// best source or reference merge on the test objective), its mean, [min, max] and the SE over seeds, and the
// mean paired SE within a seed. Every campaign is a real one (its database kept under --dir).
// `npm run bench -- search-selection [--space search-spaces/multitask-v3.yaml] [--items 30000] [--seeds 1,2,3,4,5]
//   [--configs fit,val,val+sh,val+sh+lcb] [--top-k 10] [--min-items 30] [--eval-limit N] [--workers 2] [--dir runs/bench-selection]`
// (`npm run bench -- search --selection …` runs the same.)
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { CpuKernel } from '../src/kernel/cpu/cpu-kernel.ts';
import { runCampaign } from '../src/search/campaign/campaign.ts';
import { buildReport } from '../src/report/report.ts';
import { absoluteSpace } from './space-variant.ts';

const CONFIGS: Record<string, (topK: number, minItems: number) => Record<string, unknown> | undefined> = {
  fit: () => undefined,
  val: (k) => ({ val_fraction: 0.3, top_k: k }),
  'val+sh': (k, m) => ({ val_fraction: 0.3, top_k: k, halving: { min_items: m, eta: 3 } }),
  'val+sh+lcb': (k, m) => ({ val_fraction: 0.3, top_k: k, halving: { min_items: m, eta: 3 }, lcb_z: 1 }),
};

interface Outcome {
  seed: number;
  gain: number;
  pairedSe: number;
  pickTest: number;
  rival: string;
  candidates: number;
  seconds: number;
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      space: { type: 'string', default: 'search-spaces/multitask-v3.yaml' },
      items: { type: 'string', default: '30000' },
      seeds: { type: 'string', default: '1,2,3,4,5' },
      configs: { type: 'string', default: Object.keys(CONFIGS).join(',') },
      'top-k': { type: 'string', default: '10' },
      'min-items': { type: 'string', default: '30' },
      'eval-limit': { type: 'string' },
      workers: { type: 'string', default: '2' },
      dir: { type: 'string', default: 'runs/bench-selection' },
    },
  });
  const seeds = values.seeds.split(',').map(Number);
  const configs = values.configs.split(',');
  for (const c of configs)
    if (!CONFIGS[c]) throw new Error(`unknown config ${c}; expected ${Object.keys(CONFIGS).join(', ')}`);
  mkdirSync(values.dir, { recursive: true });
  const spaceFile = path.resolve(values.space);
  // the variants live under --dir
  const doc = absoluteSpace(spaceFile);
  doc.budget = { items: Number(values.items) };
  if (values['eval-limit']) doc.eval_limit = Number(values['eval-limit']);
  delete doc.selection;

  const results = new Map<string, Outcome[]>();
  for (const config of configs) {
    const variant: Record<string, unknown> = { ...doc, name: `${doc.name as string}-${config}` };
    const sel = CONFIGS[config]!(Number(values['top-k']), Number(values['min-items']));
    if (sel) variant.selection = sel;
    const file = path.join(values.dir, `${doc.name as string}-${config}.yaml`);
    writeFileSync(file, YAML.stringify(variant));
    const list: Outcome[] = [];
    for (const seed of seeds) {
      const db = path.join(values.dir, `${doc.name as string}-${config}-seed${seed}.sqlite`);
      const t0 = performance.now();
      const r = await runCampaign({
        spaceFile: file,
        db,
        seed,
        workers: Number(values.workers),
        kernel: new CpuKernel(),
      });
      const seconds = (performance.now() - t0) / 1000;
      const rep = buildReport(db);
      const t = rep.testObjective;
      if (!t || t.differences.length === 0) {
        process.stderr.write(`${config} seed ${seed}: no pick (${r.evaluated} candidates, nothing kept)\n`);
        continue;
      }
      const worst = t.differences.reduce((a, b) => (b.gain < a.gain ? b : a));
      const pickTest = Object.values(t.values)[0]!.value;
      list.push({
        seed,
        gain: worst.gain,
        pairedSe: worst.pairedSe,
        pickTest,
        rival: worst.rival,
        candidates: r.evaluated,
        seconds,
      });
      process.stderr.write(
        `${config} seed ${seed}: ${r.evaluated} candidates in ${seconds.toFixed(0)} s; pick test ` +
          `${pickTest.toFixed(3)}, vs best rival ${worst.rival}: ${worst.gain.toFixed(3)} ± ` +
          `${worst.pairedSe.toFixed(3)} (${db})\n`,
      );
    }
    results.set(config, list);
  }

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = (xs: number[]) =>
    xs.length < 2 ? Number.NaN : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '—');
  console.log(
    `\n${doc.name as string}: final pick vs the best rival on the test objective, ${values.items} items per campaign, ` +
      `seeds ${seeds.join(', ')}`,
  );
  console.log(
    '\n| pick | candidates (mean) | pick test objective (mean) | pick − best rival: mean [min, max] | SE over seeds | ' +
      'mean paired SE within a seed | seeds with gain > 2 paired SE |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const [config, list] of results) {
    if (!list.length) {
      console.log(`| ${config} | — | — | no pick | — | — | — |`);
      continue;
    }
    const g = list.map((o) => o.gain);
    console.log(
      `| ${config} | ${mean(list.map((o) => o.candidates)).toFixed(0)} | ${f(mean(list.map((o) => o.pickTest)))} | ` +
        `${f(mean(g))} [${f(Math.min(...g))}, ${f(Math.max(...g))}] | ${f(sd(g) / Math.sqrt(g.length))} | ` +
        `${f(mean(list.map((o) => o.pairedSe)))} | ${list.filter((o) => o.gain > 2 * o.pairedSe).length}` +
        `/${list.length} |`,
    );
  }
  // paired over seeds: each configuration against the fit-only pick on the same seed
  const base = results.get('fit');
  if (base && base.length) {
    console.log('\n| pick | minus the fit-only pick, same seed: mean ± SE over seeds |');
    console.log('|---|---|');
    for (const [config, list] of results) {
      if (config === 'fit') continue;
      const d = list.flatMap((o) => {
        const b = base.find((x) => x.seed === o.seed);
        return b ? [o.pickTest - b.pickTest] : [];
      });
      if (d.length)
        console.log(`| ${config} | ${f(mean(d))} ± ${f(sd(d) / Math.sqrt(d.length))} (${d.length} seeds) |`);
    }
  }
}
