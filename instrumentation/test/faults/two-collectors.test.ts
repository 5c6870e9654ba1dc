/**
 * Fault: the same records delivered twice, at the same time, to two collector processes sharing
 * one PostgreSQL database (as when a client retries against another replica behind a load
 * balancer). Starts, step batches and completes all race; nothing may be duplicated and the
 * stored counters must be exact.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Collector, toolSteps } from '../helpers/collector.js';
import { postgresAvailable, ThrowawayDb, PG_HOST, PG_PORT } from '../helpers/faults.js';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch (e) {
      console.error('cleanup failed:', e);
    }
  }
});

async function post(url: string, key: string, path: string, body: unknown): Promise<number> {
  const r = await fetch(url + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await r.text();
  return r.status;
}

test('the same batches delivered concurrently to two collectors on one PostgreSQL: no duplicates, exact counters', { timeout: 120_000 }, async () => {
  const unavailable = postgresAvailable();
  assert.equal(unavailable, null, `this test needs PostgreSQL at ${PG_HOST}:${PG_PORT} (user postgres, trust auth): ${unavailable}`);
  const TRAJECTORIES = 24;
  const BATCHES = 4;
  const PER_BATCH = 10;
  const STEPS = BATCHES * PER_BATCH;
  const db = new ThrowawayDb().create();
  cleanups.push(() => db.drop());
  const apiKey = 'fault-two-' + Math.random().toString(36).slice(2);
  const a = new Collector(undefined, { databaseUrl: db.url(), apiKey });
  cleanups.push(() => a.dispose());
  await a.start(); // runs the migrations
  const b = new Collector(undefined, { databaseUrl: db.url(), apiKey });
  cleanups.push(() => b.dispose());
  await b.start();
  const agentId = `fault-two-${Math.random().toString(36).slice(2, 8)}`;
  const errorEvery = 7;
  let expectedErrors = 0;
  for (let n = 1; n <= STEPS; n++) if (n % errorEvery === 0) expectedErrors++;

  const statuses = new Map<number, number>();
  const note = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);
  const twice = async (path: string, body: unknown, bodyForB: unknown = body) => {
    const [sa, sb] = await Promise.all([post(a.url, apiKey, path, body), post(b.url, apiKey, path, bodyForB)]);
    note(sa);
    note(sb);
  };

  const ids = Array.from({ length: TRAJECTORIES }, () => randomUUID());
  const t0 = Date.now();
  await Promise.all(
    ids.map(async (id, k) => {
      await twice('/api/trajectories/start', { agentId, trajectoryId: id, taskType: 'twice', prompt: `task ${k}` });
      for (let batch = 0; batch < BATCHES; batch++) {
        const full = [];
        const open = [];
        for (let j = 0; j < PER_BATCH; j++) {
          const n = batch * PER_BATCH + j + 1;
          const step = {
            stepNumber: n,
            toolName: 'Bash',
            toolUseId: `toolu_${k}_${n}`,
            timestamp: new Date(t0 + n).toISOString(),
            toolInput: { command: `echo ${n}` },
            toolOutput: n % errorEvery === 0 ? null : { stdout: `${n}` },
            error: n % errorEvery === 0 ? `Exit code 1 at ${n}` : null,
            durationMs: n,
          };
          full.push(step);
          open.push({ stepNumber: n, toolName: 'Bash', toolUseId: step.toolUseId, timestamp: step.timestamp, toolInput: step.toolInput });
        }
        // odd trajectories: the identical batch to both; even ones: the open form to one and the
        // closed form to the other at the same time (the merge must keep both halves)
        if (k % 2 === 1) await twice(`/api/trajectories/${id}/steps/batch`, { steps: full });
        else await twice(`/api/trajectories/${id}/steps/batch`, { steps: open }, { steps: full });
      }
      await twice(`/api/trajectories/${id}/complete`, { success: true, totalSteps: STEPS, numTurns: 5, costUsd: 0.25 });
    }),
  );
  const elapsed = Date.now() - t0;
  assert.deepEqual([...statuses.entries()], [[200, TRAJECTORIES * (2 + 2 * BATCHES + 2)]], 'every request of both collectors answered 200');

  for (const c of [a, b]) {
    const list = await c.trajectories(agentId);
    assert.equal(list.length, TRAJECTORIES, 'one trajectory per id, seen the same from both collectors');
    for (const summary of list) {
      assert.equal(summary.stepCount, STEPS, `stepCount of ${summary.id}`);
      assert.equal(summary.errorCount, expectedErrors, `errorCount of ${summary.id}`);
      assert.equal(summary.status, 'succeeded');
    }
  }
  for (const id of ids.slice(0, 4)) {
    const t = await b.trajectory(id);
    assert.deepEqual(toolSteps(t).map((s: any) => s.stepNumber), Array.from({ length: STEPS }, (_, i) => i + 1));
    for (const s of toolSteps(t)) {
      assert.deepEqual(s.toolInput, { command: `echo ${s.stepNumber}` });
      if (s.stepNumber % errorEvery === 0) assert.equal(s.error, `Exit code 1 at ${s.stepNumber}`);
      else assert.deepEqual(s.toolOutput, { stdout: `${s.stepNumber}` }, 'the closing half survived the race');
    }
  }
  // straight from PostgreSQL
  const [trajectories, rows, sumSteps, sumErrors] = db
    .query(
      `SELECT count(*), (SELECT count(*) FROM trajectory_steps s JOIN trajectories t ON t.id = s.trajectory_id WHERE t.agent_id = '${agentId}'), ` +
        `sum(step_count), sum(error_count) FROM trajectories WHERE agent_id = '${agentId}'`,
    )
    .split('|')
    .map(Number);
  assert.equal(trajectories, TRAJECTORIES);
  assert.equal(rows, TRAJECTORIES * STEPS);
  assert.equal(sumSteps, TRAJECTORIES * STEPS);
  assert.equal(sumErrors, TRAJECTORIES * expectedErrors);
  console.log(
    `# two collectors: ${TRAJECTORIES} trajectories × ${STEPS} steps, every start/batch/complete sent to both at once ` +
      `(${TRAJECTORIES * (2 + 2 * BATCHES + 2)} requests, ${elapsed} ms); stored ${trajectories} trajectories, ${rows} step rows, ` +
      `step_count sum ${sumSteps}, error_count sum ${sumErrors} (expected ${TRAJECTORIES * STEPS} / ${TRAJECTORIES * expectedErrors})`,
  );
});
