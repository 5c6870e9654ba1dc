/**
 * Reward over time per prompt version, for the canary chart: the runs since the rollout began,
 * bucketed in time, each bucket's success rate with its Wilson 95 % interval (or, for a score
 * reward, the mean of the runs' trajectory-level scores with a normal-approximation interval).
 */
import type { Score, Trajectory } from './types';

export interface SeriesPoint {
  /** Start of the bucket (ms since the epoch). */
  at: number;
  n: number;
  value: number;
  low: number;
  high: number;
}

export interface Series {
  version: string;
  points: SeriesPoint[];
}

const Z = 1.959963984540054;

export function wilson(successes: number, n: number): { value: number; low: number; high: number } {
  const p = successes / n;
  const z2 = Z * Z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (Z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return { value: p, low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

function meanInterval(values: number[]): { value: number; low: number; high: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { value: mean, low: mean, high: mean };
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  const half = Z * Math.sqrt(variance / n);
  return { value: mean, low: mean - half, high: mean + half };
}

/**
 * Builds one series per version in `versions` (`none`: runs without a version) over
 * `buckets` equal time buckets from `since` to `until`. `reward` is `success` or
 * `score:<name>`; runs without a reward (running, or unscored) are left out.
 */
export function rewardSeries(
  trajectories: Trajectory[],
  scores: Score[],
  versions: string[],
  reward: string,
  since: number,
  until: number,
  buckets = 8,
): Series[] {
  const span = Math.max(1, until - since);
  const width = span / buckets;
  const scoreName = reward.startsWith('score:') ? reward.slice('score:'.length) : null;
  const byTrajectory = new Map<string, number[]>();
  if (scoreName !== null) {
    for (const s of scores) {
      if (s.name !== scoreName || (s.stepNumber !== null && s.stepNumber !== undefined)) continue;
      const v = typeof s.value === 'number' ? s.value : typeof s.value === 'boolean' ? Number(s.value) : null;
      if (v === null) continue;
      byTrajectory.set(s.trajectoryId, [...(byTrajectory.get(s.trajectoryId) ?? []), v]);
    }
  }
  const runReward = (t: Trajectory): number | null => {
    if (scoreName === null) return t.status === 'running' ? null : t.status === 'succeeded' ? 1 : 0;
    const own = byTrajectory.get(t.id);
    return own ? own.reduce((a, b) => a + b, 0) / own.length : null;
  };
  return versions.map((version) => {
    const cells: number[][] = Array.from({ length: buckets }, () => []);
    for (const t of trajectories) {
      const v = t.promptVersion ?? 'none';
      if (v !== version) continue;
      const at = Date.parse(t.startTime);
      if (!(at >= since && at <= until)) continue;
      const r = runReward(t);
      if (r === null) continue;
      cells[Math.min(buckets - 1, Math.floor((at - since) / width))]!.push(r);
    }
    const points = cells.flatMap((values, i) => {
      if (values.length === 0) return [];
      const est = scoreName === null ? wilson(values.reduce((a, b) => a + b, 0), values.length) : meanInterval(values);
      return [{ at: since + i * width, n: values.length, ...est }];
    });
    return { version, points };
  });
}
