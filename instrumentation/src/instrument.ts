/**
 * instrument(): hooks for the Claude Agent SDK that turn each task into a trajectory and each
 * tool call into a step, delivered to the Agent Lightning collector in the background.
 *
 * This module only composes the parts: options.ts (validation, defaults), recorder.ts (the
 * trajectory model), hooks.ts (the SDK callbacks), tracking.ts (track(), query()), payload.ts
 * (redaction/truncation), outbox.ts + retry-policy.ts (delivery), spool.ts, lifecycle.ts (exit).
 */
import { randomUUID } from 'node:crypto';
import { PromptAssignments } from './assignments.js';
import { LightningClient, type RequestOutcome } from './client.js';
import { buildHooks } from './hooks.js';
import { Lifecycle } from './lifecycle.js';
import { resolveOptions, VERSION, type ResolvedOptions } from './options.js';
import { Outbox, type Preparer, type StartDraft } from './outbox.js';
import { PayloadPreparer } from './payload.js';
import { Recorder } from './recorder.js';
import { RedactionTally, Redactor } from './redact.js';
import { errorMessage, toJsonSafe } from './sanitize.js';
import { Spool } from './spool.js';
import { track, trackedQuery } from './tracking.js';
import type {
  InstrumentOptions,
  JsonValue,
  Lightning,
  LightningHooks,
  LightningStats,
  PromptAssignment,
  PromptOptions,
  PromptResult,
  ScoreOptions,
  ScoreValue,
  TrackContext,
  TrackedQuery,
} from './types.js';

export { VERSION } from './options.js';
export { NO_POST_HOOK } from './recorder.js';

const SCORE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const SCORE_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const SCORE_SOURCES = new Set(['human', 'llm', 'code', 'sdk']);

class Instrumentation implements Lightning {
  readonly hooks: LightningHooks;
  private readonly cfg: ResolvedOptions;
  private readonly client: LightningClient;
  private readonly outbox: Outbox;
  private readonly recorder: Recorder;
  private readonly lifecycle: Lifecycle;
  private readonly redactions: RedactionTally;
  /** prompt() results and which trajectory records which (see assignments.ts). */
  private readonly assignments = new PromptAssignments();
  /** prompt()'s default unit: one draw per process. */
  private readonly unit = randomUUID();
  private closed = false;
  private warnedUnauthorized = false;

  constructor(private readonly options: InstrumentOptions) {
    this.cfg = resolveOptions(options);
    const cfg = this.cfg;
    if (options.fetch !== undefined && typeof options.fetch !== 'function') throw new TypeError('instrument(): fetch must be a function');
    this.debug('[Lightning Instrumentation] Initializing...');
    this.client = new LightningClient({
      collectorUrl: cfg.collectorUrl,
      apiKey: cfg.apiKey,
      requestTimeoutMs: cfg.requestTimeoutMs,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      logger: cfg.logger,
      debug: cfg.debug,
      userAgent: `agent-lightning-instrumentation/${VERSION} node/${process.versions.node}`,
    });
    const spool = cfg.spoolDir ? new Spool(cfg.spoolDir, cfg.maxSpoolBytes, cfg.logger, cfg.debug) : null;
    const redactor = Redactor.fromOptions(options.redact, options.redactPatterns);
    this.redactions = new RedactionTally(redactor, (m) => this.debug(m));
    const prepared = new PayloadPreparer(redactor, cfg.maxFieldBytes, options.sanitize, (message) =>
      this.debug(`[Lightning Instrumentation] sanitize() threw; fields withheld: ${message}`),
    );
    // Each record's redactions are counted per kind for stats().redactions.
    const preparer: Preparer = {
      start: (d) => this.redactions.track(d, () => prepared.start(d)),
      step: (d) => this.redactions.track(d, () => prepared.step(d)),
      complete: (d) => this.redactions.track(d, () => prepared.complete(d)),
      score: (d) => this.redactions.track(d, () => prepared.score(d)),
    };
    this.outbox = new Outbox(
      {
        batchSize: cfg.batchSize,
        maxBatchBytes: cfg.maxBatchBytes,
        maxQueueSize: cfg.maxQueueSize,
        maxQueueBytes: cfg.maxQueueBytes,
        flushInterval: cfg.flushInterval,
        backoff: cfg.backoff,
        debug: cfg.debug,
        logger: cfg.logger,
      },
      this.client,
      preparer,
      spool,
    );
    this.recorder = new Recorder(
      {
        agentId: cfg.agentId,
        taskType: options.taskType,
        metadata: options.metadata,
        debug: (m) => this.debug(m),
        attribute: (body) => this.assignments.attribute(body),
      },
      this.outbox,
    );
    this.outbox.onUnauthorized = (error) => this.unauthorized(error);
    this.outbox.startFor = (trajectoryId) => this.recorder.startFor(trajectoryId);
    this.lifecycle = new Lifecycle({
      outbox: this.outbox,
      client: this.client,
      recorder: this.recorder,
      shutdownTimeoutMs: cfg.shutdownTimeoutMs,
      debug: (m) => this.debug(m),
      close: () => {
        this.closed = true;
      },
    });
    if (spool) {
      try {
        const records = spool.claim();
        if (records.length > 0) this.outbox.replay(records);
      } catch (e) {
        cfg.logger.warn(`[Lightning Instrumentation] Could not read the spool ${cfg.spoolDir}: ${errorMessage(e)}`);
      }
    }
    this.hooks = buildHooks({
      recorder: this.recorder,
      active: () => !this.closed,
      debug: (m) => this.debug(m),
      pump: () => this.outbox.schedulePump(),
    });
    if (cfg.handleProcessExit) this.lifecycle.attach();
  }

  private debug(message: string): void {
    if (this.cfg.debug) this.cfg.logger.debug(message);
  }

  private unauthorized(error: string): void {
    if (this.warnedUnauthorized) return;
    this.warnedUnauthorized = true;
    this.cfg.logger.warn(
      `[Lightning Instrumentation] The collector rejected the API key repeatedly (401); nothing more is sent by this process. Captured data goes to the spool${this.cfg.spoolDir ? ` (${this.cfg.spoolDir})` : ' (off: it is lost)'} and is delivered by the next process with a valid key. The agent is not affected. (${error})`,
    );
  }

  private get trackDeps() {
    return {
      recorder: this.recorder,
      active: () => !this.closed,
      debug: (m: string) => this.debug(m),
      attribute: (body: StartDraft['body'], explicit?: PromptResult) => this.assignments.attribute(body, explicit),
    };
  }

  track<Q extends AsyncIterable<unknown>>(query: Q, context?: TrackContext): Q {
    return track(this.trackDeps, query, context);
  }

  query(params: { prompt: unknown; options?: object }, context?: Pick<TrackContext, 'assignment' | 'taskType' | 'metadata'>): TrackedQuery {
    return trackedQuery(this.trackDeps, this.hooks, this.options.sdk, params, context);
  }

  currentTrajectoryId(): string | null {
    return this.recorder.currentTrajectoryId();
  }

  score(name: string, value: ScoreValue, options: ScoreOptions = {}): string | null {
    const reject = (why: string): null => {
      this.cfg.logger.warn(`[Lightning Instrumentation] score(${JSON.stringify(name)}) ignored: ${why}`);
      return null;
    };
    if (typeof name !== 'string' || !SCORE_NAME.test(name)) return reject('name must be 1-64 characters of [A-Za-z0-9_.:-]');
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return reject('value must be a finite number, a boolean or a string label');
    } else if (typeof value === 'string') {
      if (value.length < 1 || value.length > 256) return reject('a label must be 1-256 characters');
    } else if (typeof value !== 'boolean') {
      return reject('value must be a finite number, a boolean or a string label');
    }
    const trajectoryId = options.trajectoryId ?? this.recorder.currentTrajectoryId();
    if (!trajectoryId) return reject('no trajectory yet (pass trajectoryId)');
    if (options.source !== undefined && !SCORE_SOURCES.has(options.source)) return reject('source must be human, llm, code or sdk');
    const id = options.id ?? randomUUID();
    if (!SCORE_ID.test(id)) return reject('id must be 1-128 characters of [A-Za-z0-9_.:-]');
    if (options.stepNumber !== undefined && (!Number.isInteger(options.stepNumber) || options.stepNumber < 0)) {
      return reject('stepNumber must be a non-negative integer');
    }
    const body: { id: string; name: string; value: ScoreValue; comment?: unknown; source?: ScoreOptions['source']; stepNumber?: number; metadata?: Record<string, unknown> } = {
      id,
      name,
      value,
      source: options.source ?? 'sdk',
    };
    if (options.comment !== undefined) body.comment = options.comment;
    if (options.stepNumber !== undefined) body.stepNumber = options.stepNumber;
    if (options.metadata !== undefined) body.metadata = options.metadata;
    this.recorder.startById(trajectoryId);
    this.outbox.addScore(trajectoryId, { body });
    return id;
  }

  // ------------------------------------------------------------------ prompts

  async promptDetails(fallback: string, options: PromptOptions = {}): Promise<PromptResult> {
    const result = await this.ask(fallback, options);
    this.assignments.remember(result);
    return result;
  }

  private async ask(fallback: string, options: PromptOptions): Promise<PromptResult> {
    const unit = options.unit ?? this.unit;
    const useFallback = (why: { arm: 'fallback'; rolloutId: string | null } | { error: string }): PromptResult => {
      const assignment: PromptAssignment =
        'arm' in why ? { arm: 'fallback', unit, rolloutId: why.rolloutId, version: null } : { arm: 'unassigned', unit, error: why.error };
      const out: PromptResult = { text: fallback, version: null, source: 'fallback', unit, assignment };
      if ('arm' in why) {
        out.arm = 'fallback';
        out.rolloutId = why.rolloutId;
      }
      return out;
    };
    if (this.outbox.unauthorized) return useFallback({ error: 'the collector rejected the API key' });
    if (typeof unit !== 'string' || unit.length === 0 || unit.length > 256) {
      this.cfg.logger.warn('[Lightning Instrumentation] prompt(): unit must be 1-256 characters; using the fallback');
      return useFallback({ error: 'unit must be 1-256 characters' });
    }
    const agent = encodeURIComponent(this.cfg.agentId);
    const timeoutMs = options.timeoutMs ?? 3000;
    const ask = (path: string) => withTimeout(this.client.request('GET', path, undefined, true), timeoutMs, path);
    let outcome = await ask(`/api/agents/${agent}/prompts/assignment?unit=${encodeURIComponent(unit)}`);
    // A collector from before rollouts has no assignment route: ask for the promoted version.
    if (outcome.kind === 'rejected' && outcome.status === 404 && /no API route/.test(outcome.error)) {
      outcome = await ask(`/api/agents/${agent}/prompts/latest`);
    }
    if (outcome.kind === 'ok' && outcome.body && typeof outcome.body === 'object') {
      const body = outcome.body as { text?: unknown; version?: unknown; arm?: unknown; rolloutId?: unknown };
      const arm = body.arm === 'canary' || body.arm === 'promoted' || body.arm === 'fallback' ? body.arm : 'promoted';
      const rolloutId = typeof body.rolloutId === 'string' ? body.rolloutId : null;
      if (typeof body.text === 'string' && (typeof body.version === 'number' || typeof body.version === 'string')) {
        const version = String(body.version);
        this.debug(`[Lightning Instrumentation] Using prompt version ${version} (${arm}) for unit ${unit}`);
        return { text: body.text, version, source: 'collector', arm, unit, rolloutId, assignment: { arm, unit, rolloutId, version } };
      }
      if (arm === 'fallback') {
        this.debug('[Lightning Instrumentation] Assigned the baseline of a rollout: using the fallback');
        return useFallback({ arm: 'fallback', rolloutId });
      }
    }
    if (outcome.kind === 'unauthorized') {
      this.cfg.logger.warn(`[Lightning Instrumentation] The collector rejected the API key (401) when fetching the prompt; using the fallback. (${outcome.error})`);
    } else if (outcome.kind !== 'ok' && !(outcome.kind === 'rejected' && outcome.status === 404)) {
      this.cfg.logger.warn(`[Lightning Instrumentation] Could not fetch the prompt, using the fallback: ${outcome.error}`);
    } else {
      this.debug('[Lightning Instrumentation] No prompt stored for this agent; using the fallback');
      return useFallback({ error: 'no prompt stored for this agent' });
    }
    return useFallback({ error: outcome.error });
  }

  async prompt(fallback: string, options?: PromptOptions): Promise<string> {
    return (await this.promptDetails(fallback, options)).text;
  }

  // ------------------------------------------------------------------ lifecycle

  flush(options?: { timeoutMs?: number }): Promise<void> {
    return this.lifecycle.deliver(options?.timeoutMs ?? this.cfg.shutdownTimeoutMs, false);
  }

  stats(): LightningStats {
    const c = this.outbox.counters;
    return {
      sent: c.sent,
      queued: this.outbox.pending,
      queuedBytes: this.outbox.bytes,
      dropped: c.dropped,
      droppedBytes: c.droppedBytes,
      failed: c.failed,
      retries: c.retries,
      spooled: c.spooled,
      replayed: c.replayed,
      trajectories: this.recorder.trajectories,
      disabled: this.outbox.unauthorized,
      promptVersion: this.assignments.latestVersion,
      lastError: c.lastError,
      redactions: this.redactions.snapshot(),
    };
  }

  async shutdown(options?: { timeoutMs?: number }): Promise<void> {
    if (this.closed && !this.outbox.sending) return;
    this.closed = true;
    this.lifecycle.detachAll();
    this.lifecycle.endOpen('shutdown() was called before the agent finished');
    await this.lifecycle.finish(options?.timeoutMs ?? this.cfg.shutdownTimeoutMs);
  }
}

/** Creates an instrumentation instance. Never throws later: only bad options throw here. */
export function instrument(options: InstrumentOptions): Lightning {
  return new Instrumentation(options);
}

/** JSON helper for callers: converts any value to JSON data the collector accepts. */
export function toJson(value: unknown): JsonValue {
  return toJsonSafe(value, new Redactor(false));
}

/** `request` or a `retry` outcome after `ms`: prompt() never waits long for a collector. */
function withTimeout(request: Promise<RequestOutcome>, ms: number, path: string): Promise<RequestOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<RequestOutcome>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'retry', status: null, error: `GET ${path}: no answer within ${ms} ms` }), ms);
    timer.unref();
  });
  return Promise.race([request, timeout]).finally(() => clearTimeout(timer));
}
