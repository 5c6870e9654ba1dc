/**
 * The entropy heuristic's thresholds and the allowlist's boundaries, pinned: each documented
 * number is tested just below and just above, and each allowlisted form as a keyword's value and
 * as a nearby (context-free) token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  allowlisted,
  HASH_HEX_LENGTHS,
  isHighEntropySecret,
  looksRandom,
  MAX_WORDINESS,
  MIN_ENTROPY,
  MIN_HEX_ENTROPY,
  MIN_TOKEN_LENGTH,
  shannonEntropy,
} from '../../src/entropy.js';
import { Redactor } from '../../src/redact.js';

// fake values, generated at run time
const rand = (n: number, alphabet: string, seed = 11): string => {
  let x = seed;
  let out = '';
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out += alphabet[(x >> 8) % alphabet.length];
  }
  return out;
};
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const hex = (n: number, seed = 5): string => rand(n, '0123456789abcdef', seed);
const uuid = `${hex(8)}-${hex(4, 6)}-4${hex(3, 7)}-a${hex(3, 8)}-${hex(12, 9)}`;
const redact = (text: string): string => new Redactor(true).text(text);

test('the documented thresholds', () => {
  assert.equal(MIN_TOKEN_LENGTH, 20);
  assert.equal(MIN_ENTROPY, 3.5);
  assert.equal(MIN_HEX_ENTROPY, 3.0);
  assert.equal(MAX_WORDINESS, 5);
  assert.deepEqual([...HASH_HEX_LENGTHS].sort((a, b) => a - b), [32, 40, 64, 96, 128]);
});

test('length: 19 characters are never a secret, 20 can be', () => {
  const t = rand(20, ALNUM);
  assert.ok(shannonEntropy(t.slice(0, 19)) >= MIN_ENTROPY, 'the 19-character token is random enough');
  assert.equal(looksRandom(t.slice(0, 19)), false);
  assert.equal(looksRandom(t), true);
});

test('entropy: 3.46 bits is below the 3.5 threshold, 3.58 above; hex needs 3.0', () => {
  const under = 'g1h2i3j4k5m'.repeat(2); // 11 symbols twice: log2(11) = 3.46
  const over = 'g1h2i3j4k5mn'.repeat(2); // 12 symbols twice: log2(12) = 3.58
  assert.ok(Math.abs(shannonEntropy(under) - Math.log2(11)) < 1e-9);
  assert.equal(looksRandom(under), false);
  assert.equal(looksRandom(over), true);
  const hex8 = '0a1b2c3d'.repeat(3); // hex, 8 symbols: exactly 3.0 bits
  const hex7 = '0a1b2c3'.repeat(3); // 2.81 bits
  assert.equal(shannonEntropy(hex8), 3);
  assert.equal(looksRandom(hex8), true);
  assert.equal(looksRandom(hex7), false);
  // the same 3.0 bits with one non-hex symbol is held to 3.5
  assert.equal(looksRandom('0a1b2c3z'.repeat(3)), false);
});

test('a letter and a digit are both needed; words are not random', () => {
  assert.equal(looksRandom(rand(24, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz')), false);
  assert.equal(looksRandom('12345678901234567890123'), false);
  assert.equal(looksRandom('computeCacheKeyForRequest2'), false); // letter runs average 5.2
  assert.equal(looksRandom('abcdQ1wxyzR2mnopS3ijklT4'), true); // runs of 4: below 5
});

test('allowlist: UUIDs and hash-length hex only when context-free; other hex lengths never', () => {
  assert.equal(allowlisted(uuid, ''), true);
  assert.equal(allowlisted(uuid, '', true), false);
  for (const n of [32, 40, 64, 96, 128]) {
    assert.equal(allowlisted(hex(n), ''), true, `${n} hex digits, context-free`);
    assert.equal(allowlisted(hex(n), '', true), false, `${n} hex digits as a keyword's value`);
  }
  for (const n of [20, 31, 33, 39, 41, 48, 63, 65]) assert.equal(allowlisted(hex(n), ''), false, `${n} hex digits`);
  // forms that carry their own context are kept even as a value
  const b64 = rand(43, `${ALNUM}+/`);
  assert.equal(allowlisted(`sha512-${b64}==`, '', true), true);
  assert.equal(allowlisted(hex(64), 'image sha256:', true), true);
  assert.equal(allowlisted(b64, 'h1:', true), true);
  assert.equal(allowlisted(b64, 'data:image/png;base64,', true), true);
  assert.equal(allowlisted(`AAAA${b64}`, 'ssh-ed25519 ', true), true);
  assert.equal(isHighEntropySecret(hex(48), ''), true);
});

test('through the redactor: the value right after a secret keyword is redacted whatever its alphabet', () => {
  const h32 = hex(32);
  const h40 = hex(40);
  for (const text of [`Datadog API key: ${h32}`, `Your API key is ${h32}.`, `twilio auth token ${h32}`, `MASTER_KEY ${h32}`, `heroku auth:token\n${uuid}`, `token: ${uuid}`]) {
    const out = redact(text);
    assert.ok(!out.includes(h32) && !out.includes(uuid), `${JSON.stringify(text)} -> ${JSON.stringify(out)}`);
  }
  // not a secret keyword, or not its value: the context-free allowlist applies
  for (const text of [`cache key: ${h32}`, `Idempotency-Key: ${uuid}`, `gpg: using RSA key ${h40.toUpperCase()}`, `token_id: ${uuid}`, `token refreshed at commit ${h40}`, `$ md5sum secrets.md\n${h32}  secrets.md`]) {
    assert.equal(redact(text), text);
  }
  // a hex token of another length near the keyword is not a digest
  const h48 = hex(48);
  assert.equal(redact(`token refreshed at build ${h48}`), 'token refreshed at build [REDACTED:high_entropy]');
});

test('the window: 80 characters after the keyword, and the next line only when the keyword ends its line', () => {
  const t = rand(24, ALNUM, 3);
  const pad = (n: number): string => 'x '.repeat(n / 2);
  assert.equal(redact(`secret ${pad(70)}${t}`), `secret ${pad(70)}[REDACTED:high_entropy]`);
  assert.equal(redact(`secret ${pad(80)}${t}`), `secret ${pad(80)}${t}`);
  assert.equal(redact(`Your secret:\n  ${t}`), 'Your secret:\n  [REDACTED:high_entropy]');
  assert.equal(redact(`the secret rotated\n${t}`), `the secret rotated\n${t}`);
});
