// The data-flow genome: its layout (T = M·r indicators + M² scales, started at A's first repetition), its codec
// (A's first and last layers end every path; the recipe holds only the path and the scales of the hops taken,
// so genomes giving the same path share one content hash, wherever the model folders lie) and its space keys.
import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildDataFlowLayout, decodeDataFlow, parseDataFlowDoc } from '../../../src/search/space/data-flow.ts';
import { contentHash } from '../../../src/search/space/genome.ts';
import { parseSpace } from '../../../src/search/space/space.ts';

const repo = path.resolve(__dirname, '../../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'evomerge-dfs-'));
const file = path.join(dir, 'space.yaml');
const zoo = path.join(repo, 'models/micro');

function space(extra: Record<string, unknown> = {}, genome: Record<string, unknown> = {}, root = zoo) {
  return parseSpace(
    {
      base_model: `${root}/base`,
      models: [`${root}/expert-math`, { name: 'lang', model: `${root}/expert-lang` }],
      suite: path.join(repo, 'evals/micro.yaml'),
      genome: { kind: 'data_flow', repeats: 3, ...genome },
      objective: [{ task: 'composite' }],
      budget: { candidates: 10 },
      ...extra,
    },
    file,
  );
}

describe('data-flow genome', () => {
  const s = space();
  const layout = buildDataFlowLayout(s, 6, 6);
  const T = 36;

  it('lays out 36 indicators and a 12 × 12 scale matrix, starting at A alone with scales 1', () => {
    expect(layout.domain.continuous).toHaveLength(T + 144);
    expect(layout.domain.continuous[0]!.name).toBe('include.r1.expert-math.0');
    expect(layout.domain.continuous[6]!.name).toBe('include.r1.lang.0');
    expect(layout.domain.continuous[T + 1]!.name).toBe('scale.expert-math.0>expert-math.1');
    expect(layout.x0.slice(0, 6).every((v) => v > 0)).toBe(true);
    expect(layout.x0.slice(6, T).every((v) => v === 0)).toBe(true);
    expect(layout.x0.slice(T).every((v) => v === 1)).toBe(true);
    // the start decodes to A itself, every hop at scale 1
    const { recipe, genome } = decodeDataFlow(layout, s, layout.x0);
    expect(genome.layers).toBe(6);
    expect(recipe.data_flow.path).toEqual(Array.from({ length: 6 }, (_, layer) => ({ model: 0, layer, scale: 1 })));
  });

  it("A's first and last layers start and end every path; the rest follow the slots in order", () => {
    const x = [...layout.x0].map((v, i) => (i < T ? -0.5 : v));
    x[6 + 3] = 0.2; // r1, B's layer 3
    x[12 + 1] = 0.9; // r2, A's layer 1
    x[T + 0 * 12 + 9] = 0.5; // W: A0 → B3
    const flow = parseDataFlowDoc(decodeDataFlow(layout, s, x).recipe, '<test>');
    expect(flow.path).toEqual([
      { model: 0, layer: 0, scale: 1 },
      { model: 1, layer: 3, scale: 0.5 },
      { model: 0, layer: 1, scale: 1 },
      { model: 0, layer: 5, scale: 1 },
    ]);
    const none = decodeDataFlow(
      layout,
      s,
      layout.x0.map((v, i) => (i < T ? -1 : v)),
    );
    expect(none.recipe.data_flow.path).toHaveLength(2);
  });

  it('genomes giving the same path and scales share one content hash; a used scale changes it', () => {
    const x = [...layout.x0];
    const y = [...layout.x0].map((v, i) => (i < 6 ? 0.01 : v)); // same signs: same path
    y[T + 7 * 12 + 8] = 1.7; // W lang.1 → lang.2: a hop the path does not take
    const hx = contentHash(decodeDataFlow(layout, s, x).recipe, s);
    expect(contentHash(decodeDataFlow(layout, s, y).recipe, s)).toBe(hx);
    const z = [...layout.x0];
    z[T + 0 * 12 + 1] = 1.25; // W A0 → A1: taken
    expect(contentHash(decodeDataFlow(layout, s, z).recipe, s)).not.toBe(hx);
  });

  it('the content hash does not depend on where the model folders lie', () => {
    const elsewhere = mkdtempSync(path.join(os.tmpdir(), 'evomerge-dfs-zoo-'));
    cpSync(zoo, elsewhere, { recursive: true });
    const moved = space({}, {}, elsewhere);
    const x = layout.x0.map((v, i) => (i === 20 ? 0.3 : v));
    expect(contentHash(decodeDataFlow(buildDataFlowLayout(moved, 6, 6), moved, x).recipe, moved)).toBe(
      contentHash(decodeDataFlow(layout, s, x).recipe, s),
    );
  });

  it('space errors are one line naming the file and the key', () => {
    expect(() => space({}, { methods: ['ties'] })).toThrow(`${file}: genome.methods: unknown key`);
    expect(() => space({}, { kind: 'data-flow' })).toThrow(`${file}: genome.kind: unknown kind "data-flow"`);
    expect(() => space({}, { scales: { min: 1, max: 1 } })).toThrow(
      `${file}: genome.scales: min 1 must be below max 1`,
    );
    expect(() => space({}, { scale_model: 'mlp' })).toThrow(`${file}: genome.scale_model: "mlp" is not supported`);
    expect(() => space({ models: [`${zoo}/expert-math`] })).toThrow(
      `${file}: models: a data-flow search takes exactly two`,
    );
    expect(() => space({ graph: `${zoo}/base/model.onnx` })).toThrow(`${file}: graph: a data-flow search builds`);
  });

  it('a malformed path document names the step and the key', () => {
    const doc = {
      data_flow: {
        models: ['/a', '/b'],
        path: [
          { model: 0, layer: 0 },
          { model: 2, layer: 1 },
        ],
      },
    };
    expect(() => parseDataFlowDoc(doc, 'x.yaml')).toThrow('x.yaml: data_flow.path[1].model: expected 0 (A) or 1 (B)');
  });
});
