/**
 * A simulated production loop against the real collector: a canary rollout of prompt version 2
 * beside the promoted version 1, many agent runs through the instrumentation (each run a new
 * `instrument()`, so a new default unit, asks `prompt()` for its version and reports its
 * outcome through the hooks), and the decisions a user would take with `lightning rollout`:
 * the truly better candidate is promoted once the evidence says so, the truly worse one is
 * rolled back by the collector's guard, and with no true difference nothing is promoted.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Collector, collectorBinary } from '../helpers/collector.js';
import { SessionSim } from '../helpers/sim.js';
import { make } from '../helpers/make.js';

let collector: Collector;
before(async () => {
  // The guard checks every second here (default 60 s).
  collector = await new Collector(undefined, { args: ['--rollout-guard-interval', '1'] }).start();
});
after(async () => {
  await collector.dispose();
});

/** Seeded outcomes (mulberry32), so each scenario is the same every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FALLBACK = 'You are the agent (its own prompt).';

async function setup(agentId: string, autoRollback: boolean): Promise<void> {
  const base = `/api/agents/${agentId}/prompts`;
  await collector.post(base, { text: 'v1: be careful', promote: true }, 201);
  await collector.post(base, { text: 'v2: be careful and run the tests first' }, 201);
  await collector.post(`${base}/2/rollout`, { percent: 50, autoRollback, reason: 'optimizer run' });
}

/** One agent run: prompt() picks the version, the hooks record a tool call and the ending. */
async function run(agentId: string, rates: Record<string, number>, draw: () => number): Promise<string | null> {
  const { lightning } = make(collector.url, { apiKey: collector.apiKey, agentId, batchSize: 1, flushInterval: 0 });
  const assigned = await lightning.promptDetails(FALLBACK);
  const s = new SessionSim(lightning.hooks, `session-${Math.random().toString(36).slice(2)}`);
  await s.prompt('fix the failing test');
  await s.call('Bash', { command: 'npm test' }, 'ok');
  if (draw() < rates[assigned.version ?? 'none']!) await s.stop('done');
  else await s.stopFailure('max_turns', 'gave up');
  await lightning.shutdown({ timeoutMs: 5000 });
  return assigned.version;
}

function rolloutCli(...args: string[]): { ok: boolean; out: string; err: string } {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  const r = spawnSync(collectorBinary(), ['rollout', ...args, '--data-dir', collector.dataDir], { encoding: 'utf8', env });
  return { ok: r.status === 0, out: r.stdout, err: r.stderr };
}

async function events(agentId: string): Promise<{ kind: string; actor: string; evidence: { verdict: string } | null }[]> {
  return (await collector.get(`/api/agents/${agentId}/prompts/events`)).events;
}

test('a better canary is promoted once the evidence says so', async () => {
  const agentId = 'rollout-better';
  await setup(agentId, true);
  const draw = rng(1);
  const seen: Record<string, number> = {};
  let promotedAfter = 0;
  for (let i = 1; i <= 400 && promotedAfter === 0; i++) {
    const v = await run(agentId, { '1': 0.5, '2': 0.85 }, draw);
    seen[v ?? 'none'] = (seen[v ?? 'none'] ?? 0) + 1;
    // The operator looks every 20 runs; promote refuses until the canary is significantly better.
    if (i % 20 === 0) {
      const r = rolloutCli('promote', '--agent', agentId, '--actor', 'operator');
      if (r.ok) promotedAfter = i;
      else assert.match(r.err, /not significantly better/, r.err);
    }
  }
  assert.ok(promotedAfter > 0, `never promoted; runs per version ${JSON.stringify(seen)}`);
  assert.ok(promotedAfter >= 60, `promoted after only ${promotedAfter} runs: at least 30 per arm are needed`);
  // Both versions were served, about half each.
  assert.ok(seen['1']! > promotedAfter * 0.3 && seen['2']! > promotedAfter * 0.3, JSON.stringify(seen));
  const prompts = (await collector.get(`/api/agents/${agentId}/prompts`)).prompts as { version: number; promoted: boolean }[];
  assert.equal(prompts.find((p) => p.promoted)?.version, 2);
  const history = await events(agentId);
  assert.equal(history[0]!.kind, 'promoted');
  assert.equal(history[0]!.actor, 'operator');
  assert.equal(history[0]!.evidence!.verdict, 'better');
  // Runs from now on get version 2 as the promoted version.
  const { lightning } = make(collector.url, { apiKey: collector.apiKey, agentId });
  const now = await lightning.promptDetails(FALLBACK);
  assert.deepEqual([now.version, now.arm], ['2', 'promoted']);
  await lightning.shutdown({ timeoutMs: 1000 });
});

test('a worse canary is rolled back by the guard, and its runs carry their assignment', async () => {
  const agentId = 'rollout-worse';
  await setup(agentId, true);
  const draw = rng(2);
  let rolledBackAfter = 0;
  for (let i = 1; i <= 400 && rolledBackAfter === 0; i++) {
    await run(agentId, { '1': 0.85, '2': 0.45 }, draw);
    if (i % 20 === 0) {
      // The guard runs every second in the collector: give it a moment, then look.
      await new Promise((r) => setTimeout(r, 1200));
      const history = await events(agentId);
      if (history[0]!.kind === 'rolled_back') rolledBackAfter = i;
    }
  }
  assert.ok(rolledBackAfter > 0, 'the guard never rolled the worse canary back');
  const history = await events(agentId);
  assert.equal(history[0]!.actor, 'guard');
  assert.equal(history[0]!.evidence!.verdict, 'worse');
  const prompts = (await collector.get(`/api/agents/${agentId}/prompts`)).prompts as { version: number; promoted: boolean }[];
  assert.equal(prompts.find((p) => p.promoted)?.version, 1, 'the promoted version is unchanged');
  // Every recorded run says which arm it ran in.
  const list = (await collector.get(`/api/trajectories?agentId=${agentId}&limit=5`)).trajectories as {
    promptVersion: string;
    metadata: { promptAssignment?: { arm: string; unit: string } };
  }[];
  for (const t of list) {
    assert.ok(['1', '2'].includes(t.promptVersion), JSON.stringify(t));
    assert.ok(t.metadata.promptAssignment?.unit, JSON.stringify(t.metadata));
  }
});

test('with no true difference nothing is promoted', async () => {
  const agentId = 'rollout-same';
  await setup(agentId, true);
  const draw = rng(3);
  for (let i = 1; i <= 200; i++) {
    await run(agentId, { '1': 0.7, '2': 0.7 }, draw);
    if (i % 40 === 0) {
      const r = rolloutCli('promote', '--agent', agentId);
      assert.equal(r.ok, false, `promoted with no true difference after ${i} runs:\n${r.out}`);
    }
  }
  const status = await collector.get(`/api/agents/${agentId}/prompts/rollout`);
  assert.notEqual(status.comparison.verdict, 'better');
  assert.ok(status.comparison.arms[0].rewarded + status.comparison.arms[1].rewarded >= 190);
  const prompts = (await collector.get(`/api/agents/${agentId}/prompts`)).prompts as { version: number; promoted: boolean }[];
  assert.equal(prompts.find((p) => p.promoted)?.version, 1);
});

test('prompt() falls back quickly when the collector is unreachable', async () => {
  const { lightning } = make('http://127.0.0.1:9', { apiKey: 'whatever-key-0123456789', agentId: 'nobody' });
  const t0 = Date.now();
  const r = await lightning.promptDetails(FALLBACK, { unit: 'user-1' });
  assert.equal(r.text, FALLBACK);
  assert.equal(r.source, 'fallback');
  assert.ok(Date.now() - t0 < 3500, `${Date.now() - t0} ms`);
  await lightning.shutdown({ timeoutMs: 500 });
});
