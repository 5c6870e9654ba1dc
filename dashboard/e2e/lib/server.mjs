// Starts a real `lightning serve` for end-to-end tests and benchmarks, and fills it through its
// public HTTP API (docs/api.md).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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
 * Returns { url, key, api, stop }.
 */
export async function startServer({ key = 'e2e-secret-key' } = {}) {
  const bin = resolve(dashboardDir, process.env.LIGHTNING_BIN ?? '../target/debug/lightning');
  if (!existsSync(bin)) {
    throw new Error(`lightning binary not found at ${bin}. Build it with \`cargo build -p lightning\` in the repo root or set LIGHTNING_BIN.`);
  }
  if (!existsSync(join(distDir, 'index.html'))) {
    throw new Error(`dashboard build missing at ${distDir}. Run \`npm run build\` first.`);
  }
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'lightning-e2e-'));
  const args = ['serve', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir, '--api-key', key, '--dashboard-dir', distDir];
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
  return { url, key, api: new SeedClient(url, key), stop, logs: () => output };
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
