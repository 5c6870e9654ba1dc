/**
 * Public types of @agent-lightning/instrumentation.
 *
 * The Claude Agent SDK types are described structurally here so that this package has no
 * runtime or type-level dependency on the SDK: `lightning.hooks` is assignable to the SDK's
 * `Options['hooks']` (checked by the end-to-end test against the real SDK).
 *
 * The wire payloads are derived from `api.gen.ts`, which `scripts/gen-api-types` generates from
 * the collector's OpenAPI document: each payload is the collector's request type with some
 * fields narrowed to what this package sends (a field the collector does not have, or a
 * narrowing it would not accept, is a compile error).
 */

import type { components } from './api.gen.js';

type Wire = components['schemas'];

/** The collector's request type `W` with the fields in `N` replaced by narrower types. `N` may
 * only name fields `W` has, with types `W` accepts, and may not make a required field optional. */
type Sent<W, N extends Pick<W, Extract<keyof N, keyof W>> & { [K in Exclude<keyof N, keyof W>]: never }> = Omit<
  W,
  keyof N
> &
  N;

/** JSON value as sent to the collector. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The subset of the SDK hook input this package reads. Every SDK `HookInput` is assignable. */
export interface HookInputLike {
  hook_event_name: string;
  session_id: string;
  cwd?: string;
  prompt_id?: string;
  permission_mode?: string;
  agent_id?: string;
  agent_type?: string;
  [key: string]: unknown;
}

/** What every instrumentation callback resolves to: "no opinion". */
export type EmptyHookOutput = Record<string, never>;

export type LightningHookCallback = (
  input: HookInputLike,
  toolUseID: string | undefined,
  options: { signal: AbortSignal },
) => Promise<EmptyHookOutput>;

export interface LightningHookMatcher {
  matcher?: string;
  hooks: LightningHookCallback[];
  timeout?: number;
}

/** Events this package registers callbacks for. */
export type InstrumentedEvent =
  | 'UserPromptSubmit'
  | 'PreToolUse'
  | 'PostToolUse'
  | 'PostToolUseFailure'
  | 'PostToolBatch'
  | 'PermissionRequest'
  | 'Stop'
  | 'StopFailure'
  | 'SessionStart'
  | 'SessionEnd'
  | 'SubagentStart'
  | 'SubagentStop'
  | 'MessageDisplay';

export type LightningHooks = { [E in InstrumentedEvent]: LightningHookMatcher[] };

/** What a step records: a tool call (default), assistant text, or a lifecycle event. */
export type StepKind = Wire['StepKind'];

/** A step as sent to `POST /api/trajectories/{id}/steps/batch`. */
export type StepPayload = Sent<
  Wire['NewStep'],
  {
    /** absent = `tool` */
    kind?: StepKind;
    timestamp?: string;
    toolInput?: JsonValue;
    toolOutput?: JsonValue;
    durationMs?: number;
    toolUseId?: string;
    metadata?: { [key: string]: JsonValue };
  }
>;

/** Usage as sent with a completion. */
export type UsagePayload = Sent<
  Wire['Usage'],
  { inputTokens: number; outputTokens: number; cacheReadInputTokens: number; cacheCreationInputTokens: number }
>;

/** A trajectory's start as sent to `POST /api/trajectories/start`. */
export type StartPayload = Sent<
  Wire['NewTrajectory'],
  {
    trajectoryId: string;
    taskType?: string;
    startTime: string;
    sessionId?: string;
    prompt?: string;
    systemPrompt?: string;
    promptVersion?: string;
    model?: string;
    metadata?: { [key: string]: JsonValue };
  }
>;

/** How a trajectory ended, as sent with its completion. */
export type CompletionStatus = Wire['CompletionStatus'];

/** A completion as sent to `POST /api/trajectories/{id}/complete`. */
export type CompletePayload = Sent<
  Wire['Completion'],
  {
    status?: CompletionStatus;
    result?: JsonValue;
    error?: string;
    totalSteps?: number;
    duration?: number;
    endTime: string;
    costUsd?: number;
    usage?: UsagePayload;
    numTurns?: number;
  }
>;

/** A score value: a finite number, a boolean or a string label. */
export type ScoreValue = Wire['ScoreValue'];

export type ScoreSource = Wire['ScoreSource'];

/** A score as sent to `POST /api/trajectories/{id}/scores`. */
export type ScorePayload = Sent<
  Wire['NewScore'],
  {
    id: string;
    comment?: string;
    source?: ScoreSource;
    stepNumber?: number;
    metadata?: { [key: string]: JsonValue };
  }
>;

export interface ScoreOptions {
  comment?: string;
  /** Default: the current (or else the last) trajectory of this instance. */
  trajectoryId?: string;
  stepNumber?: number;
  /** Default `sdk`. */
  source?: ScoreSource;
  /** Idempotency key; default a fresh UUID per call (retries and replays never duplicate). */
  id?: string;
  metadata?: { [key: string]: JsonValue };
}

/** A user sanitizer. Receives a copy of a step after built-in redaction and may mutate it or
 * return a replacement. If it throws (or returns something that is not a step), the step's
 * toolInput/toolOutput/error are withheld: they are never sent raw. */
export type StepSanitizer = (step: StepPayload) => StepPayload | void;

export interface Logger {
  debug(message: string): void;
  warn(message: string): void;
}

/** The `redact` option when given as an object. */
export interface RedactOptions {
  /** Extra patterns: a RegExp is replaced by `[REDACTED:custom]`, `{kind, pattern}` by `[REDACTED:<kind>]`;
   * with a named group `secret`, only that group is replaced. */
  extraPatterns?: (RegExp | { kind?: string; pattern: RegExp })[];
  /** Values never redacted: a string is an exact value, a RegExp must match the whole value. */
  allow?: (string | RegExp)[];
}

export interface RetryOptions {
  /** First backoff delay in ms (full jitter is applied). Default 500. */
  baseDelayMs?: number;
  /** Upper bound of one backoff delay in ms. Default 30000. */
  maxDelayMs?: number;
  /** Upper bound honoured for a Retry-After header, in ms. Default 60000. */
  maxRetryAfterMs?: number;
}

export interface InstrumentOptions {
  /** Base URL of the collector, e.g. http://localhost:4000 */
  collectorUrl: string;
  /** Bearer token the collector expects (its API_KEY). */
  apiKey: string;
  /** Identifies this agent in the collector. */
  agentId: string;
  /** Optional categorisation of the trajectories. */
  taskType?: string;
  /** Flush when this many steps are queued. Default 10. (A backlog drains up to max(batchSize, 200) steps per request.) */
  batchSize?: number;
  /** Flush at least this often, in ms. 0 = send every record at once. Default 5000. */
  flushInterval?: number;
  /** Flush when queued serialized bytes reach this; also the most bytes in one request. Default 512 KiB. */
  maxBatchBytes?: number;
  /** Print debug logs. Default false. */
  debug?: boolean;
  /** Most records kept in memory; beyond it the oldest go to the spool (or are dropped). Default 10000. */
  maxQueueSize?: number;
  /** Most serialized bytes kept in memory; beyond it the oldest go to the spool (or are dropped). Default 32 MiB. */
  maxQueueBytes?: number;
  /** Disk spool for what cannot be delivered (written synchronously at exit, replayed by the next
   * process). Default true; `false` turns it off. */
  spool?: boolean;
  /** Spool directory. Default: `$XDG_STATE_HOME/agent-lightning/spool/<collector key>` (see docs/spool.md). */
  spoolDir?: string;
  /** Most bytes one spool directory may hold; records beyond are dropped. Default 64 MiB. */
  maxSpoolBytes?: number;
  /** Largest serialized size of one field (toolInput, toolOutput, error, result…). Default 32 KiB. */
  maxFieldBytes?: number;
  /** Built-in secret redaction. Default true. An object keeps it on and adds patterns / an allowlist. */
  redact?: boolean | RedactOptions;
  /** Extra patterns to redact (must be global regexes or will be made global). */
  redactPatterns?: RegExp[];
  /** User sanitizer for steps; fails closed. */
  sanitize?: StepSanitizer;
  /** Timeout of one HTTP request in ms. Default 10000. */
  requestTimeoutMs?: number;
  /** Backoff settings. */
  retry?: RetryOptions;
  /** How long flush(), shutdown() and the exit handlers wait for delivery, in ms. Default 5000. */
  shutdownTimeoutMs?: number;
  /** Register beforeExit/exit/SIGINT/SIGTERM handlers and an uncaught-exception monitor. Default true. */
  handleProcessExit?: boolean;
  /** Extra metadata put on every trajectory. */
  metadata?: { [key: string]: JsonValue };
  /** Where logs go. Default: console.error for debug, console.warn for warnings. */
  logger?: Logger;
  /** fetch implementation. Default: node:http(s) with sockets that never keep the process alive. */
  fetch?: typeof fetch;
  /** The SDK module for `lightning.query()` (default: `import('@anthropic-ai/claude-agent-sdk')`). */
  sdk?: { query: (params: { prompt: unknown; options?: Record<string, unknown> }) => AsyncIterable<unknown> };
}

/** Context a caller may give to track() about the query it wraps. */
export interface TrackContext {
  /** The task prompt (recorded when no UserPromptSubmit hook delivered it). */
  prompt?: string;
  /** The system prompt used for the query. */
  systemPrompt?: string | string[] | { type: string; prompt?: string; append?: string; preset?: string };
  /** The model asked for (system/init reports the one used). */
  model?: string;
  /** Overrides the instance's taskType for this query's trajectory. */
  taskType?: string;
  /** Extra trajectory metadata for this query. */
  metadata?: { [key: string]: JsonValue };
  /** The prompt() result this query runs with: its version and assignment are recorded on the
   * query's trajectory (needed when prompt() is asked for several units before their runs start;
   * otherwise the instrumentation matches the system prompt text or the only pending result). */
  assignment?: PromptResult;
}

export interface LightningStats {
  /** Records (starts, steps, completions) the collector accepted. */
  sent: number;
  /** Records waiting in memory (including the request in flight). */
  queued: number;
  /** Records lost: queue overflow without spool, rejected by the collector, spool full. */
  dropped: number;
  /** Serialized bytes of the dropped records (as far as they were prepared). */
  droppedBytes: number;
  /** Serialized bytes held in memory. */
  queuedBytes: number;
  /** HTTP requests that failed (network error, timeout or error status). */
  failed: number;
  /** Requests retried after a retriable failure. */
  retries: number;
  /** Records written to the disk spool. */
  spooled: number;
  /** Records read back from the disk spool. */
  replayed: number;
  /** Trajectories started by this instance. */
  trajectories: number;
  /** True once the collector answered 401 repeatedly: sending is off for this instance (records go to the spool). */
  disabled: boolean;
  /** Prompt version of the newest prompt() result, if any. */
  promptVersion: string | null;
  /** Last delivery error, if any. */
  lastError: string | null;
  /** Values redacted so far, per kind (e.g. `{ github_token: 2, sensitive_key: 1 }`). */
  redactions: Record<string, number>;
}

/** What a run records about the prompt it was given (trajectory metadata `promptAssignment`). */
export interface PromptAssignment {
  /** `canary`, `promoted` or `fallback` as the collector assigned; `unassigned` when the collector
   * could not be asked (unreachable, slow, key rejected, bad unit) and the fallback was used. */
  arm: Wire['Arm'] | 'unassigned';
  /** The unit the assignment sticks to. */
  unit: string;
  rolloutId?: string | null;
  version?: string | null;
  /** Why the collector was not asked or did not answer (for `unassigned`). */
  error?: string;
}

export interface PromptResult {
  text: string;
  version: string | null;
  source: 'collector' | 'fallback';
  /** The rollout arm the collector assigned: `canary`, `promoted` or `fallback` (none when the
   * collector could not be asked). */
  arm?: Wire['Arm'];
  /** The unit the assignment sticks to. */
  unit?: string;
  rolloutId?: string | null;
  /** What the run that uses this text records. Pass the whole result to track()/query() as
   * `assignment` when prompt() is asked for several units at once. */
  assignment: PromptAssignment;
}

export interface PromptOptions {
  /** The key the assignment sticks to (a session or user id). Default: one id per process, so
   * each run of the agent is one draw. */
  unit?: string;
  /** Give up on the collector after this long and use the fallback (default 3000). */
  timeoutMs?: number;
}

/** A message yielded by the SDK's query() (structurally; see the SDK's `SDKMessage`). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the SDK's union is not imported here
export type SDKMessageLike = { type: string; subtype?: string; session_id?: string; [key: string]: any };

/** What `lightning.query()` returns: the SDK's Query (messages and control methods), tracked. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- control methods are the SDK's
export type TrackedQuery = AsyncGenerator<SDKMessageLike, void> & { interrupt(): Promise<void>; [method: string]: any };

export interface Lightning {
  /** Hook matchers to pass as `options.hooks` (or merge with mergeHooks). */
  readonly hooks: LightningHooks;
  /** Wraps a query: yields every message unchanged, records the result. */
  track<Q extends AsyncIterable<unknown>>(query: Q, context?: TrackContext): Q;
  /** Sends everything queued now, retrying failures until delivered or `timeoutMs`
   * (default shutdownTimeoutMs) passes; never rejects. What is left stays queued. */
  flush(options?: { timeoutMs?: number }): Promise<void>;
  /** Flushes, stops timers and handlers; resolves when delivered, spooled or after the timeout. */
  shutdown(options?: { timeoutMs?: number }): Promise<void>;
  stats(): LightningStats;
  /** The SDK's `query()` with the hooks merged in and the messages tracked: `track(query(...))`. */
  query(params: { prompt: unknown; options?: object }, context?: Pick<TrackContext, 'assignment' | 'taskType' | 'metadata'>): TrackedQuery;
  /** Queues a score for a trajectory (default: the current or last one). Returns the score id, or
   * null when there is no trajectory to score or the value is invalid (a warning says why). */
  score(name: string, value: ScoreValue, options?: ScoreOptions): string | null;
  /** The trajectory of the task running now, else the last one started; null before any. */
  currentTrajectoryId(): string | null;
  /** The prompt text for this run: the version the collector's assignment route gives `unit`
   * (the canary or the promoted version), or `fallback` when there is none or the collector does
   * not answer within `timeoutMs` (default 3000). */
  prompt(fallback: string, options?: PromptOptions): Promise<string>;
  /** Like prompt() but says where the text came from. */
  promptDetails(fallback: string, options?: PromptOptions): Promise<PromptResult>;
}
