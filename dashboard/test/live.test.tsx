import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import { computeTimeline } from '../src/lib/steps';
import type { Step, Trajectory } from '../src/lib/types';
import { Live } from '../src/views/Live';
import { Waterfall } from '../src/components/Waterfall';
import { mockFetch, renderSignedIn, step, trajectory } from './helpers';

describe('Live view', () => {
  it('shows new trajectories and tails new steps with steps?after=N', async () => {
    const list: Trajectory[] = [trajectory({ id: 'old', agentId: 'old-agent' })];
    const steps: Step[] = [];
    const calls = mockFetch((call) => {
      if (call.url.pathname === '/api/trajectories') return { body: { trajectories: list, nextCursor: null } };
      if (call.url.pathname === '/api/trajectories/run-1/steps') {
        const after = Number(call.url.searchParams.get('after'));
        return { body: { steps: steps.filter((s) => s.stepNumber > after) } };
      }
      return undefined;
    });
    renderSignedIn(<Live pollMs={40} />);
    expect(await screen.findByText('old-agent')).toBeTruthy();
    expect(screen.queryByText('new')).toBeNull();

    list.unshift(trajectory({ id: 'run-1', agentId: 'runner', status: 'running', success: null, stepCount: 0 }));
    const item = (await screen.findByText('runner')).closest('li') as HTMLElement;
    expect(within(item).getByText('new')).toBeTruthy();
    // The newest running trajectory is followed automatically.
    await waitFor(() => expect(within(item).getByRole('button').getAttribute('aria-pressed')).toBe('true'));

    steps.push(step(0), step(1));
    expect(await screen.findByRole('list', { name: 'Steps (2)' })).toBeTruthy();
    steps.push(step(2, { error: 'boom' }));
    const tail = await screen.findByRole('list', { name: 'Steps (3)' });
    expect(within(tail).getByText('boom')).toBeTruthy();
    const afters = calls.filter((c) => c.url.pathname.endsWith('/steps')).map((c) => c.url.searchParams.get('after'));
    expect(afters).toContain('-1');
    expect(afters).toContain('1');

    fireEvent.click(screen.getByRole('button', { name: 'Pause' }));
    const before = calls.length;
    await new Promise((r) => setTimeout(r, 150));
    expect(calls.length).toBe(before);
    expect(screen.getByRole('button', { name: 'Resume' }).getAttribute('aria-pressed')).toBe('true');
  });
});

describe('Waterfall', () => {
  it('draws one lane per step, marks errors and subagents, and jumps by keyboard', () => {
    const steps = [step(0), step(1, { error: 'x' }), step(2, { metadata: { agent_id: 's1' } })];
    const onJump = vi.fn();
    const { container } = render(<Waterfall steps={steps} timeline={computeTimeline(steps, '2026-11-26T12:00:00Z', 1000)} onJump={onJump} />);
    expect(container.querySelectorAll('rect.wf-bar')).toHaveLength(3);
    expect(container.querySelectorAll('rect.wf-error')).toHaveLength(1);
    expect(container.querySelectorAll('rect.wf-sub')).toHaveLength(1);
    const chart = screen.getByRole('img');
    expect(chart.getAttribute('aria-label')).toMatch(/Waterfall of 3 steps over 1.00 s, 1 with errors/);
    fireEvent.keyDown(chart, { key: 'ArrowDown' });
    fireEvent.keyDown(chart, { key: 'ArrowDown' });
    expect(container.querySelector('.chart-readout')?.textContent).toMatch(/^Step 1: .*1 error/);
    fireEvent.keyDown(chart, { key: 'Enter' });
    expect(onJump).toHaveBeenCalledWith(1);
  });
});
