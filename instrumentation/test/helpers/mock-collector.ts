/**
 * An in-process stand-in for the collector used by unit tests: it implements the ingest
 * contract of docs/api.md (idempotent start, steps merged by stepNumber, idempotent complete)
 * in memory and lets a test script failures (status codes, Retry-After, hangs).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  auth: string | undefined;
  body: any;
  at: number;
}

export interface Fault {
  status?: number;
  headers?: Record<string, string>;
  /** never answer (the socket is kept open until the server closes) */
  hang?: boolean;
  /** commit the request, then answer with `status` (simulates a lost response) */
  commitThenFail?: boolean;
}

export interface StoredTrajectory {
  start: any;
  steps: Map<number, any>;
  complete: any | null;
  starts: number;
  /** scores by id (a repeated id updates: last write wins on the fields it carries) */
  scores: Map<string, any>;
}

export class MockCollector {
  readonly requests: RecordedRequest[] = [];
  readonly trajectories = new Map<string, StoredTrajectory>();
  /** faults consumed in order by matching requests */
  faults: { match: (r: RecordedRequest) => boolean; fault: Fault }[] = [];
  apiKey = 'test-key';
  prompt: { agentId: string; version: number; text: string } | null = null;
  private server: http.Server;
  private readonly sockets = new Set<import('node:net').Socket>();
  url = '';

  constructor() {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  failNext(count: number, fault: Fault, match: (r: RecordedRequest) => boolean = () => true): void {
    for (let i = 0; i < count; i++) this.faults.push({ match, fault });
  }

  stepsOf(trajectoryId: string): any[] {
    const t = this.trajectories.get(trajectoryId);
    return t ? [...t.steps.values()].sort((a, b) => a.stepNumber - b.stepNumber) : [];
  }

  /** Tool-call steps only (no `message`/`event` steps). */
  toolStepsOf(trajectoryId: string): any[] {
    return this.stepsOf(trajectoryId).filter((s) => s.kind === undefined || s.kind === 'tool');
  }

  only(): StoredTrajectory & { id: string } {
    if (this.trajectories.size !== 1) throw new Error(`expected 1 trajectory, have ${this.trajectories.size}`);
    const [id, t] = [...this.trajectories.entries()][0]!;
    return { id, ...t };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: any;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      const r: RecordedRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        auth: req.headers.authorization,
        body,
        at: Date.now(),
      };
      this.requests.push(r);
      const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(payload));
      };
      const idx = this.faults.findIndex((f) => f.match(r));
      if (idx >= 0) {
        const { fault } = this.faults.splice(idx, 1)[0]!;
        if (fault.hang) return; // keep the socket open, never answer
        if (!fault.commitThenFail) {
          send(fault.status ?? 503, { error: 'scripted failure' }, fault.headers);
          return;
        }
        this.apply(r);
        send(fault.status ?? 503, { error: 'scripted failure after commit' }, fault.headers);
        return;
      }
      if (r.auth !== `Bearer ${this.apiKey}`) {
        send(401, { error: 'Unauthorized' });
        return;
      }
      const out = this.apply(r);
      send(out.status, out.body);
    });
  }

  private apply(r: RecordedRequest): { status: number; body: unknown } {
    const m = /^\/api\/trajectories\/([^/]+)\/(steps\/batch|complete|scores)$/.exec(r.path);
    if (r.method === 'POST' && r.path === '/api/trajectories/start') {
      const id = r.body.trajectoryId;
      const existing = this.trajectories.get(id);
      if (existing) existing.starts++;
      else this.trajectories.set(id, { start: r.body, steps: new Map(), complete: null, starts: 1, scores: new Map() });
      return { status: 200, body: { trajectoryId: id } };
    }
    if (r.method === 'POST' && m) {
      const id = decodeURIComponent(m[1]!);
      const t = this.trajectories.get(id);
      if (!t) return { status: 404, body: { error: `unknown trajectory ${id}` } };
      if (m[2] === 'scores') {
        // the contract of docs/api.md "Scores": name, value (finite number | boolean | label), optional id
        const b = r.body ?? {};
        if (typeof b.name !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(b.name)) return { status: 400, body: { error: 'name is invalid' } };
        const okValue = (typeof b.value === 'number' && Number.isFinite(b.value)) || typeof b.value === 'boolean' || (typeof b.value === 'string' && b.value.length >= 1 && b.value.length <= 256);
        if (!okValue) return { status: 400, body: { error: 'value is invalid' } };
        const id = typeof b.id === 'string' ? b.id : `srv-${t.scores.size + 1}`;
        t.scores.set(id, { ...(t.scores.get(id) ?? {}), ...b, id, trajectoryId: decodeURIComponent(m[1]!) });
        return { status: 200, body: { id } };
      }
      if (m[2] === 'complete') {
        t.complete = { ...(t.complete ?? {}), ...r.body };
        return { status: 200, body: { success: true } };
      }
      for (const step of r.body.steps) {
        if (typeof step.stepNumber !== 'number' || !step.toolName || (step.durationMs != null && !Number.isInteger(step.durationMs))) {
          return { status: 400, body: { error: 'stepNumber and toolName are required' } };
        }
      }
      for (const step of r.body.steps) {
        const prev = t.steps.get(step.stepNumber) ?? {};
        const merged = { ...prev };
        for (const [k, v] of Object.entries(step)) if (v !== null && v !== undefined) merged[k] = v;
        t.steps.set(step.stepNumber, merged);
      }
      return { status: 200, body: { success: true } };
    }
    const pm = /^\/api\/agents\/([^/]+)\/prompts\/latest$/.exec(r.path);
    if (r.method === 'GET' && pm) {
      if (this.prompt && this.prompt.agentId === decodeURIComponent(pm[1]!)) {
        return { status: 200, body: { ...this.prompt, promoted: true, note: null, sourceRunId: null, createdAt: new Date().toISOString() } };
      }
      return { status: 404, body: { error: 'no prompt' } };
    }
    // As the real collector words it; a client takes it for a route this collector predates.
    return { status: 404, body: { error: `no API route ${r.path}` } };
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `check` returns true or the timeout passes (then throws with `what`). */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}
