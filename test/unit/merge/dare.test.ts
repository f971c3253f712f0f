// dare_linear has no golden (random): the properties every correct output has (shared/mergekit-goldens
// README "DARE"), checked on the vendored micro zoo: each entry is base or base + s·τ with one s per tensor,
// the kept fraction is density within 5σ regardless of |τ|, same seed → same bits, other seed → ≈2p(1−p)
// of the masks disagree; rescale true = L1-norm ratio, rescale "density" = 1/density.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModelDir, type ModelDir } from '../../../src/checkpoint/model-dir.ts';
import { MemoryTensors } from '../../../src/checkpoint/tensor-source.ts';
import { CpuKernel } from '../../../src/kernel/cpu/cpu-kernel.ts';
import { mergeRecipe } from '../../../src/merge/engine.ts';
import { parseRecipeFile } from '../../../src/recipe/parse.ts';

const DENSITY = 0.3;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const zoo = path.join(repoRoot, 'models/micro');

let tmp: string;
let base: ModelDir;
let expert: ModelDir;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'evomerge-dare-'));
  base = openModelDir(path.join(zoo, 'base'));
  expert = openModelDir(path.join(zoo, 'expert-math'));
});
afterAll(() => {
  base.close();
  expert.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function dare(seed: number, rescale?: boolean | 'density'): Promise<MemoryTensors> {
  const file = path.join(tmp, `dare-${seed}-${String(rescale)}.yaml`);
  writeFileSync(
    file,
    [
      'merge_method: dare_linear',
      `base_model: ${path.join(zoo, 'base')}`,
      'dtype: float32',
      ...(rescale !== undefined ? ['parameters:', `  rescale: ${rescale === 'density' ? 'density' : rescale}`] : []),
      'models:',
      `  - model: ${path.join(zoo, 'expert-math')}`,
      '    parameters:',
      '      weight: 1.0',
      `      density: ${DENSITY}`,
    ].join('\n'),
  );
  const out = new MemoryTensors('dare');
  await mergeRecipe(parseRecipeFile(file), out, { kernel: new CpuKernel(), seed });
  return out;
}

interface Classified {
  /** Per entry: 1 kept, 0 dropped, -1 not classifiable (τ = 0 or s·τ below rounding noise). */
  mask: Int8Array;
  s: number;
  l1Ratio: number;
  tau: Float32Array;
}

/** Classifies every entry of one tensor as kept (base + s·τ) or dropped (base), with one s for the tensor. */
function classify(name: string, out: MemoryTensors): Classified {
  const b = base.tensors.readTensor(name).data;
  const x = expert.tensors.readTensor(name).data;
  const o = out.readTensor(name).data;
  const tau = new Float32Array(b.length);
  let maxTau = 0;
  for (let i = 0; i < b.length; i++) {
    tau[i] = x[i]! - b[i]!;
    maxTau = Math.max(maxTau, Math.abs(tau[i]!));
  }
  // s from the kept entries with the largest |τ| (their ratio is least affected by rounding).
  const ratios: number[] = [];
  for (let i = 0; i < b.length; i++)
    if (o[i] !== b[i] && Math.abs(tau[i]!) > 0.1 * maxTau) ratios.push((o[i]! - b[i]!) / tau[i]!);
  ratios.sort((p, q) => p - q);
  const s = ratios[Math.floor(ratios.length / 2)]!;
  const mask = new Int8Array(b.length);
  const bad: string[] = [];
  let l1 = 0;
  let l1Kept = 0;
  for (let i = 0; i < b.length; i++) {
    const t = tau[i]!;
    l1 += Math.abs(t);
    const ulp = 4 * Math.max(Math.abs(b[i]!), Math.abs(o[i]!)) * 2 ** -23;
    if (t === 0) {
      if (o[i] !== b[i]) bad.push(`[${i}] τ = 0 but output ${o[i]} ≠ base ${b[i]}`);
      mask[i] = -1;
    } else if (Math.abs(s * t) <= 2 * ulp) {
      mask[i] = -1; // too small to classify
    } else if (o[i] === b[i]) {
      mask[i] = 0;
    } else {
      if (Math.abs(o[i]! - (b[i]! + s * t)) > ulp + Math.abs(s * t) * 1e-6)
        bad.push(`[${i}] ${o[i]} is neither base ${b[i]} nor base + s·τ (s = ${s})`);
      mask[i] = 1;
      l1Kept += Math.abs(t);
    }
  }
  expect(bad.slice(0, 5), name).toEqual([]);
  return { mask, s, l1Ratio: l1 / l1Kept, tau };
}

function fiveSigma(n: number): number {
  return 5 * Math.sqrt((DENSITY * (1 - DENSITY)) / n);
}

describe('dare_linear properties (micro zoo, base + expert-math, density 0.3)', () => {
  let seed1: MemoryTensors;
  let seed1Again: MemoryTensors;
  let seed2: MemoryTensors;
  beforeAll(async () => {
    seed1 = await dare(1);
    seed1Again = await dare(1);
    seed2 = await dare(2);
  });

  it("names and shapes are the base's; every value is finite", () => {
    expect([...seed1.tensorNames()].sort()).toEqual([...base.tensors.tensorNames()].sort());
    for (const n of seed1.tensorNames()) {
      expect(seed1.readTensor(n).shape).toEqual(base.tensors.tensorInfo(n).shape);
      expect(seed1.readTensor(n).data.every(Number.isFinite)).toBe(true);
    }
  });

  it(
    'each entry is base or base + s·τ with one s per tensor, s the L1-norm ratio; ' +
      'kept fraction ≈ density, independent of |τ|',
    () => {
      let kept = 0;
      let classified = 0;
      const scales: number[] = [];
      for (const n of seed1.tensorNames()) {
        const c = classify(n, seed1);
        scales.push(c.s);
        // rescale true (dare default) = mergekit's ‖τ‖₁ / ‖τ ⊙ mask‖₁ over the mask (MERGEKIT-SEMANTICS §8).
        expect(Math.abs(c.s - c.l1Ratio) / c.l1Ratio, n).toBeLessThan(2e-3);
        const idx = [...c.mask.keys()].filter((i) => c.mask[i]! >= 0);
        const k = idx.filter((i) => c.mask[i] === 1).length;
        expect(Math.abs(k / idx.length - DENSITY), `${n}: kept fraction`).toBeLessThanOrEqual(fiveSigma(idx.length));
        // Larger and smaller half of |τ|.
        idx.sort((p, q) => Math.abs(c.tau[p]!) - Math.abs(c.tau[q]!));
        for (const half of [idx.slice(0, idx.length >> 1), idx.slice(idx.length >> 1)]) {
          const kh = half.filter((i) => c.mask[i] === 1).length;
          expect(Math.abs(kh / half.length - DENSITY), `${n}: kept fraction in a half of |τ|`).toBeLessThanOrEqual(
            fiveSigma(half.length),
          );
        }
        kept += k;
        classified += idx.length;
      }
      expect(Math.abs(kept / classified - DENSITY)).toBeLessThanOrEqual(fiveSigma(classified));
      expect(classified).toBeGreaterThan(1_000_000);
      // The L1 ratio varies per tensor around 1/density (it is not 1/density).
      expect(Math.min(...scales)).toBeLessThan(1 / DENSITY - 0.05);
      expect(Math.max(...scales)).toBeGreaterThan(1 / DENSITY + 0.05);
    },
  );

  it('the same seed gives the same bits; another seed disagrees on ≈ 2p(1−p) of the masks', () => {
    for (const n of seed1.tensorNames()) {
      expect(
        Buffer.from(seed1Again.readTensor(n).data.buffer).equals(Buffer.from(seed1.readTensor(n).data.buffer)),
        n,
      ).toBe(true);
    }
    let disagree = 0;
    let both = 0;
    for (const n of seed1.tensorNames()) {
      const a = classify(n, seed1).mask;
      const b = classify(n, seed2).mask;
      for (let i = 0; i < a.length; i++) {
        if (a[i]! < 0 || b[i]! < 0) continue;
        both++;
        if (a[i] !== b[i]) disagree++;
      }
    }
    const want = 2 * DENSITY * (1 - DENSITY);
    expect(Math.abs(disagree / both - want)).toBeLessThan(0.01);
  });

  it('rescale: "density" multiplies the kept entries by exactly 1/density', async () => {
    const out = await dare(1, 'density');
    for (const n of out.tensorNames()) {
      const c = classify(n, out);
      expect(Math.abs(c.s * DENSITY - 1), n).toBeLessThan(1e-4);
    }
  });

  it('rescale: false keeps the kept entries at base + τ', async () => {
    const out = await dare(1, false);
    for (const n of out.tensorNames()) expect(Math.abs(classify(n, out).s - 1), n).toBeLessThan(1e-4);
  });
});
