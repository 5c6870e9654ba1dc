import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, isRetriableStatus, parseRetryAfter, retryDelay } from '../../src/backoff.js';

const cfg = { baseDelayMs: 100, maxDelayMs: 5000, maxRetryAfterMs: 30000 };

test('retries only network-class statuses', () => {
  for (const s of [408, 425, 429, 500, 502, 503, 504, 599]) assert.equal(isRetriableStatus(s), true, String(s));
  for (const s of [200, 400, 401, 403, 404, 409, 413, 415, 422]) assert.equal(isRetriableStatus(s), false, String(s));
});

test('backoff grows exponentially and is capped', () => {
  const max = (attempt: number) => backoffDelay(attempt, cfg, () => 0.999999);
  assert.equal(max(1), 99);
  assert.equal(max(2), 199);
  assert.equal(max(3), 399);
  assert.equal(max(6), 3199);
  assert.equal(max(7), 4999);
  assert.equal(max(50), 4999);
});

test('backoff applies full jitter and never returns 0', () => {
  assert.equal(backoffDelay(4, cfg, () => 0), 1);
  assert.equal(backoffDelay(4, cfg, () => 0.5), 400);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(5, cfg);
    assert.ok(d >= 1 && d <= 1600, String(d));
    seen.add(d);
  }
  assert.ok(seen.size > 50, 'delays should be spread out');
});

test('parses Retry-After seconds and HTTP dates', () => {
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter(' 0 '), 0);
  assert.equal(parseRetryAfter('1.5'), 1500);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now), 10000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
  assert.equal(parseRetryAfter(''), undefined);
});

test('Retry-After wins over backoff and is capped', () => {
  assert.equal(retryDelay(1, 2000, cfg, () => 0), 2000);
  assert.equal(retryDelay(9, 2000, cfg, () => 0), 2000);
  assert.equal(retryDelay(1, 10 * 60_000, cfg, () => 0), 30000);
  assert.ok(retryDelay(1, 2000, cfg, () => 0.99) < 2100);
  assert.equal(retryDelay(3, undefined, cfg, () => 0.5), 200);
});
