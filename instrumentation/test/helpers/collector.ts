/**
 * Runs the real collector binary (`lightning serve`) on a free local port with a fresh SQLite
 * data directory, and reads data back through its HTTP API.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const packageRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

export function collectorBinary(): string {
  const bin = process.env.LIGHTNING_BIN
    ? resolve(process.env.LIGHTNING_BIN)
    : resolve(packageRoot, '..', 'target', 'debug', 'lightning');
  if (!existsSync(bin)) {
    throw new Error(`collector binary not found at ${bin}: build it (cargo build -p lightning) or set LIGHTNING_BIN`);
  }
  return bin;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolvePort(port));
    });
  });
}

export interface CollectorOptions {
  /** `postgres://…`; unset: SQLite in the data directory */
  databaseUrl?: string;
  apiKey?: string;
  /** extra arguments for `lightning serve` */
  args?: string[];
  /** how long start() waits for /health (ms) */
  startTimeoutMs?: number;
}

export class Collector {
  readonly apiKey: string;
  readonly dataDir: string;
  port = 0;
  url = '';
  private child: ChildProcess | null = null;
  private output = '';

  constructor(dataDir?: string, private readonly options: CollectorOptions = {}) {
    this.dataDir = dataDir ?? mkdtempSync(join(tmpdir(), 'lightning-it-'));
    this.apiKey = options.apiKey ?? 'it-key-' + Math.random().toString(36).slice(2).padEnd(12, '0') + '-0123456789ab';
  }

  /** Process id of the running collector (0 when stopped). */
  get pid(): number {
    return this.child && this.child.exitCode === null ? (this.child.pid ?? 0) : 0;
  }

  get running(): boolean {
    return this.pid !== 0;
  }

  /** SIGKILL: no graceful shutdown, no flush; resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((done) => {
      child.once('exit', () => done());
      child.kill('SIGKILL');
    });
  }

  /** Starts (or restarts, keeping the same port and data) the collector and waits for /health. */
  async start(port?: number): Promise<this> {
    this.port = port ?? (this.port || (await freePort()));
    this.url = `http://127.0.0.1:${this.port}`;
    const env: NodeJS.ProcessEnv = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' };
    delete env.DATABASE_URL;
    delete env.API_KEY;
    delete env.PORT;
    delete env.HOST;
    delete env.LIGHTNING_DATA_DIR;
    if (this.options.databaseUrl) env.DATABASE_URL = this.options.databaseUrl;
    const child = spawn(
      collectorBinary(),
      ['serve', '--port', String(this.port), '--host', '127.0.0.1', '--data-dir', this.dataDir, '--api-key', this.apiKey, ...(this.options.args ?? [])],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-65536)));
    child.stderr!.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-65536)));
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 30_000);
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`collector exited with ${child.exitCode}:\n${this.output}`);
      try {
        const r = await fetch(`${this.url}/health`);
        if (r.status === 200) return this;
      } catch {
        /* not up yet */
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.stop();
    throw new Error(`collector did not become healthy:\n${this.output}`);
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((done) => {
      child.once('exit', () => done());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    });
  }

  /**
   * Creates a scoped key the way the README tells a user to (`lightning keys create --name …
   * --scope …` on the collector's data directory) and returns its secret, printed once.
   */
  async createKey(name: string, scope: 'ingest' | 'read' | 'admin'): Promise<string> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.DATABASE_URL;
    delete env.LIGHTNING_DATA_DIR;
    if (this.options.databaseUrl) env.DATABASE_URL = this.options.databaseUrl;
    const { stdout } = await execFileAsync(collectorBinary(), ['keys', 'create', '--name', name, '--scope', scope, '--data-dir', this.dataDir], { env });
    const secret = stdout.trim();
    if (!/^lk_[0-9a-f]{48}$/.test(secret)) throw new Error(`lightning keys create printed ${JSON.stringify(stdout)}`);
    return secret;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  get logs(): string {
    return this.output;
  }

  async get(path: string): Promise<any> {
    const r = await fetch(this.url + path, { headers: { authorization: `Bearer ${this.apiKey}` } });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`GET ${path} → ${r.status}: ${text}`);
    return JSON.parse(text);
  }

  /** POSTs JSON (or no body) and returns the parsed answer; throws unless the status is `expect`. */
  async post(path: string, body?: unknown, expect = 200): Promise<any> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey}` };
    const init: RequestInit = { method: 'POST', headers };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(this.url + path, init);
    const text = await r.text();
    if (r.status !== expect) throw new Error(`POST ${path} → ${r.status} (expected ${expect}): ${text}`);
    return JSON.parse(text);
  }

  async trajectories(agentId: string): Promise<any[]> {
    return (await this.get(`/api/trajectories?agentId=${encodeURIComponent(agentId)}&limit=1000`)).trajectories;
  }

  /** The trajectory with every step, following the collector's pages of steps. */
  async trajectory(id: string): Promise<any> {
    const path = `/api/trajectories/${encodeURIComponent(id)}`;
    const first = await this.get(path);
    let next = first.nextStepsAfter ?? null;
    while (next !== null) {
      const page = await this.get(`${path}?stepsAfter=${next}&stepsLimit=2000`);
      first.steps.push(...page.steps);
      next = page.steps.length ? (page.nextStepsAfter ?? null) : null;
    }
    delete first.nextStepsAfter;
    return first;
  }

  /** The only trajectory of an agent, with its steps. */
  async only(agentId: string): Promise<any> {
    const list = await this.trajectories(agentId);
    if (list.length !== 1) throw new Error(`expected 1 trajectory for ${agentId}, found ${list.length}`);
    return this.trajectory(list[0].id);
  }
}

/** A stored trajectory's tool-call steps (not its `message`/`event` steps), in step order. */
export function toolSteps(t: { steps: any[] }): any[] {
  const nonTool = new Set(['assistant', 'Result', 'SubagentStart', 'SubagentStop']);
  return t.steps.filter((s) => (s.kind ?? 'tool') === 'tool' && !nonTool.has(s.toolName));
}
