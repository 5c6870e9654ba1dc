/**
 * Reward over time per prompt version, for the canary chart: the collector aggregates every
 * run of the window into time buckets (`GET …/prompts/series`), each with the success rate and
 * its Wilson 95 % interval (or, for a score reward, the mean of the runs' trajectory-level
 * scores with a normal-approximation interval). This module only shapes that for the chart.
 */
import type { RewardSeries } from './types';

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

/** The collector's series as chart series, in the order of `versions` (missing ones empty). */
export function chartSeries(wire: RewardSeries, versions: string[]): Series[] {
  return versions.map((version) => {
    const found = wire.series.find((s) => s.version === version);
    return {
      version,
      points: (found?.points ?? []).map((p) => ({ at: Date.parse(p.start), n: p.n, value: p.reward.value, low: p.reward.low, high: p.reward.high })),
    };
  });
}
