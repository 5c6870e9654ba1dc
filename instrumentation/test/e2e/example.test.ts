/** The example agent in examples/ runs as documented and its trajectory reaches the collector. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Collector, toolSteps } from '../helpers/collector.js';
import { FakeAnthropic } from '../helpers/fake-anthropic.js';

const root = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
let collector: Collector;
let dir: string;
before(async () => {
  collector = await new Collector().start();
  dir = mkdtempSync(join(tmpdir(), 'lightning-example-'));
});
after(async () => {
  await collector.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('examples/basic-agent.mjs records its run with an ingest key', { timeout: 120_000 }, async () => {
  writeFileSync(join(dir, 'notes.txt'), 'a\nb\n');
  const fake = await new FakeAnthropic([
    { content: [{ type: 'tool_use', id: 'toolu_ex_ls', name: 'Bash', input: { command: 'ls -S', description: 'list by size' } }], stopReason: 'tool_use' },
    { content: [{ type: 'tool_use', id: 'toolu_ex_rm', name: 'Bash', input: { command: 'rm -rf notes.txt', description: 'clean' } }], stopReason: 'tool_use' },
    { content: [{ type: 'text', text: 'notes.txt is the largest file.' }], stopReason: 'end_turn' },
  ]).start();
  // The key the README tells users to give an agent: an `ingest` key, not the admin API_KEY.
  const ingestKey = await collector.createKey('example-agent', 'ingest');
  const probe = await fetch(`${collector.url}/api/trajectories`, { headers: { authorization: `Bearer ${ingestKey}` } });
  assert.equal(probe.status, 403, 'an ingest key cannot read trajectories');
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('ANTHROPIC_') || k.startsWith('CLAUDE')) delete env[k];
  Object.assign(env, {
    COLLECTOR_URL: collector.url,
    LIGHTNING_API_KEY: ingestKey,
    AGENT_ID: 'example-agent-test',
    WORKDIR: dir,
    ANTHROPIC_BASE_URL: fake.url,
    ANTHROPIC_API_KEY: 'sk-ant-test-dummy-key',
    CLAUDE_CONFIG_DIR: join(dir, '.claude-config'),
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_ERROR_REPORTING: '1',
  });
  let out = '';
  const code = await new Promise<number | null>((done) => {
    const child = spawn(process.execPath, ['examples/basic-agent.mjs', 'Which file is largest?'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', done);
  });
  await fake.close();
  assert.equal(code, 0, out);
  assert.match(out, /notes\.txt is the largest file\./);
  assert.match(out, /\[lightning\] sent=\d+ dropped=0/);
  const t = await collector.only('example-agent-test');
  assert.equal(t.status, 'succeeded');
  assert.equal(t.prompt, 'Which file is largest?');
  assert.deepEqual(toolSteps(t).map((s: any) => [s.toolName, s.toolInput.command]), [['Bash', 'ls -S'], ['Bash', 'rm -rf notes.txt']]);
  assert.match(toolSteps(t)[0].toolOutput.stdout, /notes\.txt/);
  assert.match(toolSteps(t)[1].error, /rm -rf is not allowed here/);
  assert.ok(t.costUsd > 0);
});
