/**
 * Fixtures for the fault suite: a cuttable TCP proxy (for PostgreSQL), throwaway PostgreSQL
 * databases on the machine's server (created and dropped, never the server itself), the SDK
 * environment for the fake Messages API, and a scripted many-turn Bash agent.
 */
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { join } from 'node:path';
import type { Turn } from './fake-anthropic.js';

/** A TCP proxy that can be cut (every open connection destroyed, new ones refused) and restored. */
export class TcpProxy {
  port = 0;
  accepted = 0;
  refused = 0;
  private cutFlag = false;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly targetHost: string, private readonly targetPort: number) {
    this.server = net.createServer((client) => this.onClient(client));
  }

  get isCut(): boolean {
    return this.cutFlag;
  }

  get open(): number {
    return this.sockets.size;
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => {});
  }

  private onClient(client: net.Socket): void {
    this.track(client);
    if (this.cutFlag) {
      // refused: the connection is reset at once, as by a firewall rejecting it
      this.refused++;
      client.resetAndDestroy();
      return;
    }
    this.accepted++;
    const upstream = net.connect(this.targetPort, this.targetHost);
    this.track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Destroys every open connection and refuses new ones until restore(). */
  cut(): void {
    this.cutFlag = true;
    for (const s of this.sockets) s.resetAndDestroy();
  }

  restore(): void {
    this.cutFlag = false;
  }

  async close(): Promise<void> {
    this.cutFlag = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export const PG_HOST = process.env.LIGHTNING_TEST_PGHOST ?? '127.0.0.1';
export const PG_PORT = Number(process.env.LIGHTNING_TEST_PGPORT ?? 5432);
export const PG_USER = process.env.LIGHTNING_TEST_PGUSER ?? 'postgres';

/** Runs one SQL command with psql against `db`; returns trimmed tuples-only output. */
export function psql(db: string, sql: string): string {
  const r = spawnSync('psql', ['-h', PG_HOST, '-p', String(PG_PORT), '-U', PG_USER, '-d', db, '-v', 'ON_ERROR_STOP=1', '-qAt', '-c', sql], {
    encoding: 'utf8',
    env: { ...process.env, PGCONNECT_TIMEOUT: '5' },
    timeout: 30_000,
  });
  if (r.status !== 0) throw new Error(`psql ${db}: ${sql}\n${r.stderr || r.error?.message}`);
  return r.stdout.trim();
}

/** Whether the machine's PostgreSQL answers (trust auth for PG_USER). */
export function postgresAvailable(): string | null {
  try {
    psql('postgres', 'SELECT 1');
    return null;
  } catch (e) {
    return String(e);
  }
}

/** A database created for one test and dropped afterwards (connections terminated first). */
export class ThrowawayDb {
  readonly name = `lightning_fault_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  private created = false;

  create(): this {
    ThrowawayDb.sweep();
    psql('postgres', `CREATE DATABASE ${this.name}`);
    this.created = true;
    return this;
  }

  /**
   * Drops databases this suite left behind when its process was killed before cleaning up
   * (`lightning_fault_<pid>_…` whose pid is no longer alive on this machine).
   */
  static sweep(): void {
    const names = psql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE 'lightning\\_fault\\_%'`).split('\n').filter(Boolean);
    for (const name of names) {
      const m = /^lightning_fault_(\d+)_[a-z0-9]+$/.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch (e) {
        alive = (e as NodeJS.ErrnoException).code === 'EPERM';
      }
      if (alive) continue;
      try {
        psql('postgres', `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}'`);
        psql('postgres', `DROP DATABASE IF EXISTS ${name}`);
      } catch {
        /* another process is sweeping it */
      }
    }
  }

  /** URL through `port` (a proxy) or straight to the server. */
  url(port = PG_PORT, host = '127.0.0.1'): string {
    return `postgres://${PG_USER}@${host}:${port}/${this.name}`;
  }

  query(sql: string): string {
    return psql(this.name, sql);
  }

  drop(): void {
    if (!this.created) return;
    psql('postgres', `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${this.name}' AND pid <> pg_backend_pid()`);
    psql('postgres', `DROP DATABASE IF EXISTS ${this.name}`);
    this.created = false;
  }
}

/** Environment for the Claude Code CLI: the fake Messages API, an isolated HOME, no side traffic. */
export function sdkEnv(baseUrl: string, home: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('ANTHROPIC_') || k.startsWith('CLAUDE')) continue;
    env[k] = v;
  }
  return {
    ...env,
    ANTHROPIC_BASE_URL: baseUrl,
    ANTHROPIC_API_KEY: 'sk-ant-test-dummy-key',
    CLAUDE_CONFIG_DIR: join(home, '.claude'),
    HOME: home,
    IS_SANDBOX: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_ERROR_REPORTING: '1',
  };
}

/**
 * A scripted task of `count` Bash calls (`echo step-<i>`), every `parallelEvery`-th turn
 * issuing two calls at once, then a final text answer.
 */
export function bashTurns(count: number, tag: string, parallelEvery = 5): Turn[] {
  const turns: Turn[] = [];
  let i = 0;
  let t = 0;
  while (i < count) {
    const two = parallelEvery > 0 && ++t % parallelEvery === 0 && i + 1 < count;
    const calls = two ? [i, i + 1] : [i];
    turns.push({
      content: calls.map((n) => ({
        type: 'tool_use' as const,
        id: `toolu_${tag}_${n}`,
        name: 'Bash',
        input: { command: `echo step-${n}`, description: `step ${n}` },
      })),
      stopReason: 'tool_use',
    });
    i += calls.length;
  }
  turns.push({ content: [{ type: 'text', text: `All ${count} steps done.` }], stopReason: 'end_turn' });
  return turns;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs: number, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export interface AgentRun {
  result: any;
  messages: any[];
  /** tool_use ids in PreToolUse order, as the SDK's hooks reported them */
  pre: string[];
  /** tool_use ids that got a PostToolUse or PostToolUseFailure */
  post: string[];
}

/**
 * Runs the real Claude Agent SDK against the fake Messages API with `hooks` merged with an
 * observer that records what the hooks saw; `onPre(n)` is called (not awaited) after the n-th
 * PreToolUse. `track` wraps the query (pass `lightning.track`).
 */
export async function runAgent(args: {
  fakeUrl: string;
  home: string;
  cwd: string;
  prompt: string;
  hooks: Record<string, any>;
  track: (q: AsyncIterable<any>, ctx?: Record<string, unknown>) => AsyncIterable<any>;
  onPre?: (n: number) => void;
  maxTurns?: number;
}): Promise<AgentRun> {
  const { query } = await import('@anthropic-ai/claude-agent-sdk');
  const { mergeHooks } = await import('../../src/index.js');
  const pre: string[] = [];
  const post: string[] = [];
  const observer = {
    PreToolUse: [
      {
        hooks: [
          async (input: any) => {
            pre.push(input.tool_use_id);
            args.onPre?.(pre.length);
            return {};
          },
        ],
      },
    ],
    PostToolUse: [{ hooks: [async (input: any) => (post.push(input.tool_use_id), {})] }],
    PostToolUseFailure: [{ hooks: [async (input: any) => (post.push(input.tool_use_id), {})] }],
  };
  const stderr: string[] = [];
  const messages: any[] = [];
  let result: any;
  const options = {
    cwd: args.cwd,
    model: 'claude-sonnet-4-5-20250929',
    permissionMode: 'default' as const,
    allowedTools: ['Bash', 'Read'],
    settingSources: [],
    maxTurns: args.maxTurns ?? 200,
    env: sdkEnv(args.fakeUrl, args.home),
    stderr: (d: string) => stderr.push(d),
    hooks: mergeHooks(args.hooks as any, observer as any),
  };
  try {
    for await (const m of args.track(query({ prompt: args.prompt, options }), { prompt: args.prompt })) {
      messages.push(m);
      if (m.type === 'result') result = m;
    }
  } catch (e) {
    throw new Error(`query failed: ${String(e)}\nstderr: ${stderr.join('').slice(-3000)}\nmessages: ${JSON.stringify(messages).slice(-2000)}`, {
      cause: e,
    });
  }
  return { result, messages, pre, post };
}

/**
 * Removes a temp dir, again if something re-creates it shortly after (the Claude Code CLI may
 * still be writing its transcript under HOME while its process exits).
 */
export async function removeDir(dir: string, settleMs = 1500): Promise<void> {
  const { rmSync, existsSync } = await import('node:fs');
  rmSync(dir, { recursive: true, force: true });
  const deadline = Date.now() + settleMs;
  while (Date.now() < deadline) {
    await sleep(250);
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
}
