/**
 * Fault: the collector process is SIGKILLed twice in the middle of a real Claude Agent SDK run
 * and restarted on the same port and data directory (SQLite). Every step the hooks saw must be
 * stored exactly once, closed, in order, and the trajectory completed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { instrument } from '../../src/index.js';
import { Collector, toolSteps } from '../helpers/collector.js';
import { FakeAnthropic } from '../helpers/fake-anthropic.js';
import { bashTurns, runAgent, sleep, removeDir } from '../helpers/faults.js';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('collector SIGKILLed and restarted twice mid-run: every step arrives exactly once', { timeout: 120_000 }, async () => {
  const STEPS = 40;
  const collector = await new Collector().start();
  cleanups.push(() => collector.dispose());
  const work = mkdtempSync(join(tmpdir(), 'lightning-fault-work-'));
  const home = mkdtempSync(join(tmpdir(), 'lightning-fault-home-'));
  cleanups.push(() => Promise.all([removeDir(work), removeDir(home)]).then(() => undefined));
  const fake = await new FakeAnthropic(bashTurns(STEPS, 'kill')).start();
  fake.latencyMs = 60; // ~35 model turns: the run lasts a few seconds, long enough for two outages
  cleanups.push(() => fake.close());

  const agentId = `fault-kill-${Math.random().toString(36).slice(2, 8)}`;
  // each kill is armed by a PreToolUse and fired 1 ms after the instrumentation's next request
  // leaves, so the collector dies with that request in flight (committed or not)
  let armed: ((path: string) => void) | null = null;
  const racingFetch: typeof fetch = (input, init) => {
    const pending = fetch(input, init);
    if (armed) {
      const fire = armed;
      armed = null;
      const path = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url).pathname;
      setTimeout(() => fire(path), 1);
    }
    return pending;
  };
  const lightning = instrument({
    fetch: racingFetch,
    collectorUrl: collector.url,
    apiKey: collector.apiKey,
    agentId,
    batchSize: 1,
    flushInterval: 50,
    retry: { baseDelayMs: 50, maxDelayMs: 400 },
    requestTimeoutMs: 3000,
    handleProcessExit: false,
  });
  cleanups.push(() => lightning.shutdown({ timeoutMs: 500 }).then(() => undefined));

  const port = collector.port;
  const events: string[] = [];
  const storedAtRestart: number[] = [];
  const kills: { pre: number; path: string }[] = [];
  let preCount = 0;
  let outage: Promise<void> = Promise.resolve();
  const storedSteps = async () => {
    const list = await collector.trajectories(agentId);
    return list.length ? (await collector.trajectory(list[0].id)).steps.length : 0;
  };
  const killAndRestart = (path: string, downMs: number) => {
    outage = outage.then(async () => {
      kills.push({ pre: preCount, path });
      await collector.kill();
      events.push(`SIGKILL at PreToolUse #${preCount} with POST ${path.replace(/[0-9a-f-]{36}/, '{id}')} in flight`);
      await sleep(downMs);
      await collector.start(port);
      const after = await storedSteps();
      storedAtRestart.push(after);
      events.push(`restarted on :${port} after ${downMs} ms down, ${after} steps stored`);
    });
  };

  // on failure, let a kill/restart in progress finish before the collector is disposed
  cleanups.push(() => outage.catch(() => undefined));
  const run = await runAgent({
    fakeUrl: fake.url,
    home,
    cwd: work,
    prompt: `Run the ${STEPS} scripted commands.`,
    hooks: lightning.hooks,
    track: (q, ctx) => lightning.track(q as any, ctx as any),
    onPre: (n) => {
      preCount = n;
      if (n === 8) armed = (path) => killAndRestart(path, 700);
      if (n === 28) armed = (path) => killAndRestart(path, 300);
    },
  });
  await outage;
  assert.equal(run.result?.is_error, false, JSON.stringify(run.result));
  assert.equal(run.pre.length, STEPS, 'the hooks saw every scripted call');
  assert.equal(new Set(run.post).size, STEPS, 'and every post hook');
  assert.equal(kills.length, 2, events.join('; '));
  assert.ok(kills[0]!.pre < STEPS, `the first kill hit mid-run: ${events.join('; ')}`);
  for (const k of storedAtRestart) assert.ok(k < STEPS, `each restart found steps still undelivered: ${events.join('; ')}`);

  await lightning.flush({ timeoutMs: 20_000 });
  const stats = lightning.stats();
  assert.equal(stats.queued, 0);
  assert.equal(stats.dropped, 0);
  assert.ok(stats.failed >= 2, `requests failed while the collector was dead (failed=${stats.failed})`);

  const t = await collector.only(agentId);
  assert.equal(toolSteps(t).length, STEPS, 'stored step count (no duplicate rows, no missing ones)');
  assert.deepEqual(
    toolSteps(t).map((s: any) => s.stepNumber),
    Array.from({ length: STEPS }, (_, i) => i + 1),
  );
  assert.deepEqual(toolSteps(t).map((s: any) => s.toolUseId), run.pre, 'stored steps are exactly what PreToolUse saw, in order');
  for (const s of toolSteps(t)) {
    const n = Number(String(s.toolUseId).split('_').pop());
    assert.equal(s.toolName, 'Bash');
    assert.equal(s.toolInput.command, `echo step-${n}`);
    assert.equal(s.toolOutput?.stdout, `step-${n}`, `step ${s.stepNumber} was closed with its output`);
    assert.equal(s.error, null);
    assert.equal(typeof s.durationMs, 'number');
  }
  assert.equal(t.status, 'succeeded');
  assert.equal(t.numTurns, run.result.num_turns);
  assert.equal(t.totalSteps, STEPS);
  console.log(
    `# kill/restart: ${events.join('; ')}; delivered ${toolSteps(t).length}/${STEPS} steps once each; ` +
      `sent=${stats.sent} failed=${stats.failed} retries=${stats.retries}`,
  );
});
