/**
 * Minimal HTTP client for the collector: JSON with a hard timeout. Never throws.
 *
 * By default it uses node:http(s) with **unreferenced sockets**: a request in flight never keeps
 * the agent's process alive on its own (the exit handlers decide how long delivery may take).
 * A custom `fetch` (option) is used as given.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { isRetriableStatus, parseRetryAfter } from './backoff.js';
import type { Logger } from './types.js';
import { errorMessage } from './sanitize.js';

export type RequestOutcome =
  | { kind: 'ok'; status: number; body: unknown }
  /** Worth retrying: network error, timeout, 408/425/429/5xx. */
  | { kind: 'retry'; status: number | null; error: string; retryAfterMs?: number }
  /** 401: the key is wrong. */
  | { kind: 'unauthorized'; status: 401; error: string }
  /** Any other 4xx: not retried. */
  | { kind: 'rejected'; status: number; error: string };

export interface ClientConfig {
  collectorUrl: string;
  apiKey: string;
  requestTimeoutMs: number;
  /** undefined: node:http(s) with unreferenced sockets */
  fetch?: typeof fetch;
  logger: Logger;
  debug: boolean;
  userAgent: string;
}

interface RawResponse {
  status: number;
  retryAfter: string | null;
  text: string;
}

const ABORTED = 'aborted: the process is exiting';

export class LightningClient {
  private readonly base: string;
  private readonly active = new Set<(reason: string) => void>();
  private readonly agent: http.Agent;

  constructor(private readonly config: ClientConfig) {
    this.base = config.collectorUrl.replace(/\/+$/, '');
    const AgentClass = this.base.startsWith('https:') ? https.Agent : http.Agent;
    this.agent = new AgentClass({ keepAlive: true, maxSockets: 4 });
  }

  /** Ends every request in flight at once (they resolve as retriable failures). */
  abortAll(): void {
    for (const abort of [...this.active]) abort(ABORTED);
  }

  get inFlight(): number {
    return this.active.size;
  }

  /**
   * One request. `awaited`: a caller waits for the answer (prompt()), so the request keeps the
   * process alive like any other I/O; background delivery does not.
   */
  async request(method: 'GET' | 'POST', path: string, body?: string, awaited = false): Promise<RequestOutcome> {
    if (this.config.debug) this.config.logger.debug(`[LightningClient] ${method} ${path}`);
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.config.apiKey}`,
      accept: 'application/json',
      'user-agent': this.config.userAgent,
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: RawResponse;
    try {
      response = this.config.fetch
        ? await this.viaFetch(method, path, headers, body)
        : await this.viaHttp(method, path, headers, body, awaited);
    } catch (e) {
      return { kind: 'retry', status: null, error: `${method} ${path}: ${errorMessage(e)}` };
    }
    const { status, text } = response;
    if (status >= 200 && status < 300) {
      let parsed: unknown = null;
      if (text.length > 0) {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = text;
        }
      }
      return { kind: 'ok', status, body: parsed };
    }
    const error = `${method} ${path} → ${status}${text ? `: ${text.slice(0, 300)}` : ''}`;
    if (status === 401) return { kind: 'unauthorized', status: 401, error };
    if (isRetriableStatus(status)) {
      const retryAfterMs = parseRetryAfter(response.retryAfter);
      return retryAfterMs === undefined ? { kind: 'retry', status, error } : { kind: 'retry', status, error, retryAfterMs };
    }
    return { kind: 'rejected', status, error };
  }

  private viaHttp(method: string, path: string, headers: Record<string, string>, body: string | undefined, awaited: boolean): Promise<RawResponse> {
    const url = new URL(this.base + path);
    const mod = url.protocol === 'https:' ? https : http;
    const timeoutMs = this.config.requestTimeoutMs;
    return new Promise<RawResponse>((resolve, reject) => {
      let done = false;
      const finish = (err: Error | null, res?: RawResponse): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.active.delete(abort);
        if (err) reject(err);
        else resolve(res!);
      };
      const req = mod.request(url, { method, headers: body !== undefined ? { ...headers, 'content-length': String(Buffer.byteLength(body)) } : headers, agent: this.agent });
      const abort = (reason: string): void => {
        finish(new Error(reason));
        req.destroy();
      };
      this.active.add(abort);
      const timer = setTimeout(() => abort(`no answer within ${timeoutMs} ms`), timeoutMs);
      if (!awaited) {
        timer.unref();
        // a request in flight must not keep the process alive: the exit handlers bound delivery
        req.on('socket', (socket) => socket.unref());
      } else {
        req.on('socket', (socket) => socket.ref());
      }
      req.on('error', (e) => finish(e));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => finish(e));
        res.on('end', () => {
          const retryAfter = res.headers['retry-after'];
          finish(null, {
            status: res.statusCode ?? 0,
            retryAfter: typeof retryAfter === 'string' ? retryAfter : null,
            text: Buffer.concat(chunks).toString('utf8'),
          });
        });
      });
      if (body !== undefined) req.end(body);
      else req.end();
    });
  }

  private async viaFetch(method: string, path: string, headers: Record<string, string>, body: string | undefined): Promise<RawResponse> {
    const controller = new AbortController();
    let reason = '';
    const abort = (why: string): void => {
      reason = why;
      controller.abort();
    };
    this.active.add(abort);
    const timer = setTimeout(() => abort(`no answer within ${this.config.requestTimeoutMs} ms`), this.config.requestTimeoutMs);
    if (typeof timer === 'object' && typeof timer.unref === 'function') timer.unref();
    try {
      const init: RequestInit = { method, headers, signal: controller.signal };
      if (body !== undefined) init.body = body;
      const response = await this.config.fetch!(this.base + path, init);
      // read the body under the same timeout: a server may send headers and then stall
      const text = await response.text();
      return { status: response.status, retryAfter: response.headers.get('retry-after'), text };
    } catch (e) {
      if (reason) throw new Error(reason);
      const cause = (e as { cause?: unknown }).cause;
      throw new Error(cause ? `${errorMessage(e)} (${errorMessage(cause)})` : errorMessage(e));
    } finally {
      clearTimeout(timer);
      this.active.delete(abort);
    }
  }
}
