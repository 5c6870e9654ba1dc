/**
 * A scripted stand-in for the Anthropic Messages API, good enough for the Claude Code CLI:
 * `POST /v1/messages` answers with SSE streaming (or JSON when stream is false). The reply for
 * a main-loop request is chosen by how many assistant turns the conversation already has, so
 * CLI retries of the same request get the same answer.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Block =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };

export interface Turn {
  content: Block[];
  stopReason: 'tool_use' | 'end_turn';
  /** answer with this HTTP error status instead (e.g. 400: an API error the CLI gives up on) */
  errorStatus?: number;
  errorMessage?: string;
}

/** A separate script for conversations whose first user message contains `match` (subagents). */
export interface Script {
  match: string;
  turns: Turn[];
}

export interface SeenRequest {
  path: string;
  body: any;
}

export class FakeAnthropic {
  readonly requests: SeenRequest[] = [];
  url = '';
  private readonly server: http.Server;

  /** delay before each answer (ms), to stretch a scripted run over time */
  latencyMs = 0;

  /** extra scripts chosen by the conversation's first user message (checked before `turns`) */
  scripts: Script[] = [];
  /** 'count': the reply is turns[number of assistant messages so far] (multi-prompt sessions) */
  mode: 'answered' | 'count' = 'answered';

  constructor(private readonly turns: Turn[], private readonly model = 'claude-sonnet-4-5-20250929') {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (this.latencyMs > 0) setTimeout(() => this.handle(req, res, text), this.latencyMs);
        else this.handle(req, res, text);
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Main-loop requests (the ones that carry tools). */
  get mainLoop(): SeenRequest[] {
    return this.requests.filter((r) => Array.isArray(r.body?.tools) && r.body.tools.length > 0);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, text: string): void {
    const path = (req.url ?? '/').split('?')[0]!;
    let body: any;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    this.requests.push({ path, body });
    if (req.method !== 'POST') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    if (path.endsWith('/count_tokens')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ input_tokens: 42 }));
      return;
    }
    if (!path.endsWith('/v1/messages')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: `no route ${path}` } }));
      return;
    }
    const hasTools = Array.isArray(body?.tools) && body.tools.length > 0;
    let turn: Turn;
    if (!hasTools) {
      // side requests (titles, summaries): a short text answer
      turn = { content: [{ type: 'text', text: 'Scripted session' }], stopReason: 'end_turn' };
    } else {
      // the next scripted turn is the first one whose tool calls have not all been answered
      const first = (body.messages as any[]).find((m) => m.role === 'user');
      const firstText = typeof first?.content === 'string' ? first.content : JSON.stringify(first?.content ?? '');
      const script = this.scripts.find((s) => firstText.includes(s.match));
      const turns = script ? script.turns : this.turns;
      const assistantTurns = (body.messages as any[]).filter((m) => m.role === 'assistant').length;
      const answered = new Set<string>();
      for (const m of body.messages as any[]) {
        if (m.role !== 'user' || !Array.isArray(m.content)) continue;
        for (const b of m.content) if (b.type === 'tool_result') answered.add(b.tool_use_id);
      }
      turn =
        (this.mode === 'count' && !script ? turns[Math.min(assistantTurns, turns.length - 1)] : undefined) ??
        turns.find((t) => {
          const ids = t.content.filter((b) => b.type === 'tool_use').map((b) => (b as { id: string }).id);
          return ids.length === 0 || ids.some((id) => !answered.has(id));
        }) ?? turns[turns.length - 1]!;
    }
    if (turn.errorStatus !== undefined) {
      res.writeHead(turn.errorStatus, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: turn.errorMessage ?? 'scripted error' } }));
      return;
    }
    const usage = { input_tokens: 1200, output_tokens: 60, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
    const id = `msg_${Math.random().toString(36).slice(2, 14)}`;
    if (body?.stream !== true) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ id, type: 'message', role: 'assistant', model: this.model, content: turn.content, stop_reason: turn.stopReason, stop_sequence: null, usage }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    send('message_start', {
      type: 'message_start',
      message: { id, type: 'message', role: 'assistant', model: this.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
    });
    turn.content.forEach((block, index) => {
      if (block.type === 'text') {
        send('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
        send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: block.text } });
      } else {
        send('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
        const json = JSON.stringify(block.input);
        const mid = Math.floor(json.length / 2);
        send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: json.slice(0, mid) } });
        send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: json.slice(mid) } });
      }
      send('content_block_stop', { type: 'content_block_stop', index });
    });
    send('message_delta', { type: 'message_delta', delta: { stop_reason: turn.stopReason, stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
    send('message_stop', { type: 'message_stop' });
    res.end();
  }
}
