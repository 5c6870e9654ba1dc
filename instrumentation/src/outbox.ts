/**
 * Outbox: the bounded, ordered queue of records (trajectory starts, steps, completions, scores)
 * and the single delivery loop that sends them to the collector. What to do after each request
 * is decided by the pure `decide()` (retry-policy.ts).
 *
 * - Order: one request at a time, taken from the head of the queue. A trajectory's start is
 *   enqueued before its steps and its steps before its completion, so the collector always
 *   sees them in that order. Steps of one trajectory are grouped into batches.
 * - Hooks only append (or merge into a not-yet-sent step) and return; redacting, sanitizing
 *   and serializing happen later (setImmediate, or the send loop), never inside a hook. A step's
 *   closing fields that arrive after its record was prepared are kept raw on the record
 *   (`update`) and prepared the same way. Once prepared, a record keeps only
 *   its redacted, truncated payload: memory is bounded by bytes (`maxQueueBytes`) and records.
 * - Past either bound the oldest records go to the spool (or are dropped and counted).
 * - Retries put the records back at the head and wait; re-sent records are merged by the
 *   collector, so a retry never duplicates.
 */
import type { BackoffConfig } from './backoff.js';
import type { LightningClient } from './client.js';
import { Deque } from './deque.js';
import { decide } from './retry-policy.js';
import type { Spool, SpoolRecord } from './spool.js';
import type { CompletePayload, Logger, ScorePayload, StartPayload, StepKind, StepPayload } from './types.js';

/** A step as captured by the hooks, before sanitization. */
export interface StepDraft {
  stepNumber: number;
  toolName: string;
  kind?: StepKind;
  timestampMs?: number;
  toolUseId?: string;
  hasInput: boolean;
  input?: unknown;
  hasOutput: boolean;
  output?: unknown;
  error?: string;
  durationMs?: number;
  metadata?: Record<string, unknown>;
}

export interface StartDraft {
  body: Omit<StartPayload, 'prompt' | 'systemPrompt' | 'metadata'> & {
    prompt?: unknown;
    systemPrompt?: unknown;
    metadata?: Record<string, unknown>;
  };
}

export interface CompleteDraft {
  body: Omit<CompletePayload, 'result' | 'error'> & { result?: unknown; error?: unknown };
}

export interface ScoreDraft {
  body: Omit<ScorePayload, 'comment' | 'metadata'> & { comment?: unknown; metadata?: Record<string, unknown> };
}

interface ItemBase {
  trajectoryId: string;
  /** true while the record sits in the queue (not in flight, not sent or dropped) */
  queued: boolean;
  /** serialized size once prepared */
  bytes: number;
  replayed: boolean;
  /** written to the spool or dropped: it must not come back into the queue */
  gone?: boolean;
}
export interface StartItem extends ItemBase {
  kind: 'start';
  draft: StartDraft;
  prepared?: StartPayload;
}
export interface StepItem extends ItemBase {
  kind: 'step';
  draft: StepDraft;
  prepared?: StepPayload;
  /** closing fields that arrived after the record was prepared: prepared and merged later */
  update?: StepDraft;
}
export interface CompleteItem extends ItemBase {
  kind: 'complete';
  draft: CompleteDraft;
  prepared?: CompletePayload;
}
export interface ScoreItem extends ItemBase {
  kind: 'score';
  draft: ScoreDraft;
  prepared?: ScorePayload;
}
export type QueueItem = StartItem | StepItem | CompleteItem | ScoreItem;

export interface Preparer {
  start(draft: StartDraft): StartPayload;
  step(draft: StepDraft): StepPayload;
  complete(draft: CompleteDraft): CompletePayload;
  score(draft: ScoreDraft): ScorePayload;
}

export interface OutboxConfig {
  batchSize: number;
  maxBatchBytes: number;
  maxQueueSize: number;
  maxQueueBytes: number;
  flushInterval: number;
  backoff: BackoffConfig;
  debug: boolean;
  logger: Logger;
}

export interface OutboxCounters {
  sent: number;
  dropped: number;
  droppedBytes: number;
  failed: number;
  retries: number;
  spooled: number;
  replayed: number;
  lastError: string | null;
}

const STEP_OVERHEAD = 16; // `{"steps":[ … ]}` and commas, roughly
/** Most steps in one request (at least batchSize), within maxBatchBytes. */
const MAX_STEPS_PER_REQUEST = 200;
/** How far eviction looks past start/complete records for a step to drop first. */
const MAX_EVICTION_SCAN = 256;

const isStep = (i: QueueItem): boolean => i.kind === 'step';

function mergeStepPayload(into: StepPayload, from: StepPayload): void {
  for (const key of Object.keys(from) as (keyof StepPayload)[]) {
    const value = from[key];
    if (value !== undefined && value !== null) (into as unknown as Record<string, unknown>)[key] = value;
  }
}

/** Copies the fields an update carries (see Outbox.partialDraft) onto an earlier update. */
function mergeStepDraft(into: StepDraft, from: StepDraft): void {
  if (from.hasOutput) {
    into.hasOutput = true;
    into.output = from.output;
  }
  if (from.kind !== undefined) into.kind = from.kind;
  if (from.error !== undefined) into.error = from.error;
  if (from.durationMs !== undefined) into.durationMs = from.durationMs;
  if (from.metadata !== undefined) into.metadata = from.metadata;
  if (from.toolUseId !== undefined) into.toolUseId = from.toolUseId;
}

function needsPreparing(item: QueueItem): boolean {
  return !item.prepared || (item.kind === 'step' && item.update !== undefined);
}

function pathFor(item: QueueItem): string {
  const tid = encodeURIComponent(item.trajectoryId);
  switch (item.kind) {
    case 'start':
      return '/api/trajectories/start';
    case 'complete':
      return `/api/trajectories/${tid}/complete`;
    case 'score':
      return `/api/trajectories/${tid}/scores`;
    case 'step':
      return `/api/trajectories/${tid}/steps/batch`;
  }
}

export class Outbox {
  /** the queue, oldest first: a ring buffer, so evicting the oldest record is O(1) */
  private readonly queue = new Deque<QueueItem>(64);
  private inflight: QueueItem[] = [];
  private unprepared: QueueItem[] = [];
  private prepareScheduled = false;
  private pumpScheduled = false;
  private pumping: Promise<void> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private intervalTimer: ReturnType<typeof setInterval> | null = null;
  private attempt = 0;
  private unauthorizedStreak = 0;
  private queuedSteps = 0;
  private queuedBytes = 0;
  private replayPending = 0;
  private splitLimit = 0;
  private readonly restarted = new Set<string>();
  private stopped = false;
  private unauthorizedFlag = false;
  private warnedLoss = false;
  private readonly spillBuffer: QueueItem[] = [];
  /** null before the first request; then whether the last one reached a collector that took it */
  lastOk: boolean | null = null;
  /** whether the last failure was a network-level one (refused, reset, timeout: no HTTP status) */
  lastFailureNetwork = false;
  readonly counters: OutboxCounters = {
    sent: 0,
    dropped: 0,
    droppedBytes: 0,
    failed: 0,
    retries: 0,
    spooled: 0,
    replayed: 0,
    lastError: null,
  };
  /** Called once when sending stops after repeated 401s. */
  onUnauthorized: (error: string) => void = () => {};
  /** Start body of a trajectory, used to re-create it when the collector forgot it (404) and
   * to put it before a trajectory's records in the spool. */
  startFor: (trajectoryId: string) => StartDraft | undefined = () => undefined;

  constructor(
    private readonly config: OutboxConfig,
    private readonly client: LightningClient,
    private readonly preparer: Preparer,
    private readonly spool: Spool | null,
  ) {
    if (config.flushInterval > 0) {
      this.intervalTimer = setInterval(() => this.schedulePump(), config.flushInterval);
      this.intervalTimer.unref();
    }
  }

  /** True once repeated 401s stopped sending (records are kept for the spool). */
  get unauthorized(): boolean {
    return this.unauthorizedFlag;
  }

  /** Records waiting, including those in the request in flight. */
  get pending(): number {
    return this.queue.length + this.inflight.length;
  }

  get bytes(): number {
    return this.queuedBytes;
  }

  get sending(): boolean {
    return !this.stopped && !this.unauthorizedFlag;
  }

  // ------------------------------------------------------------------ enqueue (hook path)

  private item<K extends QueueItem['kind']>(kind: K, trajectoryId: string, draft: Extract<QueueItem, { kind: K }>['draft']): Extract<QueueItem, { kind: K }> {
    return { kind, trajectoryId, draft, queued: false, bytes: 0, replayed: false } as Extract<QueueItem, { kind: K }>;
  }

  addStart(trajectoryId: string, draft: StartDraft): StartItem {
    const item = this.item('start', trajectoryId, draft);
    this.push(item);
    return item;
  }

  addStep(trajectoryId: string, draft: StepDraft): StepItem {
    const item = this.item('step', trajectoryId, draft);
    this.push(item);
    if (this.config.debug) this.config.logger.debug(`[StepBuffer] Added step ${draft.stepNumber}`);
    return item;
  }

  addComplete(trajectoryId: string, draft: CompleteDraft): CompleteItem {
    const item = this.item('complete', trajectoryId, draft);
    this.push(item);
    return item;
  }

  addScore(trajectoryId: string, draft: ScoreDraft): ScoreItem {
    const item = this.item('score', trajectoryId, draft);
    this.push(item);
    return item;
  }

  /**
   * Records the closing fields of a step. Merged into the queued record when it has not been
   * sent yet; otherwise a new record carrying only the new fields is queued (the collector merges).
   */
  updateStep(trajectoryId: string, item: StepItem | undefined, update: Partial<StepDraft> & { stepNumber: number; toolName: string }): StepItem {
    if (item && item.queued) {
      if (item.prepared) {
        // the raw fields were released when it was prepared: keep the update raw, to be prepared
        // (redacted, truncated) and merged off the hook path, like any new record
        if (item.update) mergeStepDraft(item.update, this.partialDraft(update));
        else item.update = this.partialDraft(update);
        this.unprepared.push(item);
        this.schedulePrepare();
      } else {
        const d = item.draft;
        if (update.hasOutput) {
          d.hasOutput = true;
          d.output = update.output;
        }
        if (update.error !== undefined) d.error = update.error;
        if (update.durationMs !== undefined) d.durationMs = update.durationMs;
        if (update.metadata !== undefined) d.metadata = update.metadata;
      }
      if (this.config.debug) this.config.logger.debug(`[StepBuffer] Updated step ${update.stepNumber}`);
      if (this.config.flushInterval === 0) this.schedulePump();
      return item;
    }
    const fresh = this.item('step', trajectoryId, this.partialDraft(update));
    this.push(fresh);
    if (this.config.debug) this.config.logger.debug(`[StepBuffer] Updated step ${update.stepNumber}`);
    return fresh;
  }

  private partialDraft(update: Partial<StepDraft> & { stepNumber: number; toolName: string }): StepDraft {
    const draft: StepDraft = { stepNumber: update.stepNumber, toolName: update.toolName, hasInput: false, hasOutput: update.hasOutput === true };
    if (update.kind !== undefined) draft.kind = update.kind;
    if (update.hasOutput) draft.output = update.output;
    if (update.error !== undefined) draft.error = update.error;
    if (update.durationMs !== undefined) draft.durationMs = update.durationMs;
    if (update.metadata !== undefined) draft.metadata = update.metadata;
    if (update.toolUseId !== undefined) draft.toolUseId = update.toolUseId;
    return draft;
  }

  /** Marks a queued start as changed (its draft was patched) so it is prepared again. */
  touch(item: QueueItem): boolean {
    if (!item.queued) return false;
    if (item.prepared) {
      this.queuedBytes -= item.bytes;
      item.prepared = undefined;
      item.bytes = 0;
      this.unprepared.push(item);
      this.schedulePrepare();
    }
    return true;
  }

  isQueued(item: QueueItem): boolean {
    return item.queued;
  }

  private push(item: QueueItem): void {
    while (this.queue.length + this.inflight.length >= this.config.maxQueueSize && this.queue.length > 0) {
      this.evictOldest(false);
    }
    this.queue.push(item);
    item.queued = true;
    if (item.kind === 'step') this.queuedSteps++;
    this.unprepared.push(item);
    this.schedulePrepare();
    if (this.config.flushInterval === 0 || this.queuedSteps >= this.config.batchSize || item.kind === 'complete' || item.kind === 'score') {
      this.schedulePump();
    }
  }

  /** Takes the oldest record (a step when one is near the head) out of memory: to the spool or dropped. */
  private evictOldest(now: boolean): void {
    // prefer a step: losing a start makes the collector 404 the rest of a trajectory. The scan
    // passes only the start/complete records ahead of the oldest step (a few per session).
    let index = this.queue.findIndex(isStep, MAX_EVICTION_SCAN);
    if (index < 0) index = 0;
    const old = this.queue.removeAt(index) as QueueItem;
    this.forget(old);
    if (this.spool) {
      if (now) this.spillToSpool([old]);
      else {
        this.spillBuffer.push(old);
        this.schedulePrepare();
      }
    } else {
      this.drop([old], 'memory bound reached and the spool is off');
    }
  }

  private enforceBytes(): void {
    while (this.queuedBytes > this.config.maxQueueBytes && this.queue.length > 1) this.evictOldest(true);
  }

  private forget(item: QueueItem): void {
    item.queued = false;
    if (item.kind === 'step') this.queuedSteps--;
    if (item.prepared) this.queuedBytes -= item.bytes;
    if (item.replayed) this.replayDone(1);
  }

  private drop(items: QueueItem[], why: string): void {
    if (items.length === 0) return;
    this.counters.dropped += items.length;
    for (const i of items) {
      i.gone = true;
      this.counters.droppedBytes += i.bytes;
      this.release(i);
    }
    if (!this.warnedLoss) {
      this.warnedLoss = true;
      this.config.logger.warn(
        `[Lightning Instrumentation] Capture data was lost: ${items.length} record(s) dropped (${why}). stats().dropped counts every loss; the agent is not affected.`,
      );
    } else if (this.config.debug) {
      this.config.logger.debug(`[StepBuffer] Dropped ${items.length} record(s): ${why}`);
    }
  }

  // ------------------------------------------------------------------ preparation (off the hook path)

  private schedulePrepare(): void {
    if (this.prepareScheduled) return;
    this.prepareScheduled = true;
    setImmediate(() => {
      this.prepareScheduled = false;
      this.prepareAll();
    });
  }

  /** Sanitizes and sizes every record not yet prepared; spills evicted records to the spool. */
  prepareAll(): void {
    if (this.unprepared.length > 0) {
      const list = this.unprepared;
      this.unprepared = [];
      for (let k = 0; k < list.length; k++) {
        const item = list[k]!;
        if (!item.queued || !needsPreparing(item)) continue;
        const before = item.prepared ? item.bytes : 0;
        this.prepareItem(item);
        this.queuedBytes += item.bytes - before;
      }
    }
    if (this.spillBuffer.length > 0) this.spillToSpool(this.spillBuffer.splice(0));
    this.enforceBytes();
    if (this.queuedBytes >= this.config.maxBatchBytes) this.schedulePump();
  }

  private prepareItem(item: QueueItem): void {
    switch (item.kind) {
      case 'start':
        item.prepared = this.preparer.start(item.draft);
        break;
      case 'step':
        if (item.prepared) {
          // the closing fields of a step prepared earlier: prepare them alone and merge
          const update = item.update as StepDraft;
          item.update = undefined;
          mergeStepPayload(item.prepared, this.preparer.step(update));
        } else {
          item.prepared = this.preparer.step(item.draft);
          // keep only the redacted, truncated payload: the raw input/output may be large
          item.draft.input = undefined;
          item.draft.output = undefined;
          item.draft.metadata = undefined;
        }
        break;
      case 'complete':
        item.prepared = this.preparer.complete(item.draft);
        break;
      case 'score':
        item.prepared = this.preparer.score(item.draft);
        break;
    }
    item.bytes = Buffer.byteLength(JSON.stringify(item.prepared)) + 1;
  }

  // ------------------------------------------------------------------ delivery

  /** Starts the delivery loop soon unless it runs or a backoff wait is pending. */
  schedulePump(): void {
    if (this.pumpScheduled || this.pumping || this.retryTimer || !this.sending) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      if (!this.pumping && !this.retryTimer) void this.pump();
    });
  }

  /**
   * Sends everything queued now, skipping any backoff wait. Resolves when the queue is empty,
   * after a retriable failure (records stay queued for the next attempt) or when not sending.
   */
  async flush(): Promise<void> {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    while (this.pumping) await this.pumping;
    if (this.queue.length === 0 || !this.sending) return;
    await this.pump();
  }

  /** Resolves when the request in flight (if any) has ended. */
  async idle(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  private pump(): Promise<void> {
    const run = this.runLoop().finally(() => {
      this.pumping = null;
    });
    this.pumping = run;
    return run;
  }

  private async runLoop(): Promise<void> {
    for (;;) {
      if (!this.sending) return;
      this.prepareAll();
      const request = this.nextRequest();
      if (!request) {
        this.maybeReleaseSpool();
        return;
      }
      const { items, path, body } = request;
      this.inflight = items;
      const outcome = await this.client.request('POST', path, body);
      this.inflight = [];
      const first = items[0]!;
      if (items.some((i) => i.gone)) {
        // spoolAll() took these while they were in flight (shutdown/exit): they live on disk now
        if (outcome.kind === 'ok') this.counters.sent += items.length;
        return;
      }
      if (this.stopped && outcome.kind !== 'ok') {
        // shutting down: whatever did not go through goes to the spool with the rest
        this.requeueFront(items);
        return;
      }
      const decision = decide(
        outcome,
        {
          kind: first.kind,
          count: items.length,
          attempt: this.attempt,
          unauthorizedStreak: this.unauthorizedStreak,
          restarted: this.restarted.has(first.trajectoryId),
          haveStart: this.startFor(first.trajectoryId) !== undefined,
        },
        this.config.backoff,
      );
      if (decision.action === 'delivered') {
        this.counters.sent += items.length;
        this.attempt = 0;
        this.unauthorizedStreak = 0;
        this.splitLimit = 0;
        this.lastOk = true;
        this.restarted.delete(first.trajectoryId);
        this.settled(items);
        continue;
      }
      this.counters.failed++;
      this.lastOk = false;
      this.lastFailureNetwork = outcome.kind === 'retry' && outcome.status === null;
      this.counters.lastError = outcome.kind === 'ok' ? null : outcome.error;
      switch (decision.action) {
        case 'retry':
        case 'unauthorized':
          this.requeueFront(items);
          if (decision.action === 'unauthorized') {
            this.unauthorizedStreak++;
            if (decision.stop) {
              this.unauthorizedFlag = true;
              this.stopTimers();
              this.onUnauthorized(this.counters.lastError ?? '401');
              return;
            }
          } else {
            this.attempt++;
          }
          this.counters.retries++;
          if (this.config.debug) {
            this.config.logger.debug(`[LightningClient] ${this.counters.lastError}; retry ${this.attempt} in ${decision.delayMs} ms`);
          }
          this.retryTimer = setTimeout(() => {
            this.retryTimer = null;
            this.schedulePump();
          }, decision.delayMs);
          this.retryTimer.unref();
          return;
        case 'restart': {
          // the collector does not know the trajectory (its start was dropped or its data reset):
          // start it again (idempotent) and retry these records once
          this.restarted.add(first.trajectoryId);
          this.requeueFront(items);
          const start = this.item('start', first.trajectoryId, this.startFor(first.trajectoryId)!);
          this.prepareItem(start);
          start.queued = true;
          this.queue.unshift(start);
          this.queuedBytes += start.bytes;
          continue;
        }
        case 'split':
          // one bad record rejects the whole batch: split to isolate it
          this.requeueFront(items);
          this.splitLimit = decision.limit;
          continue;
        case 'drop':
          this.config.logger.warn(`[Lightning Instrumentation] Collector rejected ${items.length} record(s): ${decision.reason}`);
          this.drop(items, decision.reason);
          this.settled(items);
          continue;
      }
    }
  }

  /** The record left memory for good (sent, spooled or dropped): let its payload go. */
  private release(item: QueueItem): void {
    item.prepared = undefined;
    if (item.kind === 'step') {
      item.update = undefined;
      item.draft.input = undefined;
      item.draft.output = undefined;
      item.draft.metadata = undefined;
    }
  }

  private settled(items: QueueItem[]): void {
    let replayed = 0;
    for (const i of items) {
      if (i.replayed) replayed++;
      if (i.kind !== 'start') this.release(i); // starts are prepared again for 404 recovery
    }
    if (replayed > 0) this.replayDone(replayed);
  }

  private replayDone(n: number): void {
    this.replayPending = Math.max(0, this.replayPending - n);
    this.maybeReleaseSpool();
  }

  private maybeReleaseSpool(): void {
    if (this.replayPending === 0 && this.spool && this.spool.hasClaimed) this.spool.releaseClaimed();
  }

  private requeueFront(items: QueueItem[]): void {
    this.queue.unshiftAll(items);
    for (const i of items) {
      i.queued = true;
      if (i.kind === 'step') this.queuedSteps++;
      this.queuedBytes += i.bytes;
    }
  }

  /** Takes the next request's records off the queue. */
  private nextRequest(): { items: QueueItem[]; path: string; body: string } | null {
    const head = this.queue.peek();
    if (!head) return null;
    if (head.kind !== 'step') {
      this.queue.shift();
      this.forgetSent(head);
      return { items: [head], path: pathFor(head), body: JSON.stringify(head.prepared) };
    }
    // a backlog (after an outage, or under load) drains in larger requests
    const perRequest = Math.max(this.config.batchSize, MAX_STEPS_PER_REQUEST);
    const limit = this.splitLimit > 0 ? Math.min(this.splitLimit, perRequest) : perRequest;
    const taken: StepItem[] = [];
    const takenIdx: number[] = [];
    let bytes = STEP_OVERHEAD;
    for (let i = 0; i < this.queue.length && taken.length < limit; i++) {
      const item = this.queue.at(i)!;
      if (item.trajectoryId !== head.trajectoryId) continue;
      if (item.kind !== 'step') break; // never send steps past this trajectory's other records
      if (taken.length > 0 && bytes + item.bytes > this.config.maxBatchBytes) break;
      bytes += item.bytes;
      taken.push(item);
      takenIdx.push(i);
    }
    this.queue.removeIndices(takenIdx);
    for (const item of taken) this.forgetSent(item);
    // a step opened and closed while queued twice in one batch: send it once, merged
    const byNumber = new Map<number, StepPayload>();
    const steps: StepPayload[] = [];
    for (const item of taken) {
      const p = item.prepared as StepPayload;
      const existing = byNumber.get(p.stepNumber);
      if (existing) {
        mergeStepPayload(existing, p);
      } else {
        const copy = { ...p };
        byNumber.set(p.stepNumber, copy);
        steps.push(copy);
      }
    }
    return { items: taken, path: pathFor(head), body: JSON.stringify({ steps }) };
  }

  private forgetSent(item: QueueItem): void {
    item.queued = false;
    if (item.kind === 'step') this.queuedSteps--;
    this.queuedBytes -= item.bytes;
  }

  /** Stops sending for good (shutdown): the request in flight may still finish. */
  stopSending(): void {
    this.stopped = true;
    this.stopTimers();
  }

  stopTimers(): void {
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    this.intervalTimer = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  // ------------------------------------------------------------------ spool

  /** Adds replayed spool records at the head of the queue, in their spooled order. */
  replay(records: SpoolRecord[]): void {
    const items: QueueItem[] = [];
    for (const r of records) {
      const base = { trajectoryId: r.trajectoryId, queued: false, bytes: 0, replayed: true };
      let item: QueueItem;
      switch (r.kind) {
        case 'start':
          item = { ...base, kind: 'start', draft: { body: r.body }, prepared: r.body };
          break;
        case 'step':
          item = { ...base, kind: 'step', draft: { stepNumber: r.body.stepNumber, toolName: r.body.toolName, hasInput: false, hasOutput: false }, prepared: r.body };
          break;
        case 'complete':
          item = { ...base, kind: 'complete', draft: { body: r.body }, prepared: r.body };
          break;
        case 'score':
          item = { ...base, kind: 'score', draft: { body: r.body }, prepared: r.body };
          break;
      }
      item.bytes = Buffer.byteLength(JSON.stringify(item.prepared)) + 1;
      items.push(item);
    }
    this.queue.unshiftAll(items);
    for (const i of items) {
      i.queued = true;
      if (i.kind === 'step') this.queuedSteps++;
      this.queuedBytes += i.bytes;
    }
    this.replayPending += items.length;
    this.counters.replayed += items.length;
    // the memory bounds hold for replays too: the excess goes back to this process's spool file
    while (this.queue.length > this.config.maxQueueSize) this.evictOldest(true);
    this.enforceBytes();
    if (items.length > 0) this.schedulePump();
  }

  private toSpoolRecord(item: QueueItem): SpoolRecord {
    if (needsPreparing(item)) this.prepareItem(item);
    const base = { v: 1 as const, trajectoryId: item.trajectoryId };
    switch (item.kind) {
      case 'start':
        return { ...base, kind: 'start', body: item.prepared as StartPayload };
      case 'step':
        return { ...base, kind: 'step', body: item.prepared as StepPayload };
      case 'complete':
        return { ...base, kind: 'complete', body: item.prepared as CompletePayload };
      case 'score':
        return { ...base, kind: 'score', body: item.prepared as ScorePayload };
    }
  }

  /** Writes items to the spool, each trajectory preceded by its (idempotent) start. */
  private spillToSpool(items: QueueItem[]): number {
    if (!this.spool || items.length === 0) return 0;
    const records: SpoolRecord[] = [];
    const started = new Set<string>();
    for (const item of items) {
      if (item.kind === 'start') started.add(item.trajectoryId);
      else if (!started.has(item.trajectoryId)) {
        started.add(item.trajectoryId);
        const start = this.startFor(item.trajectoryId);
        if (start) records.push(this.toSpoolRecord(this.item('start', item.trajectoryId, start)));
      }
      records.push(this.toSpoolRecord(item));
    }
    const written = this.spool.write(records);
    // count only the caller's records, not the starts added for context
    const extra = records.length - items.length;
    const writtenItems = Math.max(0, Math.min(items.length, written - extra));
    this.counters.spooled += writtenItems;
    for (let k = 0; k < writtenItems; k++) {
      items[k]!.gone = true;
      this.release(items[k]!);
    }
    if (writtenItems < items.length) this.drop(items.slice(writtenItems), 'spool full or unwritable');
    return writtenItems;
  }

  /**
   * Moves everything not delivered (queued and in flight) to the spool, synchronously.
   * Without a spool they are counted as dropped. Used at shutdown and exit.
   */
  spoolAll(): void {
    this.prepareAll();
    const items = [...this.inflight, ...this.queue];
    for (const i of this.queue) i.queued = false;
    this.queue.clear();
    this.queuedSteps = 0;
    this.queuedBytes = 0;
    if (items.length === 0) {
      this.maybeReleaseSpool();
      return;
    }
    if (this.spool) {
      this.spillToSpool(items);
      // replayed records were re-spooled (or dropped): their source files can go
      this.replayPending = 0;
      this.spool.releaseClaimed();
    } else {
      this.drop(items, 'not delivered before the process ended (spool: false)');
    }
  }
}
