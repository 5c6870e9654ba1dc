/**
 * What the outbox does after one request: a pure function of the outcome and a little context,
 * so every branch of the retry policy is unit-tested without a network.
 */
import { retryDelay, type BackoffConfig } from './backoff.js';
import type { RequestOutcome } from './client.js';

/** Consecutive 401s after which sending stops for the process (records stay for the spool). */
export const UNAUTHORIZED_LIMIT = 3;

export interface DecisionContext {
  /** kind of the request's first record */
  kind: 'start' | 'step' | 'complete' | 'score';
  /** records in the request */
  count: number;
  /** failed attempts in a row before this one (0 after a success) */
  attempt: number;
  /** 401s in a row before this one */
  unauthorizedStreak: number;
  /** the trajectory was already re-started once after a 404 */
  restarted: boolean;
  /** a start body is known for the trajectory (so it can be re-sent) */
  haveStart: boolean;
}

export type Decision =
  /** the collector took the records */
  | { action: 'delivered' }
  /** put the records back and try again after `delayMs` */
  | { action: 'retry'; delayMs: number }
  /** 401 below the limit: keep the records, try again after `delayMs` */
  | { action: 'unauthorized'; delayMs: number; stop: false }
  /** 401 at the limit: stop sending for this process, keep every record for the spool */
  | { action: 'unauthorized'; stop: true }
  /** 404 for a trajectory the collector does not know: send its start again, then these once more */
  | { action: 'restart' }
  /** 400/413 on a multi-record batch: retry with at most `limit` records to isolate the bad one */
  | { action: 'split'; limit: number }
  /** not retriable: drop the records (and say why) */
  | { action: 'drop'; reason: string };

export function decide(
  outcome: RequestOutcome,
  ctx: DecisionContext,
  backoff: BackoffConfig,
  random: () => number = Math.random,
): Decision {
  switch (outcome.kind) {
    case 'ok':
      return { action: 'delivered' };
    case 'retry':
      return { action: 'retry', delayMs: retryDelay(ctx.attempt + 1, outcome.retryAfterMs, backoff, random) };
    case 'unauthorized': {
      const streak = ctx.unauthorizedStreak + 1;
      if (streak >= UNAUTHORIZED_LIMIT) return { action: 'unauthorized', stop: true };
      return { action: 'unauthorized', stop: false, delayMs: retryDelay(streak, undefined, backoff, random) };
    }
    case 'rejected':
      if (outcome.status === 404 && ctx.kind !== 'start' && !ctx.restarted && ctx.haveStart) return { action: 'restart' };
      if ((outcome.status === 400 || outcome.status === 413) && ctx.count > 1) {
        return { action: 'split', limit: Math.max(1, Math.floor(ctx.count / 2)) };
      }
      return { action: 'drop', reason: outcome.error };
  }
}
