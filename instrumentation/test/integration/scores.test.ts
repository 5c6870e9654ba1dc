/**
 * lightning.score() against the real collector binary (issue 9; contract in docs/api.md
 * "Scores"): typed values, sources, comments, steps, idempotent ids, delivery after an outage.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Collector } from '../helpers/collector.js';
import { SessionSim } from '../helpers/sim.js';
import { make } from '../helpers/make.js';
import { MAX_SCORE_COMMENT_CHARS } from '../../src/payload.js';

let collector: Collector;
before(async () => {
  collector = await new Collector().start();
});
after(async () => {
  await collector.dispose();
});

const agent = (name: string) => `${name}-${Math.random().toString(36).slice(2, 8)}`;

async function scoresOf(trajectoryId: string): Promise<any[]> {
  return (await collector.get(`/api/trajectories/${encodeURIComponent(trajectoryId)}/scores`)).scores;
}

test('score() after a run: stored with its type, source, comment and step; a repeated id updates it', async () => {
  const agentId = agent('it-score');
  const { lightning } = make(collector.url, { apiKey: collector.apiKey, agentId });
  const s = new SessionSim(lightning.hooks);
  await s.prompt('score me');
  await s.call('Read', { f: 1 }, 'x');
  await s.stop('done');
  const tid = lightning.currentTrajectoryId()!;
  const numeric = lightning.score('quality', 0.75, { comment: 'decent' })!;
  const bool = lightning.score('passed', true, { source: 'code', stepNumber: 1, metadata: { suite: 'unit' } })!;
  const label = lightning.score('verdict', 'needs-work', { source: 'human', trajectoryId: tid })!;
  await lightning.flush({ timeoutMs: 5000 });
  assert.equal(lightning.stats().dropped, 0);
  const scores = await scoresOf(tid);
  const by = new Map(scores.map((x) => [x.id, x]));
  assert.equal(scores.length, 3);
  assert.deepEqual(
    [by.get(numeric).name, by.get(numeric).value, by.get(numeric).dataType, by.get(numeric).source, by.get(numeric).comment, by.get(numeric).trajectoryId],
    ['quality', 0.75, 'numeric', 'sdk', 'decent', tid],
  );
  assert.deepEqual([by.get(bool).value, by.get(bool).dataType, by.get(bool).source, by.get(bool).stepNumber, by.get(bool).metadata], [true, 'boolean', 'code', 1, { suite: 'unit' }]);
  assert.deepEqual([by.get(label).value, by.get(label).dataType, by.get(label).source], ['needs-work', 'categorical', 'human']);
  for (const x of scores) assert.ok(!Number.isNaN(Date.parse(x.createdAt)) && !Number.isNaN(Date.parse(x.updatedAt)));
  // the same id again (a retry, a replay, a correction): updated, never duplicated
  lightning.score('quality', 0.9, { id: numeric, comment: 'better on review' });
  await lightning.flush({ timeoutMs: 5000 });
  const again = await scoresOf(tid);
  assert.equal(again.length, 3);
  const updated = again.find((x) => x.id === numeric);
  assert.deepEqual([updated.value, updated.comment], [0.9, 'better on review']);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('score() while the collector is down, then up: delivered once', async () => {
  const agentId = agent('it-score-outage');
  const { lightning } = make(collector.url, { apiKey: collector.apiKey, agentId, retry: { baseDelayMs: 50, maxDelayMs: 300 } });
  const s = new SessionSim(lightning.hooks);
  await s.prompt('offline scoring');
  await s.stop('done');
  await lightning.flush({ timeoutMs: 5000 });
  const tid = lightning.currentTrajectoryId()!;
  await collector.stop();
  let id: string;
  try {
    id = lightning.score('quality', 4, { comment: 'scored during the outage' })!;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(lightning.stats().failed > 0, 'it tried while the collector was down');
  } finally {
    await collector.start(collector.port);
  }
  await lightning.flush({ timeoutMs: 5000 });
  const scores = await scoresOf(tid);
  assert.equal(scores.length, 1);
  assert.deepEqual([scores[0].id, scores[0].value, scores[0].comment], [id, 4, 'scored during the outage']);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('score() with a comment over the collector limit: stored with the comment cut, not dropped', async () => {
  const agentId = agent('it-score-long');
  const { lightning } = make(collector.url, { apiKey: collector.apiKey, agentId });
  const s = new SessionSim(lightning.hooks);
  await s.prompt('long rationale');
  await s.stop('done');
  const tid = lightning.currentTrajectoryId()!;
  // 24,000 characters (24 KB): under maxFieldBytes, over the collector's 16,384 characters
  const id = lightning.score('quality', 0.4, { comment: 'why '.repeat(6_000) })!;
  await lightning.flush({ timeoutMs: 5000 });
  assert.equal(lightning.stats().dropped, 0, 'the collector did not refuse the score');
  const [stored] = await scoresOf(tid);
  assert.equal(stored.id, id);
  assert.equal(stored.value, 0.4);
  assert.ok(stored.comment.startsWith('why why '));
  assert.ok(stored.comment.length <= MAX_SCORE_COMMENT_CHARS, `${stored.comment.length}`);
  assert.match(stored.comment, /…\[truncated: \d+ of 24000 characters omitted\]$/);
  await lightning.shutdown({ timeoutMs: 500 });
});
