/**
 * Every way a run ends, in the seed's exact usage (test/e2e/fixtures/seed-agent.mjs: hooks only,
 * no track(), no shutdown()), each in its own child process with the real Claude Agent SDK and
 * its bundled Claude Code CLI against the local fake Messages API, and the real collector.
 * Each scenario asserts what the collector stored, the child's exit code/signal and how long the
 * child lived past the agent's end (the last message it printed). Scenarios run concurrently.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Collector, freePort } from '../helpers/collector.js';
import { FakeAnthropic, type Turn } from '../helpers/fake-anthropic.js';
import { bashTurns, removeDir, sdkEnv } from '../helpers/faults.js';
import { HungServer } from '../helpers/proxy.js';

const pkgRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const fixture = join(pkgRoot, 'test', 'e2e', 'fixtures', 'seed-agent.mjs');
const rssFixture = join(pkgRoot, 'test', 'e2e', 'fixtures', 'outage-rss.mjs');
/** the default shutdownTimeoutMs: nobody configures it in the seed's usage */
const SHUTDOWN_MS = 5000;
/** process start-up, the CLI's own exit and a loaded 2-core machine */
const SLACK_MS = 4000;

const root = mkdtempSync(join(tmpdir(), 'lightning-endings-'));
const cleanups: (() => Promise<void> | void)[] = [];
const children = new Set<ChildProcess>();
let collector: Collector;
let supportsInterrupted = false;
const figures: string[] = [];

before(async () => {
  collector = await new Collector(join(root, 'data')).start();
  const openapi = JSON.stringify(await collector.get('/api/openapi.json').catch(() => ({})));
  supportsInterrupted = openapi.includes('interrupted');
  if (!supportsInterrupted) console.log('# endings: this collector does not know status "interrupted" yet (stored as failed); asserting that');
});
after(async () => {
  for (const c of children) killGroup(c);
  for (const c of cleanups.reverse()) await c();
  await collector.dispose();
  await removeDir(root);
  if (figures.length) console.log(figures.map((f) => `# ${f}`).join('\n'));
});

function killGroup(c: ChildProcess): void {
  if (c.exitCode !== null || c.signalCode !== null || !c.pid) return;
  try {
    process.kill(-c.pid, 'SIGKILL');
  } catch {
    c.kill('SIGKILL');
  }
}

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** ms from the last stdout chunk (the last SDK message printed) to the child's exit */
  pastEndMs: number;
  totalMs: number;
}

let agentSeq = 0;
function agentId(name: string): string {
  return `end-${name}-${process.pid}-${++agentSeq}`;
}

async function fakeFor(turns: Turn[], setup?: (f: FakeAnthropic) => void): Promise<FakeAnthropic> {
  const fake = new FakeAnthropic(turns);
  setup?.(fake);
  await fake.start();
  cleanups.push(() => fake.close());
  return fake;
}

/** Runs the seed snippet in a child. `onStdout` may signal it (gets the child and all stdout so far). */
function runSeed(args: {
  scenario: string;
  collectorUrl: string;
  apiKey: string;
  agentId: string;
  fakeUrl: string;
  state: string;
  sdkOptions?: Record<string, unknown>;
  onStdout?: (child: ChildProcess, all: string) => void;
  timeoutMs?: number;
}): Promise<ChildResult> {
  const home = join(args.state, 'home');
  const env = {
    ...sdkEnv(args.fakeUrl, home),
    XDG_STATE_HOME: join(args.state, 'xdg-state'),
    COLLECTOR_URL: args.collectorUrl,
    LIGHTNING_API_KEY: args.apiKey,
    AGENT_ID: args.agentId,
    SCENARIO: args.scenario,
    SDK_OPTIONS: JSON.stringify({ cwd: args.state, permissionMode: 'default', allowedTools: ['Bash', 'Agent', 'Task'], settingSources: [], ...(args.sdkOptions ?? {}) }),
  };
  const t0 = Date.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [fixture], { env, cwd: pkgRoot, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.add(child);
    let stdout = '';
    let stderr = '';
    let lastOut = Date.now();
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      lastOut = Date.now();
      args.onStdout?.(child, stdout);
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      killGroup(child);
      fail(new Error(`${args.scenario}: child did not exit within ${args.timeoutMs ?? 90_000} ms\n${stderr.slice(-3000)}`));
    }, args.timeoutMs ?? 90_000);
    child.on('exit', (code, signal) => {
      const now = Date.now();
      clearTimeout(timer);
      children.delete(child);
      // the CLI is in the child's process group: make sure nothing lingers
      setTimeout(() => killGroup(child), 10);
      done({ code, signal, stdout, stderr, pastEndMs: now - lastOut, totalMs: now - t0 });
    });
  });
}

/** Stored trajectories of an agent, oldest first, each with its steps. */
async function stored(id: string): Promise<any[]> {
  const list = await collector.trajectories(id);
  const full = await Promise.all(list.map((t: any) => collector.trajectory(t.id)));
  return full.sort((a, b) => Date.parse(a.startTime) - Date.parse(b.startTime));
}

const toolSteps = (t: any): any[] => t.steps.filter((s: any) => (s.kind ?? 'tool') === 'tool' && s.toolName !== 'assistant' && !['Result', 'SubagentStart', 'SubagentStop'].includes(s.toolName));
const expectInterrupted = (t: any): void => {
  assert.equal(t.success, false);
  // a collector that predates the status stores it as failed (success: false); one whose OpenAPI
  // document names `interrupted` must store it as sent
  if (supportsInterrupted) assert.equal(t.status, 'interrupted');
  else assert.ok(t.status === 'failed' || t.status === 'interrupted', t.status);
};

/** Every step once: tool_use ids unique, in order, each closed (output or error). */
function assertStepsOnce(t: any, expected?: string[]): string[] {
  const ids = toolSteps(t).map((s: any) => s.toolUseId);
  assert.equal(new Set(ids).size, ids.length, `duplicate steps: ${ids.join(', ')}`);
  if (expected) assert.deepEqual(ids, expected);
  for (const s of toolSteps(t)) assert.ok(s.toolOutput !== null || s.error !== null, `step ${s.stepNumber} closed`);
  return ids;
}

function stateDir(name: string): string {
  return mkdtempSync(join(root, `${name}-`));
}

function spoolFiles(state: string): string[] {
  const base = join(state, 'xdg-state', 'agent-lightning', 'spool');
  if (!existsSync(base)) return [];
  return readdirSync(base).flatMap((d) => readdirSync(join(base, d)).map((f) => join(base, d, f)));
}

function note(name: string, r: ChildResult): void {
  figures.push(`${name.padEnd(22)} exit=${r.signal ?? r.code}  lived past the agent's end: ${r.pastEndMs} ms  (child total ${r.totalMs} ms)`);
}

test('success, max turns, API error, thrown exception, process.exit(0): each stored once with an honest status', { timeout: 240_000 }, async () => {
  const scenarios = [
    { name: 'success', turns: bashTurns(3, 'ok', 0), sdk: {} },
    { name: 'max_turns', turns: bashTurns(5, 'mt', 0), sdk: { maxTurns: 2 } },
    {
      name: 'api_400',
      turns: [bashTurns(1, 'api', 0)[0]!, { content: [], stopReason: 'end_turn' as const, errorStatus: 400, errorMessage: 'scripted invalid request' }],
      sdk: {},
    },
    { name: 'throw', turns: bashTurns(3, 'th', 0), sdk: {} },
    { name: 'exit0', turns: bashTurns(2, 'ex', 0), sdk: {} },
  ];
  const runs = await Promise.all(
    scenarios.map(async (s) => {
      const fake = await fakeFor(s.turns);
      const id = agentId(s.name);
      const state = stateDir(s.name);
      const scenario = s.name === 'throw' || s.name === 'exit0' ? s.name : 'plain';
      const r = await runSeed({ scenario, collectorUrl: collector.url, apiKey: collector.apiKey, agentId: id, fakeUrl: fake.url, state, sdkOptions: s.sdk });
      note(s.name, r);
      return { ...s, id, r, state };
    }),
  );
  const by = new Map(runs.map((x) => [x.name, x]));

  // success: the loop ends, the process exits 0 by itself with everything delivered
  {
    const { r, id } = by.get('success')!;
    assert.equal(r.code, 0, r.stderr);
    const [t, ...more] = await stored(id);
    assert.equal(more.length, 0);
    assert.equal(t.status, 'succeeded');
    assert.equal(t.prompt, 'Your task');
    assertStepsOnce(t, ['toolu_ok_0', 'toolu_ok_1', 'toolu_ok_2']);
    assert.deepEqual(toolSteps(t).map((s: any) => s.toolOutput.stdout), ['step-0', 'step-1', 'step-2']);
    assert.equal(t.result, 'All 3 steps done.');
    const text = t.steps.filter((s: any) => s.kind === 'message' || s.toolName === 'assistant').map((s: any) => s.toolOutput);
    assert.ok(text.includes('All 3 steps done.'), `final answer stored as a message step: ${JSON.stringify(text)}`);
    assert.ok(r.pastEndMs < SHUTDOWN_MS + SLACK_MS, `lived ${r.pastEndMs} ms past the agent's end`);
    assert.deepEqual(spoolFiles(by.get('success')!.state), [], 'nothing left in the spool');
  }
  // max turns, API error, an exception out of the loop: the process crashes at once (exit code
  // 1, unchanged), so the exit handler writes the trajectory's end to the spool synchronously —
  // with its honest status — and the next instrumented process delivers it
  const ends: Record<string, { status: string; error: RegExp }> = {
    max_turns: { status: 'failed', error: /Reached maximum number of turns \(2\)/ },
    api_400: { status: 'failed', error: /scripted invalid request|400/ },
    throw: { status: 'interrupted', error: /An uncaught error ended the process before the agent finished: the caller failed/ },
  };
  await Promise.all(
    Object.entries(ends).map(async ([name, want]) => {
      const { r, id, state } = by.get(name)!;
      assert.equal(r.code, 1, `${name}: the agent's exit code is unchanged`);
      assert.ok(r.pastEndMs < SHUTDOWN_MS + SLACK_MS, `${name}: lived ${r.pastEndMs} ms`);
      const spooled = spoolFiles(state).flatMap((f) => readFileSync(f, 'utf8').trim().split('\n')).map((l) => JSON.parse(l));
      const complete = spooled.find((x) => x.kind === 'complete');
      if (complete) {
        assert.equal(complete.body.status, want.status, name);
        assert.equal(complete.body.success, false);
        assert.match(complete.body.error, want.error);
      } else {
        // the agent's end came early enough (e.g. the CLI retried the API error) to deliver it
        const [t] = await stored(id);
        assert.ok(t && t.status !== 'running', `${name}: neither spooled nor delivered: ${JSON.stringify(spooled.map((x) => x.kind))}`);
      }
      figures.push(`${name}: end ${complete ? 'spooled at the crash, delivered by the next process' : 'delivered before the crash'}`);
      const fake = await fakeFor(bashTurns(1, `n${name}`, 0));
      const second = await runSeed({ scenario: 'plain', collectorUrl: collector.url, apiKey: collector.apiKey, agentId: id, fakeUrl: fake.url, state });
      assert.equal(second.code, 0, second.stderr);
      const [t, next] = await stored(id);
      if (want.status === 'interrupted') expectInterrupted(t);
      else assert.equal(t.status, 'failed');
      assert.match(t.error, want.error);
      const ids = assertStepsOnce(t);
      assert.ok(ids.length >= 1, `${name}: ${ids.length} steps`);
      if (name === 'api_400') assert.deepEqual(ids, ['toolu_api_0']);
      assert.equal(next.status, 'succeeded');
      assert.deepEqual(spoolFiles(state), [], `${name}: spool emptied`);
    }),
  );
  // process.exit(0) right after the loop: the exit handler spools synchronously; the run itself
  // finished, so the next instrumented process delivers it as succeeded
  {
    const { r, id, state } = by.get('exit0')!;
    assert.equal(r.code, 0);
    const files = spoolFiles(state);
    const lines = files.flatMap((f) => readFileSync(f, 'utf8').trim().split('\n')).map((l) => JSON.parse(l));
    const storedNow = await stored(id);
    // a step may have gone out before exit(); whatever did not is in the spool
    assert.ok(lines.length > 0 || (storedNow.length === 1 && storedNow[0].status === 'succeeded'), 'spooled or already delivered');
    const fake = await fakeFor(bashTurns(1, 'ex2', 0));
    const second = await runSeed({ scenario: 'plain', collectorUrl: collector.url, apiKey: collector.apiKey, agentId: id, fakeUrl: fake.url, state });
    assert.equal(second.code, 0, second.stderr);
    const [first, next] = await stored(id);
    assert.equal(first.status, 'succeeded');
    assertStepsOnce(first, ['toolu_ex_0', 'toolu_ex_1']);
    assert.equal(next.status, 'succeeded');
    assertStepsOnce(next, ['toolu_ex2_0']);
    assert.deepEqual(spoolFiles(state), []);
  }
});

test('SIGINT and SIGTERM mid-run: interrupted, steps so far stored, the signal still ends the process', { timeout: 180_000 }, async () => {
  const runs = await Promise.all(
    (['SIGINT', 'SIGTERM'] as const).map(async (sig) => {
      const fake = await fakeFor(bashTurns(8, sig.toLowerCase(), 0), (f) => (f.latencyMs = 400));
      const id = agentId(sig);
      let sent = false;
      const r = await runSeed({
        scenario: 'plain',
        collectorUrl: collector.url,
        apiKey: collector.apiKey,
        agentId: id,
        fakeUrl: fake.url,
        state: stateDir(sig),
        onStdout: (child, all) => {
          // after the second tool result was printed
          if (!sent && (all.match(/type: 'user'/g)?.length ?? 0) >= 2) {
            sent = true;
            child.kill(sig);
          }
        },
      });
      note(sig, r);
      return { sig, id, r };
    }),
  );
  for (const { sig, id, r } of runs) {
    assert.equal(r.signal, sig, `${sig}: the process still dies by the signal (code ${r.code})\n${r.stderr.slice(-2000)}`);
    const [t] = await stored(id);
    expectInterrupted(t);
    assert.match(t.error, new RegExp(`received ${sig}`));
    const ids = assertStepsOnce(t);
    assert.ok(ids.length >= 2 && ids.length < 8, `${ids.length} steps`);
    assert.ok(r.pastEndMs < SHUTDOWN_MS + SLACK_MS, `${sig}: lived ${r.pastEndMs} ms after its last message`);
  }
});

test('break out of the loop, an unhandled rejection: interrupted, steps once, exit code unchanged', { timeout: 180_000 }, async () => {
  const want = {
    // the loop is left early: the SDK ends the CLI, the event loop empties, exit code 0
    break: { code: 0, error: /The process ended before the agent finished/ },
    // Node ends the process at the unhandled rejection with exit code 1
    reject: { code: 1, error: /An uncaught error ended the process before the agent finished: an unawaited call failed/ },
  };
  await Promise.all(
    (Object.keys(want) as (keyof typeof want)[]).map(async (name) => {
      const prefix = name === 'break' ? 'br' : 'rj';
      const fake = await fakeFor(bashTurns(4, prefix, 0), (f) => (f.latencyMs = 200));
      const id = agentId(name);
      const state = stateDir(name);
      const r = await runSeed({ scenario: name, collectorUrl: collector.url, apiKey: collector.apiKey, agentId: id, fakeUrl: fake.url, state });
      note(name, r);
      assert.equal(r.code, want[name].code, `${name}: exit code\n${r.stderr.slice(-2000)}`);
      assert.ok(r.pastEndMs < SHUTDOWN_MS + SLACK_MS, `${name}: lived ${r.pastEndMs} ms past its last message`);
      const delivered = (await stored(id)).length > 0 && spoolFiles(state).length === 0;
      figures.push(`${name}: ${delivered ? 'delivered before the process ended' : 'spooled, delivered by the next process'}`);
      // a second instrumented process delivers whatever the first one spooled
      const next = await fakeFor(bashTurns(1, `${prefix}n`, 0));
      const second = await runSeed({ scenario: 'plain', collectorUrl: collector.url, apiKey: collector.apiKey, agentId: id, fakeUrl: next.url, state });
      assert.equal(second.code, 0, second.stderr);
      const [t, after] = await stored(id);
      expectInterrupted(t);
      assert.match(t.error, want[name].error);
      const ids = assertStepsOnce(t);
      assert.equal(ids[0], `toolu_${prefix}_0`);
      assert.ok(ids.length < 4, `${name}: the agent did not run to its end (${ids.length} steps)`);
      assert.equal(after.status, 'succeeded');
      assert.deepEqual(spoolFiles(state), [], `${name}: spool emptied`);
    }),
  );
});

/** An HTTP front for the collector that answers 500 to the first `failures` requests. */
async function flakyFront(target: string, failures: number): Promise<{ url: string; failed: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      if (n++ < failures) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":"scripted outage"}');
        return;
      }
      const body = Buffer.concat(chunks);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'content-length') headers[k] = v;
      const init: RequestInit = { method: req.method ?? 'GET', headers };
      if (body.length > 0) init.body = body;
      const up = await fetch(target + (req.url ?? '/'), init);
      res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' });
      res.end(Buffer.from(await up.arrayBuffer()));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    failed: () => Math.min(n, failures),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

test('collector down, hung, 401, 500-then-healthy: prompt exit, nothing lost, the next process delivers', { timeout: 240_000 }, async () => {
  const downPort = await freePort();
  const hung = await new HungServer().start();
  cleanups.push(() => hung.close());
  const flaky = await flakyFront(collector.url, 3);
  cleanups.push(() => flaky.close());
  const cases = [
    { name: 'down', url: `http://127.0.0.1:${downPort}`, key: collector.apiKey },
    { name: 'hung', url: hung.url, key: collector.apiKey },
    { name: '401', url: collector.url, key: 'not-the-key' },
    { name: '500_then_ok', url: flaky.url, key: collector.apiKey },
  ];
  const runs = await Promise.all(
    cases.map(async (c) => {
      const fake = await fakeFor(bashTurns(3, `f${c.name}`, 0));
      const id = agentId(c.name);
      const state = stateDir(c.name);
      const r = await runSeed({ scenario: 'plain', collectorUrl: c.url, apiKey: c.key, agentId: id, fakeUrl: fake.url, state });
      note(`collector ${c.name}`, r);
      return { ...c, id, state, r };
    }),
  );
  for (const { name, r } of runs) {
    assert.equal(r.code, 0, `${name}: exit code unchanged\n${r.stderr.slice(-2000)}`);
    assert.ok(r.pastEndMs < SHUTDOWN_MS + SLACK_MS, `${name}: lived ${r.pastEndMs} ms past the agent's end`);
  }
  const by = new Map(runs.map((x) => [x.name, x]));
  assert.ok(by.get('down')!.r.pastEndMs < by.get('hung')!.r.pastEndMs, 'a refused connection does not wait for the deadline');
  assert.match(by.get('401')!.r.stderr, /rejected the API key repeatedly \(401\)/, 'said once at warn level');
  assert.equal(by.get('401')!.r.stderr.match(/\(401\)/g)?.length, 1);
  assert.ok(flaky.failed() === 3);

  // 500 then healthy: delivered by the same process
  {
    const [t, ...more] = await stored(by.get('500_then_ok')!.id);
    assert.equal(more.length, 0);
    assert.equal(t.status, 'succeeded');
    assertStepsOnce(t, ['toolu_f500_then_ok_0', 'toolu_f500_then_ok_1', 'toolu_f500_then_ok_2']);
  }
  // down, hung, 401: nothing reached the collector; all of it is in the spool, 0600 files
  for (const name of ['down', 'hung', '401']) {
    const { id, state } = by.get(name)!;
    assert.deepEqual(await collector.trajectories(id), [], `${name}: nothing stored yet`);
    const files = spoolFiles(state);
    assert.ok(files.length >= 1, `${name}: spooled`);
  }
  // the next process: the same snippet, the collector now reachable at the same URL (for the
  // down and hung cases the collector takes over their port), with the right key
  await hung.close();
  const secondCollectors = await Promise.all(
    (['down', 'hung'] as const).map(async (name) => {
      const port = Number(new URL(by.get(name)!.url).port);
      const c = new Collector(join(root, `data-${name}`), { apiKey: collector.apiKey });
      await c.start(port);
      cleanups.push(() => c.dispose());
      return [name, c] as const;
    }),
  );
  const targets = new Map<string, Collector>([...secondCollectors, ['401', collector]]);
  await Promise.all(
    ['down', 'hung', '401'].map(async (name) => {
      const { id, state, url } = by.get(name)!;
      const fake = await fakeFor(bashTurns(1, `g${name}`, 0));
      const r = await runSeed({ scenario: 'plain', collectorUrl: url, apiKey: collector.apiKey, agentId: id, fakeUrl: fake.url, state });
      assert.equal(r.code, 0, r.stderr);
      const c = targets.get(name)!;
      const list = await c.trajectories(id);
      const full = (await Promise.all(list.map((t: any) => c.trajectory(t.id)))).sort((a, b) => Date.parse(a.startTime) - Date.parse(b.startTime));
      assert.equal(full.length, 2, `${name}: the spooled run and the new one`);
      assert.equal(full[0].status, 'succeeded');
      assertStepsOnce(full[0], [`toolu_f${name}_0`, `toolu_f${name}_1`, `toolu_f${name}_2`]);
      assertStepsOnce(full[1], [`toolu_g${name}_0`]);
      assert.deepEqual(spoolFiles(state), [], `${name}: spool emptied`);
    }),
  );
});

test('streaming input with two prompts: two trajectories, one session; a subagent run: nested steps', { timeout: 180_000 }, async () => {
  const streamFake = await fakeFor(
    [
      { content: [{ type: 'tool_use', id: 'toolu_s1', name: 'Bash', input: { command: 'echo one', description: 'one' } }], stopReason: 'tool_use' },
      { content: [{ type: 'text', text: 'one is done' }], stopReason: 'end_turn' },
      { content: [{ type: 'tool_use', id: 'toolu_s2', name: 'Bash', input: { command: 'echo two', description: 'two' } }], stopReason: 'tool_use' },
      { content: [{ type: 'text', text: 'two is done' }], stopReason: 'end_turn' },
    ],
    (f) => (f.mode = 'count'),
  );
  const subFake = await fakeFor(
    [
      {
        content: [
          { type: 'text', text: 'Delegating.' },
          { type: 'tool_use', id: 'toolu_spawn', name: 'Agent', input: { description: 'sub job', prompt: 'SUBTASK: echo from the subagent', subagent_type: 'general-purpose', run_in_background: false } },
        ],
        stopReason: 'tool_use',
      },
      { content: [{ type: 'text', text: 'The subagent finished.' }], stopReason: 'end_turn' },
    ],
    (f) =>
      f.scripts.push({
        match: 'SUBTASK',
        turns: [
          { content: [{ type: 'tool_use', id: 'toolu_inner', name: 'Bash', input: { command: 'echo inner', description: 'inner' } }], stopReason: 'tool_use' },
          { content: [{ type: 'text', text: 'inner done' }], stopReason: 'end_turn' },
        ],
      }),
  );
  const streamId = agentId('stream');
  const subId = agentId('subagent');
  const [rs, rsub] = await Promise.all([
    runSeed({ scenario: 'stream', collectorUrl: collector.url, apiKey: collector.apiKey, agentId: streamId, fakeUrl: streamFake.url, state: stateDir('stream') }),
    runSeed({ scenario: 'plain', collectorUrl: collector.url, apiKey: collector.apiKey, agentId: subId, fakeUrl: subFake.url, state: stateDir('sub') }),
  ]);
  assert.equal(rs.code, 0, rs.stderr);
  assert.equal(rsub.code, 0, rsub.stderr);
  const two = await stored(streamId);
  assert.equal(two.length, 2);
  assert.deepEqual(two.map((t) => t.prompt), ['First task: say one', 'Second task: say two']);
  assert.equal(two[0].sessionId, two[1].sessionId);
  assert.deepEqual(two.map((t) => t.status), ['succeeded', 'succeeded']);
  assert.deepEqual(two.map((t) => t.result), ['one is done', 'two is done']);
  assertStepsOnce(two[0], ['toolu_s1']);
  assertStepsOnce(two[1], ['toolu_s2']);

  const [t] = await stored(subId);
  assert.equal(t.status, 'succeeded');
  const spawn = t.steps.find((s: any) => s.toolUseId === 'toolu_spawn');
  const inner = t.steps.find((s: any) => s.toolUseId === 'toolu_inner');
  assert.ok(spawn && inner, JSON.stringify(t.steps.map((s: any) => s.toolName)));
  assert.equal(inner.metadata.parentToolUseId, 'toolu_spawn');
  assert.equal(inner.metadata.agentType, 'general-purpose');
  assert.ok(typeof inner.metadata.agentId === 'string' && inner.metadata.agentId.length > 0);
  const events = t.steps.filter((s: any) => s.toolName === 'SubagentStart' || s.toolName === 'SubagentStop');
  assert.deepEqual(events.map((s: any) => s.toolName), ['SubagentStart', 'SubagentStop']);
  for (const e of events) assert.equal(e.metadata.parentToolUseId, 'toolu_spawn');
  assert.ok(inner.stepNumber > spawn.stepNumber);
  const texts = t.steps.filter((s: any) => s.toolName === 'assistant').map((s: any) => s.toolOutput);
  assert.ok(texts.includes('Delegating.') && texts.includes('The subagent finished.'), JSON.stringify(texts));
});

test('an outage with 300 × 1 MiB tool outputs: RSS stays under the byte bound + 64 MiB', { timeout: 120_000 }, async () => {
  const state = stateDir('rss');
  const r = await new Promise<{ code: number | null; out: string }>((done) => {
    const child = spawn(process.execPath, ['--expose-gc', rssFixture], {
      env: { ...process.env, XDG_STATE_HOME: join(state, 'xdg'), COLLECTOR_URL: `http://127.0.0.1:9` },
      cwd: pkgRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      children.delete(child);
      done({ code, out });
    });
  });
  assert.equal(r.code, 0, r.out);
  const m = JSON.parse(r.out.trim().split('\n').pop()!);
  const MiB = 1024 * 1024;
  figures.push(`outage RSS: baseline ${(m.baselineRss / MiB).toFixed(1)} MiB, peak ${(m.peakRss / MiB).toFixed(1)} MiB, queued ${(m.stats.queuedBytes / MiB).toFixed(1)} MiB, spooled ${m.stats.spooled}, dropped ${m.stats.dropped}`);
  assert.ok(m.stats.queuedBytes <= 32 * MiB, `queued ${m.stats.queuedBytes}`);
  assert.ok(m.peakRss < 32 * MiB + 64 * MiB + m.baselineRss, `peak RSS ${(m.peakRss / MiB).toFixed(1)} MiB`);
  assert.ok(m.stats.spooled > 0, 'the oldest went to the spool');
});

test('await shutdown()/flush() in an ES module with the collector down or hung: the code after it runs, exit 0', { timeout: 60_000 }, async () => {
  const hung = await new HungServer().start();
  cleanups.push(() => hung.close());
  const down = `http://127.0.0.1:${await freePort()}`;
  const script = `
    import { instrument } from '@agent-lightning/instrumentation';
    const lightning = instrument({ collectorUrl: process.env.COLLECTOR_URL, apiKey: 'k', agentId: 'esm-shutdown' });
    const [stop] = lightning.hooks.Stop[0].hooks;
    await stop({ hook_event_name: 'Stop', session_id: 's', last_assistant_message: 'done' }, 'x', { signal: new AbortController().signal });
    await lightning.flush({ timeoutMs: 300 });
    const t0 = Date.now();
    await lightning.shutdown();
    console.log('after shutdown', Date.now() - t0, JSON.stringify(lightning.stats()));
  `;
  for (const [name, url] of [['down', down], ['hung', hung.url]] as const) {
    const state = stateDir(`esm-${name}`);
    const r = await new Promise<{ code: number | null; out: string }>((done) => {
      const c = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: pkgRoot, env: { ...process.env, COLLECTOR_URL: url, XDG_STATE_HOME: join(state, 'xdg') }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      c.on('exit', (code) => done({ code, out }));
    });
    assert.equal(r.code, 0, `${name}: ${r.out}`);
    const m = /after shutdown (\d+) (.*)/.exec(r.out);
    assert.ok(m, `${name}: the code after await shutdown() ran: ${r.out}`);
    assert.ok(Number(m![1]) <= SHUTDOWN_MS + 1000, `${name}: shutdown took ${m![1]} ms`);
    const stats = JSON.parse(m![2]!);
    assert.equal(stats.dropped, 0);
    assert.ok(stats.spooled >= 2, `${name}: spooled ${stats.spooled}`);
    figures.push(`ESM await shutdown(), collector ${name}: resolved in ${m![1]} ms, exit 0`);
  }
});
