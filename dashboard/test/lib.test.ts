import { describe, expect, it } from 'vitest';
import { diffLines, diffSummary } from '../src/lib/diff';
import { formatCost, formatDuration, formatPercent, prettyValue, previewValue, shortId } from '../src/lib/format';
import { matchRoute } from '../src/lib/router';
import { buildLanes, computeTimeline, nestSteps, stepKind, subagentOf } from '../src/lib/steps';
import { sinceFor } from '../src/lib/timeRange';
import { step } from './helpers';

describe('diffLines', () => {
  it('marks identical text as unchanged', () => {
    const rows = diffLines('a\nb', 'a\nb');
    expect(rows.map((r) => r.kind)).toEqual(['same', 'same']);
    expect(diffSummary(rows)).toEqual({ added: 0, removed: 0 });
  });

  it('finds insertions and deletions with line numbers on each side', () => {
    const rows = diffLines('one\ntwo\nthree', 'one\nthree\nfour');
    expect(rows).toEqual([
      { kind: 'same', left: 'one', right: 'one', leftNo: 1, rightNo: 1 },
      { kind: 'removed', left: 'two', right: null, leftNo: 2, rightNo: null },
      { kind: 'same', left: 'three', right: 'three', leftNo: 3, rightNo: 2 },
      { kind: 'added', left: null, right: 'four', leftNo: null, rightNo: 3 },
    ]);
    expect(diffSummary(rows)).toEqual({ added: 1, removed: 1 });
  });

  it('pairs a replaced line into one changed row', () => {
    const rows = diffLines('keep\nold line\nend', 'keep\nnew line\nend');
    expect(rows[1]).toEqual({ kind: 'changed', left: 'old line', right: 'new line', leftNo: 2, rightNo: 2 });
  });

  it('handles empty sides', () => {
    expect(diffLines('', 'x\ny').map((r) => r.kind)).toEqual(['added', 'added']);
    expect(diffLines('x', '').map((r) => r.kind)).toEqual(['removed']);
  });
});

describe('format', () => {
  it('shortens UUIDv7 ids to their random tail, so ids made in the same minute differ', () => {
    const a = '01a2182d-977b-7534-8310-7b545c9077a3';
    const b = '01a2182d-978f-70e4-a8dd-f6721b2d129a';
    expect(shortId(a)).toBe('5c9077a3');
    expect(shortId(b)).not.toBe(shortId(a));
    expect(shortId('run-1')).toBe('run-1');
    expect(shortId('abcdefghijklmnop')).toBe('abcdefgh');
  });

  it('formats durations across units', () => {
    expect(formatDuration(null)).toBe('–');
    expect(formatDuration(250)).toBe('250 ms');
    expect(formatDuration(1500)).toBe('1.50 s');
    expect(formatDuration(125_000)).toBe('2m 5s');
    expect(formatDuration(3_720_000)).toBe('1h 2m');
  });

  it('formats cost and percentages', () => {
    expect(formatCost(0.0123)).toBe('$0.01');
    expect(formatCost(0.007)).toBe('$0.007');
    expect(formatCost(0.001234)).toBe('$0.0012');
    expect(formatCost(null)).toBe('–');
    expect(formatPercent(0.875, 1)).toBe('87.5%');
  });

  it('pretty-prints objects and JSON held in strings, leaves other text alone', () => {
    expect(prettyValue({ a: 1 })).toBe('{\n  "a": 1\n}');
    expect(prettyValue('{"b":[1,2]}')).toBe('{\n  "b": [\n    1,\n    2\n  ]\n}');
    expect(prettyValue('<b>not html</b>')).toBe('<b>not html</b>');
    expect(prettyValue(null)).toBe('');
  });

  it('previews long values on one line', () => {
    const preview = previewValue({ text: 'x'.repeat(500) }, 40);
    expect(preview).toHaveLength(40);
    expect(preview.endsWith('…')).toBe(true);
    expect(previewValue('a\n  b')).toBe('a b');
  });
});

describe('steps', () => {
  it('places steps on the time axis relative to the trajectory start', () => {
    const steps = [step(0, { durationMs: 100 }), step(1, { timestamp: null, durationMs: 50 }), step(2, { durationMs: null })];
    const timeline = computeTimeline(steps, '2026-11-26T12:00:00Z', 1000);
    expect(timeline.timings).toEqual([
      { start: 0, end: 100 },
      { start: 100, end: 150 },
      { start: 200, end: 200 },
    ]);
    expect(timeline.span).toBe(1000);
  });

  it('detects subagent steps from metadata', () => {
    expect(subagentOf(step(0))).toBeNull();
    expect(subagentOf(step(0, { metadata: { agent_id: 'sub-1', agent_type: 'explorer' } }))).toEqual({ id: 'sub-1', type: 'explorer' });
    expect(subagentOf(step(0, { metadata: { agentType: 'planner' } }))).toEqual({ id: null, type: 'planner' });
  });

  it('nests subagent steps under the Task/Agent step that spawned them', () => {
    const steps = [
      step(1, { toolName: 'Agent', toolUseId: 'tu-spawn' }),
      step(2, { toolName: 'Read', toolUseId: 'tu-main' }),
      step(3, { toolName: 'Bash', toolUseId: 'tu-inner', metadata: { agentId: 'a', parentToolUseId: 'tu-spawn' } }),
      step(4, { toolName: 'Agent', toolUseId: 'tu-inner-spawn', metadata: { agentId: 'a', parentToolUseId: 'tu-spawn' } }),
      step(5, { toolName: 'Grep', toolUseId: 'tu-deep', metadata: { agentId: 'b', parentToolUseId: 'tu-inner-spawn' } }),
      step(6, { toolName: 'Bash', toolUseId: 'tu-orphan', metadata: { parentToolUseId: 'tu-unknown' } }),
    ];
    const n = nestSteps(steps);
    expect(n.ordered.map((s) => s.stepNumber)).toEqual([1, 3, 4, 5, 2, 6]);
    expect([...n.depth.entries()].sort((a, b) => a[0] - b[0])).toEqual([[1, 0], [2, 0], [3, 1], [4, 1], [5, 2], [6, 0]]);
    expect(n.parent.get(5)).toBe(4);
    expect(n.parent.has(6)).toBe(false);
  });

  it('tells message and event steps from tool calls', () => {
    expect(stepKind(step(1))).toBe('tool');
    expect(stepKind(step(1, { kind: 'message', toolName: 'assistant' }))).toBe('message');
    expect(stepKind(step(1, { kind: 'event', toolName: 'SubagentStart' }))).toBe('event');
    expect(stepKind(step(1, { toolName: 'assistant', toolOutput: 'hi', toolUseId: null }))).toBe('message');
  });

  it('groups many steps into a bounded number of lanes', () => {
    const steps = Array.from({ length: 1000 }, (_, i) => step(i, { error: i === 500 ? 'boom' : null }));
    const lanes = buildLanes(steps, computeTimeline(steps, '2026-11-26T12:00:00Z', null), 100);
    expect(lanes).toHaveLength(100);
    expect(lanes[0]).toMatchObject({ first: 0, last: 9 });
    expect(lanes.filter((l) => l.errors > 0)).toEqual([expect.objectContaining({ first: 500, errors: 1 })]);
    expect(lanes.every((l) => l.subagent === 0)).toBe(true);
  });
});

describe('router and ranges', () => {
  it('matches every route', () => {
    expect(matchRoute('/')).toEqual({ name: 'overview' });
    expect(matchRoute('/trajectories')).toEqual({ name: 'trajectories' });
    expect(matchRoute('/trajectories/abc%20d')).toEqual({ name: 'trajectory', id: 'abc d' });
    expect(matchRoute('/live/')).toEqual({ name: 'live' });
    expect(matchRoute('/optimization/runs/r1')).toEqual({ name: 'run', id: 'r1' });
    expect(matchRoute('/optimization/prompts/agent-a')).toEqual({ name: 'prompts', agentId: 'agent-a' });
    expect(matchRoute('/nope/x/y')).toEqual({ name: 'notFound' });
  });

  it('turns a range into an RFC 3339 lower bound', () => {
    const now = Date.parse('2026-11-26T12:00:00Z');
    expect(sinceFor('24h', now)).toBe('2026-11-25T12:00:00.000Z');
    expect(sinceFor('all', now)).toBeUndefined();
  });
});

describe('Api.trajectory', () => {
  it('follows the pages of steps to the end', async () => {
    const { Api } = await import('../src/lib/api');
    const { mockFetch, trajectory } = await import('./helpers');
    const t = trajectory({ id: 'big' });
    const calls = mockFetch((call) => {
      if (call.url.pathname !== '/api/trajectories/big') return undefined;
      const after = call.url.searchParams.get('stepsAfter');
      if (after === null) return { body: { ...t, steps: [step(0), step(1)], nextStepsAfter: 1 } };
      if (after === '1') return { body: { ...t, steps: [step(2), step(3)], nextStepsAfter: 3 } };
      return { body: { ...t, steps: [step(4)], nextStepsAfter: null } };
    });
    const detail = await new Api('k').trajectory('big');
    expect(detail.steps.map((s) => s.stepNumber)).toEqual([0, 1, 2, 3, 4]);
    expect('nextStepsAfter' in detail).toBe(false);
    expect(calls.map((c) => c.url.search)).toEqual(['', '?stepsAfter=1&stepsLimit=2000', '?stepsAfter=3&stepsLimit=2000']);
  });
});
