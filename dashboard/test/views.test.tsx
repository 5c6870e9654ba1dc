import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { Candidate } from '../src/lib/types';
import { Optimization, PromptVersions, RunDetail, buildLineage } from '../src/views/Optimization';
import { TrajectoryDetail } from '../src/views/TrajectoryDetail';
import { Trajectories } from '../src/views/Trajectories';
import { mockFetch, renderSignedIn, step, trajectory } from './helpers';

describe('Trajectories view', () => {
  it('lists trajectories, filters by outcome through the API and pages with nextCursor', async () => {
    const calls = mockFetch((call) => {
      if (call.url.pathname === '/api/agents') return { body: { agents: [{ agentId: 'agent-a', trajectories: 2, succeeded: 1, failed: 1, lastSeen: null }] } };
      if (call.url.pathname === '/api/trajectories') {
        const status = call.url.searchParams.get('status');
        if (call.url.searchParams.get('cursor') === 'c2') return { body: { trajectories: [trajectory({ id: 'older', agentId: 'agent-old' })], nextCursor: null } };
        if (status === 'failed')
          return { body: { trajectories: [trajectory({ id: 'f1', status: 'failed', success: false, error: 'boom' })], nextCursor: 'c2' } };
        return { body: { trajectories: [trajectory({ id: 't1' }), trajectory({ id: 'f1', status: 'failed', success: false })], nextCursor: null } };
      }
      return undefined;
    });
    renderSignedIn(<Trajectories />);
    const table = await screen.findByRole('table');
    await waitFor(() => expect(within(table).getAllByRole('row')).toHaveLength(3));
    expect(within(table).getAllByText('Succeeded')).toHaveLength(1);

    fireEvent.change(screen.getByLabelText('Outcome'), { target: { value: 'failed' } });
    await waitFor(() => expect(within(table).getAllByRole('row')).toHaveLength(2));
    expect(window.location.search).toBe('?status=failed');
    const last = calls.filter((c) => c.url.pathname === '/api/trajectories').at(-1);
    expect(last?.url.searchParams.get('status')).toBe('failed');
    expect(last?.url.searchParams.get('limit')).toBe('50');

    fireEvent.click(screen.getByRole('button', { name: 'Older →' }));
    expect(await within(table).findByText('agent-old')).toBeTruthy();
    expect(calls.at(-1)?.url.searchParams.get('cursor')).toBe('c2');
    fireEvent.click(screen.getByRole('button', { name: '← Newer' }));
    await waitFor(() => expect(within(table).queryByText('agent-old')).toBeNull());
  });

  it('leaves evaluation runs out unless the switch asks for them', async () => {
    const calls = mockFetch((call) => {
      if (call.url.pathname === '/api/agents') return { body: { agents: [] } };
      if (call.url.pathname === '/api/trajectories') {
        const include = call.url.searchParams.get('includeEvaluations') === 'true';
        const own = trajectory({ id: 'own' });
        const evaluation = trajectory({ id: 'eval', agentId: 'agent-eval', promptVersion: 'opt-0190' });
        return { body: { trajectories: include ? [evaluation, own] : [own], nextCursor: null } };
      }
      return undefined;
    });
    renderSignedIn(<Trajectories />);
    const table = await screen.findByRole('table');
    await waitFor(() => expect(within(table).getAllByRole('row')).toHaveLength(2));
    const listed = () => calls.filter((c) => c.url.pathname === '/api/trajectories');
    expect(listed().every((c) => !c.url.searchParams.has('includeEvaluations'))).toBe(true);

    const toggle = screen.getByLabelText('Show evaluation runs') as HTMLInputElement;
    expect(toggle.checked).toBe(false);
    fireEvent.click(toggle);
    expect(await within(table).findByText('agent-eval')).toBeTruthy();
    expect(listed().at(-1)?.url.searchParams.get('includeEvaluations')).toBe('true');
    expect(window.location.search).toBe('?evaluations=include');
    expect(toggle.checked).toBe(true);

    fireEvent.click(toggle);
    await waitFor(() => expect(within(table).queryByText('agent-eval')).toBeNull());
    expect(listed().at(-1)?.url.searchParams.has('includeEvaluations')).toBe(false);
  });

  it('says so when nothing matches', async () => {
    window.history.replaceState(null, '', '/trajectories?q=zzz');
    mockFetch((call) => {
      if (call.url.pathname === '/api/agents') return { body: { agents: [] } };
      if (call.url.pathname === '/api/trajectories') return { body: { trajectories: [], nextCursor: null } };
      return undefined;
    });
    renderSignedIn(<Trajectories />);
    expect(await screen.findByText('No trajectories match these filters')).toBeTruthy();
    expect((screen.getByLabelText('Search') as HTMLInputElement).value).toBe('zzz');
  });
});

describe('Trajectory detail', () => {
  it('shows the summary, outcome, steps and the error step', async () => {
    const detail = {
      ...trajectory({ status: 'failed', success: false, error: 'Task failed: tests red', result: null, errorCount: 1, stepCount: 3 }),
      steps: [step(0), step(1, { toolName: 'Bash', error: 'exit 1' }), step(2, { toolName: 'Task', metadata: { agent_type: 'reviewer' } })],
    };
    mockFetch((call) => (call.url.pathname === `/api/trajectories/${detail.id}` ? { body: detail } : undefined));
    renderSignedIn(<TrajectoryDetail id={detail.id} />);
    expect(await screen.findByRole('heading', { level: 1 })).toBeTruthy();
    expect(screen.getByText('model-x')).toBeTruthy();
    expect(screen.getByText('$0.01')).toBeTruthy();
    expect(screen.getByText('100 in · 50 out')).toBeTruthy();
    expect(screen.getByLabelText('Trajectory error').textContent).toBe('Task failed: tests red');
    const list = screen.getByRole('list', { name: 'Steps (3)' });
    expect(within(list).getAllByRole('listitem')).toHaveLength(3);
    expect(within(list).getByText('subagent: reviewer')).toBeTruthy();

    fireEvent.click(screen.getByLabelText(/Errors only/));
    const filtered = screen.getByRole('list', { name: 'Steps (1)' });
    const head = within(filtered).getByRole('button');
    fireEvent.click(head);
    expect(head.getAttribute('aria-expanded')).toBe('true');
    expect(within(filtered).getAllByText('exit 1').length).toBeGreaterThan(0);
  });

  it('explains an unknown id', async () => {
    mockFetch(() => ({ status: 404, body: { error: 'trajectory not found' } }));
    renderSignedIn(<TrajectoryDetail id="missing" />);
    expect(await screen.findByText('Trajectory not found')).toBeTruthy();
  });
});

describe('Optimization views', () => {
  const candidates: Candidate[] = [
    { id: 'seed', runId: 'r1', parentId: null, round: 0, prompt: 'Be brief.', critique: null, minibatchScore: 0.5, validationScore: 0.5, evaluations: 10, status: 'seed', createdAt: '2026-11-26T12:00:00Z' },
    { id: 'c1', runId: 'r1', parentId: 'seed', round: 1, prompt: 'Be brief.\nCite files.', critique: 'Missed citations', minibatchScore: 0.7, validationScore: 0.8, evaluations: 10, status: 'best', createdAt: '2026-11-26T12:01:00Z' },
    { id: 'c2', runId: 'r1', parentId: 'seed', round: 1, prompt: 'Be verbose.', critique: 'Too long', minibatchScore: 0.2, validationScore: null, evaluations: 5, status: 'pruned', createdAt: '2026-11-26T12:01:30Z' },
  ];

  it('builds the lineage from parent ids', () => {
    const roots = buildLineage(candidates);
    expect(roots.map((r) => r.candidate.id)).toEqual(['seed']);
    expect(roots[0]?.children.map((c) => c.candidate.id)).toEqual(['c1', 'c2']);
  });

  it('shows an empty state when the server has no optimization endpoints (404)', async () => {
    mockFetch((call) => (call.url.pathname === '/api/agents' ? { body: { agents: [] } } : undefined));
    renderSignedIn(<Optimization />);
    expect(await screen.findByText('No optimization runs yet')).toBeTruthy();
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('shows a run with its candidate tree, critique and a diff against the parent', async () => {
    const run = { id: 'r1', agentId: 'agent-a', status: 'completed', startedAt: '2026-11-26T12:00:00Z', finishedAt: '2026-11-26T12:05:00Z', config: {}, baselineScore: 0.5, bestScore: 0.8, bestCandidateId: 'c1', trajectories: 20, llmCalls: 40, evaluations: 25, error: null, candidates };
    mockFetch((call) => (call.url.pathname === '/api/optimization-runs/r1' ? { body: run } : undefined));
    renderSignedIn(<RunDetail id="r1" />);
    const tree = await screen.findByRole('tree', { name: 'Candidate lineage' });
    expect(within(tree).getAllByRole('treeitem')).toHaveLength(3);
    expect(screen.getByLabelText('Critique').textContent).toBe('Missed citations');
    expect(screen.getByRole('status').textContent).toBe('0 lines removed, 1 line added.');
    fireEvent.click(within(tree).getByRole('button', { name: /c2/ }));
    expect(screen.getByLabelText('Critique').textContent).toBe('Too long');
    fireEvent.click(within(tree).getByRole('button', { name: /seed/ }));
    expect(screen.getByText('Prompt')).toBeTruthy();
  });

  it('shows test scores with n and intervals, the paired difference, the verdict and the evidence grid', async () => {
    const sc = (mean: number, low: number, high: number) => ({ mean, n: 20, low, high, confidence: 0.95, method: 'wilson' as const });
    const evidence = {
      evaluator: 'command',
      estimate: false,
      split: { train: 30, validation: 20, test: 20 },
      confidence: 0.95,
      minImprovement: 0,
      baselineValidation: sc(0.5, 0.3, 0.7),
      bestValidation: sc(0.8, 0.58, 0.92),
      baselineTest: sc(0.45, 0.258, 0.658),
      bestTest: sc(0.5, 0.299, 0.701),
      difference: { ...sc(0.05, -0.15, 0.25), method: 'newcombe' as const, wins: 3, losses: 2, ties: 15 },
      significant: false,
      verdict: 'noSignificantImprovement' as const,
    };
    const run = { id: 'r1', agentId: 'agent-a', status: 'completed', startedAt: '2026-11-26T12:00:00Z', finishedAt: '2026-11-26T12:05:00Z', config: {}, baselineScore: 0.45, bestScore: 0.5, bestCandidateId: 'c1', trajectories: 70, llmCalls: 40, evaluations: 5, error: null, evidence, candidates: candidates.map((c) => (c.id === 'c1' ? { ...c, scores: { minibatch: null, validation: sc(0.8, 0.58, 0.92), test: sc(0.5, 0.299, 0.701) } } : c)) };
    const ev = (candidateId: string, trajectoryId: string, split: string, reward: number) => ({ runId: 'r1', candidateId, trajectoryId, split, reward, feedback: reward ? 'ok' : 'missing: CITE_FILES', error: null, evaluator: 'command', durationMs: 5, costUsd: null, evaluationTrajectoryId: null, createdAt: '2026-11-26T12:01:00Z' });
    const evaluations = [ev('seed', 't1', 'validation', 0), ev('seed', 't2', 'test', 1), ev('c1', 't1', 'validation', 1), ev('c1', 't2', 'test', 0), ev('c2', 't3', 'train', 0)];
    mockFetch((call) => {
      if (call.url.pathname === '/api/optimization-runs/r1') return { body: run };
      if (call.url.pathname === '/api/optimization-runs/r1/evaluations') return { body: { evaluations } };
      return undefined;
    });
    renderSignedIn(<RunDetail id="r1" />);
    const grid = await screen.findByRole('table', { name: 'Evaluations: candidates by example' });
    const item = (label: string) => screen.getByText(label, { selector: 'dt' }).parentElement?.querySelector('dd')?.textContent;
    expect(item('Start on test [95% CI] n')).toBe('0.450 [0.258, 0.658] n=20');
    expect(item('Best on test [95% CI] n')).toBe('0.500 [0.299, 0.701] n=20');
    expect(item('Best − start (paired) [95% CI] n')).toBe('+0.050 [-0.150, +0.250] n=20 · 3 better, 2 worse');
    expect(item('Test score [95% CI] n')).toBe('0.500 [0.299, 0.701] n=20');
    expect(item('Validation score [95% CI] n')).toBe('0.800 [0.580, 0.920] n=20');
    // The round's best is the selection maximum: shown with its interval and n, and said to be one.
    const rounds = screen.getAllByRole('listitem').filter((li) => li.textContent?.startsWith('Round'));
    expect(rounds.map((r) => r.textContent)).toEqual([
      'Round 0 1 candidate · best 0.500, a maximum over candidates',
      'Round 1 2 candidates · best 0.800 [0.580, 0.920] n=20, a maximum over candidates',
    ]);
    expect(screen.queryByText(/judge estimate/)).toBeNull();
    expect(screen.getByText('no significant improvement')).toBeTruthy();
    expect(within(grid).getAllByRole('columnheader').map((h) => h.textContent)).toEqual(['Candidate', 'train (1)', 'validation (1)', 'test (1)']);
    expect(within(grid).getAllByRole('row')).toHaveLength(4);
    expect(grid.querySelectorAll('td.cell')).toHaveLength(5);
    expect(grid.querySelectorAll('td.cell-pass')).toHaveLength(2);
    expect(grid.querySelector('td.cell-fail')?.getAttribute('title')).toMatch(/missing: CITE_FILES/);
  });

  it('labels judge scores as estimates on every candidate and names the run’s own confidence level', async () => {
    const sc = (mean: number, n: number, low: number, high: number) => ({ mean, n, low, high, confidence: 0.99, method: 'wilson' as const });
    const evidence = {
      evaluator: 'judge',
      estimate: true,
      split: { train: 30, validation: 20, test: 20 },
      confidence: 0.99,
      minImprovement: 0,
      baselineValidation: sc(0.5, 20, 0.25, 0.75),
      bestValidation: sc(0.8, 20, 0.52, 0.94),
      baselineTest: sc(0.45, 20, 0.21, 0.72),
      bestTest: sc(0.5, 20, 0.25, 0.75),
      difference: { ...sc(0.05, 20, -0.2, 0.3), method: 'newcombe' as const, wins: 3, losses: 2, ties: 15 },
      significant: false,
      verdict: 'noSignificantImprovement' as const,
    };
    const scored = candidates.map((c) =>
      c.id === 'c2' ? { ...c, scores: { minibatch: sc(0.25, 4, 0.02, 0.8), validation: null, test: null } } : c.id === 'c1' ? { ...c, scores: { minibatch: sc(0.75, 4, 0.2, 0.98), validation: sc(0.8, 20, 0.52, 0.94), test: sc(0.5, 20, 0.25, 0.75) } } : c,
    );
    const run = { id: 'r1', agentId: 'agent-a', status: 'completed', startedAt: '2026-11-26T12:00:00Z', finishedAt: '2026-11-26T12:05:00Z', config: {}, baselineScore: 0.45, bestScore: 0.5, bestCandidateId: 'c1', trajectories: 70, llmCalls: 40, evaluations: 5, error: null, evidence, candidates: scored };
    mockFetch((call) => {
      if (call.url.pathname === '/api/optimization-runs/r1') return { body: run };
      if (call.url.pathname === '/api/optimization-runs/r1/evaluations') return { body: { evaluations: [] } };
      return undefined;
    });
    renderSignedIn(<RunDetail id="r1" />);
    const tree = await screen.findByRole('tree', { name: 'Candidate lineage' });
    const item = (label: string) => screen.getByText(label, { selector: 'dt' }).parentElement?.querySelector('dd')?.textContent;
    expect(item('Start on test (judge estimate) [99% CI] n')).toBe('0.450 [0.210, 0.720] n=20');
    expect(item('Minibatch score (judge estimate) [99% CI] n')).toBe('0.750 [0.200, 0.980] n=4');
    expect(item('Validation score (judge estimate) [99% CI] n')).toBe('0.800 [0.520, 0.940] n=20');
    expect(item('Test score (judge estimate) [99% CI] n')).toBe('0.500 [0.250, 0.750] n=20');
    expect(screen.getByText(/registered only when the 99% interval/)).toBeTruthy();
    // Every node of the lineage says its score is a judge estimate; an unvalidated one shows its minibatch interval.
    const nodes = within(tree).getAllByRole('button');
    expect(nodes).toHaveLength(3);
    for (const n of nodes) expect(n.textContent).toMatch(/judge estimate$/);
    const pruned = nodes.find((n) => n.textContent?.includes('pruned'));
    expect(pruned?.textContent).toContain('0.250 [0.020, 0.800] n=4 (minibatch)');
    expect(pruned?.querySelector('.node-score')?.getAttribute('title')).toBe('judge-estimated validation score with its 99% interval and n (the minibatch score if not validated)');
    expect(screen.queryByText(/95%/)).toBeNull();
  });

  it('lists prompt versions and promotes one after showing its evidence', async () => {
    let promoted = 2;
    const arm = (version: string, runs: number, rate: number) => ({
      version,
      runs,
      rewarded: runs,
      reward: { value: rate, low: rate - 0.1, high: rate + 0.1 },
      meanCostUsd: 0.01,
      meanDurationMs: 1000,
      meanSteps: 3,
      tools: [],
    });
    const calls = mockFetch((call) => {
      if (call.url.pathname === '/api/agents/agent-a/prompts')
        return {
          body: {
            prompts: [2, 1].map((version) => ({ agentId: 'agent-a', version, text: `prompt v${version}`, sourceRunId: null, note: null, promoted: version === promoted, createdAt: '2026-11-26T12:00:00Z', evaluator: 'command' })),
          },
        };
      if (call.url.pathname === '/api/agents/agent-a/prompts/rollout') return { body: { rollout: null, comparison: null } };
      if (call.url.pathname === '/api/agents/agent-a/prompts/events') return { body: { events: [] } };
      if (call.url.pathname === '/api/agents/agent-a/prompts/compare')
        return {
          body: {
            agentId: 'agent-a',
            reward: 'success',
            since: null,
            arms: [arm('2', 80, 0.5), arm('1', 40, 0.45)],
            difference: { estimate: -0.05, low: -0.3, high: 0.2, pValue: 1 },
            verdict: 'no_difference_yet',
            method: { alpha: 0.05, tau: 0.1, minRuns: 30 },
          },
        };
      if (call.url.pathname === '/api/agents/agent-a/prompts/1/promote' && call.method === 'POST') {
        promoted = 1;
        return { body: { agentId: 'agent-a', version: 1, text: 'prompt v1', sourceRunId: null, note: null, promoted: true, createdAt: '2026-11-26T12:00:00Z' } };
      }
      return undefined;
    });
    renderSignedIn(<PromptVersions agentId="agent-a" />);
    const promote = await screen.findByRole('button', { name: 'Promote…' });
    expect(screen.getByRole('button', { name: 'Promoted' }).hasAttribute('disabled')).toBe(true);
    expect(screen.getByRole('heading', { name: /Version 1/ }).textContent).toMatch(/candidate/);
    fireEvent.click(promote);
    // The evidence first: version 1 against promoted version 2, and a warning; nothing promoted yet.
    const dialog = await screen.findByRole('alertdialog', { name: 'Promote version 1?' });
    const table = await within(dialog).findByRole('table', { name: 'Canary comparison' });
    expect(within(table).getAllByRole('row').map((r) => r.textContent)).toEqual([
      'ArmVersionRunsRewardedReward (95% CI)Mean costMean steps',
      'baseline28080' + '50.0% [40.0%, 60.0%]$0.01003.0',
      'candidate14040' + '45.0% [35.0%, 55.0%]$0.01003.0',
    ]);
    expect(within(dialog).getByRole('note').textContent).toMatch(/Version 1 is not significantly better \(no significant difference yet\)/);
    expect(calls.some((c) => c.url.pathname.endsWith('/compare') && c.url.searchParams.get('versions') === '2,1')).toBe(true);
    expect(calls.some((c) => c.method === 'POST')).toBe(false);
    fireEvent.change(within(dialog).getByLabelText('Reason (optional)'), { target: { value: 'rolling back the optimizer' } });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Confirm promote' }));
    expect(await screen.findByText('Version 1 is now the promoted prompt of agent-a.')).toBeTruthy();
    const post = calls.find((c) => c.method === 'POST' && c.url.pathname.endsWith('/prompts/1/promote'));
    expect(post?.body).toEqual({ actor: 'dashboard', reason: 'rolling back the optimizer' });
    await waitFor(() => expect(screen.getByRole('button', { name: 'Promoted' }).closest('article')?.textContent).toMatch(/Version 1/));
    expect(screen.queryByRole('alertdialog')).toBeNull();
    fireEvent.click(screen.getByRole('button', { name: 'Diff with previous' }));
    expect(screen.getByRole('region', { name: 'Diff of Version 1 and Version 2' })).toBeTruthy();
  });
});
