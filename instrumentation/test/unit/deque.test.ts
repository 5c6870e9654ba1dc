/** The ring-buffer deque behind the delivery queue, and the queue's drop-oldest bound on top of it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Deque } from '../../src/deque.js';
import { MockCollector } from '../helpers/mock-collector.js';
import { SessionSim } from '../helpers/sim.js';
import { make } from '../helpers/make.js';

test('deque: push/shift/unshift/pop keep FIFO order across wrap-around and growth', () => {
  const d = new Deque<number>(4);
  assert.equal(d.capacity, 16);
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 10; i++) d.push(round * 100 + i);
    for (let i = 0; i < 7; i++) assert.equal(d.shift(), round * 100 + i, 'oldest first');
    for (let i = 7; i < 10; i++) assert.equal(d.shift(), round * 100 + i);
  }
  assert.equal(d.length, 0);
  assert.equal(d.capacity, 16, 'steady state never grows the ring');
  for (let i = 0; i < 40; i++) d.push(i);
  assert.equal(d.capacity, 64);
  d.unshift(-1);
  d.unshiftAll([-3, -2]);
  assert.deepEqual(d.toArray().slice(0, 5), [-3, -2, -1, 0, 1]);
  assert.equal(d.pop(), 39);
  assert.equal(d.peek(), -3);
  assert.equal(d.at(3), 0);
  assert.equal(d.at(-1), undefined);
  assert.equal(d.at(d.length), undefined);
  assert.deepEqual([...d], d.toArray());
  d.clear();
  assert.equal(d.length, 0);
  assert.equal(d.shift(), undefined);
  assert.equal(d.pop(), undefined);
});

test('deque: matches an array model under random operations (removeAt, removeIndices, findIndex)', () => {
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const d = new Deque<number>();
  const model: number[] = [];
  let next = 0;
  for (let op = 0; op < 20000; op++) {
    const r = rand(100);
    if (r < 35) {
      d.push(next);
      model.push(next++);
    } else if (r < 45) {
      d.unshift(next);
      model.unshift(next++);
    } else if (r < 65) {
      assert.equal(d.shift(), model.shift());
    } else if (r < 70) {
      assert.equal(d.pop(), model.pop());
    } else if (r < 85) {
      if (model.length === 0) continue;
      const i = rand(model.length);
      assert.equal(d.removeAt(i), model.splice(i, 1)[0]);
    } else if (r < 95) {
      if (model.length === 0) continue;
      const span = rand(model.length) + 1;
      const idx: number[] = [];
      for (let i = 0; i < span; i++) if (rand(3) === 0) idx.push(i);
      d.removeIndices(idx);
      for (let k = idx.length - 1; k >= 0; k--) model.splice(idx[k]!, 1);
    } else {
      const mod = rand(7) + 1;
      assert.equal(d.findIndex((v) => v % mod === 0), model.findIndex((v) => v % mod === 0));
      assert.equal(d.findIndex((v) => v % mod === 0, 3), model.slice(0, 3).findIndex((v) => v % mod === 0));
    }
    assert.equal(d.length, model.length);
  }
  assert.deepEqual(d.toArray(), model);
  assert.ok(next > 5000, `exercised ${next} elements`);
  assert.equal(d.removeAt(d.length), undefined);
  assert.throws(() => d.removeIndices([d.length]), RangeError);
});

test('bounded queue keeps the newest steps and the start; dropped counts the rest', async () => {
  const mock = await new MockCollector().start();
  try {
    const { lightning } = make(mock.url, { maxQueueSize: 5, batchSize: 1000 });
    const s = new SessionSim(lightning.hooks);
    for (let i = 1; i <= 10; i++) await s.pre('Read', { i }, s.newId());
    assert.equal(lightning.stats().queued, 5);
    assert.equal(lightning.stats().dropped, 6, 'the six oldest steps went; the start stayed');
    await lightning.flush({ timeoutMs: 2000 });
    const t = mock.only();
    assert.deepEqual(t.steps.size, 4);
    assert.deepEqual(mock.toolStepsOf(t.id).map((x) => x.toolInput.i), [7, 8, 9, 10]);
    await lightning.shutdown({ timeoutMs: 200 });
  } finally {
    await mock.close();
  }
});

test('bounded queue under sustained overflow: exact drop count, starts kept, the newest run survives', async () => {
  const mock = await new MockCollector().start();
  try {
    const max = 1000;
    const { lightning } = make(mock.url, { maxQueueSize: max, batchSize: 1_000_000, maxBatchBytes: 64 * 1024 * 1024 });
    const sessions = [new SessionSim(lightning.hooks, 'sess-ov-a'), new SessionSim(lightning.hooks, 'sess-ov-b')];
    const perSession = 20_000;
    for (let i = 0; i < perSession; i++) {
      for (const s of sessions) await s.pre('Bash', { i }, s.newId());
      if (i % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    const st = lightning.stats();
    assert.equal(st.queued, max);
    assert.equal(st.dropped, 2 * perSession + 2 - max, 'every record pushed beyond the bound is counted once');
    await lightning.flush({ timeoutMs: 10_000 });
    assert.equal(mock.trajectories.size, 2, 'both starts survived the overflow');
    const kept = [...mock.trajectories.keys()].map((id) => mock.toolStepsOf(id).map((x) => x.toolInput.i as number));
    assert.equal(kept[0]!.length + kept[1]!.length, max - 2);
    for (const list of kept) {
      assert.equal(list[list.length - 1], perSession - 1, 'the newest step is kept');
      for (let k = 1; k < list.length; k++) assert.equal(list[k], list[k - 1]! + 1, 'kept steps are a contiguous newest run');
    }
    await lightning.shutdown({ timeoutMs: 200 });
  } finally {
    await mock.close();
  }
});
