import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import { App } from '../src/App';
import { StatusBadge } from '../src/components/common';
import { DiffView } from '../src/components/DiffView';
import { StepRow } from '../src/components/StepList';
import { TimelineChart } from '../src/components/TimelineChart';
import { VirtualList } from '../src/components/VirtualList';
import type { Run } from '../src/lib/types';
import { RunStatus, runSpend } from '../src/views/Optimization';
import { Api, ApiError, KEY_STORAGE } from '../src/lib/api';
import { DASH } from '../src/lib/format';
import { mockFetch, step } from './helpers';

describe('Api client', () => {
  it('sends the key as a Bearer token and drops empty filters', async () => {
    const calls = mockFetch(() => ({ body: { trajectories: [], nextCursor: null } }));
    await new Api('k1').listTrajectories({ agentId: 'a', taskType: '', limit: 5, cursor: null });
    expect(calls[0]?.headers.Authorization).toBe('Bearer k1');
    expect(calls[0]?.url.pathname).toBe('/api/trajectories');
    expect([...calls[0]!.url.searchParams.entries()]).toEqual([
      ['agentId', 'a'],
      ['limit', '5'],
    ]);
  });

  it('turns error bodies into ApiError and reports 401s', async () => {
    mockFetch(() => ({ status: 401, body: { error: 'Unauthorized' } }));
    const api = new Api('bad');
    const onUnauthorized = vi.fn();
    api.onUnauthorized = onUnauthorized;
    const error = await api.stats({}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(401);
    expect((error as ApiError).message).toBe('Unauthorized');
    expect(onUnauthorized).toHaveBeenCalledOnce();
  });
});

describe('sign in', () => {
  it('shows a clear message for a wrong key and keeps the user on the form', async () => {
    mockFetch(() => ({ status: 401, body: { error: 'Unauthorized' } }));
    render(<App />);
    fireEvent.change(screen.getByLabelText('API key'), { target: { value: 'wrong' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toMatch(/Wrong API key/);
    expect(screen.getByLabelText('API key').getAttribute('aria-invalid')).toBe('true');
    expect(window.localStorage.getItem(KEY_STORAGE)).toBeNull();
    expect(window.sessionStorage.getItem(KEY_STORAGE)).toBeNull();
  });

  it('stores an accepted key and shows the app', async () => {
    const calls = mockFetch((call) => {
      if (call.url.pathname === '/api/trajectories') return { body: { trajectories: [], nextCursor: null } };
      if (call.url.pathname === '/api/agents') return { body: { agents: [] } };
      if (call.url.pathname === '/api/stats')
        return {
          body: { trajectories: 0, running: 0, succeeded: 0, failed: 0, successRate: null, meanSteps: null, meanDurationMs: null, meanCostUsd: null, totalCostUsd: null, tools: [], agents: [], timeline: [] },
        };
      return undefined;
    });
    render(<App />);
    fireEvent.change(screen.getByLabelText('API key'), { target: { value: 'good-key' } });
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('heading', { name: 'Overview', level: 1 })).toBeTruthy();
    // Kept for this tab only unless the user asks to be remembered.
    expect(window.sessionStorage.getItem(KEY_STORAGE)).toBe('good-key');
    expect(window.localStorage.getItem(KEY_STORAGE)).toBeNull();
    expect(calls.every((c) => c.headers.Authorization === 'Bearer good-key')).toBe(true);
    fireEvent.click(screen.getByRole('button', { name: 'Sign out' }));
    expect(screen.getByLabelText('API key')).toBeTruthy();
    expect(window.sessionStorage.getItem(KEY_STORAGE)).toBeNull();
    expect(window.localStorage.getItem(KEY_STORAGE)).toBeNull();
  });

  it('remembers the key on this device only when asked', async () => {
    mockFetch((call) => {
      if (call.url.pathname === '/api/trajectories') return { body: { trajectories: [], nextCursor: null } };
      if (call.url.pathname === '/api/agents') return { body: { agents: [] } };
      if (call.url.pathname === '/api/stats')
        return {
          body: { trajectories: 0, running: 0, succeeded: 0, failed: 0, successRate: null, meanSteps: null, meanDurationMs: null, meanCostUsd: null, totalCostUsd: null, tools: [], agents: [], timeline: [] },
        };
      return undefined;
    });
    render(<App />);
    fireEvent.change(screen.getByLabelText('API key'), { target: { value: 'kept-key' } });
    fireEvent.click(screen.getByLabelText('Remember on this device'));
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('heading', { name: 'Overview', level: 1 })).toBeTruthy();
    expect(window.localStorage.getItem(KEY_STORAGE)).toBe('kept-key');
    expect(window.sessionStorage.getItem(KEY_STORAGE)).toBeNull();
    fireEvent.click(screen.getByRole('button', { name: 'Sign out' }));
    expect(window.localStorage.getItem(KEY_STORAGE)).toBeNull();
  });

  it('signs out with a notice when a stored key stops working', async () => {
    window.localStorage.setItem(KEY_STORAGE, 'stale');
    mockFetch(() => ({ status: 401, body: { error: 'Unauthorized' } }));
    render(<App />);
    expect(await screen.findByText(/no longer accepts this API key/)).toBeTruthy();
    expect(window.localStorage.getItem(KEY_STORAGE)).toBeNull();
  });
});

describe('StepRow', () => {
  const span = 1000;

  it('renders tool input and output as text, never as HTML', () => {
    const hostile = step(7, { toolInput: { html: '<img src=x onerror="alert(1)">' }, toolOutput: '<script>alert(2)</script><b>bold</b>' });
    const { container } = render(<StepRow step={hostile} start={0} end={50} span={span} expanded onToggle={() => {}} />);
    expect(container.querySelector('img')).toBeNull();
    expect(container.querySelector('script')).toBeNull();
    expect(container.querySelector('b')).toBeNull();
    expect(screen.getByLabelText('Output').textContent).toBe('<script>alert(2)</script><b>bold</b>');
    expect(screen.getByLabelText('Input').textContent).toBe('{\n  "html": "<img src=x onerror=\\"alert(1)\\">"\n}');
  });

  it('renders assistant messages (kind message) as text, never as HTML', () => {
    const message = step(8, { kind: 'message', toolName: 'assistant', toolUseId: null, toolInput: null, toolOutput: 'Done. <img src=x onerror="alert(3)"><b>ok</b>' });
    const { container } = render(<StepRow step={message} start={0} end={0} span={span} expanded onToggle={() => {}} />);
    expect(container.querySelector('img')).toBeNull();
    expect(container.querySelector('b')).toBeNull();
    expect(screen.getByLabelText('Text').textContent).toBe('Done. <img src=x onerror="alert(3)"><b>ok</b>');
    expect(screen.queryByLabelText('Input')).toBeNull();
    expect(container.querySelector('.step-tool')?.textContent).toBe('Assistant');
    expect(container.querySelector('.step-preview')?.textContent).toContain('<img src=x');
  });

  it('indents a nested subagent step and names its spawning step', () => {
    const inner = step(9, { metadata: { agentId: 'a1', agentType: 'general-purpose', parentToolUseId: 'tu-2' } });
    const { container } = render(<StepRow step={inner} start={0} end={50} span={span} expanded={false} onToggle={() => {}} depth={1} parentNumber={2} />);
    const row = container.querySelector('.step') as HTMLElement;
    expect(row.className).toContain('step-nested');
    expect(row.dataset.depth).toBe('1');
    expect(container.querySelector('.step-nest')?.getAttribute('title')).toBe('Inside the subagent of step #2');
  });

  it('toggles through its button and reports the expanded state', () => {
    const onToggle = vi.fn();
    render(<StepRow step={step(3)} start={0} end={50} span={span} expanded={false} onToggle={onToggle} />);
    const button = screen.getByRole('button');
    expect(button.getAttribute('aria-expanded')).toBe('false');
    expect(screen.queryByLabelText('Input')).toBeNull();
    fireEvent.click(button);
    expect(onToggle).toHaveBeenCalledWith(3);
  });

  it('highlights errors and marks subagent steps', () => {
    const failing = step(4, { error: 'permission denied', metadata: { agent_id: 'sub-9', agent_type: 'explorer' } });
    const { container } = render(<StepRow step={failing} start={0} end={50} span={span} expanded onToggle={() => {}} />);
    expect(container.querySelector('.step-has-error')).not.toBeNull();
    expect(screen.getByText('error')).toBeTruthy();
    expect(screen.getByText('subagent: explorer')).toBeTruthy();
    expect(screen.getByLabelText('Error').textContent).toBe('permission denied');
    expect(screen.getByText('sub-9')).toBeTruthy();
  });
});

describe('VirtualList', () => {
  it('mounts only a window of 10,000 items and moves focus with the keyboard', async () => {
    const renderItem = (i: number) => (
      <button type="button" data-focus-target="">
        item {i}
      </button>
    );
    const key = (i: number) => i;
    render(<VirtualList count={10_000} estimateHeight={40} renderItem={renderItem} itemKey={key} label="Items" fallbackViewport={400} overscan={200} />);
    const list = screen.getByRole('list', { name: 'Items' });
    const mounted = within(list).getAllByRole('listitem');
    expect(mounted.length).toBeGreaterThan(5);
    expect(mounted.length).toBeLessThan(40);
    expect(list.style.height).toBe('400000px');
    expect(mounted[0]?.getAttribute('aria-setsize')).toBe('10000');

    const first = screen.getByRole('button', { name: 'item 0' });
    first.focus();
    fireEvent.keyDown(first, { key: 'End' });
    await waitFor(() => expect(document.activeElement?.textContent).toBe('item 9999'));
    fireEvent.keyDown(document.activeElement as Element, { key: 'ArrowUp' });
    await waitFor(() => expect(document.activeElement?.textContent).toBe('item 9998'));
  });
});

describe('TimelineChart', () => {
  const timeline = [
    { bucket: '2026-11-26T10:00:00Z', trajectories: 4, succeeded: 3, failed: 1 },
    { bucket: '2026-11-26T11:00:00Z', trajectories: 2, succeeded: 0, failed: 1 },
  ];

  it('draws stacked bars and a success-rate line, readable by keyboard', () => {
    const { container } = render(<TimelineChart timeline={timeline} />);
    const chart = screen.getByRole('img');
    expect(chart.getAttribute('aria-label')).toMatch(/6 in 2 hourly buckets, overall success rate 60%/);
    expect(container.querySelectorAll('rect.bar-ok')).toHaveLength(1);
    expect(container.querySelectorAll('rect.bar-bad')).toHaveLength(2);
    expect(container.querySelectorAll('rect.bar-running')).toHaveLength(1);
    expect(container.querySelector('path.chart-rate')?.getAttribute('d')).toMatch(/^M[\d.]+,[\d.]+ L[\d.]+,[\d.]+$/);
    fireEvent.keyDown(chart, { key: 'ArrowRight' });
    expect(container.querySelector('.chart-readout')?.textContent).toMatch(/4 trajectories, 3 succeeded, 1 failed, success rate 75%/);
    fireEvent.keyDown(chart, { key: 'ArrowRight' });
    expect(container.querySelector('.chart-readout')?.textContent).toMatch(/2 trajectories, 0 succeeded, 1 failed, success rate 0%/);
  });
});

describe('DiffView', () => {
  it('shows both versions side by side with changes marked', () => {
    const { container } = render(<DiffView before={'a\nb\nc'} after={'a\nB\nc\nd'} beforeLabel="Parent" afterLabel="Candidate" />);
    expect(screen.getByRole('status').textContent).toBe('1 line removed, 2 lines added.');
    expect(screen.getByRole('columnheader', { name: 'Parent' })).toBeTruthy();
    expect([...container.querySelectorAll('td.diff-del')].map((td) => td.textContent)).toEqual(['removed: b']);
    expect([...container.querySelectorAll('td.diff-ins')].map((td) => td.textContent)).toEqual(['added: B', 'added: d']);
  });
});


describe('StatusBadge', () => {
  it('names every status, including interrupted and abandoned', () => {
    const label = (status: string, success?: boolean | null) => {
      const { container, unmount } = render(<StatusBadge status={status} success={success} />);
      const text = [container.textContent, container.querySelector('.badge')?.className];
      unmount();
      return text;
    };
    expect(label('running')).toEqual(['Running', 'badge badge-info']);
    expect(label('succeeded', true)).toEqual(['Succeeded', 'badge badge-ok']);
    expect(label('failed', false)).toEqual(['Failed', 'badge badge-bad']);
    expect(label('interrupted', false)).toEqual(['Interrupted', 'badge badge-warn']);
    expect(label('abandoned', null)).toEqual(['Abandoned', 'badge badge-warn']);
  });
});

describe('optimization run status and spend', () => {
  const base = { id: 'r', agentId: 'a', status: 'running', startedAt: '2026-12-01T10:00:00Z', config: {}, trajectories: 0, llmCalls: 0, evaluations: 0 } as unknown as Run;

  it('shows a running run whose optimizer went silent as stale, with when it was last heard from', () => {
    const { rerender } = render(<RunStatus run={base} />);
    expect(screen.getByText('running')).toBeTruthy();
    rerender(<RunStatus run={{ ...base, stale: true, heartbeatAt: '2026-12-01T10:05:00Z' } as Run} />);
    const badge = screen.getByText('stale');
    expect(badge.getAttribute('title')).toMatch(/not been heard from since/);
  });

  it('shows spend with its tokens, or a dash when nothing was recorded', () => {
    expect(runSpend(base)).toBe(DASH);
    expect(runSpend({ ...base, costUsd: 0.0123, inputTokens: 1200, outputTokens: 300 } as Run)).toBe('$0.0123 · 1,200 in / 300 out tokens');
    expect(runSpend({ ...base, costUsd: 12.5 } as Run)).toBe('$12.50');
  });
});
