/**
 * The hook callbacks given to the SDK as `options.hooks`. Each returns `{}` at once, never throws
 * and never waits on the network: it only records into the Recorder.
 */
import { randomUUID } from 'node:crypto';
import { NO_POST_HOOK, num, str, type CloseHow, type Recorder } from './recorder.js';
import { errorMessage } from './sanitize.js';
import type { EmptyHookOutput, HookInputLike, LightningHookCallback, LightningHooks } from './types.js';

const EMPTY = (): Promise<EmptyHookOutput> => Promise.resolve({});

export interface HookContext {
  recorder: Recorder;
  /** false once capture ended (shutdown, or the process is exiting) */
  active: () => boolean;
  debug: (message: string) => void;
  /** a record that should go out soon (flushInterval permitting) */
  pump: () => void;
}

export function buildHooks(ctx: HookContext): LightningHooks {
  const { recorder: rec, debug } = ctx;
  const wrap = (event: string, handler: (input: HookInputLike, toolUseID: string | undefined) => void): LightningHookCallback => {
    return (input: HookInputLike, toolUseID: string | undefined): Promise<EmptyHookOutput> => {
      if (!ctx.active()) return EMPTY();
      try {
        if (input && typeof input === 'object') handler(input, toolUseID);
      } catch (e) {
        debug(`[Lightning Hooks] ${event} handler error (ignored): ${errorMessage(e)}`);
      }
      return EMPTY();
    };
  };
  const sid = (input: HookInputLike): string => (typeof input.session_id === 'string' ? input.session_id : 'unknown-session');
  const toolUseIdOf = (input: HookInputLike): string => str(input.tool_use_id) ?? `no-id-${randomUUID()}`;

  const userPromptSubmit = wrap('UserPromptSubmit', (input) => {
    rec.prompt(input);
  });

  const preToolUse = wrap('PreToolUse', (input) => {
    const t = rec.forHook(input);
    debug(`[Lightning Hooks] Pre-tool: ${str(input.tool_name) ?? 'unknown'}`);
    const toolUseId = toolUseIdOf(input);
    if (t.open.has(toolUseId)) return; // the same call reported twice
    rec.openStep(t, input, toolUseId);
  });

  const post = (failure: boolean) =>
    wrap(failure ? 'PostToolUseFailure' : 'PostToolUse', (input) => {
      const t = rec.forHook(input);
      debug(`[Lightning Hooks] Post-tool: ${str(input.tool_name) ?? 'unknown'}${failure ? ' (failed)' : ''}`);
      const toolUseId = toolUseIdOf(input);
      // a post without a pre (e.g. instrumented mid-call): open it now so nothing is lost
      const open = t.open.get(toolUseId) ?? rec.openStep(t, input, toolUseId);
      const durationMs = num(input.duration_ms);
      const extra: Record<string, unknown> = {};
      if (failure && input.is_interrupt !== undefined) extra.is_interrupt = input.is_interrupt;
      const how: CloseHow = { closedBy: failure ? 'PostToolUseFailure' : 'PostToolUse', extra };
      if (durationMs !== undefined) how.durationMs = durationMs;
      if (failure) how.error = str(input.error) ?? (input.error === undefined ? 'Tool failed' : JSON.stringify(input.error));
      else {
        how.hasOutput = true;
        how.output = input.tool_response;
        rec.linkSpawned(t, toolUseId, input.tool_response);
      }
      rec.closeStep(t, open, how);
    });

  const postToolBatch = wrap('PostToolBatch', (input) => {
    const t = rec.peek(sid(input));
    if (!t || t.open.size === 0) return;
    const calls = Array.isArray(input.tool_calls) ? (input.tool_calls as unknown[]) : [];
    for (const call of calls) {
      if (!call || typeof call !== 'object') continue;
      const c = call as { tool_use_id?: unknown; tool_response?: unknown };
      const id = str(c.tool_use_id);
      const open = id !== undefined ? t.open.get(id) : undefined;
      if (!open) continue;
      const said = str(c.tool_response);
      rec.closeStep(t, open, {
        error: said ? `${NO_POST_HOOK}: ${said}` : `${NO_POST_HOOK} (denied, timed out or interrupted)`,
        closedBy: 'PostToolBatch',
      });
    }
  });

  const permissionRequest = wrap('PermissionRequest', (input, toolUseID) => {
    const t = rec.peek(sid(input));
    const id = str(input.tool_use_id) ?? toolUseID;
    if (!t) return;
    for (const open of t.open.values()) {
      if ((id !== undefined && open.toolUseId === id) || (id === undefined && open.toolName === input.tool_name)) {
        open.metadata.permission_requested = true;
        if (id === undefined) break;
      }
    }
  });

  const stop = wrap('Stop', (input) => {
    rec.turnEnded(rec.current(sid(input)), input, 'Stop', undefined);
    ctx.pump();
  });

  const stopFailure = wrap('StopFailure', (input) => {
    // error_details is often absent; the synthetic assistant message then carries the API's text
    const details = str(input.error_details) ?? str(input.last_assistant_message);
    const error = `${str(input.error) ?? 'unknown'}${details ? `: ${details}` : ''}`;
    rec.turnEnded(rec.current(sid(input)), input, 'StopFailure', error);
    ctx.pump();
  });

  const sessionStart = wrap('SessionStart', (input) => {
    const t = rec.current(sid(input));
    const source = str(input.source);
    const model = str(input.model);
    rec.patchStart(t, (b) => {
      if (source !== undefined) (b.metadata ??= {}).session_source = source;
      if (model !== undefined && b.model === undefined) b.model = model;
    });
  });

  const sessionEnd = wrap('SessionEnd', (input) => {
    const t = rec.peek(sid(input));
    if (!t) return;
    rec.closeAllOpen(t, 'SessionEnd');
    ctx.pump();
  });

  const subagentStart = wrap('SubagentStart', (input) => {
    rec.subagentStart(rec.current(sid(input)), input);
  });

  const subagentStop = wrap('SubagentStop', (input) => {
    rec.subagentStop(rec.forHook(input), input);
  });

  // assistant text as the CLI shows it; one event per text block when `final`
  const pendingText = new Map<string, string>();
  const messageDisplay = wrap('MessageDisplay', (input) => {
    const key = `${str(input.message_id) ?? ''}:${num(input.index) ?? 0}`;
    const text = (pendingText.get(key) ?? '') + (str(input.delta) ?? '');
    if (input.final !== true) {
      if (pendingText.size > 1000) pendingText.clear();
      pendingText.set(key, text);
      return;
    }
    pendingText.delete(key);
    const t = rec.forHook(input);
    const meta: Record<string, unknown> = {};
    if (input.agent_id !== undefined) meta.agentId = input.agent_id;
    if (input.prompt_id !== undefined) meta.prompt_id = input.prompt_id;
    rec.message(t, text, 'MessageDisplay', meta);
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
    SubagentStart: m(subagentStart),
    SubagentStop: m(subagentStop),
    MessageDisplay: m(messageDisplay),
  };
}
