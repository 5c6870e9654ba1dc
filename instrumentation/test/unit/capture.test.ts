/**
 * Issue 17/9 behaviour at the unit level (mock collector): the retry decision, one trajectory per
 * prompt, assistant text and lifecycle events, subagent links, scores, flushInterval 0, 401
 * keeping data for the spool, the byte bound.
 */
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockCollector, sleep, waitFor } from '../helpers/mock-collector.js';
import { SessionSim, messages, resultMessage } from '../helpers/sim.js';
import { make } from '../helpers/make.js';
import { capScoreComment, MAX_SCORE_COMMENT_CHARS } from '../../src/payload.js';
import { decide, UNAUTHORIZED_LIMIT, type DecisionContext } from '../../src/retry-policy.js';
import { collectorKey, defaultSpoolRoot } from '../../src/options.js';

let mock: MockCollector;
before(async () => {
  mock = await new MockCollector().start();
});
after(() => mock.close());
beforeEach(() => {
  mock.trajectories.clear();
  mock.requests.length = 0;
  mock.faults = [];
});

const backoff = { baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 };
const ctx = (over: Partial<DecisionContext> = {}): DecisionContext => ({
  kind: 'step',
  count: 4,
  attempt: 0,
  unauthorizedStreak: 0,
  restarted: false,
  haveStart: true,
  ...over,
});

test('retry decision: every outcome maps to one action', () => {
  const half = () => 0.5;
  assert.deepEqual(decide({ kind: 'ok', status: 200, body: null }, ctx(), backoff), { action: 'delivered' });
  assert.deepEqual(decide({ kind: 'retry', status: 503, error: 'x' }, ctx({ attempt: 2 }), backoff, half), { action: 'retry', delayMs: 200 });
  assert.deepEqual(decide({ kind: 'retry', status: 429, error: 'x', retryAfterMs: 9000 }, ctx(), backoff, () => 0), { action: 'retry', delayMs: 5000 });
  assert.deepEqual(decide({ kind: 'unauthorized', status: 401, error: 'x' }, ctx(), backoff, half), { action: 'unauthorized', stop: false, delayMs: 50 });
  assert.deepEqual(decide({ kind: 'unauthorized', status: 401, error: 'x' }, ctx({ unauthorizedStreak: UNAUTHORIZED_LIMIT - 1 }), backoff), { action: 'unauthorized', stop: true });
  const notFound = { kind: 'rejected' as const, status: 404, error: 'unknown trajectory' };
  assert.deepEqual(decide(notFound, ctx(), backoff), { action: 'restart' });
  assert.deepEqual(decide(notFound, ctx({ restarted: true }), backoff), { action: 'drop', reason: 'unknown trajectory' });
  assert.deepEqual(decide(notFound, ctx({ kind: 'start' }), backoff), { action: 'drop', reason: 'unknown trajectory' });
  assert.deepEqual(decide(notFound, ctx({ haveStart: false }), backoff), { action: 'drop', reason: 'unknown trajectory' });
  assert.deepEqual(decide({ kind: 'rejected', status: 400, error: 'bad' }, ctx({ count: 5 }), backoff), { action: 'split', limit: 2 });
  assert.deepEqual(decide({ kind: 'rejected', status: 413, error: 'big' }, ctx({ count: 1 }), backoff), { action: 'drop', reason: 'big' });
});

test('default spool directory: per user, one subdirectory per collector', () => {
  assert.equal(defaultSpoolRoot({ XDG_STATE_HOME: '/x/state' }), '/x/state/agent-lightning/spool');
  assert.equal(defaultSpoolRoot({ HOME: '/home/u' }), '/home/u/.local/state/agent-lightning/spool');
  assert.equal(collectorKey('http://a:4000/'), collectorKey('http://a:4000'));
  assert.notEqual(collectorKey('http://a:4000'), collectorKey('http://b:4000'));
  assert.match(collectorKey('http://a:4000'), /^[0-9a-f]{16}$/);
});

test('each user prompt of a session is its own trajectory, linked by sessionId', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks, 'sess-multi');
  await s.prompt('first task');
  await s.call('Read', { f: 1 }, 'one');
  await s.stop('first answer');
  const firstId = lightning.currentTrajectoryId();
  await s.prompt('second task');
  await s.call('Read', { f: 2 }, 'two');
  await s.stop('second answer');
  await lightning.flush();
  assert.equal(mock.trajectories.size, 2);
  const [a, b] = [...mock.trajectories.entries()].map(([id, t]) => ({ id, ...t }));
  assert.equal(a!.id, firstId);
  assert.deepEqual([a!.start.prompt, b!.start.prompt], ['first task', 'second task']);
  assert.deepEqual([a!.start.sessionId, b!.start.sessionId], ['sess-multi', 'sess-multi']);
  assert.deepEqual(mock.toolStepsOf(a!.id).map((x) => x.toolOutput), ['one']);
  assert.deepEqual(mock.toolStepsOf(b!.id).map((x) => x.toolOutput), ['two']);
  assert.equal(a!.complete.result, 'first answer');
  assert.equal(b!.complete.result, 'second answer');
  const completes = mock.requests.filter((r) => r.path.endsWith('/complete'));
  assert.equal(completes.length, 2, 'each completed once');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('tracked streaming input: a late result completes the earlier prompt, not the next one', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks, 'sess-stream');
  const r1 = resultMessage('sess-stream', { result: 'answer one', num_turns: 1 });
  const r2 = resultMessage('sess-stream', { result: 'answer two', num_turns: 2 });
  const list = [{ type: 'system', subtype: 'init', session_id: 'sess-stream' }, r1, r2];
  await s.prompt('one');
  let i = 0;
  for await (const _m of lightning.track(messages(list))) {
    if (i++ === 0) {
      await s.call('Read', {}, 'x');
      await s.stop('answer one');
      await s.prompt('two'); // the next prompt starts before result 1 is read
      await s.stop('answer two');
    }
  }
  await lightning.flush();
  const ts = [...mock.trajectories.values()];
  assert.equal(ts.length, 2);
  assert.deepEqual(ts.map((t) => [t.start.prompt, t.complete?.result, t.complete?.numTurns]), [
    ['one', 'answer one', 1],
    ['two', 'answer two', 2],
  ]);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('assistant text becomes message steps in order; events and results are event steps', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks, 'sess-text');
  await s.prompt('explain');
  await s.fire('MessageDisplay', { turn_id: 't', message_id: 'm1', index: 0, final: false, delta: 'Let me ' });
  await s.fire('MessageDisplay', { turn_id: 't', message_id: 'm1', index: 0, final: true, delta: 'look.' });
  await s.call('Read', { f: 1 }, 'content');
  await s.stop('It says content. token sk-ant-api03-' + 'a'.repeat(90));
  await lightning.flush();
  const steps = mock.stepsOf(mock.only().id);
  assert.deepEqual(steps.map((x) => [x.stepNumber, x.kind ?? 'tool', x.toolName]), [
    [1, 'message', 'assistant'],
    [2, 'tool', 'Read'],
    [3, 'message', 'assistant'],
  ]);
  assert.equal(steps[0].toolOutput, 'Let me look.');
  assert.match(steps[2].toolOutput, /^It says content\. token \[REDACTED/, 'messages are redacted like tool output');
  assert.equal(mock.only().complete.totalSteps, 1, 'only tool steps count');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('subagents: start/stop events, and their steps carry agentId, agentType and the spawning call', async () => {
  const { lightning } = make(mock.url);
  const main = new SessionSim(lightning.hooks, 'sess-parent');
  const sub = new SessionSim(lightning.hooks, 'sess-parent', { agent_id: 'ag-1', agent_type: 'general-purpose' });
  await main.prompt('delegate');
  const task = main.newId();
  await main.pre('Agent', { prompt: 'do the sub job' }, task);
  await sub.fire('SubagentStart', {});
  await sub.call('Bash', { command: 'echo sub' }, { stdout: 'sub' });
  await sub.fire('SubagentStop', { last_assistant_message: 'sub done', agent_transcript_path: '/t' });
  await main.post('Agent', { prompt: 'do the sub job' }, task, { status: 'completed', agentId: 'ag-1' });
  await main.stop('all done');
  await lightning.flush();
  const steps = mock.stepsOf(mock.only().id);
  assert.deepEqual(steps.map((x) => [x.kind ?? 'tool', x.toolName]), [
    ['tool', 'Agent'],
    ['event', 'SubagentStart'],
    ['tool', 'Bash'],
    ['event', 'SubagentStop'],
    ['message', 'assistant'],
  ]);
  const bash = steps[2];
  assert.deepEqual([bash.metadata.agentId, bash.metadata.agentType, bash.metadata.parentToolUseId], ['ag-1', 'general-purpose', task]);
  assert.equal(steps[1].metadata.parentToolUseId, task);
  assert.equal(steps[3].toolOutput, 'sub done');
  assert.equal(mock.only().complete.totalSteps, 2);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('a background subagent holds the completion until it stops and the task goes on', async () => {
  const { lightning } = make(mock.url);
  const main = new SessionSim(lightning.hooks, 'sess-bg');
  const sub = new SessionSim(lightning.hooks, 'sess-bg', { agent_id: 'ag-bg', agent_type: 'general-purpose' });
  await main.prompt('start a background job');
  const task = main.newId();
  await main.pre('Agent', { prompt: 'bg' }, task);
  await sub.fire('SubagentStart', {});
  await main.post('Agent', { prompt: 'bg' }, task, { isAsync: true, status: 'async_launched', agentId: 'ag-bg' });
  await main.stop('launched it');
  await sub.call('Bash', { command: 'echo late' }, { stdout: 'late' });
  await sub.fire('SubagentStop', { last_assistant_message: 'bg done' });
  await main.prompt('<task-notification>\n<task-id>ag-bg</task-id>\n</task-notification>');
  await main.stop('the background job finished');
  await lightning.flush();
  assert.equal(mock.trajectories.size, 1, 'the notification turn continues the same task');
  const t = mock.only();
  assert.deepEqual(mock.toolStepsOf(t.id).map((x) => x.toolName), ['Agent', 'Bash']);
  assert.equal(mock.toolStepsOf(t.id)[1].metadata.parentToolUseId, task);
  assert.equal(t.complete.result, 'the background job finished');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('track(): parent_tool_use_id from the message stream links a subagent call', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks, 'sess-link', { agent_id: 'ag-2' });
  const list = [
    { type: 'system', subtype: 'init', session_id: 'sess-link' },
    { type: 'assistant', session_id: 'sess-link', parent_tool_use_id: 'toolu_task', message: { content: [{ type: 'tool_use', id: 'toolu_inner', name: 'Bash', input: {} }] } },
    resultMessage('sess-link'),
  ];
  let i = 0;
  for await (const _m of lightning.track(messages(list))) {
    if (i++ === 1) await s.call('Bash', {}, 'ok', undefined, 'toolu_inner');
  }
  await lightning.flush();
  const [bash] = mock.toolStepsOf(mock.only().id);
  assert.equal(bash.metadata.parentToolUseId, 'toolu_task');
  const result = mock.stepsOf(mock.only().id).find((x) => x.kind === 'event' && x.toolName === 'Result');
  assert.equal(result.toolOutput.subtype, 'success');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('score(): defaults to the current trajectory, idempotent id, validated, queued after the start', async () => {
  const { lightning, logs } = make(mock.url);
  assert.equal(lightning.score('quality', 1), null, 'no trajectory yet');
  const s = new SessionSim(lightning.hooks);
  await s.prompt('task');
  await s.stop('done');
  const tid = lightning.currentTrajectoryId()!;
  const id1 = lightning.score('quality', 0.8, { comment: 'good; key sk-ant-api03-' + 'b'.repeat(90) });
  const id2 = lightning.score('correct', true, { source: 'code', id: 'fixed-id', stepNumber: 0 });
  const id3 = lightning.score('label', 'needs-work', { trajectoryId: tid });
  assert.equal(lightning.score('bad name!', 1), null);
  assert.equal(lightning.score('nan', Number.NaN), null);
  assert.equal(lightning.score('obj', {} as any), null);
  assert.equal(logs.warn.filter((w) => w.includes('score(')).length, 4);
  assert.match(id1!, /^[0-9a-f-]{36}$/);
  assert.equal(id2, 'fixed-id');
  await lightning.flush();
  const t = mock.trajectories.get(tid)!;
  assert.equal(t.scores.size, 3);
  assert.deepEqual(t.scores.get(id1!).value, 0.8);
  assert.equal(t.scores.get(id1!).source, 'sdk');
  assert.match(t.scores.get(id1!).comment, /^good; key \[REDACTED/);
  assert.deepEqual([t.scores.get('fixed-id').value, t.scores.get('fixed-id').source, t.scores.get('fixed-id').stepNumber], [true, 'code', 0]);
  assert.equal(t.scores.get(id3!).value, 'needs-work');
  // a retried score (lost response) is sent again with the same id: no duplicate
  mock.failNext(1, { status: 502, commitThenFail: true }, (r) => r.path.endsWith('/scores'));
  const id4 = lightning.score('quality', 0.9, { id: 'retry-me' })!;
  await lightning.flush({ timeoutMs: 3000 });
  assert.equal(mock.requests.filter((r) => r.path.endsWith('/scores') && r.body.id === id4).length, 2);
  assert.equal(t.scores.size, 4);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('score(): a comment over the collector limit (16,384 characters) is cut, the score still sent', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  await s.prompt('task');
  await s.stop('done');
  const tid = lightning.currentTrajectoryId()!;
  // 20,000 ASCII characters: under maxFieldBytes (32 KiB) but over the collector's limit
  const long = 'r'.repeat(20_000);
  // 16,384 astral characters (4 bytes each, 2 UTF-16 units): within the limit in characters
  const astral = '😀'.repeat(8_000);
  const exact = 'e'.repeat(MAX_SCORE_COMMENT_CHARS);
  const idLong = lightning.score('quality', 0.5, { comment: long })!;
  const idAstral = lightning.score('quality', 0.6, { comment: astral })!;
  const idExact = lightning.score('quality', 0.7, { comment: exact })!;
  await lightning.flush();
  const t = mock.trajectories.get(tid)!;
  const cut: string = t.scores.get(idLong).comment;
  assert.equal(t.scores.get(idLong).value, 0.5);
  const n = Array.from(cut).length;
  assert.ok(n <= MAX_SCORE_COMMENT_CHARS && n > MAX_SCORE_COMMENT_CHARS - 8, `${n} characters`);
  assert.ok(cut.startsWith('r'.repeat(16_000)), 'keeps the head of the comment');
  assert.match(cut, /…\[truncated: \d+ of 20000 characters omitted\]$/);
  assert.equal(t.scores.get(idAstral).comment, astral, 'characters, not UTF-16 units, are counted');
  assert.equal(t.scores.get(idExact).comment, exact, 'exactly the limit is kept whole');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('capScoreComment: never over the limit, marker included when it fits', () => {
  for (const max of [0, 1, 10, 60, 100, 16_384]) {
    for (const n of [0, max, max + 1, max * 2 + 5]) {
      const input = 'x'.repeat(n);
      const out = capScoreComment(input, max);
      assert.ok(Array.from(out).length <= max || out === input, `max ${max}, n ${n}`);
      if (n <= max) assert.equal(out, input);
      else if (max >= 100) {
        assert.ok(Array.from(out).length > max - 8, `max ${max}: ${out.length}`);
        assert.match(out, new RegExp(`^x+…\\[truncated: \\d+ of ${n} characters omitted\\]$`));
      }
    }
  }
});

test('score() while the collector is down: spooled, delivered by the next process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lightning-score-spool-'));
  try {
    const { lightning: first } = make('http://127.0.0.1:9', { spoolDir: dir, requestTimeoutMs: 200 });
    const s = new SessionSim(first.hooks, 'sess-score-spool');
    await s.prompt('offline');
    await s.stop('ok');
    const id = first.score('quality', 3, { comment: 'offline score' })!;
    await first.shutdown({ timeoutMs: 300 });
    const lines = readdirSync(dir).flatMap((f) => readFileSync(join(dir, f), 'utf8').trim().split('\n')).map((l) => JSON.parse(l));
    assert.deepEqual(lines.find((l) => l.kind === 'score').body, { id, name: 'quality', value: 3, comment: 'offline score', source: 'sdk' });
    const { lightning: second } = make(mock.url, { spoolDir: dir });
    await second.flush();
    assert.equal(mock.only().scores.get(id).value, 3);
    await second.shutdown({ timeoutMs: 500 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('flushInterval 0 + batchSize 1 sends each step at once', async () => {
  const { lightning } = make(mock.url, { flushInterval: 0, batchSize: 1 });
  const s = new SessionSim(lightning.hooks);
  await s.pre('Read', { n: 1 }, s.newId());
  await waitFor(() => mock.requests.some((r) => r.path.endsWith('/steps/batch')), 'first step sent without waiting', 1000);
  await s.pre('Read', { n: 2 }, s.newId());
  await waitFor(() => mock.requests.filter((r) => r.path.endsWith('/steps/batch')).length === 2, 'second step sent', 1000);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('401: retried, then sending stops with one warning; the data stays for the spool', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lightning-401-'));
  try {
    const { lightning, logs } = make(mock.url, { apiKey: 'wrong', batchSize: 1, spoolDir: dir });
    const s = new SessionSim(lightning.hooks);
    await s.prompt('task with a bad key');
    await s.call('Read', {}, 'x');
    await waitFor(() => lightning.stats().disabled, 'sending stopped', 3000);
    assert.equal(mock.requests.filter((r) => r.auth === 'Bearer wrong').length, 3, 'three attempts');
    assert.equal(logs.warn.filter((w) => w.includes('401')).length, 1);
    await s.call('Read', {}, 'y');
    await s.stop('done');
    await sleep(30);
    assert.equal(mock.requests.length, 3, 'nothing more is sent');
    await lightning.shutdown({ timeoutMs: 200 });
    assert.equal(lightning.stats().dropped, 0);
    assert.ok(lightning.stats().spooled >= 5);
    const { lightning: fixed } = make(mock.url, { spoolDir: dir });
    await fixed.flush();
    const t = mock.only();
    assert.deepEqual(mock.toolStepsOf(t.id).map((x) => x.toolOutput), ['x', 'y']);
    assert.equal(t.complete.status, 'succeeded');
    await fixed.shutdown({ timeoutMs: 300 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('memory is bounded by bytes: past maxQueueBytes the oldest go to the spool, and raw outputs are released', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lightning-bytes-'));
  try {
    const { lightning } = make('http://127.0.0.1:9', { spoolDir: dir, maxQueueBytes: 64 * 1024, maxFieldBytes: 8 * 1024, batchSize: 1000 });
    const s = new SessionSim(lightning.hooks);
    for (let i = 0; i < 40; i++) await s.call('Bash', { i }, { stdout: String(i).padEnd(1024 * 1024, 'x') });
    await sleep(20);
    const st = lightning.stats();
    assert.ok(st.queuedBytes <= 64 * 1024, `queued ${st.queuedBytes} bytes`);
    assert.ok(st.spooled > 0 && st.dropped === 0, JSON.stringify(st));
    await lightning.shutdown({ timeoutMs: 100 });
    const total = readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    assert.ok(total < 40 * 10 * 1024, `spool holds truncated data only: ${total} bytes`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('spool files are 0600 in a 0700 directory', async () => {
  const root = mkdtempSync(join(tmpdir(), 'lightning-perm-'));
  const dir = join(root, 'spool');
  try {
    const { lightning } = make('http://127.0.0.1:9', { spoolDir: dir, requestTimeoutMs: 100 });
    const s = new SessionSim(lightning.hooks);
    await s.call('Read', {}, 'x');
    await lightning.shutdown({ timeoutMs: 100 });
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const f of readdirSync(dir)) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('shutdown() and flush() resolve within their timeout against a hung collector', async () => {
  const { lightning } = make(mock.url, { requestTimeoutMs: 10_000, batchSize: 1 });
  mock.failNext(5, { hang: true });
  const s = new SessionSim(lightning.hooks);
  await s.call('Read', {}, 'x');
  let t0 = Date.now();
  await lightning.flush({ timeoutMs: 300 });
  assert.ok(Date.now() - t0 < 1000, `flush took ${Date.now() - t0} ms`);
  t0 = Date.now();
  await lightning.shutdown({ timeoutMs: 300 });
  assert.ok(Date.now() - t0 < 1000, `shutdown took ${Date.now() - t0} ms`);
});
