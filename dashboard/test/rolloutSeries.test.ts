import { describe, expect, it } from 'vitest';
import { chartSeries, wilson } from '../src/lib/rolloutSeries';
import type { RewardSeries } from '../src/lib/types';

describe('rollout chart series', () => {
  it('matches the Wilson interval of known values', () => {
    const e = wilson(9, 10);
    expect(e.value).toBeCloseTo(0.9, 12);
    expect(e.low).toBeCloseTo(0.59585, 4);
    expect(e.high).toBeCloseTo(0.982124, 4);
  });

  it('shapes the collector’s buckets per version, in the arms’ order, a missing version empty', () => {
    const wire: RewardSeries = {
      agentId: 'a',
      reward: 'success',
      since: '2026-12-01T00:00:00Z',
      until: '2026-12-01T02:00:00Z',
      buckets: 2,
      series: [
        {
          version: '2',
          points: [{ start: '2026-12-01T01:00:00Z', end: '2026-12-01T02:00:00Z', n: 1500, reward: { value: 0.7, low: 0.676, high: 0.723 } }],
        },
        {
          version: '1',
          points: [
            { start: '2026-12-01T00:00:00Z', end: '2026-12-01T01:00:00Z', n: 1200, reward: { value: 0.5, low: 0.472, high: 0.528 } },
            { start: '2026-12-01T01:00:00Z', end: '2026-12-01T02:00:00Z', n: 1300, reward: { value: 0.52, low: 0.493, high: 0.547 } },
          ],
        },
      ],
    };
    const [v1, v2, none] = chartSeries(wire, ['1', '2', 'none']);
    expect(v1!.points.map((p) => [p.at, p.n, p.value])).toEqual([
      [Date.UTC(2026, 11, 1, 0), 1200, 0.5],
      [Date.UTC(2026, 11, 1, 1), 1300, 0.52],
    ]);
    expect(v2!.points).toEqual([{ at: Date.UTC(2026, 11, 1, 1), n: 1500, value: 0.7, low: 0.676, high: 0.723 }]);
    expect(none).toEqual({ version: 'none', points: [] });
  });
});
