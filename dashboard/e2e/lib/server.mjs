// Starts a real `lightning serve` for end-to-end tests and benchmarks, and fills it through its
// public HTTP API (docs/api.md).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
export const dashboardDir = resolve(here, '../..');
export const distDir = join(dashboardDir, 'dist');
export const repoDir = resolve(dashboardDir, '..');

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start `lightning serve` on a free port with a fresh data dir. Resolves once GET /health is 200.
 * `dist` is the built dashboard to serve (default: dist/). Returns { url, key, api, stop }.
 */
export async function startServer({ key = 'e2e-secret-key-0123456789abcdef0', dist = distDir } = {}) {
  const bin = resolve(dashboardDir, process.env.LIGHTNING_BIN ?? '../target/debug/lightning');
  if (!existsSync(bin)) {
    throw new Error(`lightning binary not found at ${bin}. Build it with \`cargo build -p lightning\` in the repo root or set LIGHTNING_BIN.`);
  }
  if (!existsSync(join(dist, 'index.html'))) {
    throw new Error(`dashboard build missing at ${dist}. Run \`npm run build\` first.`);
  }
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'lightning-e2e-'));
  const args = ['serve', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir, '--api-key', key, '--dashboard-dir', dist];
  // A fresh embedded database every time: never inherit a DATABASE_URL meant for something else.
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' };
  delete env.DATABASE_URL;
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`lightning serve exited early (${JSON.stringify(exited)}):\n${output}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`lightning serve did not become healthy within 60s:\n${output}`);
    }
    await sleep(100);
  }

  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const t0 = Date.now();
      while (!exited && Date.now() - t0 < 5000) await sleep(50);
      if (!exited) child.kill('SIGKILL');
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { url, key, bin, dataDir, api: new SeedClient(url, key), stop, logs: () => output };
}

/** Minimal client for the ingest API used to fill the collector. */
export class SeedClient {
  constructor(url, key) {
    this.url = url;
    this.key = key;
  }

  async call(method, path, body) {
    const res = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${this.key}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    return { status: res.status, data };
  }

  async ok(method, path, body) {
    const { status, data } = await this.call(method, path, body);
    if (status < 200 || status >= 300) throw new Error(`${method} ${path} → ${status} ${JSON.stringify(data)}`);
    return data;
  }

  async start(fields) {
    return (await this.ok('POST', '/api/trajectories/start', fields)).trajectoryId;
  }

  async steps(id, steps, batchSize = 500) {
    for (let i = 0; i < steps.length; i += batchSize) {
      await this.ok('POST', `/api/trajectories/${id}/steps/batch`, { steps: steps.slice(i, i + batchSize) });
    }
  }

  async complete(id, fields) {
    return this.ok('POST', `/api/trajectories/${id}/complete`, fields);
  }
}

const TOOLS = ['Read', 'Grep', 'Edit', 'Bash', 'WebFetch', 'Task'];

/** Steps spaced `gapMs` apart starting at `start`; every `errorEvery`-th has an error. */
export function makeSteps(count, start, { gapMs = 200, errorEvery = 0, subagentEvery = 0, from = 0 } = {}) {
  const t0 = Date.parse(start);
  return Array.from({ length: count }, (_, k) => {
    const n = from + k;
    const error = errorEvery && n % errorEvery === errorEvery - 1 ? `Command failed with exit code 1 (step ${n})` : null;
    const sub = subagentEvery && n % subagentEvery === 0 && n > 0;
    return {
      stepNumber: n,
      toolName: TOOLS[n % TOOLS.length],
      timestamp: new Date(t0 + n * gapMs).toISOString(),
      toolInput: { path: `src/module_${n % 37}.rs`, pattern: `fn handler_${n}`, flags: ['-n', '--color=never'] },
      toolOutput: error ? null : `match ${n}: src/module_${n % 37}.rs:${(n * 7) % 400}: fn handler_${n}() {}`,
      error,
      durationMs: 20 + ((n * 37) % 160),
      toolUseId: `toolu_${n.toString(16).padStart(6, '0')}`,
      metadata: sub ? { agent_id: `sub-${Math.floor(n / subagentEvery)}`, agent_type: 'explorer' } : {},
    };
  });
}

/** A realistic mixed data set. Returns the ids the tests need. */
export async function seed(api) {
  const now = Date.now();
  const iso = (msAgo) => new Date(now - msAgo).toISOString();
  const ids = { support: [], coder: null, bulk: null, failedCoder: null };

  // Support bot: 8 short trajectories over the last two days, 2 failures.
  for (let i = 0; i < 8; i++) {
    const startTime = iso((i + 1) * 5 * 3600_000);
    const id = await api.start({ agentId: 'support-bot', taskType: 'triage', startTime, prompt: `Customer ticket #${1000 + i}: cannot log in`, model: 'claude-sonnet', promptVersion: '2' });
    await api.steps(id, makeSteps(3, startTime, { gapMs: 400 }));
    const ok = i % 4 !== 3;
    await api.complete(id, { success: ok, result: ok ? { resolution: 'password reset link sent' } : null, error: ok ? null : 'Escalated: no resolution', duration: 1500 + i * 100, endTime: iso((i + 1) * 5 * 3600_000 - 1500), costUsd: 0.004 + i * 0.001, usage: { inputTokens: 1200, outputTokens: 300, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 }, numTurns: 3 });
    ids.support.push(id);
  }

  // Coder: a failed bug fix with an error step, subagent steps and HTML-looking output.
  {
    const startTime = iso(2 * 3600_000);
    const id = await api.start({
      agentId: 'coder',
      taskType: 'bugfix',
      startTime,
      prompt: 'Fix the failing test in parser.rs',
      systemPrompt: 'You are a careful Rust engineer.\nRun the tests before answering.',
      promptVersion: '7',
      model: 'claude-opus',
      metadata: { repo: 'acme/parser' },
    });
    const steps = makeSteps(12, startTime, { gapMs: 900, subagentEvery: 4 });
    steps[5] = { ...steps[5], toolName: 'Bash', toolInput: { command: 'cargo test -p parser' }, toolOutput: null, error: 'test parse_nested ... FAILED\nassertion failed: left == right' };
    steps[6] = { ...steps[6], toolName: 'Read', toolOutput: '<script>alert("not html")</script><b>raw</b>' };
    await api.steps(id, steps);
    await api.complete(id, { success: false, error: 'Tests still failing after 3 attempts', duration: 11_000, costUsd: 0.42, usage: { inputTokens: 48_000, outputTokens: 5_200, cacheReadInputTokens: 30_000, cacheCreationInputTokens: 2_000 }, numTurns: 9 });
    ids.failedCoder = id;
  }
  {
    const startTime = iso(26 * 3600_000);
    const id = await api.start({ agentId: 'coder', taskType: 'feature', startTime, prompt: 'Add a --json flag', model: 'claude-opus', promptVersion: '7' });
    await api.steps(id, makeSteps(6, startTime, { gapMs: 700 }));
    await api.complete(id, { success: true, result: 'Added the flag and tests.', duration: 4200, costUsd: 0.18 });
    ids.coder = id;
  }
  return ids;
}

/** One trajectory with `count` steps (a long agent run). */
export async function seedBulk(api, count = 10_000) {
  const startTime = new Date(Date.now() - 3600_000).toISOString();
  const id = await api.start({ agentId: 'bulk-agent', taskType: 'migration', startTime, prompt: `Migrate the monorepo (${count} steps)`, model: 'claude-sonnet' });
  await api.steps(id, makeSteps(count, startTime, { gapMs: 250, errorEvery: 997, subagentEvery: 50 }), 1000);
  await api.complete(id, { success: true, result: { migrated: count }, duration: count * 250, costUsd: 12.5, totalSteps: count });
  return id;
}

/**
 * An agent worth optimizing: `count` completed trajectories with one system prompt, a quarter
 * failing because the order was never looked up, a quarter because a refund was promised.
 */
export const OPT_AGENT = 'refund-bot';
export const OPT_START_PROMPT = 'You are the support agent of {shop}.\nAnswer the customer politely.';

export async function seedOptimizable(api, count = 20) {
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    const kind = i % 4; // 0, 1: success; 2: order lookup failure; 3: refund promised
    const startTime = new Date(now - (i + 1) * 60_000).toISOString();
    const id = await api.start({ agentId: OPT_AGENT, taskType: 'ticket', startTime, prompt: `Ticket #${500 + i}: where is my order?`, systemPrompt: OPT_START_PROMPT, promptVersion: '1', model: 'claude-sonnet' });
    const lookupError = kind === 2 ? `order not found: #${9000 + i}` : null;
    const replyError = kind === 3 ? 'policy violation: promised a refund' : null;
    await api.steps(id, [
      { stepNumber: 0, toolName: 'lookup_order', timestamp: startTime, toolInput: { query: `order ${9000 + i}` }, toolOutput: lookupError ? null : { status: 'shipped' }, error: lookupError, durationMs: 120 },
      { stepNumber: 1, toolName: 'reply', timestamp: new Date(Date.parse(startTime) + 500).toISOString(), toolInput: { text: 'Your order is on its way.' }, toolOutput: replyError ? null : 'sent', error: replyError, durationMs: 80 },
    ]);
    const error = lookupError ?? replyError;
    await api.complete(id, { success: !error, error, duration: 900, endTime: new Date(Date.parse(startTime) + 900).toISOString() });
  }
}

/**
 * Run `lightning optimize` against the same store as the running collector (same --data-dir;
 * SQLite in WAL mode is shared safely) with the Anthropic client pointed at `llmUrl`. Resolves
 * with the parsed `--json` outcome; rejects with the command's output when it fails.
 */
export function runOptimize(server, llmUrl, args = []) {
  const out = join(server.dataDir, 'optimized-prompt.txt');
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', ANTHROPIC_BASE_URL: llmUrl, ANTHROPIC_API_KEY: 'sk-ant-fake-e2e' };
  delete env.DATABASE_URL;
  for (const k of Object.keys(env)) if (k.startsWith('LIGHTNING_')) delete env[k];
  const child = spawn(server.bin, ['optimize', '--data-dir', server.dataDir, '--out', out, '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => {
    stdout += c;
  });
  child.stderr.on('data', (c) => {
    stderr = (stderr + c).slice(-8000);
  });
  return new Promise((resolveRun, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`lightning optimize exited with ${code ?? signal}:\n${stderr}\n${stdout.slice(-4000)}`));
      try {
        resolveRun({ outcome: JSON.parse(stdout), bestPrompt: readFileSync(out, 'utf8'), stderr });
      } catch (err) {
        reject(new Error(`lightning optimize printed no JSON (${err.message}):\n${stdout.slice(0, 4000)}\n${stderr}`));
      }
    });
  });
}
