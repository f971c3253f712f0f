// M2N2 in a search space: the `m2n2:` block parsed at the door, the seeds (sources and references as genomes of
// the space's domain, the nearest expressible point where the domain lacks one), and the options handed to the
// optimiser; other optimisers get none of them.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { prepareCampaign } from '../../../src/search/campaign/campaign-setup.ts';
import { seedSolutions, spaceOptimizerOptions } from '../../../src/search/space/seeds.ts';

const repo = path.resolve(__dirname, '../../..');
const zoo = path.join(repo, 'models/micro');
const dir = mkdtempSync(path.join(os.tmpdir(), 'evomerge-m2n2-space-'));

function spaceFile(extra: Record<string, unknown> = {}, genome: Record<string, unknown> = {}): string {
  const file = path.join(dir, `space-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    YAML.stringify({
      name: 'unit',
      base_model: `${zoo}/base`,
      models: [`${zoo}/expert-math`, `${zoo}/expert-lang`],
      suite: path.join(repo, 'evals/micro.yaml'),
      genome: {
        layer_groups: 2,
        methods: ['task_arithmetic', 'dare_ties'],
        parameters: { weight: { min: 0, max: 1.2 }, density: { min: 0.1, max: 0.9 } },
        ...genome,
      },
      objective: [{ task: 'composite', metric: 'answer_logprob', weight: 1 }],
      references: [
        { name: 'ties', method: 'ties', weight: 1, density: 0.5 },
        { name: 'dare', method: 'dare_ties', weight: 0.7, density: 0.4 },
      ],
      optimizer: 'm2n2',
      budget: { candidates: 10 },
      ...extra,
    }),
  );
  return file;
}

describe('the m2n2: block', () => {
  it('reads archive_size, alpha and mutation and hands them to the optimiser with the seeds', () => {
    const setup = prepareCampaign(spaceFile({ m2n2: { archive_size: 8, alpha: 0.5, mutation: 0 } }));
    expect(setup.space.m2n2).toEqual({ archiveSize: 8, alpha: 0.5, mutation: 0 });
    const opts = spaceOptimizerOptions(setup.space, setup.layout);
    expect(opts).toMatchObject({ archiveSize: 8, alpha: 0.5, mutation: 0 });
    expect(opts.seeds).toEqual(seedSolutions(setup.layout));
    expect(spaceOptimizerOptions({ ...setup.space, optimizer: 'cmaes' }, setup.layout)).toEqual({});
  });

  it('refuses unknown keys, bad values and a block under another optimiser, naming file and key', () => {
    const file = spaceFile({ m2n2: { archive_sise: 8 } });
    expect(() => prepareCampaign(file)).toThrow(expect.objectContaining({ code: 'space.unknown_key' }));
    expect(() => prepareCampaign(file)).toThrow(/m2n2\.archive_sise: unknown key; expected one of: archive_size/);
    expect(() => prepareCampaign(spaceFile({ m2n2: { archive_size: 1 } }))).toThrow(
      /m2n2\.archive_size: expected an integer ≥ 2/,
    );
    expect(() => prepareCampaign(spaceFile({ m2n2: { alpha: -1 } }))).toThrow(/m2n2\.alpha/);
    expect(() => prepareCampaign(spaceFile({ m2n2: { mutation: 1.5 } }))).toThrow(/m2n2\.mutation/);
    expect(() => prepareCampaign(spaceFile({ optimizer: 'cmaes', m2n2: {} }))).toThrow(
      /m2n2: only read by optimizer: m2n2 \(this space's optimizer is cmaes\)/,
    );
  });

  it('changes the campaign identity only when present', () => {
    expect(prepareCampaign(spaceFile({ m2n2: { alpha: 1 } })).configHash).not.toBe(
      prepareCampaign(spaceFile()).configHash,
    );
  });
});

describe('seeds', () => {
  it('the base, each model alone, each reference: nearest expressible points, in order', () => {
    const setup = prepareCampaign(spaceFile());
    const names = setup.layout.domain.continuous.map((g) => g.name);
    const seeds = seedSolutions(setup.layout);
    const at = (s: { x: number[] }, name: string) => s.x[names.indexOf(name)];
    expect(seeds).toHaveLength(5);
    // base: weights 0, density 1 clipped to 0.9, task_arithmetic
    expect(names.filter((n) => n.endsWith('.weight')).map((n) => at(seeds[0]!, n))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(at(seeds[0]!, 'layers0-2.expert-math.density')).toBe(0.9);
    expect(seeds[0]!.c).toEqual([0]);
    // expert-math alone in every cell
    expect(at(seeds[1]!, 'nonlayer.expert-math.weight')).toBe(1);
    expect(at(seeds[1]!, 'nonlayer.expert-lang.weight')).toBe(0);
    expect(at(seeds[2]!, 'layers3-5.expert-lang.weight')).toBe(1);
    // ties is not searched: task_arithmetic with its weights; dare_ties is, with its weight and density
    expect(seeds[3]!.c).toEqual([0]);
    expect(at(seeds[3]!, 'layers3-5.expert-lang.weight')).toBe(1);
    expect(seeds[4]!.c).toEqual([1]);
    expect(at(seeds[4]!, 'layers0-2.expert-math.weight')).toBe(0.7);
    expect(at(seeds[4]!, 'layers0-2.expert-lang.density')).toBe(0.4);
    // every seed decodes to a recipe of the space (the seeds are candidates like any other)
    for (const s of seeds) expect(setup.decode(s.x, s.c).recipe.merge_method).toBeDefined();
  });

  it('a weight range without 0 clips the base; identical seeds are asked once', () => {
    const setup = prepareCampaign(
      spaceFile(
        {
          references: [
            { name: 'one', method: 'task_arithmetic', weight: 1 },
            { name: 'same', method: 'ties', weight: 1, density: 0.5 },
          ],
        },
        {
          parameters: { weight: { min: 0.2, max: 1 } },
          methods: ['task_arithmetic'],
        },
      ),
    );
    const seeds = seedSolutions(setup.layout);
    expect(seeds[0]!.x.every((v) => v === 0.2)).toBe(true);
    // base, two experts, 'one' (weight 1 for both); 'same' (ties → task_arithmetic, weights 1) equals 'one'
    expect(seeds).toHaveLength(4);
    expect(seeds[3]!.x.every((v) => v === 1)).toBe(true);
  });
});
