/**
 * StepBuffer: the bounded, ordered outbox of records (trajectory starts, steps, completions)
 * and the single delivery loop that sends them to the collector.
 *
 * - Order: one request at a time, taken from the head of the queue. A trajectory's start is
 *   enqueued before its steps and its steps before its completion, so the collector always
 *   sees them in that order. Steps of one trajectory are grouped into batches.
 * - Hooks only append (or merge into a not-yet-sent step) and return; sanitizing and
 *   serializing happen later, off the hook's critical path.
 * - Retries (network errors, timeouts, 408/425/429/5xx) put the records back at the head and
 *   wait with exponential backoff + jitter (or Retry-After). Re-sent steps are merged by the
 *   collector, so a retry never duplicates.
 */
import { retryDelay, type BackoffConfig } from './backoff.js';
import type { LightningClient } from './client.js';
import { Deque } from './deque.js';
import type { Spool, SpoolRecord } from './spool.js';
import type { CompletePayload, Logger, StartPayload, StepPayload } from './types.js';

/** A step as captured by the hooks, before sanitization. */
export interface StepDraft {
  stepNumber: number;
  toolName: string;
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

interface ItemBase {
  trajectoryId: string;
  inflight: boolean;
  /** true while the record sits in the queue (not in flight, not sent or dropped) */
  queued: boolean;
  /** serialized size once prepared */
  bytes: number;
  replayed: boolean;
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
}
export interface CompleteItem extends ItemBase {
  kind: 'complete';
  draft: CompleteDraft;
  prepared?: CompletePayload;
}
export type QueueItem = StartItem | StepItem | CompleteItem;

export interface Preparer {
  start(draft: StartDraft): StartPayload;
  step(draft: StepDraft): StepPayload;
  complete(draft: CompleteDraft): CompletePayload;
}

export interface BufferConfig {
  batchSize: number;
  maxBatchBytes: number;
  maxQueueSize: number;
  flushInterval: number;
  backoff: BackoffConfig;
  debug: boolean;
  logger: Logger;
}

export interface BufferCounters {
  sent: number;
  dropped: number;
  failed: number;
  retries: number;
  spooled: number;
  replayed: number;
  lastError: string | null;
}

const STEP_OVERHEAD = 16;
/** Most steps in one request (at least batchSize), within maxBatchBytes. */
const MAX_STEPS_PER_REQUEST = 200; // `{"steps":[ … ]}` and commas, roughly
/** How far eviction looks past start/complete records for a step to drop first. */
const MAX_EVICTION_SCAN = 256;

const isStep = (i: QueueItem): boolean => i.kind === 'step';

function mergeStepPayload(into: StepPayload, from: StepPayload): void {
  for (const key of Object.keys(from) as (keyof StepPayload)[]) {
    const value = from[key];
    if (value !== undefined && value !== null) (into as unknown as Record<string, unknown>)[key] = value;
  }
}

export class StepBuffer {
  /** the outbox, oldest first: a ring buffer, so evicting the oldest record is O(1) */
  private readonly queue = new Deque<QueueItem>(64);
  private unprepared: QueueItem[] = [];
  private prepareScheduled = false;
  private pumpScheduled = false;
  private pumping: Promise<void> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private intervalTimer: ReturnType<typeof setInterval> | null = null;
  private attempt = 0;
  private queuedSteps = 0;
  private queuedBytes = 0;
  private replayPending = 0;
  private splitLimit = 0;
  private readonly restarted = new Set<string>();
  private disabledFlag = false;
  private readonly spillBuffer: QueueItem[] = [];
  readonly counters: BufferCounters = {
    sent: 0,
    dropped: 0,
    failed: 0,
    retries: 0,
    spooled: 0,
    replayed: 0,
    lastError: null,
  };
  /** Called once when the collector answers 401. */
  onUnauthorized: (error: string) => void = () => {};
  /** Start body of a trajectory, used to re-create it when the collector forgot it (404). */
  startFor: (trajectoryId: string) => StartDraft | undefined = () => undefined;

  constructor(
    private readonly config: BufferConfig,
    private readonly client: LightningClient,
    private readonly preparer: Preparer,
    private readonly spool: Spool | null,
  ) {
    if (config.flushInterval > 0) {
      this.intervalTimer = setInterval(() => this.schedulePump(), config.flushInterval);
      this.intervalTimer.unref();
    }
  }

  get disabled(): boolean {
    return this.disabledFlag;
  }

  /** Records waiting, including those in the request in flight. */
  get pending(): number {
    return this.queue.length + this.inflightCount;
  }

  private inflight: QueueItem[] = [];
  private get inflightCount(): number {
    return this.inflight.length;
  }

  // ------------------------------------------------------------------ enqueue (hook path)

  addStart(trajectoryId: string, draft: StartDraft): StartItem {
    const item: StartItem = { kind: 'start', trajectoryId, draft, inflight: false, queued: false, bytes: 0, replayed: false };
    this.push(item);
    return item;
  }

  addStep(trajectoryId: string, draft: StepDraft): StepItem {
    const item: StepItem = { kind: 'step', trajectoryId, draft, inflight: false, queued: false, bytes: 0, replayed: false };
    this.push(item);
    if (this.config.debug) this.config.logger.debug(`[StepBuffer] Added step ${draft.stepNumber}`);
    return item;
  }

  /**
   * Records the closing fields of a step. Merged into the queued record when it has not been
   * sent yet; otherwise a new record carrying only the new fields is queued (the collector merges).
   */
  updateStep(trajectoryId: string, item: StepItem | undefined, update: Partial<StepDraft> & { stepNumber: number; toolName: string }): StepItem | undefined {
    if (this.disabledFlag) return undefined;
    if (item && item.queued) {
      const d = item.draft;
      if (update.hasOutput) {
        d.hasOutput = true;
        d.output = update.output;
      }
      if (update.error !== undefined) d.error = update.error;
      if (update.durationMs !== undefined) d.durationMs = update.durationMs;
      if (update.metadata !== undefined) d.metadata = update.metadata;
      if (item.prepared) {
        this.queuedBytes -= item.bytes;
        item.prepared = undefined;
        item.bytes = 0;
        this.unprepared.push(item);
        this.schedulePrepare();
      }
      if (this.config.debug) this.config.logger.debug(`[StepBuffer] Updated step ${update.stepNumber}`);
      return item;
    }
    const draft: StepDraft = {
      stepNumber: update.stepNumber,
      toolName: update.toolName,
      hasInput: false,
      hasOutput: update.hasOutput === true,
    };
    if (update.hasOutput) draft.output = update.output;
    if (update.error !== undefined) draft.error = update.error;
    if (update.durationMs !== undefined) draft.durationMs = update.durationMs;
    if (update.metadata !== undefined) draft.metadata = update.metadata;
    if (update.toolUseId !== undefined) draft.toolUseId = update.toolUseId;
    const fresh: StepItem = { kind: 'step', trajectoryId, draft, inflight: false, queued: false, bytes: 0, replayed: false };
    this.push(fresh);
    if (this.config.debug) this.config.logger.debug(`[StepBuffer] Updated step ${update.stepNumber}`);
    return fresh;
  }

  addComplete(trajectoryId: string, draft: CompleteDraft): CompleteItem {
    const item: CompleteItem = { kind: 'complete', trajectoryId, draft, inflight: false, queued: false, bytes: 0, replayed: false };
    this.push(item);
    return item;
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
    if (this.disabledFlag) return;
    while (this.queue.length + this.inflight.length >= this.config.maxQueueSize && this.queue.length > 0) {
      this.evictOldest();
    }
    this.queue.push(item);
    item.queued = true;
    if (item.kind === 'step') this.queuedSteps++;
    this.unprepared.push(item);
    this.schedulePrepare();
    if (this.queuedSteps >= this.config.batchSize || item.kind === 'complete') this.schedulePump();
  }

  private evictOldest(): void {
    // prefer evicting a step: losing a start makes the collector 404 the rest of a trajectory.
    // The scan passes only the start/complete records ahead of the oldest step (a few per
    // session), and the removal moves only those: the cost does not grow with the queue.
    let index = this.queue.findIndex(isStep, MAX_EVICTION_SCAN);
    if (index < 0) index = 0;
    const old = this.queue.removeAt(index) as QueueItem;
    this.forget(old);
    if (this.spool) {
      this.spillBuffer.push(old);
      this.schedulePrepare();
    } else {
      this.drop(1, 'queue full (maxQueueSize)');
    }
  }

  private forget(item: QueueItem): void {
    item.queued = false;
    if (item.kind === 'step') this.queuedSteps--;
    if (item.prepared) this.queuedBytes -= item.bytes;
    if (item.replayed) this.replayDone(1);
  }

  private drop(n: number, why: string): void {
    this.counters.dropped += n;
    if (this.config.debug) this.config.logger.debug(`[StepBuffer] Dropped ${n} record(s): ${why}`);
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
        if (item.prepared || !item.queued) continue;
        this.prepareItem(item);
        this.queuedBytes += item.bytes;
      }
    }
    if (this.spillBuffer.length > 0) {
      const items = this.spillBuffer.splice(0);
      for (const i of items) if (!i.prepared) this.prepareItem(i);
      this.spillToSpool(items);
    }
    if (this.queuedBytes >= this.config.maxBatchBytes) this.schedulePump();
  }

  private prepareItem(item: QueueItem): void {
    switch (item.kind) {
      case 'start':
        item.prepared = this.preparer.start(item.draft);
        break;
      case 'step':
        item.prepared = this.preparer.step(item.draft);
        break;
      case 'complete':
        item.prepared = this.preparer.complete(item.draft);
        break;
    }
    item.bytes = Buffer.byteLength(JSON.stringify(item.prepared)) + 1;
  }

  // ------------------------------------------------------------------ delivery

  /** Starts the delivery loop soon unless it runs or a backoff wait is pending. */
  schedulePump(): void {
    if (this.pumpScheduled || this.pumping || this.retryTimer || this.disabledFlag) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      if (!this.pumping && !this.retryTimer) void this.pump();
    });
  }

  /**
   * Sends everything queued now, skipping any backoff wait. Resolves when the queue is empty,
   * after a retriable failure (records stay queued for the next attempt) or when disabled.
   */
  async flush(): Promise<void> {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    while (this.pumping) await this.pumping;
    if (this.queue.length === 0 || this.disabledFlag) return;
    await this.pump();
  }

  /** The wait chosen after the last failure, if a retry is pending. */
  get backingOff(): boolean {
    return this.retryTimer !== null;
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
      if (this.disabledFlag) return;
      this.prepareAll();
      const request = this.nextRequest();
      if (!request) {
        this.maybeReleaseSpool();
        return;
      }
      const { items, path, body } = request;
      this.inflight = items;
      for (const i of items) i.inflight = true;
      const outcome = await this.client.request('POST', path, body);
      this.inflight = [];
      for (const i of items) i.inflight = false;

      if (outcome.kind === 'ok') {
        this.counters.sent += items.length;
        this.attempt = 0;
        this.splitLimit = 0;
        this.restarted.delete(items[0]!.trajectoryId);
        this.settled(items);
        continue;
      }
      this.counters.failed++;
      this.counters.lastError = outcome.error;
      if (outcome.kind === 'unauthorized') {
        this.disable();
        this.counters.dropped += items.length;
        this.settled(items);
        this.onUnauthorized(outcome.error);
        return;
      }
      if (outcome.kind === 'retry') {
        this.requeueFront(items);
        this.attempt++;
        this.counters.retries++;
        const delay = retryDelay(this.attempt, outcome.retryAfterMs, this.config.backoff);
        if (this.config.debug) {
          this.config.logger.debug(`[LightningClient] ${outcome.error}; retry ${this.attempt} in ${delay} ms`);
        }
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.schedulePump();
        }, delay);
        this.retryTimer.unref();
        return;
      }
      // rejected (4xx other than 401)
      const trajectoryId = items[0]!.trajectoryId;
      const first = items[0]!;
      if (outcome.status === 404 && first.kind !== 'start' && !this.restarted.has(trajectoryId)) {
        const start = this.startFor(trajectoryId);
        if (start) {
          // the collector does not know the trajectory (its start was dropped or its data reset):
          // start it again (idempotent) and retry these records once
          this.restarted.add(trajectoryId);
          this.requeueFront(items);
          const startItem: StartItem = {
            kind: 'start',
            trajectoryId,
            draft: start,
            inflight: false,
            queued: true,
            bytes: 0,
            replayed: false,
          };
          this.prepareItem(startItem);
          this.queue.unshift(startItem);
          this.queuedBytes += startItem.bytes;
          continue;
        }
      }
      if ((outcome.status === 400 || outcome.status === 413) && items.length > 1) {
        // one bad record rejects the whole batch: split to isolate it
        this.requeueFront(items);
        this.splitLimit = Math.max(1, Math.floor(items.length / 2));
        continue;
      }
      this.config.logger.warn(`[Lightning Instrumentation] Collector rejected ${items.length} record(s): ${outcome.error}`);
      this.drop(items.length, outcome.error);
      this.settled(items);
    }
  }

  private settled(items: QueueItem[]): void {
    let replayed = 0;
    for (const i of items) if (i.replayed) replayed++;
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
    const tid = encodeURIComponent(head.trajectoryId);
    if (head.kind === 'start' || head.kind === 'complete') {
      this.queue.shift();
      this.forgetSent(head);
      const path = head.kind === 'start' ? '/api/trajectories/start' : `/api/trajectories/${tid}/complete`;
      return { items: [head], path, body: JSON.stringify(head.prepared) };
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
      if (item.kind !== 'step') break; // never send steps past this trajectory's start/complete
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
    return { items: taken, path: `/api/trajectories/${tid}/steps/batch`, body: JSON.stringify({ steps }) };
  }

  private forgetSent(item: QueueItem): void {
    item.queued = false;
    if (item.kind === 'step') this.queuedSteps--;
    this.queuedBytes -= item.bytes;
  }

  /** Stops capture for good: clears the queue (counted as dropped). */
  disable(): void {
    if (this.disabledFlag) return;
    this.disabledFlag = true;
    this.counters.dropped += this.queue.length;
    for (const i of this.queue) i.queued = false;
    this.queue.clear();
    this.queuedSteps = 0;
    this.queuedBytes = 0;
    this.stopTimers();
  }

  stopTimers(): void {
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    this.intervalTimer = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** Adds replayed spool records at the head of the queue, in their spooled order. */
  replay(records: SpoolRecord[]): void {
    const items: QueueItem[] = [];
    for (const r of records) {
      const base = { trajectoryId: r.trajectoryId, inflight: false, queued: false, bytes: 0, replayed: true };
      let item: QueueItem;
      if (r.kind === 'start') {
        item = { ...base, kind: 'start', draft: { body: r.body }, prepared: r.body };
      } else if (r.kind === 'step') {
        item = {
          ...base,
          kind: 'step',
          draft: { stepNumber: r.body.stepNumber, toolName: r.body.toolName, hasInput: false, hasOutput: false },
          prepared: r.body,
        };
      } else {
        item = { ...base, kind: 'complete', draft: { body: r.body }, prepared: r.body };
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
    // the queue bound holds for replays too
    while (this.queue.length > this.config.maxQueueSize) {
      const old = this.queue.shift() as QueueItem;
      this.forget(old);
      this.drop(1, 'queue full while replaying the spool');
    }
    if (items.length > 0) this.schedulePump();
  }

  private toSpoolRecord(item: QueueItem): SpoolRecord {
    if (!item.prepared) this.prepareItem(item);
    switch (item.kind) {
      case 'start':
        return { v: 1, kind: 'start', trajectoryId: item.trajectoryId, body: item.prepared as StartPayload };
      case 'step':
        return { v: 1, kind: 'step', trajectoryId: item.trajectoryId, body: item.prepared as StepPayload };
      case 'complete':
        return { v: 1, kind: 'complete', trajectoryId: item.trajectoryId, body: item.prepared as CompletePayload };
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
        if (start) {
          const s: StartItem = { kind: 'start', trajectoryId: item.trajectoryId, draft: start, inflight: false, queued: false, bytes: 0, replayed: false };
          records.push(this.toSpoolRecord(s));
        }
      }
      records.push(this.toSpoolRecord(item));
    }
    const written = this.spool.write(records);
    // count only the caller's records, not the starts added for context
    const extra = records.length - items.length;
    const writtenItems = Math.max(0, Math.min(items.length, written - extra));
    this.counters.spooled += writtenItems;
    if (writtenItems < items.length) this.drop(items.length - writtenItems, 'spool full or unwritable');
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
      this.drop(items.length, 'not delivered before shutdown (no spoolDir)');
    }
  }
}
