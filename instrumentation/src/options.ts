/** Validation and defaults of instrument()'s options. */
import { redactingLogger } from './redact.js';
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import type { InstrumentOptions, Logger } from './types.js';

export const VERSION = '0.1.0';

/** The options after validation, with every default filled in. */
export interface ResolvedOptions {
  collectorUrl: string;
  apiKey: string;
  agentId: string;
  batchSize: number;
  flushInterval: number;
  maxBatchBytes: number;
  debug: boolean;
  maxQueueSize: number;
  maxQueueBytes: number;
  /** null: spooling is off */
  spoolDir: string | null;
  maxSpoolBytes: number;
  maxFieldBytes: number;
  redact: boolean;
  requestTimeoutMs: number;
  shutdownTimeoutMs: number;
  handleProcessExit: boolean;
  backoff: { baseDelayMs: number; maxDelayMs: number; maxRetryAfterMs: number };
  logger: Logger;
}

export const defaultLogger: Logger = {
  debug: (m) => console.error(m),
  warn: (m) => console.warn(m),
};

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new TypeError(`instrument(): ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`);
  }
  return value;
}

/**
 * The per-user spool root: `$XDG_STATE_HOME/agent-lightning/spool`, else
 * `~/.local/state/agent-lightning/spool`, else `<tmpdir>/agent-lightning-<uid>/spool`.
 */
export function defaultSpoolRoot(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'agent-lightning', 'spool');
  let home = '';
  try {
    home = env.HOME || os.homedir();
  } catch {
    home = '';
  }
  if (home && path.isAbsolute(home)) return path.join(home, '.local', 'state', 'agent-lightning', 'spool');
  let uid = 'user';
  try {
    uid = String(os.userInfo().uid);
  } catch {
    /* no passwd entry */
  }
  return path.join(os.tmpdir(), `agent-lightning-${uid}`, 'spool');
}

/**
 * Records for different collectors must never be delivered to each other: the default spool keeps
 * one subdirectory per collector URL (16 hex digits of its SHA-256, trailing slashes removed).
 */
export function collectorKey(collectorUrl: string): string {
  return createHash('sha256').update(collectorUrl.replace(/\/+$/, '')).digest('hex').slice(0, 16);
}

export function resolveOptions(options: InstrumentOptions): ResolvedOptions {
  if (!options || typeof options !== 'object') throw new TypeError('instrument(): options are required');
  for (const key of ['collectorUrl', 'agentId'] as const) {
    if (typeof options[key] !== 'string' || options[key].length === 0) {
      throw new TypeError(`instrument(): ${key} must be a non-empty string`);
    }
  }
  if (typeof options.apiKey !== 'string') throw new TypeError('instrument(): apiKey must be a string');
  try {
    new URL(options.collectorUrl);
  } catch {
    throw new TypeError(`instrument(): collectorUrl is not a URL: ${options.collectorUrl}`);
  }
  if (options.spool !== undefined && typeof options.spool !== 'boolean') {
    throw new TypeError('instrument(): spool must be a boolean');
  }
  if (options.spoolDir !== undefined && (typeof options.spoolDir !== 'string' || options.spoolDir.length === 0)) {
    throw new TypeError('instrument(): spoolDir must be a non-empty string');
  }
  let spoolDir: string | null = null;
  if (options.spool !== false) {
    spoolDir = options.spoolDir ?? path.join(defaultSpoolRoot(), collectorKey(options.collectorUrl));
  }
  return {
    collectorUrl: options.collectorUrl,
    apiKey: options.apiKey,
    agentId: options.agentId,
    batchSize: Math.floor(positive('batchSize', options.batchSize, 10)),
    flushInterval: positive('flushInterval', options.flushInterval, 5000, true),
    maxBatchBytes: positive('maxBatchBytes', options.maxBatchBytes, 512 * 1024),
    debug: options.debug === true,
    maxQueueSize: Math.floor(positive('maxQueueSize', options.maxQueueSize, 10000)),
    maxQueueBytes: positive('maxQueueBytes', options.maxQueueBytes, 32 * 1024 * 1024),
    spoolDir,
    maxSpoolBytes: positive('maxSpoolBytes', options.maxSpoolBytes, 64 * 1024 * 1024),
    maxFieldBytes: Math.max(256, positive('maxFieldBytes', options.maxFieldBytes, 32 * 1024)),
    redact: options.redact !== false,
    requestTimeoutMs: positive('requestTimeoutMs', options.requestTimeoutMs, 10000),
    shutdownTimeoutMs: positive('shutdownTimeoutMs', options.shutdownTimeoutMs, 5000, true),
    handleProcessExit: options.handleProcessExit !== false,
    backoff: {
      baseDelayMs: positive('retry.baseDelayMs', options.retry?.baseDelayMs, 500),
      maxDelayMs: positive('retry.maxDelayMs', options.retry?.maxDelayMs, 30000),
      maxRetryAfterMs: positive('retry.maxRetryAfterMs', options.retry?.maxRetryAfterMs, 60000),
    },
    logger: redactingLogger(options.logger ?? defaultLogger),
  };
}
