/**
 * Fault: PostgreSQL becomes unreachable in the middle of a real Claude Agent SDK run. The
 * collector reaches a throwaway database through a TCP proxy that the test cuts (open
 * connections reset, new ones refused) and later restores. While cut, the collector must answer
 * 503 with Retry-After and /health must report the database down; the instrumentation retries;
 * after the restore every step is stored exactly once.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { instrument } from '../../src/index.js';
import { Collector, toolSteps } from '../helpers/collector.js';
import { FakeAnthropic } from '../helpers/fake-anthropic.js';
import { bashTurns, postgresAvailable, runAgent, sleep, TcpProxy, ThrowawayDb, waitUntil, PG_HOST, PG_PORT, removeDir } from '../helpers/faults.js';

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

test('PostgreSQL unreachable mid-run: 503 + /health down while cut, retries, nothing lost or duplicated after restore', { timeout: 150_000 }, async () => {
  const unavailable = postgresAvailable();
  assert.equal(unavailable, null, `this test needs PostgreSQL at ${PG_HOST}:${PG_PORT} (user postgres, trust auth): ${unavailable}`);
  const STEPS = 40;
  const db = new ThrowawayDb().create();
  cleanups.push(() => db.drop());
  const proxy = await new TcpProxy(PG_HOST, PG_PORT).start();
  cleanups.push(() => proxy.close());
  const collector = await new Collector(undefined, { databaseUrl: db.url(proxy.port) }).start();
  cleanups.push(() => collector.dispose());
  const work = mkdtempSync(join(tmpdir(), 'lightning-fault-work-'));
  const home = mkdtempSync(join(tmpdir(), 'lightning-fault-home-'));
  cleanups.push(() => Promise.all([removeDir(work), removeDir(home)]).then(() => undefined));
  const fake = await new FakeAnthropic(bashTurns(STEPS, 'pg')).start();
  fake.latencyMs = 60;
  cleanups.push(() => fake.close());

  const agentId = `fault-pg-${Math.random().toString(36).slice(2, 8)}`;
  const lightning = instrument({
    collectorUrl: collector.url,
    apiKey: collector.apiKey,
    agentId,
    batchSize: 1,
    flushInterval: 50,
    retry: { baseDelayMs: 50, maxDelayMs: 500, maxRetryAfterMs: 1000 },
    requestTimeoutMs: 5000,
    handleProcessExit: false,
  });
  cleanups.push(() => lightning.shutdown({ timeoutMs: 500 }).then(() => undefined));

  const auth = { authorization: `Bearer ${collector.apiKey}`, 'content-type': 'application/json' };
  const seen: string[] = [];
  const probe = { health: null as any, healthStatus: 0, ingestStatus: 0, retryAfter: null as string | null, readStatus: 0, cutMs: 0, failedDuringCut: 0, preAtCut: 0, preAtRestore: 0 };
  let outage: Promise<void> | null = null;
  let preCount = 0;

  const cutAndRestore = async () => {
    const t0 = Date.now();
    probe.preAtCut = preCount;
    const failedBefore = lightning.stats().failed;
    proxy.cut();
    seen.push('proxy cut');
    await waitUntil(
      async () => {
        const r = await fetch(`${collector.url}/health`);
        probe.healthStatus = r.status;
        probe.health = await r.json();
        return r.status === 503;
      },
      '/health to report the database down',
      30_000,
      100,
    );
    // a direct ingest call and a read call while the database is unreachable
    const start = await fetch(`${collector.url}/api/trajectories/start`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ agentId: `${agentId}-probe`, trajectoryId: randomUUID() }),
    });
    probe.ingestStatus = start.status;
    probe.retryAfter = start.headers.get('retry-after');
    await start.text();
    const read = await fetch(`${collector.url}/api/trajectories?agentId=${agentId}`, { headers: auth });
    probe.readStatus = read.status;
    await read.text();
    // the instrumentation keeps trying while the database is gone
    await waitUntil(() => lightning.stats().failed >= failedBefore + 2, 'the instrumentation to see failures and retry', 30_000);
    await sleep(800);
    probe.failedDuringCut = lightning.stats().failed - failedBefore;
    probe.preAtRestore = preCount;
    proxy.restore();
    probe.cutMs = Date.now() - t0;
    seen.push(`proxy restored after ${probe.cutMs} ms`);
    await waitUntil(async () => (await fetch(`${collector.url}/health`)).status === 200, '/health to recover', 30_000, 100);
  };

  // on failure, let a cut/restore in progress finish before the proxy and collector go
  cleanups.push(async () => {
    if (outage) await (outage as Promise<void>).catch(() => undefined);
  });
  const run = await runAgent({
    fakeUrl: fake.url,
    home,
    cwd: work,
    prompt: `Run the ${STEPS} scripted commands.`,
    hooks: lightning.hooks,
    track: (q, ctx) => lightning.track(q as any, ctx as any),
    onPre: (n) => {
      preCount = n;
      if (n === 10) outage = cutAndRestore();
    },
  });
  assert.ok(outage, 'the outage was triggered');
  await outage;
  assert.equal(run.result?.is_error, false, JSON.stringify(run.result));
  assert.equal(run.pre.length, STEPS);

  assert.equal(probe.healthStatus, 503);
  assert.equal(probe.health.database, 'down', JSON.stringify(probe.health));
  assert.equal(probe.health.status, 'degraded');
  assert.equal(probe.ingestStatus, 503, 'ingest answers 503 while the database is unreachable');
  assert.ok(probe.retryAfter !== null && Number(probe.retryAfter) > 0, `Retry-After: ${probe.retryAfter}`);
  assert.equal(probe.readStatus, 503, 'reads answer 503 too');
  assert.ok(probe.failedDuringCut >= 2, `failed requests during the cut: ${probe.failedDuringCut}`);
  assert.ok(proxy.refused > 0, 'the collector tried to reconnect and was refused');

  await lightning.flush({ timeoutMs: 30_000 });
  const stats = lightning.stats();
  assert.equal(stats.queued, 0);
  assert.equal(stats.dropped, 0);

  const t = await collector.only(agentId);
  assert.equal(toolSteps(t).length, STEPS);
  assert.deepEqual(toolSteps(t).map((s: any) => s.stepNumber), Array.from({ length: STEPS }, (_, i) => i + 1));
  assert.deepEqual(toolSteps(t).map((s: any) => s.toolUseId), run.pre, 'stored steps are exactly what PreToolUse saw, in order');
  for (const s of toolSteps(t)) {
    const n = Number(String(s.toolUseId).split('_').pop());
    assert.equal(s.toolOutput?.stdout, `step-${n}`);
    assert.equal(s.error, null);
  }
  assert.equal(t.status, 'succeeded');
  // straight from PostgreSQL: one row per step, and the stored counter agrees
  const [rows, stepCount] = db
    .query(`SELECT (SELECT count(*) FROM trajectory_steps WHERE trajectory_id = '${t.id}'), step_count FROM trajectories WHERE id = '${t.id}'`)
    .split('|')
    .map(Number);
  // rows: the tool steps plus the run's message/event steps (assistant text, the Result facts)
  assert.equal(rows, t.steps.length);
  assert.equal(t.steps.length - STEPS, t.steps.filter((s: any) => s.toolName === 'assistant' || s.toolName === 'Result').length);
  // step_count counts tool steps only on collectors that know step kinds, every row before that
  assert.ok(stepCount === STEPS || stepCount === t.steps.length, `step_count ${stepCount}`);
  assert.equal(db.query(`SELECT count(*) FROM trajectories WHERE agent_id = '${agentId}'`), '1');
  console.log(
    `# postgres outage: cut at PreToolUse #${probe.preAtCut}, restored at #${probe.preAtRestore} after ${probe.cutMs} ms; ` +
      `while cut: /health ${probe.healthStatus} ${JSON.stringify(probe.health)}, ingest ${probe.ingestStatus} (Retry-After ${probe.retryAfter}), read ${probe.readStatus}, ` +
      `${probe.failedDuringCut} failed requests retried, ${proxy.refused} reconnects refused; after: ${rows}/${STEPS} rows, step_count ${stepCount}; ` +
      `sent=${stats.sent} retries=${stats.retries}`,
  );
});
