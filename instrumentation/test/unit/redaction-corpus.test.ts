/**
 * The shared redaction corpus (testdata/redaction, also run by the Python package) through the
 * public hook path: instrument() with a collector, Bash calls whose command and output carry the
 * text, as an agent's tools would. What reaches the collector is what a user would see stored.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MockCollector } from '../helpers/mock-collector.js';
import { SessionSim } from '../helpers/sim.js';
import { make } from '../helpers/make.js';

interface SecretEntry {
  kind: string;
  text: string;
  secret: string;
}
interface BenignEntry {
  kind: string;
  text: string;
}

const dir = new URL('../../../../testdata/redaction/', import.meta.url);
const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as T;
const secrets = load<SecretEntry[]>('secrets.json');
const benign = load<BenignEntry[]>('benign.json');

/** Wilson score interval (95 %) for k successes in n trials, in percent. */
function wilson(k: number, n: number): [number, number] {
  const z = 1.959964;
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, c - h) * 100, Math.min(1, c + h) * 100];
}
const pct = ([lo, hi]: [number, number]): string => `95 % Wilson ${lo.toFixed(1)}–${hi.toFixed(1)} %`;

/** Every string (keys and values) of every request body the collector received. */
function payloadStrings(mock: MockCollector): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        out.push(k);
        walk(x);
      }
    }
  };
  for (const r of mock.requests) walk(r.body);
  return out;
}

/** Runs each text as a Bash call: the command is the text, and so is its stdout. */
async function runThroughHooks(mock: MockCollector, texts: string[], debug: boolean) {
  const { lightning, logs } = make(mock.url, { debug, batchSize: 50, maxBatchBytes: 4 * 1024 * 1024 });
  const s = new SessionSim(lightning.hooks);
  await s.prompt('run the corpus');
  for (const text of texts) {
    const id = s.newId();
    await s.pre('Bash', { command: text, description: 'corpus entry' }, id);
    await s.post('Bash', { command: text, description: 'corpus entry' }, id, { stdout: text, stderr: '', interrupted: false });
  }
  await s.stop('done');
  await lightning.flush({ timeoutMs: 10_000 });
  const stats = lightning.stats();
  await lightning.shutdown({ timeoutMs: 1000 });
  // Only tool calls: the final answer arrives as a step of kind `message` (CONTRACTS: step kinds).
  const steps = mock.stepsOf(mock.only().id).filter((st) => (st.kind ?? 'tool') === 'tool');
  return { stats, logs, steps };
}

let mock: MockCollector;
before(async () => {
  mock = await new MockCollector().start();
});
after(() => mock.close());

test('the corpora have the shape and size the issue asks for', () => {
  assert.ok(secrets.length >= 80, `${secrets.length} secret entries`);
  assert.ok(new Set(secrets.map((e) => e.kind)).size >= 40, 'at least 40 kinds');
  for (const e of secrets) {
    assert.equal(typeof e.kind, 'string');
    assert.ok(e.secret.length >= 6, `${e.kind}: secret too short to be meaningful`);
    assert.ok(e.text.includes(e.secret), `${e.kind}: text must contain the secret`);
  }
  assert.ok(benign.length >= 40, `${benign.length} benign entries`);
  for (const e of benign) assert.equal(typeof e.text, 'string');
});

test('recall: no secret of the corpus reaches the collector, and the logs never print one', async (t) => {
  mock.trajectories.clear();
  mock.requests.length = 0;
  const { stats, logs, steps } = await runThroughHooks(
    mock,
    secrets.map((e) => e.text),
    true,
  );
  assert.equal(steps.length, secrets.length, 'every call was delivered');
  const haystack = payloadStrings(mock).join('\n');
  const leaked = secrets.filter((e) => haystack.includes(e.secret));
  // stricter: no 16-character piece of a secret survives either
  const partial = secrets.filter((e) => {
    if (e.secret.length <= 16) return false;
    for (let i = 0; i + 16 <= e.secret.length; i++) if (haystack.includes(e.secret.slice(i, i + 16))) return true;
    return false;
  });
  const logText = [...logs.debug, ...logs.warn].join('\n');
  const inLogs = secrets.filter((e) => logText.includes(e.secret));
  const total = Object.values(stats.redactions).reduce((a, b) => a + b, 0);
  const kept = secrets.length - leaked.length - partial.filter((e) => !leaked.includes(e)).length;
  t.diagnostic(`in-sample recall ${kept}/${secrets.length} (${pct(wilson(kept, secrets.length))}); partial leaks ${partial.length}; ${total} values redacted`);
  assert.deepEqual(leaked.map((e) => e.kind), [], 'secrets that reached the collector');
  assert.deepEqual(partial.map((e) => e.kind), [], 'secrets of which a 16-character piece reached the collector');
  assert.deepEqual(inLogs.map((e) => e.kind), [], 'secrets printed in logs');
  // each entry is sent twice (command and stdout) and may hold more than one secret
  assert.ok(total >= 2 * secrets.length, `stats().redactions counts every value: ${JSON.stringify(stats.redactions)}`);
  assert.ok(logs.debug.some((l) => l.startsWith('[Lightning Redaction] Redacted ')), 'debug logs say what kind was redacted');
  // the command and the output of each call were both redacted, the rest of the step kept
  for (const st of steps) {
    assert.equal(st.toolName, 'Bash');
    assert.equal(st.toolInput.description, 'corpus entry');
    assert.match(st.toolInput.command, /\[REDACTED:[a-z0-9_]+\]/);
    assert.match(st.toolOutput.stdout, /\[REDACTED:[a-z0-9_]+\]/);
  }
});

test('false positives: every benign line reaches the collector unchanged, nothing is counted', async (t) => {
  mock.trajectories.clear();
  mock.requests.length = 0;
  const { stats, steps } = await runThroughHooks(
    mock,
    benign.map((e) => e.text),
    false,
  );
  assert.equal(steps.length, benign.length);
  let lines = 0;
  const changed: string[] = [];
  benign.forEach((e, i) => {
    const st = steps[i];
    for (const got of [st.toolInput.command as string, st.toolOutput.stdout as string]) {
      const want = e.text.split('\n');
      const have = got.split('\n');
      lines += want.length;
      want.forEach((line, j) => {
        if (have[j] !== line) changed.push(`${e.kind}: ${JSON.stringify(line).slice(0, 120)} -> ${JSON.stringify(have[j] ?? '').slice(0, 120)}`);
      });
    }
  });
  t.diagnostic(`benign: ${changed.length} changed of ${lines / 2} lines (×2 fields: command and stdout)`);
  assert.deepEqual(changed, []);
  assert.deepEqual(stats.redactions, {});
});

test('instrument({ redact: { extraPatterns, allow } }), redactPatterns and redact: false, as documented', async () => {
  const aws = secrets.find((e) => e.kind === 'aws_access_key_id')!.secret;
  const gh = secrets.find((e) => e.kind === 'github_classic_pat')!.secret;
  const text = `ticket ACME-123456 ref TICKET-9876 id ${aws} token ${gh} internal-ZZ-42`;
  const run = async (over: Parameters<typeof make>[1]) => {
    mock.trajectories.clear();
    mock.requests.length = 0;
    const { lightning } = make(mock.url, over);
    const s = new SessionSim(lightning.hooks);
    const id = s.newId();
    await s.pre('Bash', { command: 'echo' }, id);
    await s.post('Bash', { command: 'echo' }, id, text);
    await lightning.flush();
    const stats = lightning.stats();
    await lightning.shutdown({ timeoutMs: 500 });
    return { out: mock.stepsOf(mock.only().id)[0].toolOutput as string, stats };
  };
  const a = await run({
    redact: {
      extraPatterns: [/ACME-\d{6}/, { kind: 'ticket', pattern: /TICKET-(?<secret>\d+)/ }],
      allow: [aws, /internal-[A-Z]{2}-\d+/],
    },
  });
  assert.equal(a.out, `ticket [REDACTED:custom] ref TICKET-[REDACTED:ticket] id ${aws} token [REDACTED:github_token] internal-ZZ-42`);
  assert.deepEqual(a.stats.redactions, { custom: 1, ticket: 1, github_token: 1 });
  const b = await run({ redactPatterns: [/internal-ZZ-\d+/] });
  assert.equal(b.out, `ticket ACME-123456 ref TICKET-9876 id [REDACTED:aws_access_key_id] token [REDACTED:github_token] [REDACTED:custom]`);
  const c = await run({ redact: false });
  assert.equal(c.out, text);
  assert.deepEqual(c.stats.redactions, {});
  assert.throws(() => make(mock.url, { redact: { extraPatterns: ['ACME' as unknown as RegExp] } }), /redact\.extraPatterns\[0\] must be a RegExp/);
  assert.throws(() => make(mock.url, { redact: { allow: [42 as unknown as string] } }), /redact\.allow\[0\] must be a string or a RegExp/);
});

/**
 * The held-out corpus (heldout-*.json): formats and contexts the rules were not tuned on, written
 * before they were first run. Their results are pinned in heldout-result.json, which the Python
 * package checks too: the two packages must agree, and a change of result must update the file.
 */
interface HeldoutResult {
  leaked: string[];
  changed: string[];
}
const heldout = load<SecretEntry[]>('heldout-secrets.json');
const heldoutBenign = load<BenignEntry[]>('heldout-benign.json');
const pinned = load<{ current: HeldoutResult }>('heldout-result.json').current;

test('held-out corpus: recall and false positives through the hooks, as pinned in heldout-result.json', async (t) => {
  assert.ok(heldout.length >= 100, `${heldout.length} held-out secrets`);
  for (const e of heldout) assert.ok(e.text.includes(e.secret), `${e.kind}: text must contain the secret`);
  const known = new Set(secrets.map((e) => e.kind));
  assert.deepEqual(heldout.filter((e) => known.has(e.kind)).map((e) => e.kind), [], 'held-out kinds are not in secrets.json');

  mock.trajectories.clear();
  mock.requests.length = 0;
  await runThroughHooks(mock, heldout.map((e) => e.text), false);
  const haystack = payloadStrings(mock).join('\n');
  const leaked = heldout
    .filter((e) => {
      if (haystack.includes(e.secret)) return true;
      for (let i = 0; i + 16 <= e.secret.length; i++) if (haystack.includes(e.secret.slice(i, i + 16))) return true;
      return false;
    })
    .map((e) => e.kind);
  const kept = heldout.length - leaked.length;

  mock.trajectories.clear();
  mock.requests.length = 0;
  const { steps } = await runThroughHooks(mock, heldoutBenign.map((e) => e.text), false);
  const changed: string[] = [];
  let lines = 0;
  heldoutBenign.forEach((e, i) => {
    const want = e.text.split('\n');
    const have = (steps[i].toolOutput.stdout as string).split('\n');
    lines += want.length;
    want.forEach((line, j) => {
      if (have[j] !== line) changed.push(`${e.kind}: ${line}`);
    });
  });
  t.diagnostic(`held-out recall ${kept}/${heldout.length} (${pct(wilson(kept, heldout.length))}); leaked: ${leaked.join(', ')}`);
  t.diagnostic(`held-out benign: ${changed.length} changed of ${lines} lines: ${JSON.stringify(changed)}`);
  assert.deepEqual(leaked, pinned.leaked, 'held-out secrets that reach the collector (heldout-result.json)');
  assert.deepEqual(changed, pinned.changed, 'held-out benign lines changed (heldout-result.json)');
});

test('wilson(): the interval used for the figures', () => {
  const [lo, hi] = wilson(143, 143);
  assert.ok(Math.abs(lo - 97.39) < 0.01 && hi === 100, `${lo} ${hi}`);
  const [a, b] = wilson(8, 10);
  assert.ok(Math.abs(a - 49.02) < 0.01 && Math.abs(b - 94.33) < 0.01, `${a} ${b}`);
});
