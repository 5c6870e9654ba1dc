/**
 * instrument(): hooks for the Claude Agent SDK that turn each session into a trajectory and each
 * tool call into a step, delivered to the Agent Lightning collector in the background.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { StepBuffer, type CompleteDraft, type StartDraft, type StepDraft, type StepItem, type StartItem } from './buffer.js';
import { LightningClient } from './client.js';
import { RedactionTally, Redactor, redactingLogger } from './redact.js';
import { applyUserSanitizer, errorMessage, sanitizeField, toJsonSafe, truncateJson } from './sanitize.js';
import { Spool } from './spool.js';
import type {
  CompletePayload,
  EmptyHookOutput,
  HookInputLike,
  InstrumentOptions,
  JsonValue,
  Lightning,
  LightningHookCallback,
  LightningHooks,
  LightningStats,
  Logger,
  PromptResult,
  StartPayload,
  StepPayload,
  TrackContext,
  UsagePayload,
} from './types.js';

export const VERSION = '0.1.0';

const MAX_SESSIONS = 10000;

/** Error recorded for a step that never got PostToolUse/PostToolUseFailure. */
export const NO_POST_HOOK = 'Tool call did not complete: no PostToolUse/PostToolUseFailure';

interface OpenStep {
  stepNumber: number;
  toolName: string;
  toolUseId: string;
  startedAt: number;
  metadata: Record<string, unknown>;
  item: StepItem | undefined;
}

interface Session {
  sessionId: string;
  trajectoryId: string;
  startMs: number;
  startDraft: StartDraft;
  startItem: StartItem | undefined;
  nextStep: number;
  stepCount: number;
  open: Map<string, OpenStep>;
  tracked: boolean;
  completed: boolean;
}

type Resolved = Required<
  Pick<
    InstrumentOptions,
    | 'batchSize'
    | 'flushInterval'
    | 'maxBatchBytes'
    | 'debug'
    | 'maxQueueSize'
    | 'maxSpoolBytes'
    | 'maxFieldBytes'
    | 'redact'
    | 'requestTimeoutMs'
    | 'shutdownTimeoutMs'
    | 'handleProcessExit'
  >
>;

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new TypeError(`instrument(): ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`);
  }
  return value;
}

const defaultLogger: Logger = {
  debug: (m) => console.error(m),
  warn: (m) => console.warn(m),
};

const EMPTY = (): Promise<EmptyHookOutput> => Promise.resolve({});

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function systemPromptText(sp: TrackContext['systemPrompt']): string | undefined {
  if (sp === undefined || sp === null) return undefined;
  if (typeof sp === 'string') return sp;
  if (Array.isArray(sp)) return sp.join('\n');
  if (typeof sp === 'object') {
    if (typeof sp.prompt === 'string') return sp.prompt;
    const parts = [sp.preset ? `[preset:${sp.preset}]` : `[${sp.type}]`];
    if (typeof sp.append === 'string') parts.push(sp.append);
    return parts.join('\n');
  }
  return undefined;
}

function stepMetadata(input: HookInputLike): Record<string, unknown> {
  const m: Record<string, unknown> = {};
  if (input.agent_id !== undefined) m.agent_id = input.agent_id;
  if (input.agent_type !== undefined) m.agent_type = input.agent_type;
  if (input.prompt_id !== undefined) m.prompt_id = input.prompt_id;
  if (input.mcp_server !== undefined) m.mcp_server = input.mcp_server;
  return m;
}

function toolResultText(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    const texts: string[] = [];
    for (const block of content) {
      if (block && typeof block === 'object' && (block as { type?: unknown }).type === 'text') {
        const t = (block as { text?: unknown }).text;
        if (typeof t === 'string') texts.push(t);
      }
    }
    return texts.join('\n');
  }
  return undefined;
}

function usageFrom(u: unknown): UsagePayload | undefined {
  if (!u || typeof u !== 'object') return undefined;
  const r = u as Record<string, unknown>;
  return {
    inputTokens: num(r.input_tokens) ?? 0,
    outputTokens: num(r.output_tokens) ?? 0,
    cacheReadInputTokens: num(r.cache_read_input_tokens) ?? 0,
    cacheCreationInputTokens: num(r.cache_creation_input_tokens) ?? 0,
  };
}

class Instrumentation implements Lightning {
  readonly hooks: LightningHooks;
  private readonly cfg: Resolved;
  private readonly logger: Logger;
  private readonly redactor: Redactor;
  private readonly redactions: RedactionTally;
  private readonly client: LightningClient;
  private readonly buffer: StepBuffer;
  private readonly sessions = new Map<string, Session>();
  private readonly byTrajectory = new Map<string, Session>();
  private promptVersion: string | null = null;
  private trajectories = 0;
  private closed = false;
  private warned401 = false;
  private exitFlushRunning = false;
  private readonly detach: (() => void)[] = [];

  constructor(private readonly options: InstrumentOptions) {
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
    this.cfg = {
      batchSize: Math.floor(positive('batchSize', options.batchSize, 10)),
      flushInterval: positive('flushInterval', options.flushInterval, 5000, true),
      maxBatchBytes: positive('maxBatchBytes', options.maxBatchBytes, 512 * 1024),
      debug: options.debug === true,
      maxQueueSize: Math.floor(positive('maxQueueSize', options.maxQueueSize, 10000)),
      maxSpoolBytes: positive('maxSpoolBytes', options.maxSpoolBytes, 64 * 1024 * 1024),
      maxFieldBytes: Math.max(256, positive('maxFieldBytes', options.maxFieldBytes, 32 * 1024)),
      redact: options.redact !== false,
      requestTimeoutMs: positive('requestTimeoutMs', options.requestTimeoutMs, 10000),
      shutdownTimeoutMs: positive('shutdownTimeoutMs', options.shutdownTimeoutMs, 5000, true),
      handleProcessExit: options.handleProcessExit !== false,
    };
    this.logger = redactingLogger(options.logger ?? defaultLogger);
    this.redactor = Redactor.fromOptions(options.redact, options.redactPatterns);
    this.redactions = new RedactionTally(this.redactor, (m) => this.debug(m));
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== 'function') {
      throw new TypeError('instrument(): no global fetch (Node >= 18 required) and no fetch option given');
    }
    this.debug('[Lightning Instrumentation] Initializing...');
    this.client = new LightningClient({
      collectorUrl: options.collectorUrl,
      apiKey: options.apiKey,
      requestTimeoutMs: this.cfg.requestTimeoutMs,
      fetch: fetchImpl,
      logger: this.logger,
      debug: this.cfg.debug,
      userAgent: `agent-lightning-instrumentation/${VERSION} node/${process.versions.node}`,
    });
    const spool = options.spoolDir
      ? new Spool(options.spoolDir, this.cfg.maxSpoolBytes, this.logger, this.cfg.debug)
      : null;
    this.buffer = new StepBuffer(
      {
        batchSize: this.cfg.batchSize,
        maxBatchBytes: this.cfg.maxBatchBytes,
        maxQueueSize: this.cfg.maxQueueSize,
        flushInterval: this.cfg.flushInterval,
        backoff: {
          baseDelayMs: positive('retry.baseDelayMs', options.retry?.baseDelayMs, 500),
          maxDelayMs: positive('retry.maxDelayMs', options.retry?.maxDelayMs, 30000),
          maxRetryAfterMs: positive('retry.maxRetryAfterMs', options.retry?.maxRetryAfterMs, 60000),
        },
        debug: this.cfg.debug,
        logger: this.logger,
      },
      this.client,
      {
        start: (d) => this.redactions.track(d, () => this.prepareStart(d)),
        step: (d) => this.redactions.track(d, () => this.prepareStep(d)),
        complete: (d) => this.redactions.track(d, () => this.prepareComplete(d)),
      },
      spool,
    );
    this.buffer.onUnauthorized = (error) => this.unauthorized(error);
    this.buffer.startFor = (trajectoryId) => this.byTrajectory.get(trajectoryId)?.startDraft;
    if (spool) {
      const records = spool.claim();
      if (records.length > 0) this.buffer.replay(records);
    }
    this.hooks = this.buildHooks();
    if (this.cfg.handleProcessExit) this.attachProcessHandlers();
  }

  // ------------------------------------------------------------------ logging

  private debug(message: string): void {
    if (this.cfg.debug) this.logger.debug(message);
  }

  private unauthorized(error: string): void {
    if (this.warned401) return;
    this.warned401 = true;
    this.logger.warn(
      `[Lightning Instrumentation] The collector rejected the API key (401); capture is disabled for this instance. The agent is not affected. (${error})`,
    );
  }

  // ------------------------------------------------------------------ sessions

  private get active(): boolean {
    return !this.closed && !this.buffer.disabled;
  }

  private session(sessionId: string): Session {
    const existing = this.sessions.get(sessionId);
    if (existing) return existing;
    const trajectoryId = randomUUID();
    const now = Date.now();
    const metadata: Record<string, unknown> = {
      ...(this.options.metadata ?? {}),
      instrumentation: `@agent-lightning/instrumentation@${VERSION}`,
    };
    const body: StartDraft['body'] = {
      trajectoryId,
      agentId: this.options.agentId,
      startTime: new Date(now).toISOString(),
      sessionId,
      metadata,
    };
    if (this.options.taskType !== undefined) body.taskType = this.options.taskType;
    if (this.promptVersion !== null) body.promptVersion = this.promptVersion;
    const s: Session = {
      sessionId,
      trajectoryId,
      startMs: now,
      startDraft: { body },
      startItem: undefined,
      nextStep: 1,
      stepCount: 0,
      open: new Map(),
      tracked: false,
      completed: false,
    };
    if (this.sessions.size >= MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value as string;
      const old = this.sessions.get(oldest);
      this.sessions.delete(oldest);
      if (old) this.byTrajectory.delete(old.trajectoryId);
    }
    this.sessions.set(sessionId, s);
    this.byTrajectory.set(trajectoryId, s);
    s.startItem = this.buffer.addStart(trajectoryId, s.startDraft);
    this.trajectories++;
    this.debug(`[Lightning Hooks] Session started (session ${sessionId}, trajectory ${trajectoryId})`);
    return s;
  }

  /** Changes the start record while it is still queued (the collector keeps the first start). */
  private patchStart(s: Session, patch: (body: StartDraft['body']) => void): void {
    if (!s.startItem || !this.buffer.isQueued(s.startItem)) {
      // already sent: later retries/replays of the start carry the patch, the stored row keeps its fields
      patch(s.startDraft.body);
      return;
    }
    patch(s.startDraft.body);
    this.buffer.touch(s.startItem);
  }

  // ------------------------------------------------------------------ steps

  private openStep(s: Session, input: HookInputLike, toolUseId: string): OpenStep {
    const stepNumber = s.nextStep++;
    s.stepCount++;
    const toolName = str(input.tool_name) || 'unknown';
    const metadata = stepMetadata(input);
    const draft: StepDraft = {
      stepNumber,
      toolName,
      timestampMs: Date.now(),
      toolUseId,
      hasInput: true,
      input: input.tool_input,
      hasOutput: false,
      metadata,
    };
    const item = this.buffer.addStep(s.trajectoryId, draft);
    const open: OpenStep = { stepNumber, toolName, toolUseId, startedAt: performance.now(), metadata, item };
    s.open.set(toolUseId, open);
    return open;
  }

  private closeStep(
    s: Session,
    open: OpenStep,
    how: { output?: unknown; hasOutput?: boolean; error?: string; durationMs?: number; closedBy: string; extra?: Record<string, unknown> },
  ): void {
    s.open.delete(open.toolUseId);
    const durationMs = Math.max(0, Math.round(how.durationMs ?? performance.now() - open.startedAt));
    const metadata = { ...open.metadata, ...(how.extra ?? {}), closedBy: how.closedBy };
    const update: Partial<StepDraft> & { stepNumber: number; toolName: string } = {
      stepNumber: open.stepNumber,
      toolName: open.toolName,
      toolUseId: open.toolUseId,
      durationMs,
      metadata,
    };
    if (how.hasOutput) {
      update.hasOutput = true;
      update.output = how.output;
    }
    if (how.error !== undefined) update.error = how.error;
    open.item = this.buffer.updateStep(s.trajectoryId, open.item, update);
  }

  private closeAllOpen(s: Session, reason: string): void {
    for (const open of [...s.open.values()]) {
      this.closeStep(s, open, { error: `${NO_POST_HOOK} before ${reason}`, closedBy: reason });
    }
  }

  private complete(s: Session, draft: CompleteDraft): void {
    s.completed = true;
    this.buffer.addComplete(s.trajectoryId, draft);
    this.debug(`[Lightning Hooks] Trajectory ${s.trajectoryId} complete (success: ${draft.body.success})`);
  }

  /**
   * Stop (error undefined) or StopFailure: close what never got a post hook, then complete the
   * trajectory — unless track() owns completion, in which case the result message will.
   */
  private finishOnStop(s: Session, input: HookInputLike, hook: string, error: string | undefined): void {
    this.closeAllOpen(s, hook);
    if (s.tracked) {
      this.buffer.schedulePump();
      return;
    }
    const body: CompleteDraft['body'] = {
      success: error === undefined,
      ...(error !== undefined ? { error } : {}),
      totalSteps: s.stepCount,
      duration: Date.now() - s.startMs,
      endTime: new Date().toISOString(),
    };
    const last = str(input.last_assistant_message);
    if (last !== undefined) body.result = last;
    this.complete(s, { body });
  }

  // ------------------------------------------------------------------ hooks

  private buildHooks(): LightningHooks {
    const wrap = (
      event: string,
      handler: (input: HookInputLike, toolUseID: string | undefined) => void,
    ): LightningHookCallback => {
      return (input: HookInputLike, toolUseID: string | undefined): Promise<EmptyHookOutput> => {
        if (!this.active) return EMPTY();
        try {
          if (input && typeof input === 'object') handler(input, toolUseID);
        } catch (e) {
          this.debug(`[Lightning Hooks] ${event} handler error (ignored): ${errorMessage(e)}`);
        }
        return EMPTY();
      };
    };
    const sid = (input: HookInputLike): string => (typeof input.session_id === 'string' ? input.session_id : 'unknown-session');
    const toolUseIdOf = (input: HookInputLike): string => str(input.tool_use_id) ?? `no-id-${randomUUID()}`;

    const userPromptSubmit = wrap('UserPromptSubmit', (input) => {
      const s = this.session(sid(input));
      const prompt = str(input.prompt);
      if (prompt !== undefined) {
        this.patchStart(s, (b) => {
          if (b.prompt === undefined) b.prompt = prompt;
        });
      }
    });

    const preToolUse = wrap('PreToolUse', (input) => {
      const s = this.session(sid(input));
      this.debug(`[Lightning Hooks] Pre-tool: ${str(input.tool_name) ?? 'unknown'}`);
      const toolUseId = toolUseIdOf(input);
      if (s.open.has(toolUseId)) return; // the same call reported twice
      this.openStep(s, input, toolUseId);
    });

    const post = (failure: boolean) =>
      wrap(failure ? 'PostToolUseFailure' : 'PostToolUse', (input) => {
        const s = this.session(sid(input));
        this.debug(`[Lightning Hooks] Post-tool: ${str(input.tool_name) ?? 'unknown'}${failure ? ' (failed)' : ''}`);
        const toolUseId = toolUseIdOf(input);
        // a post without a pre (e.g. instrumented mid-call): open it now so nothing is lost
        const open = s.open.get(toolUseId) ?? this.openStep(s, input, toolUseId);
        const durationMs = num(input.duration_ms);
        const extra: Record<string, unknown> = {};
        if (failure && input.is_interrupt !== undefined) extra.is_interrupt = input.is_interrupt;
        const how: Parameters<Instrumentation['closeStep']>[2] = {
          closedBy: failure ? 'PostToolUseFailure' : 'PostToolUse',
          extra,
        };
        if (durationMs !== undefined) how.durationMs = durationMs;
        if (failure) how.error = str(input.error) ?? (input.error === undefined ? 'Tool failed' : JSON.stringify(input.error));
        else {
          how.hasOutput = true;
          how.output = input.tool_response;
        }
        this.closeStep(s, open, how);
      });

    const postToolBatch = wrap('PostToolBatch', (input) => {
      const s = this.sessions.get(sid(input));
      if (!s || s.open.size === 0) return;
      const calls = Array.isArray(input.tool_calls) ? (input.tool_calls as unknown[]) : [];
      for (const call of calls) {
        if (!call || typeof call !== 'object') continue;
        const c = call as { tool_use_id?: unknown; tool_response?: unknown };
        const id = str(c.tool_use_id);
        const open = id !== undefined ? s.open.get(id) : undefined;
        if (!open) continue;
        const said = str(c.tool_response);
        this.closeStep(s, open, {
          error: said ? `${NO_POST_HOOK}: ${said}` : `${NO_POST_HOOK} (denied, timed out or interrupted)`,
          closedBy: 'PostToolBatch',
        });
      }
    });

    const permissionRequest = wrap('PermissionRequest', (input, toolUseID) => {
      const s = this.sessions.get(sid(input));
      const id = str(input.tool_use_id) ?? toolUseID;
      if (!s) return;
      for (const open of s.open.values()) {
        if ((id !== undefined && open.toolUseId === id) || (id === undefined && open.toolName === input.tool_name)) {
          open.metadata.permission_requested = true;
          if (id === undefined) break;
        }
      }
    });

    const stop = wrap('Stop', (input) => this.finishOnStop(this.session(sid(input)), input, 'Stop', undefined));

    const stopFailure = wrap('StopFailure', (input) => {
      const details = str(input.error_details);
      const error = `${str(input.error) ?? 'unknown'}${details ? `: ${details}` : ''}`;
      this.finishOnStop(this.session(sid(input)), input, 'StopFailure', error);
    });

    const sessionStart = wrap('SessionStart', (input) => {
      const s = this.session(sid(input));
      const source = str(input.source);
      const model = str(input.model);
      this.patchStart(s, (b) => {
        if (source !== undefined) (b.metadata ??= {}).session_source = source;
        if (model !== undefined && b.model === undefined) b.model = model;
      });
    });

    const sessionEnd = wrap('SessionEnd', (input) => {
      const s = this.sessions.get(sid(input));
      if (!s) return;
      this.closeAllOpen(s, 'SessionEnd');
      this.buffer.schedulePump();
    });

    const m = (cb: LightningHookCallback) => [{ hooks: [cb] }];
    return {
      UserPromptSubmit: m(userPromptSubmit),
      PreToolUse: m(preToolUse),
      PostToolUse: m(post(false)),
      PostToolUseFailure: m(post(true)),
      PostToolBatch: m(postToolBatch),
      PermissionRequest: m(permissionRequest),
      Stop: m(stop),
      StopFailure: m(stopFailure),
      SessionStart: m(sessionStart),
      SessionEnd: m(sessionEnd),
    };
  }

  // ------------------------------------------------------------------ track()

  track<Q extends AsyncIterable<unknown>>(query: Q, context?: TrackContext): Q {
    const self = this;
    const seen = new Set<Session>();
    const resulted = new Set<Session>();
    let applied = false;

    const observe = (message: unknown): void => {
      if (!self.active || !message || typeof message !== 'object') return;
      const msg = message as Record<string, unknown>;
      const sessionId = str(msg.session_id);
      if (sessionId === undefined) return;
      const s = self.session(sessionId);
      s.tracked = true;
      if (!seen.has(s)) {
        seen.add(s);
        if (context && !applied) {
          applied = true;
          const sp = systemPromptText(context.systemPrompt);
          self.patchStart(s, (b) => {
            if (context.prompt !== undefined && b.prompt === undefined) b.prompt = context.prompt;
            if (sp !== undefined) b.systemPrompt = sp;
            if (context.taskType !== undefined) b.taskType = context.taskType;
            if (context.metadata) b.metadata = { ...(b.metadata ?? {}), ...context.metadata };
          });
        }
      }
      const type = msg.type;
      if (type === 'system' && msg.subtype === 'init') {
        const model = str(msg.model);
        self.patchStart(s, (b) => {
          if (model !== undefined) b.model = model;
          const md = (b.metadata ??= {});
          if (msg.claude_code_version !== undefined) md.claude_code_version = msg.claude_code_version;
          if (msg.permissionMode !== undefined) md.permission_mode = msg.permissionMode;
          if (msg.cwd !== undefined) md.cwd = msg.cwd;
        });
      } else if (type === 'system' && msg.subtype === 'permission_denied') {
        const id = str(msg.tool_use_id);
        const open = id !== undefined ? s.open.get(id) : undefined;
        if (open) {
          self.closeStep(s, open, {
            error: `Permission denied: ${str(msg.message) ?? 'the tool call was not allowed'}`,
            closedBy: 'permission_denied',
          });
        }
      } else if (type === 'user' && s.open.size > 0) {
        // post hooks fire before the tool_result message: a step still open here got none
        const content = (msg.message as { content?: unknown } | undefined)?.content;
        if (Array.isArray(content)) {
          for (const block of content) {
            if (!block || typeof block !== 'object') continue;
            const b = block as { type?: unknown; tool_use_id?: unknown; content?: unknown; is_error?: unknown };
            if (b.type !== 'tool_result') continue;
            const id = str(b.tool_use_id);
            const open = id !== undefined ? s.open.get(id) : undefined;
            if (!open) continue;
            const text = toolResultText(b.content) ?? '';
            if (b.is_error === true) {
              self.closeStep(s, open, { error: `${NO_POST_HOOK}: ${text}`, closedBy: 'tool_result' });
            } else {
              self.closeStep(s, open, { output: b.content, hasOutput: true, closedBy: 'tool_result' });
            }
          }
        }
      } else if (type === 'result') {
        resulted.add(s);
        self.closeAllOpen(s, 'result');
        const isError = msg.is_error === true;
        const body: CompleteDraft['body'] = {
          success: !isError,
          totalSteps: s.stepCount,
          endTime: new Date().toISOString(),
        };
        const duration = num(msg.duration_ms);
        if (duration !== undefined) body.duration = duration;
        const cost = num(msg.total_cost_usd);
        if (cost !== undefined) body.costUsd = cost;
        const turns = num(msg.num_turns);
        if (turns !== undefined) body.numTurns = turns;
        const usage = usageFrom(msg.usage);
        if (usage) body.usage = usage;
        const resultText = str(msg.result);
        if (resultText !== undefined) body.result = resultText;
        if (isError) {
          const errors = Array.isArray(msg.errors) ? (msg.errors as unknown[]).filter((e) => typeof e === 'string') : [];
          body.error =
            errors.length > 0
              ? (errors as string[]).join('\n')
              : resultText && resultText.length > 0
                ? resultText
                : `${String(msg.subtype ?? 'error')}`;
        }
        self.complete(s, { body });
      }
    };

    const failUnfinished = (error: string): void => {
      if (!self.active) return;
      for (const s of seen) {
        if (resulted.has(s)) continue;
        self.closeAllOpen(s, 'error');
        self.complete(s, {
          body: {
            success: false,
            error,
            totalSteps: s.stepCount,
            duration: Date.now() - s.startMs,
            endTime: new Date().toISOString(),
          },
        });
      }
    };

    async function* wrapped(): AsyncGenerator<unknown, void, unknown> {
      let finished = false;
      try {
        for await (const message of query) {
          try {
            observe(message);
          } catch (e) {
            self.debug(`[Lightning Instrumentation] track() observer error (ignored): ${errorMessage(e)}`);
          }
          yield message;
        }
        finished = true;
      } catch (e) {
        finished = true;
        try {
          failUnfinished(errorMessage(e));
        } catch {
          /* never mask the SDK's error */
        }
        throw e;
      } finally {
        if (!finished) {
          // the consumer stopped iterating early (break/return)
          try {
            failUnfinished('query stopped before a result message (iteration ended early)');
          } catch {
            /* ignore */
          }
        }
      }
    }

    let generator: AsyncGenerator<unknown, void, unknown> | null = null;
    const gen = (): AsyncGenerator<unknown, void, unknown> => (generator ??= wrapped());
    const overrides: Record<string | symbol, unknown> = {
      next: (...args: [] | [unknown]) => gen().next(...args),
      return: (value?: unknown) => gen().return(value as void),
      throw: (err?: unknown) => gen().throw(err),
    };
    return new Proxy(query as object, {
      get(target, prop, receiver) {
        if (prop === Symbol.asyncIterator) return () => receiver;
        if (Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop];
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as Q;
  }

  // ------------------------------------------------------------------ preparation (sanitizing)

  private prepareStart(d: StartDraft): StartPayload {
    const b = d.body;
    const max = this.cfg.maxFieldBytes;
    const out: StartPayload = {
      trajectoryId: b.trajectoryId,
      agentId: b.agentId,
      startTime: b.startTime,
    };
    if (b.taskType !== undefined) out.taskType = b.taskType;
    if (b.sessionId !== undefined) out.sessionId = b.sessionId;
    if (b.promptVersion !== undefined) out.promptVersion = b.promptVersion;
    if (b.model !== undefined) out.model = b.model;
    if (b.prompt !== undefined) out.prompt = this.text(b.prompt, max);
    if (b.systemPrompt !== undefined) out.systemPrompt = this.text(b.systemPrompt, max);
    if (b.metadata !== undefined) {
      const md = sanitizeField(b.metadata, this.redactor, max);
      if (md && typeof md === 'object' && !Array.isArray(md)) out.metadata = md;
    }
    return out;
  }

  private text(v: unknown, max: number): string {
    const safe = sanitizeField(v, this.redactor, max);
    return typeof safe === 'string' ? safe : JSON.stringify(safe);
  }

  private prepareStep(d: StepDraft): StepPayload {
    const max = this.cfg.maxFieldBytes;
    let step: StepPayload = { stepNumber: d.stepNumber, toolName: d.toolName };
    if (d.timestampMs !== undefined) step.timestamp = new Date(d.timestampMs).toISOString();
    if (d.toolUseId !== undefined) step.toolUseId = d.toolUseId;
    if (d.hasInput) step.toolInput = toJsonSafe(d.input, this.redactor, max);
    if (d.hasOutput) step.toolOutput = toJsonSafe(d.output, this.redactor, max);
    if (d.error !== undefined) step.error = toJsonSafe(d.error, this.redactor, max) as string;
    if (d.durationMs !== undefined) step.durationMs = Math.max(0, Math.round(d.durationMs));
    if (d.metadata !== undefined) {
      const md = toJsonSafe(d.metadata, this.redactor, max);
      if (md && typeof md === 'object' && !Array.isArray(md)) step.metadata = md;
    }
    if (this.options.sanitize) {
      step = applyUserSanitizer(step, this.options.sanitize, (message) =>
        this.debug(`[Lightning Instrumentation] sanitize() threw; fields withheld: ${message}`),
      );
      // whatever the sanitizer returned must still be JSON data
      step = this.rebuildStep(step, d);
    }
    if (step.toolInput !== undefined) step.toolInput = truncateJson(step.toolInput, max);
    if (step.toolOutput !== undefined) step.toolOutput = truncateJson(step.toolOutput, max);
    if (typeof step.error === 'string') step.error = truncateJson(step.error, max) as string;
    if (step.metadata !== undefined) {
      const md = truncateJson(step.metadata, max);
      step.metadata = md && typeof md === 'object' && !Array.isArray(md) ? md : { truncated: md };
    }
    return step;
  }

  private rebuildStep(step: StepPayload, d: StepDraft): StepPayload {
    const plain = new Redactor(false);
    const out: StepPayload = { stepNumber: d.stepNumber, toolName: typeof step.toolName === 'string' && step.toolName ? step.toolName : d.toolName };
    if (typeof step.timestamp === 'string') out.timestamp = step.timestamp;
    if (typeof step.toolUseId === 'string') out.toolUseId = step.toolUseId;
    if (step.toolInput !== undefined) out.toolInput = toJsonSafe(step.toolInput, plain);
    if (step.toolOutput !== undefined) out.toolOutput = toJsonSafe(step.toolOutput, plain);
    if (step.error !== undefined && step.error !== null) out.error = typeof step.error === 'string' ? step.error : JSON.stringify(toJsonSafe(step.error, plain));
    if (typeof step.durationMs === 'number' && Number.isFinite(step.durationMs)) out.durationMs = Math.max(0, Math.round(step.durationMs));
    if (step.metadata !== undefined) {
      const md = toJsonSafe(step.metadata, plain);
      if (md && typeof md === 'object' && !Array.isArray(md)) out.metadata = md;
    }
    return out;
  }

  private prepareComplete(d: CompleteDraft): CompletePayload {
    const b = d.body;
    const max = this.cfg.maxFieldBytes;
    const out: CompletePayload = { success: b.success, endTime: b.endTime };
    if (b.result !== undefined) out.result = sanitizeField(b.result, this.redactor, max);
    if (b.error !== undefined) out.error = this.text(b.error, max);
    if (b.totalSteps !== undefined) out.totalSteps = b.totalSteps;
    if (b.duration !== undefined) out.duration = Math.max(0, Math.round(b.duration));
    if (b.costUsd !== undefined) out.costUsd = b.costUsd;
    if (b.usage !== undefined) out.usage = b.usage;
    if (b.numTurns !== undefined) out.numTurns = Math.max(0, Math.round(b.numTurns));
    if (b.totalSteps !== undefined) out.totalSteps = Math.max(0, Math.round(b.totalSteps));
    return out;
  }

  // ------------------------------------------------------------------ prompts

  async promptDetails(fallback: string): Promise<PromptResult> {
    if (this.buffer.disabled) {
      this.promptVersion = null;
      return { text: fallback, version: null, source: 'fallback' };
    }
    const path = `/api/agents/${encodeURIComponent(this.options.agentId)}/prompts/latest`;
    const outcome = await this.client.request('GET', path);
    if (outcome.kind === 'ok' && outcome.body && typeof outcome.body === 'object') {
      const body = outcome.body as { text?: unknown; version?: unknown };
      if (typeof body.text === 'string' && (typeof body.version === 'number' || typeof body.version === 'string')) {
        this.promptVersion = String(body.version);
        this.debug(`[Lightning Instrumentation] Using prompt version ${this.promptVersion}`);
        return { text: body.text, version: this.promptVersion, source: 'collector' };
      }
    }
    if (outcome.kind === 'unauthorized') {
      this.buffer.disable();
      this.unauthorized(outcome.error);
    } else if (outcome.kind !== 'ok' && !(outcome.kind === 'rejected' && outcome.status === 404)) {
      this.logger.warn(`[Lightning Instrumentation] Could not fetch the latest prompt, using the fallback: ${outcome.error}`);
    } else {
      this.debug('[Lightning Instrumentation] No prompt stored for this agent; using the fallback');
    }
    // the caller now uses the fallback: trajectories started from here on must not carry the
    // version of a prompt remembered from an earlier call
    this.promptVersion = null;
    return { text: fallback, version: null, source: 'fallback' };
  }

  async prompt(fallback: string): Promise<string> {
    return (await this.promptDetails(fallback)).text;
  }

  // ------------------------------------------------------------------ lifecycle

  flush(options?: { timeoutMs?: number }): Promise<void> {
    return this.deliverWithin(options?.timeoutMs ?? this.cfg.shutdownTimeoutMs);
  }

  stats(): LightningStats {
    const c = this.buffer.counters;
    return {
      sent: c.sent,
      queued: this.buffer.pending,
      dropped: c.dropped,
      failed: c.failed,
      retries: c.retries,
      spooled: c.spooled,
      replayed: c.replayed,
      trajectories: this.trajectories,
      disabled: this.buffer.disabled,
      promptVersion: this.promptVersion,
      lastError: c.lastError,
      redactions: this.redactions.snapshot(),
    };
  }

  async shutdown(options?: { timeoutMs?: number }): Promise<void> {
    const timeoutMs = options?.timeoutMs ?? this.cfg.shutdownTimeoutMs;
    this.closed = true;
    for (const d of this.detach.splice(0)) d();
    await this.deliverWithin(timeoutMs);
    this.buffer.stopTimers();
    this.buffer.spoolAll();
  }

  /** Tries to deliver everything (with retries) until the deadline. */
  private async deliverWithin(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, timeoutMs));
      timer.unref();
    });
    const loop = async (): Promise<void> => {
      let attempt = 0;
      while (!this.buffer.disabled && this.buffer.pending > 0 && Date.now() < deadline) {
        this.buffer.prepareAll();
        await this.buffer.flush();
        if (this.buffer.pending === 0 || this.buffer.disabled) return;
        attempt++;
        const wait = Math.min(deadline - Date.now(), 50 * 2 ** Math.min(attempt, 6));
        if (wait <= 0) return;
        await new Promise<void>((r) => setTimeout(r, wait).unref());
      }
    };
    try {
      await Promise.race([loop(), expired]);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  private attachProcessHandlers(): void {
    const onBeforeExit = (): void => {
      // the event loop emptied: try once to deliver what is left (bounded by the timeouts), then
      // spool (or count as dropped) the rest, so the process can exit
      if (this.exitFlushRunning || this.buffer.pending === 0 || this.buffer.disabled) return;
      this.exitFlushRunning = true;
      void this.deliverWithin(this.cfg.shutdownTimeoutMs).finally(() => {
        this.exitFlushRunning = false;
        if (this.buffer.pending > 0) this.buffer.spoolAll();
      });
    };
    const onExit = (): void => {
      // synchronous: nothing can be sent any more, but the spool can be written
      this.buffer.spoolAll();
    };
    const onSigterm = (): void => {
      process.removeListener('SIGTERM', onSigterm);
      void this.shutdown().finally(() => {
        // re-raise the default behaviour when nobody else handles SIGTERM
        if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM');
      });
    };
    process.on('beforeExit', onBeforeExit);
    process.on('exit', onExit);
    process.on('SIGTERM', onSigterm);
    this.detach.push(
      () => process.removeListener('beforeExit', onBeforeExit),
      () => process.removeListener('exit', onExit),
      () => process.removeListener('SIGTERM', onSigterm),
    );
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
