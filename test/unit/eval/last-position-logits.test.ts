// Last-position logits for generation (buildDecoderGraph's `logitPositions`, what graph: auto builds): the graph
// takes logit_positions and runs the final norm and lm_head only there. The session feeds each row's last real
// position for the next token (prefill of ragged rows, padded right for GroupQueryAttention and left for the
// standard-op cache) and every position for scoring. Against the same graph without the input (all positions
// computed, the last picked in JavaScript): the same logits bit for bit, both operator sets, through the cache
// and without it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OpSet } from '../../../src/graph/decoder-graph.ts';
import type { GraphSession, KvCache, Logits } from '../../../src/eval/onnx-session.ts';
import { builtGraphSession } from '../../fixtures/built-graph-session.ts';
import { writeTinyDecoder } from '../../fixtures/tiny-decoders.ts';
import { mulberry32 } from '../../fixtures/seeded-random.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'evomerge-lastpos-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const open = async (dir: string, opSet: OpSet, logitPositions: boolean): Promise<GraphSession> =>
  (await builtGraphSession(dir, { opSet, pack: true, logitPositions })).session;

function worst(a: Logits, b: Logits): number {
  expect([a.batch, a.seq, a.vocab]).toEqual([b.batch, b.seq, b.vocab]);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return Number.isNaN(m) ? Infinity : m;
}

describe('last-position logits (logit_positions)', () => {
  for (const opSet of ['cpu', 'plain'] as const) {
    it(`${opSet} ops: generation's next-token logits equal the full logits' last real position`, async () => {
      const dir = join(tmp, `qwen2-${opSet}`);
      writeTinyDecoder(dir, 'qwen2', { seed: 3 });
      const rand = mulberry32(9);
      const rows = [5, 9, 3].map((n) => Array.from({ length: n }, () => Math.floor(rand() * 97)));
      const last = await open(dir, opSet, true);
      const full = await open(dir, opSet, false);
      try {
        // ragged rows without a cache (padded right), and through the cache (the graph's own padding side)
        const a = await last.nextTokenLogits(rows);
        const b = await full.nextTokenLogits(rows);
        expect(a.seq).toBe(1);
        expect(worst(a, b), 'no cache').toBe(0);
        let pa = await last.nextTokenLogitsWithCache(rows, undefined);
        let pb = await full.nextTokenLogitsWithCache(rows, undefined);
        expect(worst(pa.logits, pb.logits), 'prefill through the cache').toBe(0);
        let ca: KvCache = pa.cache;
        let cb: KvCache = pb.cache;
        for (let t = 0; t < 3; t++) {
          const next = rows.map(() => [Math.floor(rand() * 97)]);
          pa = await last.nextTokenLogitsWithCache(next, ca);
          pb = await full.nextTokenLogitsWithCache(next, cb);
          expect(worst(pa.logits, pb.logits), `decode step ${t}`).toBe(0);
          ca = pa.cache;
          cb = pb.cache;
        }
        // scoring still gets every position, bit for bit
        const all = await last.forwardRows(rows);
        const allFull = await full.forwardRows(rows);
        expect(all.seq).toBe(9);
        expect(worst(all, allFull), 'every position').toBe(0);
      } finally {
        await last.close();
        await full.close();
      }
    });
  }
});
