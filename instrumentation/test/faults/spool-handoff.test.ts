/**
 * Fault: the collector is down for the agent process's whole life. The agent (the real Claude
 * Agent SDK in a child process) runs to completion and exits by itself with `spoolDir` set;
 * a second process using the same spool directory, with the collector up, delivers everything.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Collector, freePort, toolSteps } from '../helpers/collector.js';
import { FakeAnthropic } from '../helpers/fake-anthropic.js';
import { bashTurns, removeDir } from '../helpers/faults.js';

const fixture = resolve(fileURLToPath(new URL('./fixtures/spool-agent.js', import.meta.url)));
const cleanups: (() => Promise<void> | void)[] = [];
const children = new Set<import('node:child_process').ChildProcess>();
after(async () => {
  for (const c of children) killGroup(c);
  for (const c of cleanups.reverse()) await c();
});

/** Kills a child and everything it started (its process group: the SDK's CLI included). */
function killGroup(c: import('node:child_process').ChildProcess): void {
  if (c.exitCode !== null || c.signalCode !== null || !c.pid) return;
  try {
    process.kill(-c.pid, 'SIGKILL');
  } catch {
    c.kill('SIGKILL');
  }
}

function runChild(env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; output: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.add(child);
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      killGroup(child);
      fail(new Error(`child (${env.MODE}) did not exit within ${timeoutMs} ms:\n${output.slice(-3000)}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      done({ code, output, ms: Date.now() - t0 });
    });
  });
}

test('collector down for the whole life of the agent process: the next process delivers everything from the spool', { timeout: 120_000 }, async () => {
  const STEPS = 24;
  const root = mkdtempSync(join(tmpdir(), 'lightning-fault-spool-'));
  cleanups.push(() => removeDir(root));
  const spoolDir = join(root, 'spool');
  const port = await freePort(); // nothing listens here while the agent runs
  const collector = new Collector(join(root, 'data'));
  cleanups.push(() => collector.dispose());
  const fake = await new FakeAnthropic(bashTurns(STEPS, 'spool')).start();
  cleanups.push(() => fake.close());
  const agentId = `fault-spool-${Math.random().toString(36).slice(2, 8)}`;
  const common = {
    COLLECTOR_URL: `http://127.0.0.1:${port}`,
    API_KEY: collector.apiKey,
    AGENT_ID: agentId,
    SPOOL_DIR: spoolDir,
  };

  const first = await runChild(
    { ...common, MODE: 'agent', FAKE_URL: fake.url, HOME_DIR: join(root, 'home'), WORK_DIR: root, RESULT_FILE: join(root, 'agent.json') },
    60_000,
  );
  assert.equal(first.code, 0, first.output);
  const agent = JSON.parse(readFileSync(join(root, 'agent.json'), 'utf8'));
  assert.equal(agent.run.result.is_error, false);
  assert.equal(agent.run.pre.length, STEPS, 'the agent made every scripted call');
  assert.equal(agent.stats.sent, 0, 'nothing could be sent during its life');
  assert.ok(agent.stats.failed > 0, 'it tried');
  assert.equal(agent.exitStats.queued, 0);
  assert.equal(agent.exitStats.dropped, 0, 'nothing dropped: undelivered records went to the spool');
  assert.ok(agent.exitStats.spooled > STEPS, `spooled ${agent.exitStats.spooled} records`);
  const spoolFiles = readdirSync(spoolDir);
  assert.equal(spoolFiles.length, 1, `one spool file: ${spoolFiles.join(', ')}`);
  const spoolBytes = statSync(join(spoolDir, spoolFiles[0]!)).size;
  const spoolLines = readFileSync(join(spoolDir, spoolFiles[0]!), 'utf8').trim().split('\n').length;

  await collector.start(port);
  assert.deepEqual(await collector.trajectories(agentId), [], 'the collector starts empty');
  const second = await runChild({ ...common, MODE: 'replay', RESULT_FILE: join(root, 'replay.json') }, 60_000);
  assert.equal(second.code, 0, second.output);
  const replay = JSON.parse(readFileSync(join(root, 'replay.json'), 'utf8'));
  assert.equal(replay.stats.replayed, spoolLines, 'every spooled record was replayed');
  assert.equal(replay.stats.queued, 0);
  assert.equal(replay.stats.dropped, 0);
  assert.deepEqual(readdirSync(spoolDir), [], 'the delivered spool file was deleted');

  const t = await collector.only(agentId);
  assert.equal(toolSteps(t).length, STEPS);
  assert.deepEqual(toolSteps(t).map((s: any) => s.toolUseId), agent.run.pre, 'stored steps are exactly what PreToolUse saw, in order');
  for (const s of toolSteps(t)) {
    const n = Number(String(s.toolUseId).split('_').pop());
    assert.equal(s.toolOutput?.stdout, `step-${n}`);
    assert.equal(s.error, null);
  }
  assert.equal(t.status, 'succeeded');
  assert.equal(t.numTurns, agent.run.result.num_turns);
  assert.ok(Math.abs(t.costUsd - agent.run.result.total_cost_usd) < 1e-9, `cost ${t.costUsd} vs ${agent.run.result.total_cost_usd}`);
  assert.equal(t.prompt, 'Run the scripted commands while the collector is down.');
  console.log(
    `# spool: agent process ran ${first.ms} ms with no collector (failed=${agent.stats.failed}), spooled ${agent.exitStats.spooled} records ` +
      `(${spoolLines} lines, ${spoolBytes} bytes); replay process delivered ${replay.stats.sent} records in ${second.ms} ms; ${toolSteps(t).length}/${STEPS} steps stored`,
  );
});
