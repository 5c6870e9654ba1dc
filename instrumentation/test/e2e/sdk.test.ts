/**
 * End to end: the real @anthropic-ai/claude-agent-sdk (and its bundled Claude Code CLI) runs a
 * scripted task against a local fake Messages API, with real Read/Edit/Bash in a temp dir, and
 * the instrumentation delivers to the real collector. Then the collector's data is checked.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { query, type HookCallback, type Options } from '@anthropic-ai/claude-agent-sdk';
import { instrument, mergeHooks, NO_POST_HOOK } from '../../src/index.js';
import { Collector, toolSteps } from '../helpers/collector.js';
import { FakeAnthropic, type Turn } from '../helpers/fake-anthropic.js';
import { sdkEnv } from '../helpers/faults.js';

let collector: Collector;
let work: string;
let home: string;

before(async () => {
  collector = await new Collector().start();
  work = mkdtempSync(join(tmpdir(), 'lightning-e2e-work-'));
  home = mkdtempSync(join(tmpdir(), 'lightning-e2e-home-'));
});
after(async () => {
  await collector.dispose();
  rmSync(work, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});


test('a real Claude Agent SDK run is captured step by step', { timeout: 180_000 }, async () => {
  const file = join(work, 'hello.txt');
  writeFileSync(file, 'hello\n');
  const missing = join(work, 'missing.txt');
  const turns: Turn[] = [
    {
      content: [
        { type: 'text', text: 'Reading the file first.' },
        { type: 'tool_use', id: 'toolu_e2e_read', name: 'Read', input: { file_path: file } },
      ],
      stopReason: 'tool_use',
    },
    {
      content: [{ type: 'tool_use', id: 'toolu_e2e_edit', name: 'Edit', input: { file_path: file, old_string: 'hello', new_string: 'hello world' } }],
      stopReason: 'tool_use',
    },
    {
      // three calls in one response: they run in parallel
      content: [
        { type: 'tool_use', id: 'toolu_e2e_echo', name: 'Bash', input: { command: 'echo hi', description: 'say hi' } },
        { type: 'tool_use', id: 'toolu_e2e_fail', name: 'Bash', input: { command: 'echo out; echo err 1>&2; exit 3', description: 'fail on purpose' } },
        { type: 'tool_use', id: 'toolu_e2e_missing', name: 'Read', input: { file_path: missing } },
      ],
      stopReason: 'tool_use',
    },
    {
      content: [{ type: 'tool_use', id: 'toolu_e2e_denied', name: 'Bash', input: { command: 'rm -rf ./important', description: 'delete' } }],
      stopReason: 'tool_use',
    },
    {
      content: [{ type: 'tool_use', id: 'toolu_e2e_write', name: 'Write', input: { file_path: join(work, 'new.txt'), content: 'x' } }],
      stopReason: 'tool_use',
    },
    { content: [{ type: 'text', text: 'Done: hello.txt now says hello world.' }], stopReason: 'end_turn' },
  ];
  const fake = await new FakeAnthropic(turns).start();
  const agentId = `e2e-${Math.random().toString(36).slice(2, 8)}`;
  const lightning = instrument({
    collectorUrl: collector.url,
    apiKey: collector.apiKey,
    agentId,
    taskType: 'e2e',
    batchSize: 3,
    flushInterval: 200,
    handleProcessExit: false,
  });
  const systemPrompt = await lightning.prompt('You are a careful coding agent.');
  assert.equal(systemPrompt, 'You are a careful coding agent.', 'no stored prompt: the fallback is used');

  // the user's own hook, merged with the instrumentation's: it denies destructive commands
  const guard: HookCallback = async (input) => {
    if (input.hook_event_name === 'PreToolUse' && JSON.stringify(input.tool_input).includes('rm -rf')) {
      return {
        hookSpecificOutput: { hookEventName: 'PreToolUse', permissionDecision: 'deny', permissionDecisionReason: 'destructive command blocked' },
      };
    }
    return {};
  };
  const stderr: string[] = [];
  const options: Options = {
    cwd: work,
    systemPrompt,
    model: 'claude-sonnet-4-5-20250929',
    permissionMode: 'default',
    allowedTools: ['Read', 'Edit', 'Bash'],
    settingSources: [],
    maxTurns: 20,
    env: sdkEnv(fake.url, home),
    stderr: (d) => stderr.push(d),
    hooks: mergeHooks(lightning.hooks, { PreToolUse: [{ matcher: 'Bash', hooks: [guard] }] }),
  };
  const seen: any[] = [];
  let result: any;
  try {
    for await (const message of lightning.track(query({ prompt: 'Make hello.txt say hello world, then check the shell.', options }), { prompt: 'Make hello.txt say hello world, then check the shell.', systemPrompt })) {
      seen.push(message);
      if (message.type === 'result') result = message;
    }
  } catch (e) {
    throw new Error(`query failed: ${String(e)}\nstderr: ${stderr.join('').slice(-3000)}\nmessages: ${JSON.stringify(seen).slice(-3000)}`, {
      cause: e,
    });
  } finally {
    await fake.close();
  }
  assert.ok(result, 'a result message was yielded');
  assert.equal(result.is_error, false, JSON.stringify(result));
  assert.equal(readFileSync(file, 'utf8'), 'hello world\n', 'the real Edit tool ran');
  assert.equal(existsSync(join(work, 'new.txt')), false, 'the denied Write did not run');
  assert.ok(fake.mainLoop.length >= 6, `main-loop requests: ${fake.mainLoop.length}`);

  await lightning.flush({ timeoutMs: 10_000 });
  const stats = lightning.stats();
  assert.equal(stats.dropped, 0);
  assert.equal(stats.queued, 0);

  const t = await collector.only(agentId);
  assert.equal(t.sessionId, result.session_id);
  assert.equal(t.taskType, 'e2e');
  assert.equal(t.prompt, 'Make hello.txt say hello world, then check the shell.');
  assert.equal(t.systemPrompt, 'You are a careful coding agent.');
  assert.equal(t.model, seen.find((m) => m.type === 'system' && m.subtype === 'init')?.model);
  assert.equal(t.status, 'succeeded');
  assert.equal(t.success, true);
  assert.equal(t.result, 'Done: hello.txt now says hello world.');
  assert.equal(t.costUsd, result.total_cost_usd);
  assert.ok(t.costUsd > 0);
  assert.equal(t.numTurns, result.num_turns);
  assert.equal(t.durationMs, result.duration_ms);
  assert.equal(t.usage.inputTokens, result.usage.input_tokens);
  assert.equal(t.usage.outputTokens, result.usage.output_tokens);

  const steps = toolSteps(t);
  assert.deepEqual(
    steps.map((s: any) => [s.toolName, s.toolUseId]),
    [
      ['Read', 'toolu_e2e_read'],
      ['Edit', 'toolu_e2e_edit'],
      ['Bash', 'toolu_e2e_echo'],
      ['Bash', 'toolu_e2e_fail'],
      ['Read', 'toolu_e2e_missing'],
      ['Bash', 'toolu_e2e_denied'],
      ['Write', 'toolu_e2e_write'],
    ],
  );
  // assistant text is stored in order with the tool calls, as `message` steps (issue 17)
  const order = t.steps.map((s: any) => (s.toolName === 'assistant' ? `text:${s.toolOutput}` : s.toolName));
  assert.equal(order[0], 'text:Reading the file first.');
  assert.equal(order[1], 'Read');
  assert.ok(order.includes('text:Done: hello.txt now says hello world.'), JSON.stringify(order));
  assert.ok(order.indexOf('text:Done: hello.txt now says hello world.') > order.indexOf('Write'));
  for (let i = 1; i < t.steps.length; i++) assert.ok(t.steps[i].stepNumber > t.steps[i - 1].stepNumber);
  const facts = t.steps.find((s: any) => s.toolName === 'Result');
  assert.equal(facts.toolOutput.subtype, 'success');
  assert.ok(Array.isArray(facts.toolOutput.permission_denials));
  const [read, edit, echo, fail, readMissing, denied, write] = steps;
  assert.deepEqual(read.toolInput, { file_path: file });
  assert.equal(read.toolOutput.file.content, 'hello\n');
  assert.equal(read.error, null);
  assert.equal(edit.toolInput.new_string, 'hello world');
  assert.equal(edit.toolOutput.filePath, file);
  assert.equal(edit.error, null);
  assert.equal(echo.toolOutput.stdout, 'hi');
  assert.equal(echo.error, null);
  assert.match(fail.error, /^Exit code 3/);
  assert.match(fail.error, /out/);
  assert.match(fail.error, /err/);
  assert.equal(fail.toolOutput, null);
  assert.equal(fail.metadata.closedBy, 'PostToolUseFailure');
  assert.match(readMissing.error, /does not exist/i);
  assert.ok(denied.error.startsWith(NO_POST_HOOK), denied.error);
  assert.match(denied.error, /destructive command blocked/);
  assert.ok(write.error.startsWith(NO_POST_HOOK) || write.error.startsWith('Permission denied'), write.error);
  for (const s of steps) {
    assert.equal(typeof s.durationMs, 'number');
    assert.ok(!Number.isNaN(Date.parse(s.timestamp)));
  }
  for (let i = 1; i < steps.length; i++) assert.ok(Date.parse(steps[i].timestamp) >= Date.parse(steps[i - 1].timestamp));
  assert.equal(t.errorCount, 4);
  assert.equal(t.totalSteps, 7);

  // score() after the real run, as the README shows: it defaults to the run that just ended
  assert.equal(lightning.currentTrajectoryId(), t.id);
  const edited = lightning.score('edited', true, { source: 'code', comment: 'hello.txt says hello world' })!;
  const onEdit = lightning.score('quality', 0.8, { stepNumber: edit.stepNumber })!;
  await lightning.flush({ timeoutMs: 10_000 });
  assert.equal(lightning.stats().dropped, 0);
  const scores = (await collector.get(`/api/trajectories/${t.id}/scores`)).scores;
  const byId = new Map<string, any>(scores.map((x: any) => [x.id, x]));
  assert.equal(scores.length, 2);
  assert.deepEqual(
    [byId.get(edited).name, byId.get(edited).value, byId.get(edited).dataType, byId.get(edited).source, byId.get(edited).comment, byId.get(edited).trajectoryId],
    ['edited', true, 'boolean', 'code', 'hello.txt says hello world', t.id],
  );
  assert.deepEqual([byId.get(onEdit).value, byId.get(onEdit).source, byId.get(onEdit).stepNumber], [0.8, 'sdk', edit.stepNumber]);
  const detail = await collector.get(`/api/trajectories/${t.id}`);
  assert.deepEqual(detail.scores.map((x: any) => x.id).sort(), [edited, onEdit].sort(), 'the detail shows the scores');
  const filtered = await collector.get(`/api/trajectories?agentId=${agentId}&scoreName=edited&minScore=1`);
  assert.deepEqual(filtered.trajectories.map((x: any) => x.id), [t.id]);
  await lightning.shutdown({ timeoutMs: 2000 });
});

test('lightning.query() is the SDK query with the hooks merged and the run tracked', { timeout: 120_000 }, async () => {
  const fake = await new FakeAnthropic([
    { content: [{ type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 'toolu_q_echo', name: 'Bash', input: { command: 'echo via-query', description: 'echo' } }], stopReason: 'tool_use' },
    { content: [{ type: 'text', text: 'It printed via-query.' }], stopReason: 'end_turn' },
  ]).start();
  const agentId = `e2e-query-${Math.random().toString(36).slice(2, 8)}`;
  const lightning = instrument({ collectorUrl: collector.url, apiKey: collector.apiKey, agentId, handleProcessExit: false, spool: false });
  let ownHookCalls = 0;
  const own: HookCallback = async () => {
    ownHookCalls++;
    return {};
  };
  let result: any;
  try {
    // the lazily loaded SDK, the caller's own hooks kept, every message yielded
    for await (const message of lightning.query({
      prompt: 'Echo something.',
      options: {
        cwd: work,
        systemPrompt: 'You echo things.',
        model: 'claude-sonnet-4-5-20250929',
        permissionMode: 'default',
        allowedTools: ['Bash'],
        settingSources: [],
        env: sdkEnv(fake.url, home),
        hooks: { PreToolUse: [{ hooks: [own] }] },
      },
    })) {
      if (message.type === 'result') result = message;
    }
  } finally {
    await fake.close();
  }
  assert.equal(result?.is_error, false);
  assert.equal(ownHookCalls, 1, "the caller's hook still ran");
  await lightning.flush({ timeoutMs: 10_000 });
  const t = await collector.only(agentId);
  assert.equal(t.status, 'succeeded');
  assert.equal(t.prompt, 'Echo something.');
  assert.equal(t.systemPrompt, 'You echo things.');
  assert.equal(t.costUsd, result.total_cost_usd);
  assert.equal(t.numTurns, result.num_turns);
  assert.deepEqual(toolSteps(t).map((s: any) => [s.toolName, s.toolOutput.stdout]), [['Bash', 'via-query']]);
  assert.deepEqual(
    t.steps.filter((s: any) => s.toolName === 'assistant').map((s: any) => s.toolOutput),
    ['Checking.', 'It printed via-query.'],
  );
  assert.equal(lightning.currentTrajectoryId(), t.id);
  await lightning.shutdown({ timeoutMs: 2000 });
});

test('two units asked before their real SDK runs: each run records the version it used', { timeout: 180_000 }, async () => {
  const agentId = `e2e-units-${Math.random().toString(36).slice(2, 8)}`;
  const base = `/api/agents/${agentId}/prompts`;
  await collector.post(base, { text: 'You answer briefly.', promote: true }, 201);
  await collector.post(base, { text: 'You answer briefly and cite the file you read.' }, 201);
  await collector.post(`${base}/2/rollout`, { percent: 50 });
  const arms: Record<string, string> = {};
  for (let i = 0; i < 200 && Object.keys(arms).length < 2; i++) {
    const a = await collector.get(`${base}/assignment?unit=user-${i}`);
    arms[a.arm] ??= `user-${i}`;
  }
  const lightning = instrument({ collectorUrl: collector.url, apiKey: collector.apiKey, agentId, handleProcessExit: false, spool: false });
  // a server asks for both users' prompts before either run starts
  const a = await lightning.promptDetails('You are an agent.', { unit: arms.canary! });
  const b = await lightning.promptDetails('You are an agent.', { unit: arms.promoted! });
  assert.deepEqual([a.version, a.arm, b.version, b.arm], ['2', 'canary', '1', 'promoted']);
  const run = async (systemPrompt: string, assignment?: typeof a) => {
    const fake = await new FakeAnthropic([{ content: [{ type: 'text', text: 'Answered.' }], stopReason: 'end_turn' }]).start();
    let result: any;
    try {
      const params = {
        prompt: 'Answer.',
        options: { cwd: work, systemPrompt, model: 'claude-sonnet-4-5-20250929', permissionMode: 'default' as const, settingSources: [], env: sdkEnv(fake.url, home) },
      };
      for await (const m of assignment ? lightning.query(params, { assignment }) : lightning.query(params)) if (m.type === 'result') result = m;
    } finally {
      await fake.close();
    }
    assert.equal(result?.is_error, false);
    return result.session_id as string;
  };
  // B runs first, given its result; then A, recognised by the text of its system prompt
  const sb = await run(b.text, b);
  const sa = await run(a.text);
  await lightning.flush({ timeoutMs: 10_000 });
  const list = await collector.trajectories(agentId);
  const bySession = (sid: string) => list.find((t: any) => t.sessionId === sid);
  assert.equal(bySession(sb)?.promptVersion, '1');
  assert.deepEqual(bySession(sb)?.metadata.promptAssignment, b.assignment);
  assert.equal(bySession(sa)?.promptVersion, '2');
  assert.deepEqual(bySession(sa)?.metadata.promptAssignment, a.assignment);
  await lightning.shutdown({ timeoutMs: 2000 });
});
