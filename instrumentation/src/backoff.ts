/** Retry classification and exponential backoff with full jitter. */

export interface BackoffConfig {
  baseDelayMs: number;
  maxDelayMs: number;
  maxRetryAfterMs: number;
}

/** Statuses worth retrying: timeouts, too early, too many requests, server errors. */
export function isRetriableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || (status >= 500 && status <= 599);
}

/**
 * Delay before retry number `attempt` (1 = first retry): uniform in
 * [0, min(maxDelay, base * 2^(attempt-1))] ("full jitter"), at least 1 ms.
 */
export function backoffDelay(attempt: number, config: BackoffConfig, random: () => number = Math.random): number {
  const exp = Math.min(30, Math.max(0, attempt - 1));
  const ceiling = Math.min(config.maxDelayMs, config.baseDelayMs * 2 ** exp);
  return Math.max(1, Math.floor(random() * ceiling));
}

/**
 * Parses a Retry-After header (delta-seconds or HTTP-date) into ms from `now`.
 * Returns undefined when absent or unparsable; never negative.
 */
export function parseRetryAfter(header: string | null | undefined, now: number = Date.now()): number | undefined {
  if (header === null || header === undefined) return undefined;
  const value = header.trim();
  if (value === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** The delay to wait after a failed attempt: Retry-After when given (capped), else backoff. */
export function retryDelay(
  attempt: number,
  retryAfterMs: number | undefined,
  config: BackoffConfig,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== undefined) {
    // honour the server, with a little jitter so a fleet does not come back at once
    const capped = Math.min(retryAfterMs, config.maxRetryAfterMs);
    return capped + Math.floor(random() * Math.min(1000, config.baseDelayMs));
  }
  return backoffDelay(attempt, config, random);
}
