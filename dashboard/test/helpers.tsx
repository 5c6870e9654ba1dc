import { render } from '@testing-library/react';
import type { ReactNode } from 'react';
import { vi } from 'vitest';
import { AuthProvider } from '../src/auth';
import type { Step, Trajectory } from '../src/lib/types';

export interface Call {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

type Handler = (call: Call) => { status?: number; body: unknown } | undefined;

/** Replace fetch with a router over `handlers`; unmatched requests answer 404 like the collector. */
export function mockFetch(handler: Handler) {
  const calls: Call[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://localhost');
    const call: Call = {
      url,
      method: init?.method ?? 'GET',
      headers: (init?.headers as Record<string, string>) ?? {},
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
    };
    calls.push(call);
    const answer = handler(call) ?? { status: 404, body: { error: `no route for ${url.pathname}` } };
    const status = answer.status ?? 200;
    return new Response(JSON.stringify(answer.body), { status, headers: { 'Content-Type': 'application/json' } });
  });
  vi.stubGlobal('fetch', fn);
  return calls;
}

export function renderSignedIn(ui: ReactNode, signOut: (reason?: string) => void = () => {}) {
  return render(
    <AuthProvider apiKey="test-key" signOut={signOut}>
      {ui}
    </AuthProvider>,
  );
}

export function trajectory(overrides: Partial<Trajectory> = {}): Trajectory {
  return {
    id: '00000000-0000-4000-8000-000000000001',
    agentId: 'agent-a',
    taskType: 'coding',
    sessionId: null,
    prompt: 'Fix the bug',
    systemPrompt: 'You are helpful.',
    promptVersion: '3',
    model: 'model-x',
    metadata: {},
    startTime: '2026-11-26T12:00:00Z',
    endTime: '2026-11-26T12:00:05Z',
    status: 'succeeded',
    success: true,
    result: { ok: true },
    error: null,
    totalSteps: 2,
    durationMs: 5000,
    costUsd: 0.0123,
    usage: { inputTokens: 100, outputTokens: 50, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 },
    numTurns: 2,
    stepCount: 2,
    errorCount: 0,
    createdAt: '2026-11-26T12:00:00Z',
    updatedAt: '2026-11-26T12:00:05Z',
    ...overrides,
  };
}

export function step(n: number, overrides: Partial<Step> = {}): Step {
  return {
    stepNumber: n,
    timestamp: new Date(Date.parse('2026-11-26T12:00:00Z') + n * 100).toISOString(),
    toolName: 'Read',
    toolInput: { path: `/file/${n}` },
    toolOutput: `contents ${n}`,
    error: null,
    durationMs: 50,
    toolUseId: `tu-${n}`,
    metadata: {},
    ...overrides,
  };
}
