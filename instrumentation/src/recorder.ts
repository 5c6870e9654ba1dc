/**
 * The trajectory model: which trajectory a hook or message belongs to, step numbering, open tool
 * calls, assistant text and lifecycle events, subagent links and completion. Hooks (hooks.ts) and
 * the message observer (tracking.ts) call into it; it only appends to the outbox.
 *
 * One trajectory per task: a user prompt starts a new trajectory in its SDK session; nothing is
 * added to a trajectory once it is completed. A trajectory whose subagents still run when its turn
 * ends is completed when they have stopped (or when the process ends).
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { CompleteDraft, Outbox, StartDraft, StartItem, StepDraft, StepItem } from './outbox.js';
import { VERSION } from './options.js';
import type { CompletionStatus, HookInputLike, JsonValue } from './types.js';

/** Error recorded for a step that never got PostToolUse/PostToolUseFailure. */
export const NO_POST_HOOK = 'Tool call did not complete: no PostToolUse/PostToolUseFailure';

const MAX_SESSIONS = 10000;
const MAX_TRAJECTORIES = 2000;
const MAX_KNOWN_STEPS = 2000;
const SPAWNING_TOOLS = new Set(['Task', 'Agent']);

export interface OpenStep {
  stepNumber: number;
  toolName: string;
  toolUseId: string;
  startedAt: number;
  metadata: Record<string, unknown>;
  item: StepItem | undefined;
  closed: boolean;
}

export interface Trajectory {
  id: string;
  sessionId: string;
  startMs: number;
  startDraft: StartDraft;
  startItem: StartItem | undefined;
  nextStep: number;
  /** tool steps only (messages and events are not counted) */
  stepCount: number;
  open: Map<string, OpenStep>;
  /** every step by tool_use id (bounded), to attach late facts (parent links) */
  steps: Map<string, OpenStep>;
  tracked: boolean;
  /** the turn ended (Stop) and a tracked result is awaited */
  stopped: boolean;
  completed: boolean;
  prompted: boolean;
  /** assistant texts already recorded (hooks and messages report the same text) */
  texts: Set<string>;
  /** subagents started and not yet stopped */
  running: Set<string>;
  /** completion held back while subagents run */
  deferred: CompleteDraft['body'] | undefined;
  /** subagent id → tool_use id of the Task/Agent call that spawned it */
  agentParents: Map<string, string>;
  /** tool_use id → parent tool_use id, from the message stream */
  toolParents: Map<string, string>;
}

interface Session {
  id: string;
  current: Trajectory | undefined;
  /** tracked trajectories whose turn ended, oldest first, waiting for their result message */
  awaiting: Trajectory[];
  /** track() sees this session's messages: its results complete the trajectories */
  tracked: boolean;
}

export interface CloseHow {
  output?: unknown;
  hasOutput?: boolean;
  error?: string;
  durationMs?: number;
  closedBy: string;
  extra?: Record<string, unknown>;
}

export interface RecorderConfig {
  agentId: string;
  taskType: string | undefined;
  metadata: { [key: string]: JsonValue } | undefined;
  debug: (message: string) => void;
  /** Sets the prompt version and assignment a new trajectory records (see assignments.ts). */
  attribute?: (body: StartDraft['body']) => void;
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** A prompt the CLI injects itself (a background subagent's result): the same task goes on. */
export function isContinuationPrompt(input: HookInputLike): boolean {
  const prompt = str(input.prompt) ?? '';
  return prompt.trimStart().startsWith('<task-notification>');
}

export class Recorder {
  private readonly sessions = new Map<string, Session>();
  private readonly byId = new Map<string, Trajectory>();
  /** subagent id → the trajectory it works for */
  private readonly agentOwner = new Map<string, Trajectory>();
  private last: Trajectory | null = null;
  /** start patches of track()/query() calls whose trajectory has not begun yet, oldest first */
  private readonly pendingStarts: { patch: (body: StartDraft['body']) => void; at: number }[] = [];
  trajectories = 0;

  constructor(
    private readonly cfg: RecorderConfig,
    private readonly outbox: Outbox,
  ) {}

  // ------------------------------------------------------------------ lookup

  get(trajectoryId: string): Trajectory | undefined {
    return this.byId.get(trajectoryId);
  }

  startFor(trajectoryId: string): StartDraft | undefined {
    return this.byId.get(trajectoryId)?.startDraft;
  }

  currentTrajectoryId(): string | null {
    for (const t of [...this.byId.values()].reverse()) if (!t.completed) return t.id;
    return this.last?.id ?? null;
  }

  private session(sessionId: string): Session {
    let s = this.sessions.get(sessionId);
    if (!s) {
      if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string);
      s = { id: sessionId, current: undefined, awaiting: [], tracked: false };
      this.sessions.set(sessionId, s);
    }
    return s;
  }

  /** The trajectory hooks of this session add to now; a new one when none is open. */
  current(sessionId: string): Trajectory {
    const s = this.session(sessionId);
    if (s.current && !s.current.completed) return s.current;
    return this.begin(s);
  }

  /**
   * A track()/query() call's context for the trajectory its query is about to begin: put into
   * the first start record, before it can be sent (the collector keeps a trajectory's first start).
   */
  expectStart(patch: (body: StartDraft['body']) => void): void {
    if (this.pendingStarts.length > 100) this.pendingStarts.shift();
    this.pendingStarts.push({ patch, at: Date.now() });
  }

  /** track() observes this session: results (not Stop) complete its trajectories from now on. */
  markTracked(t: Trajectory): void {
    t.tracked = true;
    this.session(t.sessionId).tracked = true;
  }

  /** The open trajectory of a session, without starting one. */
  peek(sessionId: string): Trajectory | undefined {
    const c = this.sessions.get(sessionId)?.current;
    return c && !c.completed ? c : undefined;
  }

  /** The trajectory a subagent's hook belongs to: the one that spawned it, if still open. */
  forHook(input: HookInputLike): Trajectory {
    const agentId = str(input.agent_id);
    const owner = agentId !== undefined ? this.agentOwner.get(agentId) : undefined;
    if (owner && !owner.completed) return owner;
    return this.current(str(input.session_id) ?? 'unknown-session');
  }

  private begin(s: Session): Trajectory {
    const id = randomUUID();
    const now = Date.now();
    const metadata: Record<string, unknown> = {
      ...(this.cfg.metadata ?? {}),
      instrumentation: `@agent-lightning/instrumentation@${VERSION}`,
    };
    const body: StartDraft['body'] = { trajectoryId: id, agentId: this.cfg.agentId, startTime: new Date(now).toISOString(), sessionId: s.id, metadata };
    if (this.cfg.taskType !== undefined) body.taskType = this.cfg.taskType;
    while (this.pendingStarts.length > 0) {
      const pending = this.pendingStarts.shift()!;
      if (now - pending.at > 60_000) continue; // that query never started a task
      pending.patch(body);
      break;
    }
    // a track() context attributes its trajectory itself (it knows the system prompt)
    if (metadata.promptAssignment === undefined && body.metadata?.promptAssignment === undefined) this.cfg.attribute?.(body);
    const t: Trajectory = {
      id,
      sessionId: s.id,
      startMs: now,
      startDraft: { body },
      startItem: undefined,
      nextStep: 1,
      stepCount: 0,
      open: new Map(),
      steps: new Map(),
      tracked: s.tracked,
      stopped: false,
      completed: false,
      prompted: false,
      texts: new Set(),
      running: new Set(),
      deferred: undefined,
      agentParents: new Map(),
      toolParents: new Map(),
    };
    if (this.byId.size >= MAX_TRAJECTORIES) {
      for (const [old, ot] of this.byId) {
        if (ot.completed || this.byId.size >= MAX_TRAJECTORIES * 2) {
          this.byId.delete(old);
          if (this.byId.size < MAX_TRAJECTORIES) break;
        }
      }
    }
    this.byId.set(id, t);
    s.current = t;
    this.last = t;
    this.trajectories++;
    this.cfg.debug(`[Lightning Hooks] Session started (session ${s.id}, trajectory ${id})`);
    return t;
  }

  /**
   * A user prompt: a new task, so a new trajectory — unless the open one has not seen a prompt
   * yet (it was started by an earlier hook or message of this task) or the CLI continues the
   * same task (a background subagent reported back).
   */
  prompt(input: HookInputLike): Trajectory {
    const sessionId = str(input.session_id) ?? 'unknown-session';
    const s = this.session(sessionId);
    const open = s.current && !s.current.completed ? s.current : undefined;
    if (open && isContinuationPrompt(input)) {
      open.stopped = false;
      s.awaiting = s.awaiting.filter((t) => t !== open);
      return open;
    }
    if (open && !open.prompted && open.stepCount === 0 && !open.stopped) {
      this.setPrompt(open, input);
      return open;
    }
    if (open) this.supersede(open);
    const t = this.begin(s);
    this.setPrompt(t, input);
    return t;
  }

  private setPrompt(t: Trajectory, input: HookInputLike): void {
    t.prompted = true;
    const prompt = str(input.prompt);
    if (prompt === undefined) return;
    this.patchStart(t, (b) => {
      if (b.prompt === undefined) b.prompt = prompt;
    });
  }

  /** A new prompt arrived while `t` is still open. */
  private supersede(t: Trajectory): void {
    if (t.tracked && t.stopped) return; // its result message is on its way (it stays in `awaiting`)
    if (t.deferred) return; // waits for its subagents; completed when they stop
    this.closeAllOpen(t, 'next prompt');
    this.complete(t, {
      success: false,
      status: 'interrupted',
      error: 'A new prompt started before this task ended',
      totalSteps: t.stepCount,
      duration: Date.now() - t.startMs,
      endTime: new Date().toISOString(),
    });
  }

  /**
   * Queues the trajectory's start with its first record: what arrives before that (the model from
   * system/init, the track() context) is in the start from the beginning — the collector keeps a
   * trajectory's first start.
   */
  started(t: Trajectory): void {
    if (!t.startItem) t.startItem = this.outbox.addStart(t.id, t.startDraft);
  }

  /** Queues the start of a known trajectory (before a score for it). */
  startById(trajectoryId: string): void {
    const t = this.byId.get(trajectoryId);
    if (t) this.started(t);
  }

  /** Changes the start record (prepared again while still queued; later replays carry it too). */
  patchStart(t: Trajectory, patch: (body: StartDraft['body']) => void): void {
    patch(t.startDraft.body);
    if (t.startItem && this.outbox.isQueued(t.startItem)) this.outbox.touch(t.startItem);
  }

  // ------------------------------------------------------------------ steps

  private stepMetadata(t: Trajectory, input: HookInputLike, toolUseId: string | undefined): Record<string, unknown> {
    const m: Record<string, unknown> = {};
    const agentId = str(input.agent_id);
    if (agentId !== undefined) m.agentId = agentId;
    if (input.agent_type !== undefined) m.agentType = input.agent_type;
    const parent = (toolUseId !== undefined ? t.toolParents.get(toolUseId) : undefined) ?? (agentId !== undefined ? t.agentParents.get(agentId) : undefined);
    if (parent !== undefined) m.parentToolUseId = parent;
    if (input.prompt_id !== undefined) m.prompt_id = input.prompt_id;
    if (input.mcp_server !== undefined) m.mcp_server = input.mcp_server;
    return m;
  }

  openStep(t: Trajectory, input: HookInputLike, toolUseId: string): OpenStep {
    const stepNumber = t.nextStep++;
    t.stepCount++;
    const toolName = str(input.tool_name) || 'unknown';
    const metadata = this.stepMetadata(t, input, toolUseId);
    const draft: StepDraft = { stepNumber, toolName, timestampMs: Date.now(), toolUseId, hasInput: true, input: input.tool_input, hasOutput: false, metadata };
    this.started(t);
    const item = this.outbox.addStep(t.id, draft);
    const open: OpenStep = { stepNumber, toolName, toolUseId, startedAt: performance.now(), metadata, item, closed: false };
    t.open.set(toolUseId, open);
    if (t.steps.size >= MAX_KNOWN_STEPS) t.steps.delete(t.steps.keys().next().value as string);
    t.steps.set(toolUseId, open);
    return open;
  }

  closeStep(t: Trajectory, open: OpenStep, how: CloseHow): void {
    t.open.delete(open.toolUseId);
    open.closed = true;
    const durationMs = Math.max(0, Math.round(how.durationMs ?? performance.now() - open.startedAt));
    open.metadata = { ...open.metadata, ...(how.extra ?? {}), closedBy: how.closedBy };
    const update: Partial<StepDraft> & { stepNumber: number; toolName: string } = {
      stepNumber: open.stepNumber,
      toolName: open.toolName,
      toolUseId: open.toolUseId,
      durationMs,
      metadata: open.metadata,
    };
    if (how.hasOutput) {
      update.hasOutput = true;
      update.output = how.output;
    }
    if (how.error !== undefined) update.error = how.error;
    open.item = this.outbox.updateStep(t.id, open.item, update);
  }

  closeAllOpen(t: Trajectory, reason: string): void {
    for (const open of [...t.open.values()]) {
      this.closeStep(t, open, { error: `${NO_POST_HOOK} before ${reason}`, closedBy: reason });
    }
  }

  /** Adds a fact to a known step's metadata (sent again; the collector merges). */
  private annotate(t: Trajectory, step: OpenStep, extra: Record<string, unknown>): void {
    step.metadata = { ...step.metadata, ...extra };
    if (step.closed) {
      step.item = this.outbox.updateStep(t.id, step.item, { stepNumber: step.stepNumber, toolName: step.toolName, toolUseId: step.toolUseId, metadata: step.metadata });
    }
  }

  /** Assistant text, once per distinct text per trajectory. */
  message(t: Trajectory, text: string, source: string, meta: Record<string, unknown> = {}): void {
    if (t.completed || text.trim() === '' || t.texts.has(text)) return;
    t.texts.add(text);
    const draft: StepDraft = {
      stepNumber: t.nextStep++,
      toolName: 'assistant',
      kind: 'message',
      timestampMs: Date.now(),
      hasInput: false,
      hasOutput: true,
      output: text,
      metadata: { ...meta, source },
    };
    this.started(t);
    this.outbox.addStep(t.id, draft);
  }

  /** A lifecycle fact (toolName = the hook event name). */
  event(t: Trajectory, name: string, input: unknown, output: unknown, metadata: Record<string, unknown>): void {
    if (t.completed) return;
    const draft: StepDraft = {
      stepNumber: t.nextStep++,
      toolName: name,
      kind: 'event',
      timestampMs: Date.now(),
      hasInput: input !== undefined,
      input,
      hasOutput: output !== undefined,
      output,
      metadata,
    };
    this.started(t);
    this.outbox.addStep(t.id, draft);
  }

  // ------------------------------------------------------------------ subagents

  subagentStart(t: Trajectory, input: HookInputLike): void {
    const agentId = str(input.agent_id);
    if (agentId === undefined) return;
    this.agentOwner.set(agentId, t);
    t.running.add(agentId);
    if (!t.agentParents.has(agentId)) {
      // the spawning Task/Agent call is open now: the oldest one not yet linked to a subagent
      const linked = new Set(t.agentParents.values());
      for (const open of t.open.values()) {
        if (SPAWNING_TOOLS.has(open.toolName) && !linked.has(open.toolUseId) && open.metadata.agentId === undefined) {
          t.agentParents.set(agentId, open.toolUseId);
          break;
        }
      }
    }
    const meta = this.stepMetadata(t, input, undefined);
    this.event(t, 'SubagentStart', { agentId, agentType: input.agent_type ?? null }, undefined, meta);
  }

  subagentStop(t: Trajectory, input: HookInputLike): void {
    const agentId = str(input.agent_id);
    const meta = this.stepMetadata(t, input, undefined);
    this.event(t, 'SubagentStop', { agentId: agentId ?? null, agentType: input.agent_type ?? null }, str(input.last_assistant_message), meta);
    if (agentId === undefined) return;
    t.running.delete(agentId);
    const s = this.sessions.get(t.sessionId);
    if (t.running.size === 0 && t.deferred && s?.current !== t) this.complete(t, t.deferred);
  }

  /** The spawning call's result names its subagent: the exact link (corrects the guess). */
  linkSpawned(t: Trajectory, toolUseId: string, response: unknown): void {
    if (!response || typeof response !== 'object') return;
    const agentId = str((response as { agentId?: unknown }).agentId);
    if (agentId !== undefined) t.agentParents.set(agentId, toolUseId);
  }

  /** From the message stream: tool call `toolUseId` was made inside the subagent of `parent`. */
  linkParent(t: Trajectory, toolUseId: string, parent: string): void {
    if (t.toolParents.has(toolUseId)) return;
    t.toolParents.set(toolUseId, parent);
    const step = t.steps.get(toolUseId);
    if (step && step.metadata.parentToolUseId === undefined) this.annotate(t, step, { parentToolUseId: parent });
    const agentId = step ? str(step.metadata.agentId) : undefined;
    if (agentId !== undefined && !t.agentParents.has(agentId)) t.agentParents.set(agentId, parent);
  }

  // ------------------------------------------------------------------ completion

  complete(t: Trajectory, body: CompleteDraft['body']): void {
    if (t.completed) return;
    if (t.running.size > 0) {
      t.deferred = body; // completed when its subagents stop, or at exit
      return;
    }
    t.completed = true;
    t.deferred = undefined;
    const s = this.sessions.get(t.sessionId);
    if (s) s.awaiting = s.awaiting.filter((x) => x !== t);
    this.started(t);
    this.outbox.addComplete(t.id, { body });
    this.cfg.debug(`[Lightning Hooks] Trajectory ${t.id} complete (success: ${body.success})`);
  }

  /** Stop (error undefined) or StopFailure: the turn ended. */
  turnEnded(t: Trajectory, input: HookInputLike, hook: string, error: string | undefined): void {
    this.closeAllOpen(t, hook);
    const last = str(input.last_assistant_message);
    if (last !== undefined) this.message(t, last, hook);
    if (t.tracked) {
      // the result message completes it (with cost, usage and the error text)
      t.stopped = true;
      const s = this.session(t.sessionId);
      if (!s.awaiting.includes(t)) s.awaiting.push(t);
      return;
    }
    const body: CompleteDraft['body'] = {
      success: error === undefined,
      status: error === undefined ? 'succeeded' : 'failed',
      ...(error !== undefined ? { error } : {}),
      totalSteps: t.stepCount,
      duration: Date.now() - t.startMs,
      endTime: new Date().toISOString(),
    };
    if (last !== undefined) body.result = last;
    this.complete(t, body);
  }

  /** The tracked trajectory a result message of `sessionId` completes. */
  resultTarget(sessionId: string): Trajectory | undefined {
    const s = this.sessions.get(sessionId);
    if (!s) return undefined;
    return s.awaiting.find((t) => !t.completed) ?? this.peek(sessionId);
  }

  /** Open trajectories (not completed). */
  openTrajectories(): Trajectory[] {
    return [...this.byId.values()].filter((t) => !t.completed);
  }

  /**
   * The process is ending (or the query ended) before these trajectories did: complete each with
   * its held-back completion if it has one, else with `status` and `error`.
   */
  endAll(list: Trajectory[], status: CompletionStatus, error: string): void {
    for (const t of list) {
      if (t.completed) continue;
      t.running.clear();
      if (t.deferred) {
        this.complete(t, t.deferred);
        continue;
      }
      this.closeAllOpen(t, status === 'interrupted' ? 'the process ended' : 'the query ended');
      this.complete(t, {
        success: false,
        status,
        error,
        totalSteps: t.stepCount,
        duration: Date.now() - t.startMs,
        endTime: new Date().toISOString(),
      });
    }
  }
}
