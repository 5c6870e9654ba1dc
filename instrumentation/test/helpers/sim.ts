/** Drives `lightning.hooks` the way the Claude Agent SDK does (inputs as recorded in the research note). */
import type { LightningHooks } from '../../src/types.js';

const signal = new AbortController().signal;

export class SessionSim {
  private n = 0;
  constructor(
    private readonly hooks: LightningHooks,
    readonly sessionId: string = `sess-${Math.random().toString(36).slice(2)}`,
    private readonly extra: Record<string, unknown> = {},
  ) {}

  private base(event: string): Record<string, unknown> {
    return {
      hook_event_name: event,
      session_id: this.sessionId,
      transcript_path: '/tmp/t.jsonl',
      cwd: '/tmp/work',
      permission_mode: 'default',
      prompt_id: 'prompt-1',
      ...this.extra,
    };
  }

  async fire(event: keyof LightningHooks, input: Record<string, unknown>, toolUseId?: string): Promise<unknown[]> {
    const results: unknown[] = [];
    for (const matcher of this.hooks[event]) {
      for (const cb of matcher.hooks) {
        results.push(await cb({ ...this.base(event), ...input } as any, toolUseId, { signal }));
      }
    }
    return results;
  }

  newId(): string {
    return `toolu_${++this.n}_${Math.random().toString(36).slice(2, 8)}`;
  }

  prompt(prompt: string) {
    return this.fire('UserPromptSubmit', { prompt }, 'uuid-prompt');
  }

  pre(tool: string, input: unknown, id: string) {
    return this.fire('PreToolUse', { tool_name: tool, tool_input: input, tool_use_id: id }, id);
  }

  post(tool: string, input: unknown, id: string, response: unknown, durationMs = 5) {
    return this.fire('PostToolUse', { tool_name: tool, tool_input: input, tool_use_id: id, tool_response: response, duration_ms: durationMs }, id);
  }

  fail(tool: string, input: unknown, id: string, error: string, durationMs = 5) {
    return this.fire('PostToolUseFailure', { tool_name: tool, tool_input: input, tool_use_id: id, error, is_interrupt: false, duration_ms: durationMs }, id);
  }

  batch(calls: { tool_name: string; tool_input: unknown; tool_use_id: string; tool_response?: unknown }[]) {
    return this.fire('PostToolBatch', { tool_calls: calls }, 'hook-batch');
  }

  stop(last = 'done') {
    return this.fire('Stop', { stop_hook_active: false, last_assistant_message: last, background_tasks: [], session_crons: [] }, 'uuid-stop');
  }

  stopFailure(error = 'rate_limit', details = 'slow down') {
    return this.fire('StopFailure', { error, error_details: details, last_assistant_message: 'API Error' }, 'uuid-stopf');
  }

  /** A complete tool call: Pre then Post (or Failure when `error` is given). */
  async call(tool: string, input: unknown, response: unknown, error?: string, toolUseId?: string): Promise<string> {
    const id = toolUseId ?? this.newId();
    await this.pre(tool, input, id);
    if (error !== undefined) await this.fail(tool, input, id, error);
    else await this.post(tool, input, id, response);
    return id;
  }
}

/** Builds an SDK-like result message. */
export function resultMessage(sessionId: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'result',
    subtype: 'success',
    is_error: false,
    duration_ms: 1234,
    duration_api_ms: 1000,
    num_turns: 4,
    result: 'All done.',
    stop_reason: 'end_turn',
    total_cost_usd: 0.0123,
    usage: { input_tokens: 100, output_tokens: 50, cache_read_input_tokens: 10, cache_creation_input_tokens: 5 },
    modelUsage: {},
    permission_denials: [],
    uuid: 'u-result',
    session_id: sessionId,
    ...over,
  };
}

/** An async iterable of messages, optionally throwing after the last one (as the SDK does on error results). */
export async function* messages(list: unknown[], throwAfter?: Error): AsyncGenerator<unknown, void, undefined> {
  for (const m of list) {
    await Promise.resolve();
    yield m;
  }
  if (throwAfter) throw throwAfter;
}
