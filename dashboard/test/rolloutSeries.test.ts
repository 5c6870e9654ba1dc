import { describe, expect, it } from 'vitest';
import { rewardSeries, wilson } from '../src/lib/rolloutSeries';
import type { Score, Trajectory } from '../src/lib/types';

function run(id: string, version: string | null, at: number, status: Trajectory['status']): Trajectory {
  return { id, agentId: 'a', promptVersion: version, startTime: new Date(at).toISOString(), status } as unknown as Trajectory;
}

describe('rewardSeries', () => {
  it('matches the Wilson interval of known values', () => {
    const e = wilson(9, 10);
    expect(e.value).toBeCloseTo(0.9, 12);
    expect(e.low).toBeCloseTo(0.59585, 4);
    expect(e.high).toBeCloseTo(0.982124, 4);
  });

  it('buckets each version over time, leaving running runs and other versions out', () => {
    const t0 = Date.UTC(2026, 11, 1);
    const hour = 3_600_000;
    const runs = [
      run('a', '1', t0 + 0.1 * hour, 'succeeded'),
      run('b', '1', t0 + 0.2 * hour, 'failed'),
      run('c', '1', t0 + 1.5 * hour, 'succeeded'),
      run('d', '2', t0 + 0.5 * hour, 'abandoned'),
      run('e', '2', t0 + 1.9 * hour, 'running'),
      run('f', '3', t0 + 0.5 * hour, 'succeeded'),
      run('g', null, t0 + 0.5 * hour, 'succeeded'),
    ];
    const [v1, v2, none] = rewardSeries(runs, [], ['1', '2', 'none'], 'success', t0, t0 + 2 * hour, 2);
    expect(v1!.points.map((p) => [p.n, p.value])).toEqual([
      [2, 0.5],
      [1, 1],
    ]);
    expect(v1!.points[0]!.at).toBe(t0);
    expect(v1!.points[1]!.at).toBe(t0 + hour);
    expect(v2!.points.map((p) => [p.n, p.value])).toEqual([[1, 0]]);
    expect(none!.points.map((p) => p.n)).toEqual([1]);
  });

  it('uses each run’s mean trajectory score for a score reward', () => {
    const t0 = 0;
    const runs = [run('a', '1', 10, 'succeeded'), run('b', '1', 20, 'failed'), run('c', '1', 30, 'succeeded')];
    const score = (trajectoryId: string, value: number | boolean, stepNumber: number | null = null) =>
      ({ trajectoryId, name: 'q', value, stepNumber }) as unknown as Score;
    const scores = [score('a', 0.2), score('a', 0.4), score('b', true), score('b', 0, 3), score('x', 1)];
    const [v1] = rewardSeries(runs, scores, ['1'], 'score:q', t0, 100, 1);
    // a: mean 0.3; b: true → 1 (its step score is not the run's); c: unscored, left out.
    expect(v1!.points).toHaveLength(1);
    expect(v1!.points[0]!.n).toBe(2);
    expect(v1!.points[0]!.value).toBeCloseTo(0.65, 12);
  });
});
