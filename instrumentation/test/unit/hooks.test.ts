import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { MockCollector, waitFor } from '../helpers/mock-collector.js';
import { SessionSim, messages, resultMessage } from '../helpers/sim.js';
import { make } from '../helpers/make.js';
import { NO_POST_HOOK, mergeHooks } from '../../src/index.js';

/** What these tests check of a prompt result (it also carries the assignment: arm, unit). */
function core(r: { text: string; version: string | null; source: string }) {
  return { text: r.text, version: r.version, source: r.source };
}

let mock: MockCollector;
before(async () => {
  mock = await new MockCollector().start();
});
after(() => mock.close());
beforeEach(() => {
  mock.trajectories.clear();
  mock.requests.length = 0;
  mock.faults = [];
  mock.prompt = null;
});

test('every hook resolves to {} at once, even for malformed input', async () => {
  const { lightning } = make(mock.url);
  for (const [event, matchers] of Object.entries(lightning.hooks)) {
    assert.ok(Array.isArray(matchers) && matchers.length === 1, event);
    for (const cb of matchers[0]!.hooks) {
      for (const input of [null, undefined, 42, {}, { hook_event_name: event }, { session_id: 's', tool_calls: 'nope' }]) {
        const out = await cb(input as any, undefined, { signal: new AbortController().signal });
        assert.deepEqual(out, {});
      }
    }
  }
  await lightning.shutdown({ timeoutMs: 500 });
});

test('steps are numbered in PreToolUse order and closed by their post hooks (parallel calls)', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  await s.prompt('fix the bug');
  const [a, b, c] = [s.newId(), s.newId(), s.newId()];
  await s.pre('Read', { file_path: '/a' }, a);
  await s.pre('Bash', { command: 'false' }, b);
  await s.pre('Grep', { pattern: 'x' }, c);
  await s.post('Grep', { pattern: 'x' }, c, { matches: 2 }, 3);
  await s.post('Read', { file_path: '/a' }, a, { content: 'A' }, 7);
  await s.fail('Bash', { command: 'false' }, b, 'Exit code 1', 11);
  await s.stop('finished');
  await lightning.flush();
  const t = mock.only();
  assert.equal(t.start.sessionId, s.sessionId);
  assert.equal(t.start.prompt, 'fix the bug');
  assert.equal(t.start.agentId, 'unit-agent');
  const steps = mock.toolStepsOf(t.id);
  assert.deepEqual(steps.map((x) => [x.stepNumber, x.toolName, x.toolUseId]), [[1, 'Read', a], [2, 'Bash', b], [3, 'Grep', c]]);
  assert.deepEqual(steps[0].toolInput, { file_path: '/a' });
  assert.deepEqual(steps[0].toolOutput, { content: 'A' });
  assert.equal(steps[0].durationMs, 7);
  assert.equal(steps[0].error, undefined);
  assert.equal(steps[1].error, 'Exit code 1');
  assert.equal(steps[1].toolOutput, undefined);
  assert.equal(steps[1].metadata.closedBy, 'PostToolUseFailure');
  assert.equal(steps[1].metadata.is_interrupt, false);
  assert.deepEqual(steps[2].toolOutput, { matches: 2 });
  for (const st of steps) assert.ok(!Number.isNaN(Date.parse(st.timestamp)));
  assert.equal(t.complete.success, true);
  assert.equal(t.complete.totalSteps, 3);
  assert.equal(t.complete.result, 'finished');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('a call without a post hook is closed at PostToolBatch with the reason the model saw', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  const ok = s.newId();
  const denied = s.newId();
  await s.pre('Read', { file_path: '/a' }, ok);
  await s.pre('Bash', { command: 'rm -rf /' }, denied);
  await s.post('Read', { file_path: '/a' }, ok, 'A');
  await s.batch([
    { tool_name: 'Read', tool_input: {}, tool_use_id: ok, tool_response: 'A' },
    { tool_name: 'Bash', tool_input: {}, tool_use_id: denied, tool_response: 'PreToolUse:Bash hook error: denied by policy' },
  ]);
  await s.stop();
  await lightning.flush();
  const steps = mock.toolStepsOf(mock.only().id);
  assert.equal(steps.length, 2);
  assert.equal(steps[0].error, undefined);
  assert.equal(steps[1].error, `${NO_POST_HOOK}: PreToolUse:Bash hook error: denied by policy`);
  assert.equal(steps[1].metadata.closedBy, 'PostToolBatch');
  assert.equal(typeof steps[1].durationMs, 'number');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('steps still open at Stop are closed with an explanatory error', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  await s.pre('Bash', { command: 'sleep 100' }, s.newId());
  await s.stop();
  await lightning.flush();
  const [step] = mock.toolStepsOf(mock.only().id);
  assert.equal(step.error, `${NO_POST_HOOK} before Stop`);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('StopFailure completes the trajectory as failed', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  await s.call('Read', { file_path: '/a' }, 'A');
  await s.stopFailure('rate_limit', '429 from upstream');
  await lightning.flush();
  const t = mock.only();
  assert.equal(t.complete.success, false);
  assert.equal(t.complete.error, 'rate_limit: 429 from upstream');
  assert.equal(t.complete.totalSteps, 1);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('subagent calls carry agentId and agentType in step metadata (docs/api.md names)', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks, 'sess-sub', { agent_id: 'agent-7', agent_type: 'Explore' });
  await s.call('Glob', { pattern: '*.ts' }, ['a.ts']);
  await lightning.flush();
  const [step] = mock.toolStepsOf(mock.only().id);
  assert.equal(step.metadata.agentId, 'agent-7');
  assert.equal(step.metadata.agentType, 'Explore');
  assert.equal(step.metadata.prompt_id, 'prompt-1');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('one instance serves concurrent sessions as separate trajectories', async () => {
  const { lightning } = make(mock.url);
  const sims = [0, 1, 2].map((i) => new SessionSim(lightning.hooks, `sess-${i}`));
  await Promise.all(
    sims.map(async (s, i) => {
      for (let k = 0; k <= i; k++) await s.call('Read', { file_path: `/f${k}` }, `content ${k}`);
      await s.stop();
    }),
  );
  await lightning.flush();
  assert.equal(mock.trajectories.size, 3);
  const bySession = new Map([...mock.trajectories.entries()].map(([id, t]) => [t.start.sessionId, id]));
  for (let i = 0; i < 3; i++) {
    const steps = mock.toolStepsOf(bySession.get(`sess-${i}`)!);
    assert.deepEqual(steps.map((x) => x.stepNumber), Array.from({ length: i + 1 }, (_, k) => k + 1));
    assert.equal(mock.trajectories.get(bySession.get(`sess-${i}`)!)!.complete.totalSteps, i + 1);
  }
  assert.equal(lightning.stats().trajectories, 3);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('track() yields messages unchanged and completes from the result message', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks, 'sess-track');
  const init = { type: 'system', subtype: 'init', session_id: 'sess-track', model: 'claude-test-1', cwd: '/w', claude_code_version: '2.1.332', permissionMode: 'default' };
  const result = resultMessage('sess-track');
  const source = messages([init, { type: 'assistant', session_id: 'sess-track', message: { content: [] } }, result]);
  await s.prompt('do things');
  const seen: unknown[] = [];
  for await (const m of lightning.track(source, { systemPrompt: 'You are careful.' })) {
    seen.push(m);
    if ((m as any).type === 'assistant') {
      await s.call('Read', { file_path: '/x' }, 'X');
      await s.stop('All done.');
    }
  }
  assert.equal(seen.length, 3);
  assert.equal(seen[0], init, 'messages are the same objects');
  assert.equal(seen[2], result);
  await lightning.flush();
  const t = mock.only();
  assert.equal(t.start.model, 'claude-test-1');
  assert.equal(t.start.systemPrompt, 'You are careful.');
  assert.equal(t.start.prompt, 'do things');
  assert.equal(t.start.metadata.claude_code_version, '2.1.332');
  assert.deepEqual(t.complete, {
    success: true,
    status: 'succeeded',
    result: 'All done.',
    totalSteps: 1,
    duration: 1234,
    endTime: t.complete.endTime,
    costUsd: 0.0123,
    usage: { inputTokens: 100, outputTokens: 50, cacheReadInputTokens: 10, cacheCreationInputTokens: 5 },
    numTurns: 4,
  });
  const completes = mock.requests.filter((r) => r.path.endsWith('/complete'));
  assert.equal(completes.length, 1, 'Stop must not complete a tracked session');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('track() rethrows exactly what the SDK throws and records the error result', async () => {
  const { lightning } = make(mock.url);
  const boom = new Error('Claude Code returned an error result: Reached maximum number of turns (2)');
  const result = resultMessage('sess-err', {
    subtype: 'error_max_turns',
    is_error: true,
    result: undefined,
    errors: ['Reached maximum number of turns (2)'],
    num_turns: 3,
  });
  delete (result as any).result;
  let caught: unknown;
  try {
    for await (const _m of lightning.track(messages([{ type: 'system', subtype: 'init', session_id: 'sess-err' }, result], boom))) {
      /* consume */
    }
  } catch (e) {
    caught = e;
  }
  assert.equal(caught, boom);
  await lightning.flush();
  const t = mock.only();
  assert.equal(t.complete.success, false);
  assert.equal(t.complete.error, 'Reached maximum number of turns (2)');
  assert.equal(t.complete.numTurns, 3);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('track() records a failure when the query throws before any result', async () => {
  const { lightning } = make(mock.url);
  const crash = new Error('Claude Code process exited with code 1');
  await assert.rejects(async () => {
    for await (const _m of lightning.track(messages([{ type: 'system', subtype: 'init', session_id: 'sess-crash' }], crash))) {
      /* consume */
    }
  }, (e) => e === crash);
  await lightning.flush();
  const t = mock.only();
  assert.equal(t.complete.success, false);
  assert.equal(t.complete.error, 'Claude Code process exited with code 1');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('track() keeps the query control methods and closes denied calls from messages', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks, 'sess-q');
  const id = s.newId();
  let interrupted = false;
  const list = [
    { type: 'system', subtype: 'init', session_id: 'sess-q' },
    { type: 'system', subtype: 'permission_denied', session_id: 'sess-q', tool_name: 'Write', tool_use_id: id, message: 'Write is not allowed' },
    resultMessage('sess-q'),
  ];
  const gen = messages(list);
  const query = Object.assign(gen, {
    async interrupt() {
      interrupted = true;
    },
  });
  const tracked = lightning.track(query);
  let i = 0;
  for await (const _m of tracked) {
    if (i++ === 0) await s.pre('Write', { file_path: '/etc/x' }, id);
  }
  await tracked.interrupt();
  assert.equal(interrupted, true);
  await lightning.flush();
  const [step] = mock.toolStepsOf(mock.only().id);
  assert.equal(step.error, 'Permission denied: Write is not allowed');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('an open step is closed from the tool_result message when no post hook came', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks, 'sess-tr');
  const id = s.newId();
  const list = [
    { type: 'system', subtype: 'init', session_id: 'sess-tr' },
    { type: 'user', session_id: 'sess-tr', message: { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, is_error: true, content: 'PreToolUse hook did not respond before its timeout' }] } },
    resultMessage('sess-tr'),
  ];
  let i = 0;
  for await (const _m of lightning.track(messages(list))) {
    if (i++ === 0) await s.pre('Bash', { command: 'ls' }, id);
  }
  await lightning.flush();
  const [step] = mock.toolStepsOf(mock.only().id);
  assert.equal(step.error, `${NO_POST_HOOK}: PreToolUse hook did not respond before its timeout`);
  assert.equal(step.metadata.closedBy, 'tool_result');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('breaking out of a tracked query early records an unfinished trajectory', async () => {
  const { lightning } = make(mock.url);
  for await (const _m of lightning.track(messages([{ type: 'system', subtype: 'init', session_id: 'sess-b' }, resultMessage('sess-b')]))) {
    break;
  }
  await lightning.flush();
  const t = mock.only();
  assert.equal(t.complete.success, false);
  assert.match(t.complete.error, /iteration ended early/);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('prompt() falls back on 404 and errors, and remembers the version for later trajectories', async () => {
  const { lightning } = make(mock.url);
  assert.equal(await lightning.prompt('fallback text'), 'fallback text');
  assert.equal(lightning.stats().promptVersion, null);
  mock.prompt = { agentId: 'unit-agent', version: 3, text: 'optimized prompt v3' };
  assert.deepEqual(core(await lightning.promptDetails('fallback text')), { text: 'optimized prompt v3', version: '3', source: 'collector' });
  assert.equal(lightning.stats().promptVersion, '3');
  const s = new SessionSim(lightning.hooks);
  await s.call('Read', {}, 'x');
  await lightning.flush();
  assert.equal(mock.only().start.promptVersion, '3');
  const req = mock.requests.find((r) => r.path === '/api/agents/unit-agent/prompts/latest');
  assert.equal(req?.auth, 'Bearer test-key');
  await lightning.shutdown({ timeoutMs: 500 });
  const { lightning: down, logs } = make('http://127.0.0.1:1', { requestTimeoutMs: 500 });
  assert.equal(await down.prompt('offline fallback'), 'offline fallback');
  assert.equal(logs.warn.length, 1);
  await down.shutdown({ timeoutMs: 100 });
});

test('prompt() falling back forgets the remembered version: later trajectories are not tagged with a prompt not in use', async () => {
  const { lightning } = make(mock.url);
  mock.prompt = { agentId: 'unit-agent', version: 4, text: 'optimized prompt v4' };
  assert.equal(await lightning.prompt('fallback text'), 'optimized prompt v4');
  assert.equal(lightning.stats().promptVersion, '4');
  const tagged = new SessionSim(lightning.hooks, 'sess-tagged');
  await tagged.call('Read', {}, 'x');
  mock.prompt = null; // the registry answers 404 now
  assert.deepEqual(core(await lightning.promptDetails('fallback text')), { text: 'fallback text', version: null, source: 'fallback' });
  assert.equal(lightning.stats().promptVersion, null);
  const untagged = new SessionSim(lightning.hooks, 'sess-untagged');
  await untagged.call('Read', {}, 'y');
  await lightning.flush();
  const starts = [...mock.trajectories.values()].map((t: any) => [t.start.sessionId, t.start.promptVersion]).sort();
  assert.deepEqual(starts, [['sess-tagged', '4'], ['sess-untagged', undefined]]);
  // the same when the collector cannot be reached at all
  mock.prompt = { agentId: 'unit-agent', version: 5, text: 'v5' };
  assert.equal(await lightning.prompt('fallback text'), 'v5');
  mock.failNext(1, { status: 503 }, (r) => r.path.endsWith('/prompts/latest'));
  assert.equal(await lightning.prompt('fallback text'), 'fallback text');
  assert.equal(lightning.stats().promptVersion, null);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('mergeHooks concatenates matchers per event and both sets run', async () => {
  const { lightning } = make(mock.url);
  const calls: string[] = [];
  const user = {
    PreToolUse: [{ matcher: 'Bash', hooks: [async () => { calls.push('guard'); return {}; }] }],
    Notification: [{ hooks: [async () => ({})] }],
  };
  const merged = mergeHooks(lightning.hooks, user, undefined);
  assert.equal(merged.PreToolUse!.length, 2);
  assert.equal(merged.Notification!.length, 1);
  assert.equal(merged.PostToolUse!.length, 1);
  assert.equal(lightning.hooks.PreToolUse.length, 1, 'inputs are not mutated');
  for (const m of merged.PreToolUse!) {
    for (const cb of m.hooks) await cb({ hook_event_name: 'PreToolUse', session_id: 's-m', tool_name: 'Bash', tool_input: {}, tool_use_id: 't1' } as any, 't1', { signal: new AbortController().signal });
  }
  assert.deepEqual(calls, ['guard']);
  await lightning.flush();
  assert.equal(mock.toolStepsOf(mock.only().id).length, 1);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('secrets in tool inputs and outputs never reach the collector', async () => {
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  const key = 'sk-ant-api03-' + 'Q'.repeat(90);
  await s.call('Bash', { command: `curl -H "x-api-key: ${key}" https://api` }, { stdout: `ANTHROPIC_API_KEY=${key}\n`, stderr: '' });
  await s.call('Bash', { command: 'env' }, null, `Exit code 2\nGITHUB_TOKEN=ghp_${'a'.repeat(36)}`);
  await lightning.flush();
  const wire = JSON.stringify(mock.requests.map((r) => r.body));
  assert.ok(!wire.includes(key));
  assert.ok(!wire.includes('ghp_aaaa'));
  assert.ok(wire.includes('[REDACTED:'));
  await lightning.shutdown({ timeoutMs: 500 });
});

test('a throwing user sanitize withholds the fields; a working one rewrites them', async () => {
  const { lightning: bad } = make(mock.url, {
    sanitize: () => {
      throw new Error('oops');
    },
  });
  const s = new SessionSim(bad.hooks, 'sess-bad');
  await s.call('Read', { file_path: '/secret/plan.txt' }, { content: 'launch codes' });
  await bad.flush();
  const [step] = mock.toolStepsOf(mock.only().id);
  assert.equal(step.toolInput, '[withheld: sanitize() failed]');
  assert.equal(step.toolOutput, '[withheld: sanitize() failed]');
  assert.ok(!JSON.stringify(mock.requests.map((r) => r.body)).includes('launch codes'));
  await bad.shutdown({ timeoutMs: 500 });

  mock.trajectories.clear();
  const { lightning: good } = make(mock.url, {
    sanitize: (st) => {
      if (st.toolName === 'Read') st.toolOutput = '[file contents hidden]';
    },
  });
  const g = new SessionSim(good.hooks, 'sess-good');
  await g.call('Read', { file_path: '/a' }, { content: 'private' });
  await good.flush();
  const [gs] = mock.toolStepsOf(mock.only().id);
  assert.equal(gs.toolOutput, '[file contents hidden]');
  assert.deepEqual(gs.toolInput, { file_path: '/a' });
  await good.shutdown({ timeoutMs: 500 });
});

test('large outputs are truncated to maxFieldBytes with a marker', async () => {
  const { lightning } = make(mock.url, { maxFieldBytes: 4096 });
  const s = new SessionSim(lightning.hooks);
  await s.call('Read', { file_path: '/big' }, { type: 'text', file: { filePath: '/big', content: 'z'.repeat(200_000) } });
  await lightning.flush();
  const [step] = mock.toolStepsOf(mock.only().id);
  assert.ok(Buffer.byteLength(JSON.stringify(step.toolOutput)) <= 4096);
  assert.equal(step.toolOutput.file.filePath, '/big');
  assert.match(step.toolOutput.file.content, /\[truncated: \d+ of 200000 bytes omitted\]$/);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('debug logs use the documented prefixes', async () => {
  const { lightning, logs } = make(mock.url, { debug: true, batchSize: 1 });
  const s = new SessionSim(lightning.hooks);
  await s.call('Read', { file_path: '/a' }, 'A');
  await lightning.flush();
  await waitFor(() => logs.debug.some((l) => l.includes('/steps/batch')), 'batch log');
  const text = logs.debug.join('\n');
  assert.match(text, /^\[Lightning Instrumentation\] Initializing\.\.\.$/m);
  assert.match(text, /^\[Lightning Hooks\] Session started/m);
  assert.match(text, /^\[Lightning Hooks\] Pre-tool: Read$/m);
  assert.match(text, /^\[Lightning Hooks\] Post-tool: Read$/m);
  assert.match(text, /^\[StepBuffer\] Added step 1$/m);
  assert.match(text, /^\[LightningClient\] POST \/api\/trajectories\/[0-9a-f-]{36}\/steps\/batch$/m);
  await lightning.shutdown({ timeoutMs: 500 });
});

test('bad options are rejected up front', () => {
  assert.throws(() => make(''), /collectorUrl/);
  assert.throws(() => make('not a url'), /not a URL/);
  assert.throws(() => make(mock.url, { agentId: '' }), /agentId/);
  assert.throws(() => make(mock.url, { batchSize: 0 }), /batchSize/);
  assert.throws(() => make(mock.url, { requestTimeoutMs: -1 }), /requestTimeoutMs/);
});
