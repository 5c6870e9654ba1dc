import { describe, expect, it } from 'vitest';
import { feedbackError, feedbackId, formatScoreValue, scoreFor, voterId } from '../src/components/Scores';
import { ApiError } from '../src/lib/api';
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

describe('feedback ids', () => {
  const memory = () => {
    const m = new Map<string, string>();
    return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v) };
  };

  it('one id per voter and target: a repeated vote updates the same score', () => {
    const tid = '0f8fad5b-d9cb-469f-a165-70867728950e';
    expect(feedbackId('v1', tid, undefined)).toBe(`dash:v1:${tid}:t`);
    expect(feedbackId('v1', tid, 3)).toBe(`dash:v1:${tid}:s3`);
    expect(feedbackId('v1', tid, 3)).toBe(feedbackId('v1', tid, 3));
    expect(feedbackId('v1', tid, 3)).not.toBe(feedbackId('v2', tid, 3));
    expect(feedbackId('v1', tid, 0)).not.toBe(feedbackId('v1', tid, undefined));
    // the collector's id rule
    const longest = feedbackId(voterId(memory()), tid, 10_000_000);
    expect(longest).toMatch(/^[A-Za-z0-9_.:-]{1,128}$/);
  });

  it('the voter id is kept across page loads', () => {
    const storage = memory();
    const first = voterId(storage);
    expect(first).toMatch(/^[A-Za-z0-9]{1,32}$/);
    expect(voterId(storage)).toBe(first);
    expect(voterId(memory())).not.toBe(first);
  });

  it('a 403 names the key it takes', () => {
    expect(feedbackError(new ApiError(403, 'forbidden'), 'save')).toMatch(/ingest scope.*admin key/);
    expect(feedbackError(new ApiError(403, 'forbidden'), 'delete')).toMatch(/admin key/);
    expect(feedbackError(new ApiError(500, 'boom'), 'save')).toBe('boom');
  });
});
