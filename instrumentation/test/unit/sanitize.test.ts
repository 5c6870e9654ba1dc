import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redactor } from '../../src/redact.js';
import {
  SANITIZE_FAILED,
  applyUserSanitizer,
  jsonBytes,
  sanitizeField,
  toJsonSafe,
  truncateJson,
  truncateString,
} from '../../src/sanitize.js';
import type { StepPayload } from '../../src/types.js';

const redactor = new Redactor(true);

test('truncateString keeps short strings and cuts long ones with a marker', () => {
  assert.equal(truncateString('hello', 100), 'hello');
  const long = 'x'.repeat(10_000);
  const cut = truncateString(long, 1000);
  assert.ok(Buffer.byteLength(cut) <= 1000, String(Buffer.byteLength(cut)));
  assert.match(cut, /…\[truncated: \d+ of 10000 bytes omitted\]$/);
  const kept = cut.indexOf('…');
  const omitted = Number(/truncated: (\d+) of/.exec(cut)![1]);
  assert.equal(kept + omitted, 10_000, 'marker must say exactly how much was cut');
});

test('truncateString never splits a multi-byte character', () => {
  const s = '€😀é'.repeat(2000);
  for (const max of [100, 101, 102, 103, 257, 4096]) {
    const cut = truncateString(s, max);
    assert.ok(Buffer.byteLength(cut) <= max);
    assert.ok(!cut.includes('\uFFFD'), 'no replacement characters');
    const head = cut.slice(0, cut.indexOf('…['));
    assert.ok(s.startsWith(head), 'kept part is a prefix of the original');
  }
});

test('truncateJson cuts the largest strings and keeps the structure', () => {
  const value = {
    type: 'text',
    file: { filePath: '/tmp/a.txt', content: 'a'.repeat(100_000), numLines: 1 },
  };
  const out = truncateJson(structuredClone(value), 32 * 1024) as any;
  assert.ok(jsonBytes(out) <= 32 * 1024, String(jsonBytes(out)));
  assert.equal(out.type, 'text');
  assert.equal(out.file.filePath, '/tmp/a.txt');
  assert.equal(out.file.numLines, 1);
  assert.match(out.file.content, /…\[truncated: \d+ of 100000 bytes omitted\]$/);
});

test('truncateJson falls back to a preview when many small values overflow', () => {
  const value = Array.from({ length: 20_000 }, (_, i) => i);
  const out = truncateJson(value, 2048) as any;
  assert.ok(jsonBytes(out) <= 2048, String(jsonBytes(out)));
  assert.match(out['[truncated]'], /value of \d+ bytes cut to fit 2048 bytes/);
  assert.ok(out.preview.startsWith('[0,1,2,3'));
});

test('values within the budget are unchanged', () => {
  const value = { a: 1, b: ['x', 'y'], c: { d: null } };
  assert.deepEqual(sanitizeField(value, redactor, 1024), value);
});

test('circular structures are safe', () => {
  const a: any = { name: 'a', list: [] };
  a.self = a;
  a.list.push(a, { back: a });
  const out = toJsonSafe(a, redactor) as any;
  assert.equal(out.self, '[circular]');
  assert.equal(out.list[0], '[circular]');
  assert.equal(out.list[1].back, '[circular]');
  // shared (non-circular) references are kept
  const shared = { v: 1 };
  assert.deepEqual(toJsonSafe({ x: shared, y: shared }, redactor), { x: { v: 1 }, y: { v: 1 } });
  JSON.stringify(out);
});

test('binary and exotic values are described, never dumped', () => {
  const out = toJsonSafe(
    {
      buf: Buffer.alloc(4096),
      u8: new Uint8Array(10),
      ab: new ArrayBuffer(7),
      big: 12345678901234567890n,
      fn: function named() {},
      sym: Symbol('s'),
      date: new Date('2026-01-02T03:04:05.000Z'),
      bad: new Date(NaN),
      nan: NaN,
      inf: -Infinity,
      und: undefined,
      map: new Map<unknown, unknown>([['k', 1], ['password', 'p']]),
      set: new Set([1, 2]),
      re: /x+/g,
      err: new TypeError('boom'),
    },
    redactor,
  ) as any;
  assert.equal(out.buf, '[binary Buffer: 4096 bytes]');
  assert.equal(out.u8, '[binary Uint8Array: 10 bytes]');
  assert.equal(out.ab, '[binary ArrayBuffer: 7 bytes]');
  assert.equal(out.big, '12345678901234567890');
  assert.equal('fn' in out, false);
  assert.equal('sym' in out, false);
  assert.equal('und' in out, false);
  assert.equal(out.date, '2026-01-02T03:04:05.000Z');
  assert.equal(out.bad, 'Invalid Date');
  assert.equal(out.nan, 'NaN');
  assert.equal(out.inf, '-Infinity');
  assert.deepEqual(out.map, { k: 1, password: '[REDACTED:sensitive_key]' });
  assert.deepEqual(out.set, [1, 2]);
  assert.equal(out.re, '/x+/g');
  assert.equal(out.err.name, 'TypeError');
  assert.equal(out.err.message, 'boom');
});

test('throwing getters, proxies and toJSON do not escape', () => {
  const evil = {
    ok: 1,
    get bad(): never {
      throw new Error('getter exploded');
    },
  };
  assert.deepEqual(toJsonSafe(evil, redactor), { ok: 1, bad: '[unreadable: getter exploded]' });
  const proxy = new Proxy({}, {
    ownKeys() {
      throw new Error('no keys for you');
    },
  });
  assert.equal(toJsonSafe(proxy, redactor), '[unserializable: no keys for you]');
  const withToJson = { toJSON: () => ({ secret: 'x', shown: 'y' }) };
  assert.deepEqual(toJsonSafe(withToJson, redactor), { secret: '[REDACTED:sensitive_key]', shown: 'y' });
});

test('deep nesting is bounded', () => {
  let deep: any = { leaf: true };
  for (let i = 0; i < 100; i++) deep = { next: deep };
  const text = JSON.stringify(toJsonSafe(deep, redactor));
  assert.ok(text.includes('[max depth]'));
});

const step = (): StepPayload => ({
  stepNumber: 3,
  toolName: 'Bash',
  toolInput: { command: 'cat secrets.txt' },
  toolOutput: { stdout: 'customer 4111 1111 1111 1111' },
  error: 'Exit code 1\ncustomer 4111',
  toolUseId: 'toolu_1',
  metadata: { prompt_id: 'p' },
});

test('user sanitize can rewrite a step', () => {
  const out = applyUserSanitizer(
    step(),
    (s) => {
      s.toolOutput = JSON.parse(JSON.stringify(s.toolOutput).replace(/\d{4} \d{4} \d{4} \d{4}/g, '[card]'));
    },
    () => assert.fail('should not fail'),
  );
  assert.deepEqual(out.toolOutput, { stdout: 'customer [card]' });
  assert.equal(out.stepNumber, 3);
});

test('user sanitize may return a replacement but not renumber the step', () => {
  const out = applyUserSanitizer(step(), (s) => ({ ...s, stepNumber: 99, toolInput: 'hidden' }), () => {});
  assert.equal(out.stepNumber, 3);
  assert.equal(out.toolInput, 'hidden');
});

test('user sanitize fails closed when it throws', () => {
  const errors: string[] = [];
  const original = step();
  const out = applyUserSanitizer(
    original,
    () => {
      throw new Error('sanitizer bug');
    },
    (m) => errors.push(m),
  );
  assert.deepEqual(errors, ['sanitizer bug']);
  assert.equal(out.toolInput, SANITIZE_FAILED);
  assert.equal(out.toolOutput, SANITIZE_FAILED);
  assert.equal(out.error, SANITIZE_FAILED);
  assert.equal(out.stepNumber, 3);
  assert.equal(out.toolName, 'Bash');
  assert.equal(out.toolUseId, 'toolu_1');
  assert.ok(!JSON.stringify(out).includes('4111'), 'nothing raw may leak');
  // the caller's step is untouched
  assert.deepEqual(original.toolOutput, { stdout: 'customer 4111 1111 1111 1111' });
});

test('user sanitize fails closed when it returns garbage, or mutates then throws', () => {
  const garbage = applyUserSanitizer(step(), () => 42 as unknown as StepPayload, () => {});
  assert.equal(garbage.toolInput, SANITIZE_FAILED);
  const partial = applyUserSanitizer(
    step(),
    (s) => {
      s.toolInput = 'half done';
      throw new Error('late failure');
    },
    () => {},
  );
  assert.equal(partial.toolInput, SANITIZE_FAILED);
  assert.equal(partial.toolOutput, SANITIZE_FAILED);
});

test('huge strings are cut before redaction and the marker counts the original size', () => {
  const secret = 'ghp_' + 'b'.repeat(36);
  const value = { content: `${secret} ` + 'y'.repeat(5_000_000) };
  const started = performance.now();
  const out = sanitizeField(value, redactor, 32 * 1024) as any;
  const ms = performance.now() - started;
  assert.ok(ms < 500, `took ${ms} ms`);
  assert.ok(!out.content.includes(secret));
  assert.match(out.content, /…\[truncated: \d+ of 5000041 bytes omitted\]$/);
  const omitted = Number(/truncated: (\d+) of/.exec(out.content)![1]);
  const kept = Buffer.byteLength(out.content.slice(0, out.content.indexOf('…[truncated')));
  // the kept text was redacted (shorter than the original prefix), so kept + omitted <= original
  assert.ok(kept + omitted <= 5_000_041 && kept + omitted > 5_000_041 - 64);
});

test('redaction stays linear on adversarial input', () => {
  // Linear time is checked as a ratio within this process (the machine is shared and noisy):
  // ten times the input must cost about ten times as much, not a hundred. A generous absolute
  // bound still catches a catastrophic regex.
  const shapes: [string, number][] = [['z', 1], ['a=', 2], ['"password', 9], ['http://x:', 9], ['token: ', 7], ['-----BEGIN ', 11], ['a@b://', 6]];
  const best = (s: string): number => {
    let min = Infinity;
    for (let k = 0; k < 5; k++) {
      const started = performance.now();
      redactor.text(s);
      min = Math.min(min, performance.now() - started);
    }
    return min;
  };
  for (const [unit, len] of shapes) {
    const small = unit.repeat(Math.floor(50_000 / len));
    const large = unit.repeat(Math.floor(500_000 / len));
    const ts = Math.max(best(small), 2);
    const tl = best(large);
    assert.ok(tl / ts < 40, `${unit}: 10x the input took ${(tl / ts).toFixed(1)}x the time (${ts.toFixed(1)} -> ${tl.toFixed(1)} ms)`);
    assert.ok(tl < 5000, `${unit}… took ${tl} ms`);
  }
});
