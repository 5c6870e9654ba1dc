/** Minimal HTTP client for the collector: JSON over fetch with a hard timeout. Never throws. */
import { isRetriableStatus, parseRetryAfter } from './backoff.js';
import type { Logger } from './types.js';
import { errorMessage } from './sanitize.js';

export type RequestOutcome =
  | { kind: 'ok'; status: number; body: unknown }
  /** Worth retrying: network error, timeout, 408/425/429/5xx. */
  | { kind: 'retry'; status: number | null; error: string; retryAfterMs?: number }
  /** 401: the key is wrong; nothing will succeed. */
  | { kind: 'unauthorized'; status: 401; error: string }
  /** Any other 4xx: not retried. */
  | { kind: 'rejected'; status: number; error: string };

export interface ClientConfig {
  collectorUrl: string;
  apiKey: string;
  requestTimeoutMs: number;
  fetch: typeof fetch;
  logger: Logger;
  debug: boolean;
  userAgent: string;
}

export class LightningClient {
  private readonly base: string;

  constructor(private readonly config: ClientConfig) {
    this.base = config.collectorUrl.replace(/\/+$/, '');
  }

  async request(method: 'GET' | 'POST', path: string, body?: string): Promise<RequestOutcome> {
    if (this.config.debug) this.config.logger.debug(`[LightningClient] ${method} ${path}`);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.config.requestTimeoutMs);
    if (typeof timer === 'object' && typeof timer.unref === 'function') timer.unref();
    try {
      const headers: Record<string, string> = {
        authorization: `Bearer ${this.config.apiKey}`,
        accept: 'application/json',
        'user-agent': this.config.userAgent,
      };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const init: RequestInit = { method, headers, signal: controller.signal };
      if (body !== undefined) init.body = body;
      const response = await this.config.fetch(this.base + path, init);
      // read the body under the same timeout: a server may send headers and then stall
      const text = await response.text();
      const status = response.status;
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
        const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
        return retryAfterMs === undefined
          ? { kind: 'retry', status, error }
          : { kind: 'retry', status, error, retryAfterMs };
      }
      return { kind: 'rejected', status, error };
    } catch (e) {
      const timedOut = controller.signal.aborted;
      const cause = (e as { cause?: unknown }).cause;
      const detail = cause ? `${errorMessage(e)} (${errorMessage(cause)})` : errorMessage(e);
      return {
        kind: 'retry',
        status: null,
        error: timedOut
          ? `${method} ${path}: no answer within ${this.config.requestTimeoutMs} ms`
          : `${method} ${path}: ${detail}`,
      };
    } finally {
      clearTimeout(timer);
    }
  }
}
