import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redactor, isSensitiveKey } from '../../src/redact.js';
import { toJsonSafe } from '../../src/sanitize.js';

// Secrets are assembled at run time so that no scanner mistakes this corpus for leaked keys.
const alnum = (n: number, seed = 7): string => {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out += chars[x % chars.length];
  }
  return out;
};
const upper = (n: number): string => alnum(n, 3).toUpperCase().replace(/[^A-Z0-9]/g, 'Q');
const hex = (n: number): string => Array.from({ length: n }, (_, i) => '0123456789abcdef'[(i * 7) % 16]).join('');

interface Case {
  name: string;
  text: string;
  secret: string;
  kind: string;
  keep?: string;
}

const corpus: Case[] = [
  { name: 'Anthropic API key', secret: `sk-ant-api03-${alnum(93)}AA`, kind: 'anthropic_key', text: '' },
  { name: 'Anthropic admin key', secret: `sk-ant-admin01-${alnum(60)}`, kind: 'anthropic_key', text: '' },
  { name: 'OpenAI project key', secret: `sk-proj-${alnum(48)}_${alnum(20)}`, kind: 'openai_key', text: '' },
  { name: 'OpenAI legacy key', secret: `sk-${alnum(20)}T3BlbkFJ${alnum(20)}`, kind: 'openai_key', text: '' },
  { name: 'AWS access key id', secret: `AKIA${upper(16)}`, kind: 'aws_access_key_id', text: '' },
  { name: 'AWS temporary key id', secret: `ASIA${upper(16)}`, kind: 'aws_access_key_id', text: '' },
  { name: 'GitHub classic token', secret: `ghp_${alnum(36)}`, kind: 'github_token', text: '' },
  { name: 'GitHub app token', secret: `ghs_${alnum(36)}`, kind: 'github_token', text: '' },
  { name: 'GitHub fine-grained PAT', secret: `github_pat_${alnum(22)}_${alnum(59)}`, kind: 'github_token', text: '' },
  { name: 'GitLab PAT', secret: `glpat-${alnum(20)}`, kind: 'gitlab_token', text: '' },
  { name: 'Slack bot token', secret: `xoxb-${hex(12)}-${hex(13)}-${alnum(24)}`, kind: 'slack_token', text: '' },
  { name: 'Slack webhook', secret: `https://hooks.slack.com/services/T${upper(8)}/B${upper(8)}/${alnum(24)}`, kind: 'slack_webhook', text: '' },
  { name: 'Google API key', secret: `AIza${alnum(35)}`, kind: 'google_api_key', text: '' },
  { name: 'Google OAuth token', secret: `ya29.${alnum(60)}`, kind: 'google_oauth_token', text: '' },
  { name: 'Stripe live secret', secret: `sk_live_${alnum(24)}`, kind: 'stripe_key', text: '' },
  { name: 'Stripe restricted test key', secret: `rk_test_${alnum(24)}`, kind: 'stripe_key', text: '' },
  { name: 'Stripe webhook secret', secret: `whsec_${alnum(32)}`, kind: 'stripe_webhook_secret', text: '' },
  { name: 'npm token', secret: `npm_${alnum(36)}`, kind: 'npm_token', text: '' },
  { name: 'Hugging Face token', secret: `hf_${alnum(34)}`, kind: 'huggingface_token', text: '' },
  { name: 'SendGrid key', secret: `SG.${alnum(22)}.${alnum(43)}`, kind: 'sendgrid_key', text: '' },
  { name: 'JWT', secret: `eyJ${alnum(20)}.eyJ${alnum(40)}.${alnum(43)}`, kind: 'jwt', text: '' },
];
for (const c of corpus) c.text = `value: ${c.secret} (end)`;

const contextual: Case[] = [
  {
    name: 'Bearer header',
    secret: alnum(40),
    kind: 'bearer_token',
    text: '',
    keep: 'Authorization: Bearer ',
  },
  { name: 'Basic header', secret: Buffer.from('admin:' + alnum(12)).toString('base64'), kind: 'basic_auth', text: '', keep: 'Authorization: Basic ' },
  { name: 'URL with password', secret: alnum(14), kind: 'url_password', text: '', keep: 'postgres://app:' },
  { name: '.env PASSWORD=', secret: alnum(16), kind: 'env_secret', text: '', keep: 'DB_PASSWORD=' },
  { name: '.env *_KEY=', secret: alnum(30), kind: 'env_secret', text: '', keep: 'export STRIPE_API_KEY=' },
  { name: '.env *_TOKEN=', secret: alnum(30), kind: 'env_secret', text: '', keep: 'SLACK_TOKEN = ' },
  { name: 'JSON password field', secret: alnum(12), kind: 'secret_field', text: '', keep: '"password": "' },
  { name: 'AWS secret access key', secret: alnum(40).replace(/[0-9]/g, '/'), kind: 'aws_secret_access_key', text: '', keep: 'aws_secret_access_key = ' },
];
contextual[0]!.text = `curl -H "Authorization: Bearer ${contextual[0]!.secret}" https://api.example.com`;
contextual[1]!.text = `Authorization: Basic ${contextual[1]!.secret}`;
contextual[2]!.text = `DATABASE_URL is postgres://app:${contextual[2]!.secret}@db.internal:5432/main`;
contextual[3]!.text = `HOST=localhost\nDB_PASSWORD=${contextual[3]!.secret}\nPORT=5432`;
contextual[4]!.text = `# stripe\nexport STRIPE_API_KEY=${contextual[4]!.secret}\n`;
contextual[5]!.text = `SLACK_TOKEN = ${contextual[5]!.secret}`;
contextual[6]!.text = `{"user": "bob", "password": "${contextual[6]!.secret}"}`;
contextual[7]!.text = `[default]\naws_secret_access_key = ${contextual[7]!.secret}\n`;

const redactor = new Redactor(true);

for (const c of [...corpus, ...contextual]) {
  test(`redacts ${c.name}`, () => {
    const out = redactor.text(c.text);
    assert.ok(!out.includes(c.secret), `secret leaked: ${out}`);
    assert.match(out, new RegExp(`\\[REDACTED:${c.kind}\\]`), out);
    if (c.keep) assert.ok(out.includes(c.keep + '[REDACTED:'), `context lost: ${out}`);
  });
}

test('redacts PEM private key blocks, including truncated ones', () => {
  const body = Array.from({ length: 8 }, (_, i) => alnum(64, i + 1)).join('\n');
  for (const label of ['RSA PRIVATE KEY', 'PRIVATE KEY', 'OPENSSH PRIVATE KEY', 'EC PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']) {
    const full = `key:\n-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\ndone`;
    const out = redactor.text(full);
    assert.equal(out, 'key:\n[REDACTED:private_key]\ndone');
    const cut = redactor.text(`-----BEGIN ${label}-----\n${body.slice(0, 100)}`);
    assert.equal(cut, '[REDACTED:private_key]');
  }
});

test('leaves ordinary text alone', () => {
  const samples = [
    'const x = 1;\nfunction add(a, b) { return a + b }',
    'The tokenizer produced 512 tokens; max_tokens: 32000',
    'https://example.com/path?q=1',
    'user@example.com wrote: see ssh://git@github.com/org/repo.git',
    'Bearer',
    'sk-short',
    'input_tokens=12 output_tokens=40',
  ];
  for (const s of samples) assert.equal(redactor.text(s), s);
});

test('redaction is idempotent', () => {
  const all = [...corpus, ...contextual].map((c) => c.text).join('\n');
  const once = redactor.text(all);
  assert.equal(redactor.text(once), once);
});

test('can be disabled, and extra patterns are applied', () => {
  const off = new Redactor(false);
  assert.equal(off.text(corpus[0]!.text), corpus[0]!.text);
  const custom = new Redactor(false, [/ACME-\d{6}/]);
  assert.equal(custom.text('id ACME-123456 and ACME-654321'), 'id [REDACTED:custom] and [REDACTED:custom]');
});

test('withholds values under sensitive object keys, in any case style', () => {
  for (const k of ['password', 'apiKey', 'api_key', 'x-api-key', 'Authorization', 'client_secret', 'accessToken', 'SESSION_TOKEN', 'cookie', 'privateKey', 'auth']) {
    assert.equal(isSensitiveKey(k), true, k);
  }
  for (const k of ['file_path', 'command', 'tokens', 'input_tokens', 'author', 'description', 'keyboard']) {
    assert.equal(isSensitiveKey(k), false, k);
  }
  const value = toJsonSafe(
    { command: 'ls', env: { apiKey: 'abc123', password: 'p', retries: 3, nested: [{ token: 'zzz' }] } },
    redactor,
  );
  assert.deepEqual(value, {
    command: 'ls',
    env: { apiKey: '[REDACTED:sensitive_key]', password: '[REDACTED:sensitive_key]', retries: 3, nested: [{ token: '[REDACTED:sensitive_key]' }] },
  });
});

test('redacts secrets inside nested tool inputs and outputs', () => {
  const key = corpus[0]!.secret;
  const out = toJsonSafe({ file: { content: `ANTHROPIC_API_KEY=${key}\nDEBUG=1` }, list: [`token ${key}`] }, redactor);
  const text = JSON.stringify(out);
  assert.ok(!text.includes(key));
  assert.ok(text.includes('DEBUG=1'));
});
