/**
 * Redaction never runs inside a hook. In a real agent the tool runs between PreToolUse and
 * PostToolUse, so the Pre record has already been prepared (redacted, truncated) when the Post
 * hook brings the output: the output must be kept raw and redacted later, off the hook path.
 * The redactor is counted (a spy on Redactor.prototype.text), not timed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redactor } from '../../src/redact.js';
import { MockCollector } from '../helpers/mock-collector.js';
import { SessionSim } from '../helpers/sim.js';
import { make } from '../helpers/make.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

let calls = 0;
let bytesRedacted = 0;
const original = Redactor.prototype.text;
let mock: MockCollector;
before(async () => {
  mock = await new MockCollector().start();
  Redactor.prototype.text = function (this: Redactor, input: string): string {
    calls++;
    bytesRedacted += input.length;
    return original.call(this, input);
  };
});
after(() => {
  Redactor.prototype.text = original;
  mock.close();
});

// assembled at run time so that scanners do not take the test for a leak
const token = `ghp_${'Zq7Lm2Xv9Rt4'.repeat(3)}`;
const password = `Hv9${'kQ2zP7wX'.repeat(2)}`;

function output(bytes: number): string {
  const head = `loaded config\nGITHUB_TOKEN=${token}\nDB_PASSWORD=${password}\n`;
  const line = 'INFO request handled in 3 ms status=200 path=/api/items\n';
  return head + line.repeat(Math.ceil((bytes - head.length) / line.length));
}

test('the PostToolUse hook does not redact: its redactor calls stay at zero whatever the output size; the stored step is redacted', async () => {
  for (const size of [1024, 1024 * 1024]) {
    mock.trajectories.clear();
    mock.requests.length = 0;
    const { lightning } = make(mock.url, { flushInterval: 60_000, batchSize: 10 });
    const s = new SessionSim(lightning.hooks);
    await s.prompt('show the config');
    const id = s.newId();
    await s.pre('Bash', { command: 'cat app.log' }, id);
    const beforeTool = calls;
    await turn(); // the tool runs: the Pre record is prepared meanwhile
    await turn();
    assert.ok(calls > beforeTool, 'the Pre record was prepared (redacted) between the hooks, as in a real agent');

    const text = output(size);
    const atPost = calls;
    const bytesAtPost = bytesRedacted;
    await s.post('Bash', { command: 'cat app.log' }, id, { stdout: text, stderr: '', interrupted: false });
    assert.equal(calls - atPost, 0, `${size} B output: the Post hook returned without calling the redactor`);
    assert.equal(bytesRedacted - bytesAtPost, 0);

    await s.stop('done');
    await lightning.flush({ timeoutMs: 10_000 });
    assert.ok(bytesRedacted - bytesAtPost >= Math.min(size, 32 * 1024), 'the output was redacted after the hook, before sending');
    await lightning.shutdown({ timeoutMs: 1000 });

    const steps = mock.toolStepsOf(mock.only().id);
    assert.equal(steps.length, 1);
    const stdout = steps[0].toolOutput.stdout as string;
    assert.equal(steps[0].toolInput.command, 'cat app.log');
    assert.ok(stdout.startsWith('loaded config\nGITHUB_TOKEN=[REDACTED:'), stdout.slice(0, 80));
    assert.ok(stdout.includes('DB_PASSWORD=[REDACTED:'), 'the password line is redacted');
    const body = JSON.stringify(mock.requests.map((r) => r.body));
    assert.ok(!body.includes(token) && !body.includes(password), 'no secret reached the collector');
    assert.equal(steps[0].durationMs, 5, 'the closing fields were merged into the step');
  }
});

test('a Post hook right after Pre (no turn between) also leaves redaction to the sender', async () => {
  mock.trajectories.clear();
  mock.requests.length = 0;
  const { lightning } = make(mock.url);
  const s = new SessionSim(lightning.hooks);
  const id = s.newId();
  const atPre = calls;
  await s.pre('Bash', { command: 'cat app.log' }, id);
  await s.post('Bash', { command: 'cat app.log' }, id, { stdout: output(64 * 1024), stderr: '', interrupted: false });
  assert.equal(calls - atPre, 0, 'neither hook called the redactor');
  await lightning.flush({ timeoutMs: 10_000 });
  await lightning.shutdown({ timeoutMs: 1000 });
  const stdout = mock.toolStepsOf(mock.only().id)[0].toolOutput.stdout as string;
  assert.ok(stdout.includes('GITHUB_TOKEN=[REDACTED:') && !stdout.includes(token));
});
