import { describe, expect, it } from 'vitest';
import { formatScoreValue, scoreFor } from '../src/components/Scores';
import type { Score } from '../src/lib/types';

function score(fields: Partial<Score>): Score {
  return {
    id: 'x',
    trajectoryId: 't1',
    name: 'q',
    value: 1,
    dataType: 'numeric',
    comment: null,
    source: 'sdk',
    stepNumber: null,
    metadata: null,
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
    ...fields,
  };
}

describe('scores', () => {
  it('formats each value type', () => {
    expect(formatScoreValue('thumbs', false)).toBe('👎 down');
    expect(formatScoreValue('thumbs', true)).toBe('👍 up');
    expect(formatScoreValue('ok', true)).toBe('true');
    expect(formatScoreValue('q', 0.25)).toBe('0.250');
    expect(formatScoreValue('q', 3)).toBe('3');
    expect(formatScoreValue('verdict', 'pass')).toBe('pass');
  });

  it('prefers the latest trajectory-level score of a name', () => {
    const scores = [
      score({ id: 'step', stepNumber: 2, value: 0 }),
      score({ id: 'old', value: 0.1, updatedAt: '2026-01-01T00:00:00Z' }),
      score({ id: 'new', value: 0.9, updatedAt: '2026-01-02T00:00:00Z' }),
      score({ id: 'other', trajectoryId: 't2', value: 0.5 }),
    ];
    expect(scoreFor(scores, 't1', 'q')?.id).toBe('new');
    expect(scoreFor(scores, 't2', 'q')?.id).toBe('other');
    expect(scoreFor([score({ id: 'only-step', stepNumber: 1 })], 't1', 'q')?.id).toBe('only-step');
    expect(scoreFor(scores, 't3', 'q')).toBeUndefined();
  });
});
