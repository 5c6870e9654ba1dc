export interface RangeOption {
  value: string;
  label: string;
  ms: number | null;
}

export const RANGES: RangeOption[] = [
  { value: '1h', label: 'Last hour', ms: 3600_000 },
  { value: '24h', label: 'Last 24 hours', ms: 24 * 3600_000 },
  { value: '7d', label: 'Last 7 days', ms: 7 * 24 * 3600_000 },
  { value: '30d', label: 'Last 30 days', ms: 30 * 24 * 3600_000 },
  { value: 'all', label: 'All time', ms: null },
];

/** RFC 3339 lower bound for a range value, or undefined for "all". */
export function sinceFor(range: string | null | undefined, now = Date.now()): string | undefined {
  const option = RANGES.find((r) => r.value === range);
  if (!option || option.ms === null) return undefined;
  return new Date(now - option.ms).toISOString();
}
