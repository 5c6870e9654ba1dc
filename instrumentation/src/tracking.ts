/**
 * track(): wraps an SDK query, yields every message unchanged and records what only the message
 * stream carries (model, system/init facts, results with cost/usage/errors, denials, assistant
 * text, subagent parent links). lightning.query(): `track(query(...))` with the hooks merged in.
 */
import { mergeHooks } from './merge.js';
import { NO_POST_HOOK, num, str, type Recorder, type Trajectory } from './recorder.js';
import { errorMessage } from './sanitize.js';
import type { CompleteDraft, StartDraft } from './outbox.js';
import type { LightningHooks, PromptResult, TrackContext, TrackedQuery, UsagePayload } from './types.js';

export function systemPromptText(sp: TrackContext['systemPrompt']): string | undefined {
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

export interface TrackDeps {
  recorder: Recorder;
  active: () => boolean;
  debug: (message: string) => void;
  /** Records the prompt version and assignment the run used (see assignments.ts). */
  attribute: (body: StartDraft['body'], explicit?: PromptResult) => void;
}

/** The completion a result message describes. */
function resultCompletion(t: Trajectory, msg: Record<string, unknown>): CompleteDraft['body'] {
  const isError = msg.is_error === true;
  const body: CompleteDraft['body'] = {
    success: !isError,
    status: isError ? 'failed' : 'succeeded',
    totalSteps: t.stepCount,
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
    const errors = Array.isArray(msg.errors) ? (msg.errors as unknown[]).filter((e): e is string => typeof e === 'string') : [];
    body.error = errors.length > 0 ? errors.join('\n') : resultText && resultText.length > 0 ? resultText : String(msg.subtype ?? 'error');
  }
  return body;
}

/** What the result says beyond the completion fields: kept as an `event` step named `Result`. */
function resultFacts(msg: Record<string, unknown>): Record<string, unknown> {
  const facts: Record<string, unknown> = {};
  for (const key of ['subtype', 'is_error', 'stop_reason', 'terminal_reason', 'permission_denials', 'modelUsage', 'num_turns', 'duration_api_ms', 'api_error_status']) {
    if (msg[key] !== undefined && msg[key] !== null) facts[key] = msg[key];
  }
  return facts;
}

export function track<Q extends AsyncIterable<unknown>>(deps: TrackDeps, query: Q, context?: TrackContext): Q {
  const rec = deps.recorder;
  const seen = new Set<Trajectory>();
  const resulted = new Set<Trajectory>();
  let applied = false;

  const sp = context ? systemPromptText(context.systemPrompt) : undefined;
  const patch = (b: Parameters<Parameters<Recorder['patchStart']>[1]>[0]): void => {
    if (!context || applied) return;
    applied = true;
    if (context.prompt !== undefined && b.prompt === undefined) b.prompt = context.prompt;
    if (sp !== undefined) b.systemPrompt = sp;
    if (context.model !== undefined && b.model === undefined) b.model = context.model;
    if (context.taskType !== undefined) b.taskType = context.taskType;
    if (context.metadata) b.metadata = { ...(b.metadata ?? {}), ...context.metadata };
    // now that the system prompt (or the run's own prompt() result) is known
    deps.attribute(b, context.assignment);
  };
  // the query's first trajectory usually begins (UserPromptSubmit) before any message is read:
  // its start record carries the context from the beginning
  if (context) rec.expectStart(patch);
  const applyContext = (t: Trajectory): void => {
    if (!context || applied) return;
    rec.patchStart(t, patch);
  };

  const observe = (message: unknown): void => {
    if (!deps.active() || !message || typeof message !== 'object') return;
    const msg = message as Record<string, unknown>;
    const sessionId = str(msg.session_id);
    if (sessionId === undefined) return;
    const type = msg.type;
    if (type === 'result') {
      const t = rec.resultTarget(sessionId);
      if (!t) return;
      rec.markTracked(t);
      seen.add(t);
      resulted.add(t);
      rec.closeAllOpen(t, 'result');
      rec.event(t, 'Result', undefined, resultFacts(msg), {});
      rec.complete(t, resultCompletion(t, msg));
      return;
    }
    const t = rec.current(sessionId);
    rec.markTracked(t);
    if (!seen.has(t)) {
      seen.add(t);
      applyContext(t);
    }
    if (type === 'system' && msg.subtype === 'init') {
      const model = str(msg.model);
      rec.patchStart(t, (b) => {
        if (model !== undefined) b.model = model;
        const md = (b.metadata ??= {});
        if (msg.claude_code_version !== undefined) md.claude_code_version = msg.claude_code_version;
        if (msg.permissionMode !== undefined) md.permission_mode = msg.permissionMode;
        if (msg.cwd !== undefined) md.cwd = msg.cwd;
      });
    } else if (type === 'system' && msg.subtype === 'permission_denied') {
      const id = str(msg.tool_use_id);
      const open = id !== undefined ? t.open.get(id) : undefined;
      if (open) {
        rec.closeStep(t, open, { error: `Permission denied: ${str(msg.message) ?? 'the tool call was not allowed'}`, closedBy: 'permission_denied' });
      }
    } else if (type === 'assistant') {
      const parent = str(msg.parent_tool_use_id);
      const content = (msg.message as { content?: unknown } | undefined)?.content;
      if (!Array.isArray(content)) return;
      for (const block of content) {
        if (!block || typeof block !== 'object') continue;
        const b = block as { type?: unknown; id?: unknown; text?: unknown };
        if (b.type === 'tool_use' && parent !== undefined && typeof b.id === 'string') rec.linkParent(t, b.id, parent);
        else if (b.type === 'text' && typeof b.text === 'string') {
          rec.message(t, b.text, 'assistant', parent !== undefined ? { parentToolUseId: parent } : {});
        }
      }
    } else if (type === 'user' && t.open.size > 0) {
      // post hooks fire before the tool_result message: a step still open here got none
      const content = (msg.message as { content?: unknown } | undefined)?.content;
      if (!Array.isArray(content)) return;
      for (const block of content) {
        if (!block || typeof block !== 'object') continue;
        const b = block as { type?: unknown; tool_use_id?: unknown; content?: unknown; is_error?: unknown };
        if (b.type !== 'tool_result') continue;
        const id = str(b.tool_use_id);
        const open = id !== undefined ? t.open.get(id) : undefined;
        if (!open) continue;
        const text = toolResultText(b.content) ?? '';
        if (b.is_error === true) rec.closeStep(t, open, { error: `${NO_POST_HOOK}: ${text}`, closedBy: 'tool_result' });
        else rec.closeStep(t, open, { output: b.content, hasOutput: true, closedBy: 'tool_result' });
      }
    }
  };

  const endUnfinished = (error: string): void => {
    if (!deps.active()) return;
    rec.endAll([...seen].filter((t) => !resulted.has(t)), 'interrupted', error);
  };

  async function* wrapped(): AsyncGenerator<unknown, void, unknown> {
    let finished = false;
    try {
      for await (const message of query) {
        try {
          observe(message);
        } catch (e) {
          deps.debug(`[Lightning Instrumentation] track() observer error (ignored): ${errorMessage(e)}`);
        }
        yield message;
      }
      finished = true;
    } catch (e) {
      finished = true;
      try {
        endUnfinished(errorMessage(e));
      } catch {
        /* never mask the SDK's error */
      }
      throw e;
    } finally {
      if (!finished) {
        // the consumer stopped iterating early (break/return)
        try {
          endUnfinished('query stopped before a result message (iteration ended early)');
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

type QueryFn = (params: { prompt: unknown; options?: Record<string, unknown> }) => AsyncIterable<unknown>;

const SDK = '@anthropic-ai/claude-agent-sdk';

/**
 * `lightning.query(params)`: the SDK's `query(params)` with `lightning.hooks` merged into
 * `params.options.hooks`, tracked, with the prompt, system prompt and model recorded from the
 * arguments. The SDK is loaded on first use (it is a peer dependency) unless given as `sdk`.
 */
export function trackedQuery(
  deps: TrackDeps,
  hooks: LightningHooks,
  sdk: { query: QueryFn } | undefined,
  params: { prompt: unknown; options?: object },
  extra?: Pick<TrackContext, 'assignment' | 'taskType' | 'metadata'>,
): TrackedQuery {
  const options = { ...((params.options ?? {}) as Record<string, unknown>) };
  options.hooks = mergeHooks(hooks, options.hooks as LightningHooks | undefined);
  const context: TrackContext = { ...(extra ?? {}) };
  if (typeof params.prompt === 'string') context.prompt = params.prompt;
  const sp = options.systemPrompt as TrackContext['systemPrompt'];
  if (sp !== undefined) context.systemPrompt = sp;
  if (typeof options.model === 'string') context.model = options.model;
  const call = { ...params, options };
  if (sdk) return track(deps, sdk.query(call), context) as unknown as TrackedQuery;

  // the SDK is ESM: load it asynchronously, start the query at once when it is there
  const ready: Promise<AsyncIterable<unknown> & Record<string, unknown>> = import(SDK).then(
    (mod: { query: QueryFn }) => track(deps, mod.query(call), context) as AsyncIterable<unknown> & Record<string, unknown>,
  );
  ready.catch(() => undefined); // reported through next()
  let iterator: AsyncIterator<unknown> | null = null;
  const it = async (): Promise<AsyncIterator<unknown>> => (iterator ??= (await ready)[Symbol.asyncIterator]());
  const facade: Record<string | symbol, unknown> = {
    next: async (...args: [] | [unknown]) => (await it()).next(...args),
    return: async (value?: unknown) => ((await it()).return ? (await it()).return!(value) : { done: true, value }),
    throw: async (err?: unknown) => ((await it()).throw ? (await it()).throw!(err) : Promise.reject(err)),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return new Proxy(facade, {
    get(target, prop) {
      if (prop in target) return target[prop];
      if (prop === 'then') return undefined; // not a thenable
      // control methods (interrupt, setPermissionMode, …) wait for the query to exist
      return async (...args: unknown[]) => {
        const q = await ready;
        const fn = q[prop as string];
        if (typeof fn !== 'function') throw new TypeError(`query has no method ${String(prop)}`);
        return (fn as (...a: unknown[]) => unknown).apply(q, args);
      };
    },
  }) as unknown as TrackedQuery;
}
