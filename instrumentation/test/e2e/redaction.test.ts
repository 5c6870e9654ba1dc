/**
 * End to end: a secret printed by a real tool never reaches the collector, and the hooks never
 * redact. The real Claude Agent SDK runs `cat .env` (a real Bash call) against a local fake
 * Messages API; the file holds secrets and 48 KiB of log lines. The real collector's API then
 * shows the stored step. A spy on Redactor.prototype.text counts the calls made while a hook's
 * callback runs (its body is synchronous: the flag is set around the call itself).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { query, type Options } from '@anthropic-ai/claude-agent-sdk';
import { instrument } from '../../src/index.js';
import { Redactor } from '../../src/redact.js';
import type { LightningHooks } from '../../src/types.js';
import { Collector, toolSteps } from '../helpers/collector.js';
import { FakeAnthropic, type Turn } from '../helpers/fake-anthropic.js';
import { sdkEnv } from '../helpers/faults.js';

let collector: Collector;
let work: string;
let home: string;
let inHook = false;
let callsInHooks = 0;
let callsOutside = 0;
const original = Redactor.prototype.text;

before(async () => {
  collector = await new Collector().start();
  work = mkdtempSync(join(tmpdir(), 'lightning-e2e-redact-'));
  home = mkdtempSync(join(tmpdir(), 'lightning-e2e-redact-home-'));
  Redactor.prototype.text = function (this: Redactor, input: string): string {
    if (inHook) callsInHooks++;
    else callsOutside++;
    return original.call(this, input);
  };
});
after(async () => {
  Redactor.prototype.text = original;
  await collector.dispose();
  rmSync(work, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

/** The same hooks, with the spy's flag set while each callback's synchronous body runs. */
function flagged(hooks: LightningHooks): LightningHooks {
  const out: Record<string, unknown> = {};
  for (const [event, matchers] of Object.entries(hooks)) {
    out[event] = (matchers as LightningHooks['PreToolUse']).map((m) => ({
      ...m,
      hooks: m.hooks.map((cb) => (input: never, id: string | undefined, opts: { signal: AbortSignal }) => {
        inHook = true;
        try {
          return cb(input, id, opts);
        } finally {
          inHook = false;
        }
      }),
    }));
  }
  return out as unknown as LightningHooks;
}

test('a secret printed by a real Bash call is stored redacted, and no hook called the redactor', { timeout: 180_000 }, async () => {
  // fake values, assembled at run time
  const token = `ghp_${'Vb7Qm2Lx9Rt4Nc'.repeat(3).slice(0, 36)}`;
  const password = `Tz8${'qWe4rTy6'.repeat(2)}`;
  const logLine = 'INFO 2026-12-02T01:02:03Z GET /api/items 200 3ms\n';
  writeFileSync(join(work, '.env'), `GITHUB_TOKEN=${token}\nDB_PASSWORD=${password}\nLOG_LEVEL=debug\n${logLine.repeat(1000)}`);
  const turns: Turn[] = [
    {
      content: [{ type: 'tool_use', id: 'toolu_e2e_cat', name: 'Bash', input: { command: 'cat .env', description: 'show the env file' } }],
      stopReason: 'tool_use',
    },
    { content: [{ type: 'text', text: 'The env file sets a GitHub token and a database password.' }], stopReason: 'end_turn' },
  ];
  const fake = await new FakeAnthropic(turns).start();
  const agentId = `e2e-redact-${Math.random().toString(36).slice(2, 8)}`;
  const lightning = instrument({ collectorUrl: collector.url, apiKey: collector.apiKey, agentId, handleProcessExit: false, spool: false });
  const options: Options = {
    cwd: work,
    model: 'claude-sonnet-4-5-20250929',
    permissionMode: 'default',
    allowedTools: ['Bash'],
    settingSources: [],
    maxTurns: 5,
    env: sdkEnv(fake.url, home),
    hooks: flagged(lightning.hooks),
  };
  let result: any;
  try {
    for await (const message of lightning.track(query({ prompt: 'What does .env set?', options }), { prompt: 'What does .env set?' })) {
      if (message.type === 'result') result = message;
    }
  } finally {
    await fake.close();
  }
  assert.equal(result?.is_error, false, JSON.stringify(result));
  await lightning.flush({ timeoutMs: 10_000 });
  await lightning.shutdown({ timeoutMs: 2000 });

  assert.equal(callsInHooks, 0, 'no hook callback called the redactor');
  assert.ok(callsOutside > 0, 'the records were redacted, after the hooks');

  const t = await collector.only(agentId);
  const [cat] = toolSteps(t);
  assert.equal(cat.toolName, 'Bash');
  assert.equal(cat.toolInput.command, 'cat .env');
  const stdout = cat.toolOutput.stdout as string;
  assert.ok(stdout.startsWith('GITHUB_TOKEN=[REDACTED:github_token]\nDB_PASSWORD=[REDACTED:'), stdout.slice(0, 120));
  assert.ok(stdout.includes('LOG_LEVEL=debug\nINFO 2026-12-02T01:02:03Z GET /api/items 200 3ms'), 'the rest of the output is kept');
  const stored = JSON.stringify(await collector.get(`/api/trajectories/${encodeURIComponent(t.id)}`));
  assert.ok(!stored.includes(token) && !stored.includes(password), 'no secret in what the collector serves');
  assert.ok((lightning.stats().redactions.github_token ?? 0) >= 1, JSON.stringify(lightning.stats().redactions));
});
