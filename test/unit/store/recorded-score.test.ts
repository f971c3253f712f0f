// The one conversion from a stored score row: the search's Score and the report's cell keep exactly these keys,
// in this order (the report's JSON and the search's recorded details print them).
import { describe, expect, it } from 'vitest';
import { recordedEstimate, recordedScore } from '../../../src/store/recorded-score.ts';

const row = { candidateId: 7, task: 'arith', metric: 'acc', split: 'fit@1', value: 0.5, se: Number.NaN, n: 12 };

describe('recorded scores', () => {
  it('reads a row back as its estimate: value ± SE over n and nothing else', () => {
    const e = recordedEstimate(row);
    expect(Object.keys(e)).toEqual(['value', 'se', 'n']);
    expect(e).toEqual({ value: 0.5, se: Number.NaN, n: 12 });
  });

  it('reads a row back as a score without its candidate', () => {
    const s = recordedScore(row);
    expect(Object.keys(s)).toEqual(['task', 'metric', 'split', 'value', 'se', 'n']);
    expect(s).toEqual({ task: 'arith', metric: 'acc', split: 'fit@1', value: 0.5, se: Number.NaN, n: 12 });
  });
});
