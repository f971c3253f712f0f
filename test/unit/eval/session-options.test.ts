// The options GraphSession hands ORT: intra-op spinning off unless asked for (evomerge eval --spin).
import { describe, expect, it } from 'vitest';
import { ortSessionOptions } from '../../../src/eval/onnx-session.ts';

describe('ortSessionOptions', () => {
  it('turns intra-op spinning off by default', () => {
    const o = ortSessionOptions({ ep: 'cpu', intraOpThreads: 2 });
    expect(o.extra).toEqual({ session: { 'intra_op.allow_spinning': '0' } });
    expect(o.intraOpNumThreads).toBe(2);
    expect(ortSessionOptions({ ep: 'cpu', spinWait: false }).extra).toEqual({
      session: { 'intra_op.allow_spinning': '0' },
    });
  });

  it('turns it on with spinWait, keeping the other session settings', () => {
    expect(ortSessionOptions({ ep: 'cpu', spinWait: true, prepack: false }).extra).toEqual({
      session: { disable_prepacking: '1', 'intra_op.allow_spinning': '1' },
    });
  });
});
