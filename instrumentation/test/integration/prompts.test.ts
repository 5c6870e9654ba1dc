/**
 * prompt() against the real collector's prompt registry (`/api/agents/{agentId}/prompts…`):
 * the fallback when nothing is registered, still the fallback while registered versions are
 * unpromoted candidates (latest answers 404), then the promoted version, and the version
 * carried by the trajectories recorded afterwards.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Collector, toolSteps } from '../helpers/collector.js';
import { SessionSim, messages, resultMessage } from '../helpers/sim.js';
import { make } from '../helpers/make.js';
import type { Lightning } from '../../src/types.js';

/** What these tests check of a prompt result (it also carries the assignment: arm, unit). */
function core(r: { text: string; version: string | null; source: string }) {
  return { text: r.text, version: r.version, source: r.source };
}

let collector: Collector;
before(async () => {
  collector = await new Collector().start();
});
after(async () => {
  await collector.dispose();
});

const agent = (name: string) => `${name}-${Math.random().toString(36).slice(2, 8)}`;
const prompts = (agentId: string) => `/api/agents/${encodeURIComponent(agentId)}/prompts`;

/** One tracked query driven through the hooks: a task prompt, a tool call, Stop and the result message. */
async function record(lightning: Lightning, sessionId: string, task: string, systemPrompt: string): Promise<void> {
  const s = new SessionSim(lightning.hooks, sessionId);
  const list = [
    { type: 'system', subtype: 'init', session_id: sessionId, model: 'claude-sonnet-test', cwd: '/w' },
    resultMessage(sessionId),
  ];
  let i = 0;
  for await (const _m of lightning.track(messages(list), { systemPrompt })) {
    if (i++ > 0) continue;
    await s.prompt(task);
    await s.call('Read', { file_path: '/w/a.ts' }, 'export {}');
    await s.stop('done');
  }
  await lightning.flush({ timeoutMs: 5000 });
}

async function stored(agentId: string, sessionId: string): Promise<any> {
  const t = (await collector.trajectories(agentId)).find((x) => x.sessionId === sessionId);
  assert.ok(t, `trajectory of ${sessionId} is stored`);
  return collector.trajectory(t.id);
}

test('prompt(): fallback without a promoted version, then the promoted version, tagged on later trajectories', async () => {
  const agentId = agent('it-prompts');
  const FALLBACK = 'You are a careful coding agent.';

  // 1. nothing registered: the fallback, quietly, and no promptVersion on the trajectory
  const { lightning: first, logs } = make(collector.url, { apiKey: collector.apiKey, agentId });
  assert.deepEqual(core(await first.promptDetails(FALLBACK)), { text: FALLBACK, version: null, source: 'fallback' });
  assert.equal(await first.prompt(FALLBACK), FALLBACK);
  assert.equal(first.stats().promptVersion, null);
  assert.deepEqual(logs.warn, [], 'a 404 from the registry is not worth a warning');
  const s0 = new SessionSim(first.hooks, 'sess-p-none');
  await s0.prompt('task before any prompt version');
  await s0.call('Read', { file_path: '/w/a.ts' }, 'export {}');
  await s0.stop();
  await first.flush({ timeoutMs: 5000 });
  const t0 = await stored(agentId, 'sess-p-none');
  assert.equal(t0.promptVersion, null);
  assert.equal(t0.status, 'succeeded');

  // 2. register versions 1 and 2 through the API
  const v1 = await collector.post(prompts(agentId), { text: 'PROMPT V1: read before you write.', note: 'hand-written' }, 201);
  assert.deepEqual(
    { agentId: v1.agentId, version: v1.version, text: v1.text, note: v1.note, promoted: v1.promoted, sourceRunId: v1.sourceRunId },
    { agentId, version: 1, text: 'PROMPT V1: read before you write.', note: 'hand-written', promoted: false, sourceRunId: null },
  );
  const v2 = await collector.post(prompts(agentId), { text: 'PROMPT V2: run the tests first.' }, 201);
  assert.equal(v2.version, 2);
  assert.equal(v2.promoted, false);

  // nothing promoted yet: both are candidates, latest is 404, the agent keeps its own prompt
  const latest = await fetch(`${collector.url}${prompts(agentId)}/latest`, { headers: { authorization: `Bearer ${collector.apiKey}` } });
  assert.equal(latest.status, 404);
  assert.match(((await latest.json()) as { error: string }).error, /no promoted prompt/);
  const { lightning: peek, logs: peekLogs } = make(collector.url, { apiKey: collector.apiKey, agentId });
  assert.deepEqual(core(await peek.promptDetails(FALLBACK)), { text: FALLBACK, version: null, source: 'fallback' });
  assert.equal(peek.stats().promptVersion, null);
  assert.deepEqual(peekLogs.warn, [], 'an unpromoted registry is not worth a warning');
  await record(peek, 'sess-p-candidates', 'task while only candidates exist', await peek.prompt(FALLBACK));
  const tc = await stored(agentId, 'sess-p-candidates');
  assert.equal(tc.promptVersion, null);
  assert.equal(tc.systemPrompt, FALLBACK);
  await peek.shutdown({ timeoutMs: 500 });

  // 3. promote version 1: the promoted one wins over the newer version 2
  const promoted1 = await collector.post(`${prompts(agentId)}/1/promote`);
  assert.equal(promoted1.version, 1);
  assert.equal(promoted1.promoted, true);
  const sp1 = await first.prompt(FALLBACK);
  assert.equal(sp1, 'PROMPT V1: read before you write.');
  assert.equal(first.stats().promptVersion, '1');
  await record(first, 'sess-p-v1', 'task with version 1', sp1);
  const t1 = await stored(agentId, 'sess-p-v1');
  assert.equal(t1.promptVersion, '1');
  assert.equal(t1.systemPrompt, 'PROMPT V1: read before you write.');
  assert.equal(t1.prompt, 'task with version 1');
  assert.equal(t1.status, 'succeeded');
  assert.deepEqual(toolSteps(t1).map((x: any) => x.toolName), ['Read']);
  // a trajectory is tagged when it starts; the earlier one is not rewritten
  assert.equal((await stored(agentId, 'sess-p-none')).promptVersion, null);

  // 4. promote version 2: a new instrument()/prompt() picks it up
  const promoted2 = await collector.post(`${prompts(agentId)}/2/promote`);
  assert.equal(promoted2.version, 2);
  assert.equal(promoted2.promoted, true);
  const listed = (await collector.get(prompts(agentId))).prompts;
  assert.deepEqual(listed.map((p: any) => [p.version, p.promoted]), [[2, true], [1, false]], 'only one version is promoted');
  const { lightning: second } = make(collector.url, { apiKey: collector.apiKey, agentId });
  const sp2 = await second.prompt(FALLBACK);
  assert.equal(sp2, 'PROMPT V2: run the tests first.');
  assert.equal(second.stats().promptVersion, '2');
  await record(second, 'sess-p-v2', 'task with version 2', sp2);
  const t2 = await stored(agentId, 'sess-p-v2');
  assert.equal(t2.promptVersion, '2');
  assert.equal(t2.systemPrompt, 'PROMPT V2: run the tests first.');
  // an instance that fetched earlier keeps its version until its next prompt() call
  assert.equal(first.stats().promptVersion, '1');
  assert.equal(await first.prompt(FALLBACK), 'PROMPT V2: run the tests first.');
  assert.equal(first.stats().promptVersion, '2');

  const all = await collector.trajectories(agentId);
  assert.deepEqual(
    all.map((t) => [t.sessionId, t.promptVersion]).sort(),
    [['sess-p-candidates', null], ['sess-p-none', null], ['sess-p-v1', '1'], ['sess-p-v2', '2']],
  );
  assert.equal(first.stats().dropped + second.stats().dropped, 0);
  await first.shutdown({ timeoutMs: 500 });
  await second.shutdown({ timeoutMs: 500 });
});

test('prompt(): agent ids that need URL encoding reach the same registry entry', async () => {
  const agentId = agent('it prompts/with space');
  const created = await collector.post(prompts(agentId), { text: 'encoded agent prompt', promote: true }, 201);
  assert.equal(created.agentId, agentId);
  assert.equal(created.promoted, true);
  const { lightning } = make(collector.url, { apiKey: collector.apiKey, agentId });
  const details = await lightning.promptDetails('fb');
  assert.deepEqual(core(details), { text: 'encoded agent prompt', version: '1', source: 'collector' });
  await record(lightning, 'sess-p-enc', 'encoded', details.text);
  assert.equal((await stored(agentId, 'sess-p-enc')).promptVersion, '1');
  await lightning.shutdown({ timeoutMs: 500 });
});

test('prompt(): a wrong key gets the fallback and says so at warn level', async () => {
  // (issue 17 changed this on purpose: one 401 no longer ends capture; ingest stops sending only
  // after repeated 401s, keeping the data for the spool)
  const agentId = agent('it-prompts-401');
  await collector.post(prompts(agentId), { text: 'secret prompt', promote: true }, 201);
  const { lightning, logs } = make(collector.url, { apiKey: 'not-the-key', agentId });
  assert.deepEqual(core(await lightning.promptDetails('fb')), { text: 'fb', version: null, source: 'fallback' });
  assert.equal(logs.warn.filter((w) => w.includes('401')).length, 1);
  await lightning.shutdown({ timeoutMs: 200 });
});
