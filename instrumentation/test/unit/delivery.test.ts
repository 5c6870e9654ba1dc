import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockCollector, sleep, waitFor } from '../helpers/mock-collector.js';
import { SessionSim } from '../helpers/sim.js';
import { make } from '../helpers/make.js';

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
const batches = () => mock.requests.filter((r) => r.path.endsWith('/steps/batch'));

test('batches by count: nothing is sent before batchSize steps are queued', async () => {
  const { lightning } = make(mock.url, { batchSize: 3 });
  const s = new SessionSim(lightning.hooks);
  await s.pre('Read', { n: 1 }, s.newId());
  await s.pre('Read', { n: 2 }, s.newId());
  await sleep(100);
  assert.equal(mock.requests.length, 0);
  await s.pre('Read', { n: 3 }, s.newId());
  await waitFor(() => batches().length === 1, 'first batch');
  assert.deepEqual(batches()[0]!.body.steps.map((x: any) => x.stepNumber), [1, 2, 3]);
  assert.equal(mock.requests[0]!.path, '/api/trajectories/start', 'start goes first');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('batches by time: the interval flushes a lone step', async () => {
  const { lightning } = make(mock.url, { batchSize: 100, flushInterval: 100 });
  const s = new SessionSim(lightning.hooks);
  const t0 = Date.now();
  await s.call('Read', {}, 'x');
  await waitFor(() => batches().length === 1, 'timed flush', 2000);
  assert.ok(Date.now() - t0 >= 50);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('batches by bytes: a flush starts when queued bytes reach maxBatchBytes, and requests stay under it', async () => {
  const { lightning } = make(mock.url, { batchSize: 1000, maxBatchBytes: 8 * 1024 });
  const s = new SessionSim(lightning.hooks);
  for (let i = 0; i < 12; i++) await s.call('Read', { i }, { content: 'c'.repeat(1500) });
  await waitFor(() => mock.trajectories.size === 1 && mock.toolStepsOf(mock.only().id).length === 12, 'all steps', 3000);
  for (const b of batches()) {
    assert.ok(Buffer.byteLength(JSON.stringify(b.body)) <= 8 * 1024 + 64, 'batch within the byte budget');
  }
  assert.ok(batches().length >= 2);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('a step opened and closed before a flush is sent once, complete', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  await s.call('Read', { file_path: '/a' }, 'A');
  await lightning.flush();
  assert.equal(batches().length, 1);
  assert.equal(batches()[0]!.body.steps.length, 1);
  const [st] = batches()[0]!.body.steps;
  assert.deepEqual([st.toolInput, st.toolOutput], [{ file_path: '/a' }, 'A']);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('a step sent open is re-sent when it closes, carrying only what is new', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  const id = s.newId();
  await s.pre('Bash', { command: 'make' }, id);
  await lightning.flush();
  await s.fail('Bash', { command: 'make' }, id, 'Exit code 2');
  await lightning.flush();
  assert.equal(batches().length, 2);
  assert.equal(batches()[1]!.body.steps[0].toolInput, undefined);
  assert.equal(batches()[1]!.body.steps[0].error, 'Exit code 2');
  const [stored] = mock.toolStepsOf(mock.only().id);
  assert.deepEqual(stored.toolInput, { command: 'make' });
  assert.equal(stored.error, 'Exit code 2');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('retries 5xx with backoff and never duplicates, even when a response is lost', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  mock.failNext(2, { status: 503 });
  mock.failNext(1, { status: 502, commitThenFail: true }, (r) => r.path.endsWith('/steps/batch'));
  for (let i = 0; i < 4; i++) await s.call('Read', { i }, `out ${i}`);
  await s.stop();
  await lightning.flush({ timeoutMs: 3000 });
  const t = mock.only();
  assert.equal(mock.toolStepsOf(t.id).length, 4);
  assert.deepEqual(mock.toolStepsOf(t.id).map((x) => x.toolOutput), ['out 0', 'out 1', 'out 2', 'out 3']);
  assert.equal(t.complete.success, true);
  const st = lightning.stats();
  assert.equal(st.retries, 3);
  assert.equal(st.failed, 3);
  assert.equal(st.dropped, 0);
  assert.equal(st.queued, 0);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('honours Retry-After on 429', async () => {
  const { lightning } = make(mock.url, { batchSize: 1 });
  const s = new SessionSim(lightning.hooks);
  mock.failNext(1, { status: 429, headers: { 'retry-after': '1' } });
  const t0 = Date.now();
  await s.call('Read', {}, 'x');
  await waitFor(() => mock.trajectories.size === 1 && mock.toolStepsOf(mock.only().id).length === 1, 'delivery after Retry-After', 4000);
  const gap = mock.requests[1]!.at - mock.requests[0]!.at;
  assert.ok(gap >= 950, `retried after ${gap} ms`);
  assert.ok(Date.now() - t0 < 3000);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('other 4xx are not retried; a bad batch is split to isolate the rejected record', async () => {
  const { lightning, logs } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  for (let i = 0; i < 4; i++) await s.call('Read', { i }, i);
  mock.failNext(1, { status: 400 }, (r) => r.path.endsWith('/steps/batch'));
  mock.failNext(1, { status: 422 }, (r) => r.path.endsWith('/complete'));
  await s.stop();
  await lightning.flush();
  assert.equal(mock.toolStepsOf(mock.only().id).length, 4, 'all steps delivered after the split');
  assert.equal(mock.only().complete, null, 'the rejected complete is not retried');
  assert.equal(mock.requests.filter((r) => r.path.endsWith('/complete')).length, 1);
  assert.equal(lightning.stats().dropped, 1);
  assert.equal(lightning.stats().retries, 0);
  assert.ok(logs.warn.some((w) => w.includes('422')));
  await lightning.shutdown({ timeoutMs: 500 });
});

test('a trajectory the collector forgot (404) is started again', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  await s.call('Read', {}, 1);
  await lightning.flush();
  mock.trajectories.clear(); // e.g. the collector's database was reset
  await s.call('Read', {}, 2);
  await s.stop();
  await lightning.flush();
  const t = mock.only();
  assert.equal(t.starts, 1);
  assert.deepEqual(mock.toolStepsOf(t.id).map((x) => x.stepNumber), [2]);
  assert.equal(t.complete.success, true);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('401: logged once, capture stops, hooks keep answering at once', async () => {
  const { lightning, logs } = make(mock.url, { apiKey: 'wrong', batchSize: 1 });
  const s = new SessionSim(lightning.hooks);
  await s.call('Read', {}, 'x');
  await waitFor(() => lightning.stats().disabled, 'disabled');
  const before = mock.requests.length;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    const out = await s.call('Read', { i }, 'y');
    assert.ok(typeof out === 'string');
    assert.ok(performance.now() - t0 < 50);
  }
  await s.stop();
  await lightning.flush();
  await sleep(50);
  assert.equal(mock.requests.length, before, 'no more requests once disabled');
  assert.equal(logs.warn.filter((w) => w.includes('401')).length, 1);
  assert.equal(lightning.stats().disabled, true);
  await lightning.shutdown({ timeoutMs: 200 });
});

test('a hung collector is cut off by the request timeout and retried', async () => {
  const { lightning } = make(mock.url, { requestTimeoutMs: 200, batchSize: 1 });
  const s = new SessionSim(lightning.hooks);
  mock.failNext(1, { hang: true });
  const t0 = performance.now();
  await s.call('Read', {}, 'x');
  assert.ok(performance.now() - t0 < 50, 'hooks do not wait for the network');
  await waitFor(() => mock.trajectories.size === 1 && mock.toolStepsOf(mock.only().id).length === 1, 'delivery after timeout', 3000);
  assert.match(lightning.stats().lastError ?? '', /no answer within 200 ms/);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('bounded queue: the oldest records are dropped and counted', async () => {
  const { lightning } = make('http://127.0.0.1:9', { maxQueueSize: 5, batchSize: 1000 });
  const s = new SessionSim(lightning.hooks);
  for (let i = 0; i < 10; i++) await s.pre('Read', { i }, s.newId());
  const st = lightning.stats();
  assert.equal(st.queued, 5);
  assert.equal(st.dropped, 6, '10 steps + 1 start into 5 slots');
  await lightning.shutdown({ timeoutMs: 100 });
});

test('disk spool: a process whose collector was down loses nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lightning-spool-'));
  try {
    const { lightning: first } = make('http://127.0.0.1:9', { spoolDir: dir, requestTimeoutMs: 200 });
    const s = new SessionSim(first.hooks, 'sess-spooled');
    await s.prompt('offline task');
    await s.call('Read', { file_path: '/a' }, 'A');
    await s.call('Bash', { command: 'false' }, null, 'Exit code 1');
    await s.stop('bye');
    await first.shutdown({ timeoutMs: 300 });
    assert.equal(first.stats().spooled, 5, "start, two steps, the final message, the completion");
    const files = readdirSync(dir);
    assert.equal(files.length, 1);
    const lines = readFileSync(join(dir, files[0]!), 'utf8').trim().split('\n');
    assert.equal(lines.length, 5);

    const { lightning: second } = make(mock.url, { spoolDir: dir });
    assert.equal(second.stats().replayed, 5);
    await second.flush();
    const t = mock.only();
    assert.equal(t.start.sessionId, 'sess-spooled');
    assert.equal(t.start.prompt, 'offline task');
    assert.deepEqual(mock.toolStepsOf(t.id).map((x) => [x.toolName, x.error ?? null]), [['Read', null], ['Bash', 'Exit code 1']]);
    assert.equal(t.complete.success, true);
    assert.deepEqual(readdirSync(dir), [], 'delivered spool files are removed');
    await second.shutdown({ timeoutMs: 500 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('disk spool: overflow spills the oldest records to disk instead of dropping them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lightning-spill-'));
  try {
    const { lightning } = make('http://127.0.0.1:9', { spoolDir: dir, maxQueueSize: 3, batchSize: 1000 });
    const s = new SessionSim(lightning.hooks);
    for (let i = 0; i < 6; i++) await s.pre('Read', { i }, s.newId());
    await waitFor(() => lightning.stats().spooled === 4, 'spill', 2000);
    assert.equal(lightning.stats().dropped, 0);
    await lightning.shutdown({ timeoutMs: 100 });
    assert.equal(lightning.stats().spooled, 14, 'the 7 records, then shutdown() closes the 6 open calls and completes the trajectory as interrupted');
    const { lightning: next } = make(mock.url, { spoolDir: dir });
    await next.flush();
    assert.deepEqual(mock.toolStepsOf(mock.only().id).map((x) => x.toolInput.i), [0, 1, 2, 3, 4, 5]);
    await next.shutdown({ timeoutMs: 500 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shutdown delivers what is queued and stops capture', async () => {
  const { lightning } = make(mock.url, { batchSize: 1000, flushInterval: 60_000 });
  const s = new SessionSim(lightning.hooks);
  await s.call('Read', {}, 'x');
  await lightning.shutdown();
  assert.equal(mock.toolStepsOf(mock.only().id).length, 1);
  await s.call('Read', {}, 'after shutdown');
  await sleep(20);
  assert.equal(lightning.stats().queued, 0);
});
