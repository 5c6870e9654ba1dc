/** Integration tests against the real collector binary (SQLite in a temp dir, random port). */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Collector, toolSteps } from '../helpers/collector.js';
import { HungServer, LossyProxy } from '../helpers/proxy.js';
import { SessionSim, messages, resultMessage } from '../helpers/sim.js';
import { make } from '../helpers/make.js';
import { NO_POST_HOOK } from '../../src/index.js';

let collector: Collector;
before(async () => {
  collector = await new Collector().start();
});
after(async () => {
  await collector.dispose();
});

const agent = (name: string) => `${name}-${Math.random().toString(36).slice(2, 8)}`;

test('steps land with inputs, outputs, errors, durations and metadata; the result completes it', async () => {
  const agentId = agent('it-steps');
  const { lightning } = make(collector.url, { apiKey: collector.apiKey, agentId, taskType: 'bugfix' });
  const s = new SessionSim(lightning.hooks, 'sess-it-1');
  await s.prompt('Fix the failing test');
  const list = [
    { type: 'system', subtype: 'init', session_id: s.sessionId, model: 'claude-sonnet-test', cwd: '/w' },
    resultMessage(s.sessionId, { num_turns: 5, total_cost_usd: 0.00408, duration_ms: 4321 }),
  ];
  let i = 0;
  for await (const _m of lightning.track(messages(list), { systemPrompt: 'Be brief.' })) {
    if (i++ > 0) continue;
    await s.call('Read', { file_path: '/w/a.ts' }, { type: 'text', file: { filePath: '/w/a.ts', content: 'export {}', numLines: 1 } });
    const par = [s.newId(), s.newId()];
    await s.pre('Bash', { command: 'npm test' }, par[0]!);
    await s.pre('Grep', { pattern: 'TODO' }, par[1]!);
    await s.post('Grep', { pattern: 'TODO' }, par[1]!, { numFiles: 0 }, 12);
    await s.fail('Bash', { command: 'npm test' }, par[0]!, 'Exit code 1\n1 failing', 900);
    const denied = s.newId();
    await s.pre('Write', { file_path: '/etc/passwd' }, denied);
    await s.batch([{ tool_name: 'Write', tool_input: {}, tool_use_id: denied, tool_response: 'Permission to use Write has been denied.' }]);
    await s.stop('Fixed.');
  }
  await lightning.flush();
  const t = await collector.only(agentId);
  assert.equal(t.sessionId, 'sess-it-1');
  assert.equal(t.taskType, 'bugfix');
  assert.equal(t.prompt, 'Fix the failing test');
  assert.equal(t.systemPrompt, 'Be brief.');
  assert.equal(t.model, 'claude-sonnet-test');
  assert.equal(t.status, 'succeeded');
  assert.equal(t.costUsd, 0.00408);
  assert.equal(t.numTurns, 5);
  assert.equal(t.durationMs, 4321);
  assert.equal(t.totalSteps, 4);
  assert.deepEqual(t.usage, { inputTokens: 100, outputTokens: 50, cacheReadInputTokens: 10, cacheCreationInputTokens: 5 });
  assert.deepEqual(toolSteps(t).map((x: any) => [x.stepNumber, x.toolName]), [[1, 'Read'], [2, 'Bash'], [3, 'Grep'], [4, 'Write']]);
  const [read, bash, grep, write] = toolSteps(t);
  assert.deepEqual(read.toolInput, { file_path: '/w/a.ts' });
  assert.equal(read.toolOutput.file.content, 'export {}');
  assert.equal(read.error, null);
  assert.equal(bash.error, 'Exit code 1\n1 failing');
  assert.equal(bash.durationMs, 900);
  assert.equal(bash.toolOutput, null);
  assert.deepEqual(grep.toolOutput, { numFiles: 0 });
  assert.equal(grep.durationMs, 12);
  assert.equal(write.error, `${NO_POST_HOOK}: Permission to use Write has been denied.`);
  assert.equal(t.errorCount, 2);
  for (const st of toolSteps(t)) assert.match(st.toolUseId, /^toolu_/);
  assert.equal(read.metadata.closedBy, 'PostToolUse');
  await lightning.shutdown({ timeoutMs: 1000 });
});

test('retries never duplicate: lost responses are re-sent and merged', async () => {
  const agentId = agent('it-retry');
  const proxy = await new LossyProxy(collector.url).start();
  try {
    const { lightning } = make(proxy.url, { apiKey: collector.apiKey, agentId, batchSize: 2 });
    const s = new SessionSim(lightning.hooks);
    proxy.loseNext = 4; // the start, two batches and the complete each lose their first answer
    for (let i = 0; i < 4; i++) await s.call('Read', { i }, `out ${i}`);
    await s.stop();
    await lightning.flush({ timeoutMs: 5000 });
    assert.equal(proxy.lost, 4);
    const t = await collector.only(agentId);
    assert.deepEqual(toolSteps(t).map((x: any) => [x.stepNumber, x.toolOutput]), [[1, 'out 0'], [2, 'out 1'], [3, 'out 2'], [4, 'out 3']]);
    assert.equal(toolSteps(t).length, 4);
    assert.equal(t.status, 'succeeded');
    assert.ok(lightning.stats().retries >= 4);
    assert.equal(lightning.stats().dropped, 0);
    await lightning.shutdown({ timeoutMs: 500 });
  } finally {
    await proxy.close();
  }
});

test('collector down, then up: everything is delivered', async () => {
  const agentId = agent('it-outage');
  const { lightning } = make(collector.url, { apiKey: collector.apiKey, agentId, batchSize: 1, retry: { baseDelayMs: 50, maxDelayMs: 300 } });
  await collector.stop();
  try {
    const s = new SessionSim(lightning.hooks);
    await s.prompt('work through an outage');
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await s.call('Bash', { command: `step ${i}` }, { stdout: `${i}` });
      assert.ok(performance.now() - t0 < 50, 'hooks never wait for the collector');
    }
    await s.stop('done despite outage');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(lightning.stats().failed > 0, 'requests failed while down');
    assert.ok(lightning.stats().queued > 0);
  } finally {
    await collector.start(collector.port);
  }
  await lightning.flush({ timeoutMs: 5000 });
  const t = await collector.only(agentId);
  assert.equal(toolSteps(t).length, 5);
  assert.deepEqual(toolSteps(t).map((x: any) => x.toolInput.command), ['step 0', 'step 1', 'step 2', 'step 3', 'step 4']);
  assert.equal(t.status, 'succeeded');
  assert.equal(t.prompt, 'work through an outage');
  assert.equal(lightning.stats().dropped, 0);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('401: the agent is unaffected and nothing is stored', async () => {
  const agentId = agent('it-401');
  const { lightning, logs } = make(collector.url, { apiKey: 'not-the-key', agentId, batchSize: 1 });
  const s = new SessionSim(lightning.hooks);
  for (let i = 0; i < 10; i++) {
    const results = await s.pre('Read', { i }, s.newId());
    assert.deepEqual(results, [{}]);
  }
  await s.stop();
  await lightning.flush();
  assert.equal(lightning.stats().disabled, true);
  assert.equal(logs.warn.filter((w) => w.includes('401')).length, 1);
  assert.deepEqual(await collector.trajectories(agentId), []);
  await lightning.shutdown({ timeoutMs: 200 });
});

test('hung collector: hooks still return immediately and shutdown is bounded', async () => {
  const hung = await new HungServer().start();
  try {
    const { lightning } = make(hung.url, { apiKey: 'k', agentId: agent('it-hung'), batchSize: 1, requestTimeoutMs: 300 });
    const s = new SessionSim(lightning.hooks);
    let worst = 0;
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      await s.call('Read', { i }, 'x');
      worst = Math.max(worst, performance.now() - t0);
    }
    assert.ok(worst < 50, `slowest hook pair took ${worst.toFixed(2)} ms`);
    // the first request times out 300 ms after it left (the 400 steps are prepared first)
    const deadline = Date.now() + 3000;
    while (!/no answer within 300 ms/.test(lightning.stats().lastError ?? '') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(hung.accepted >= 1);
    assert.match(lightning.stats().lastError ?? '', /no answer within 300 ms/);
    const t0 = Date.now();
    await lightning.shutdown({ timeoutMs: 500 });
    assert.ok(Date.now() - t0 < 1500, 'shutdown waits no longer than its timeout');
    assert.ok(lightning.stats().dropped > 0, 'undelivered records are accounted for');
  } finally {
    await hung.close();
  }
});

test('many concurrent sessions through one instance', async () => {
  const agentId = agent('it-concurrent');
  const { lightning } = make(collector.url, { apiKey: collector.apiKey, agentId, batchSize: 5, flushInterval: 50 });
  await Promise.all(
    Array.from({ length: 8 }, async (_, k) => {
      const s = new SessionSim(lightning.hooks, `sess-c-${k}`);
      for (let i = 0; i < 12; i++) await s.call('Read', { k, i }, `${k}:${i}`);
      await s.stop();
    }),
  );
  await lightning.flush({ timeoutMs: 5000 });
  const list = await collector.trajectories(agentId);
  assert.equal(list.length, 8);
  for (const summary of list) {
    const t = await collector.trajectory(summary.id);
    assert.equal(toolSteps(t).length, 12);
    assert.deepEqual(toolSteps(t).map((x: any) => x.stepNumber), Array.from({ length: 12 }, (_, i) => i + 1));
    const k = Number(t.sessionId.slice('sess-c-'.length));
    assert.deepEqual(toolSteps(t).map((x: any) => x.toolOutput), Array.from({ length: 12 }, (_, i) => `${k}:${i}`));
    assert.equal(t.status, 'succeeded');
  }
  await lightning.shutdown({ timeoutMs: 500 });
});
