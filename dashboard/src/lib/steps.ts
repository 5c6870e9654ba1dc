import type { Step } from './types';

export interface StepTiming {
  /** ms from the trajectory start */
  start: number;
  end: number;
}

export interface Timeline {
  timings: StepTiming[];
  /** total span in ms (at least 1) */
  span: number;
}

function parseTime(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = new Date(iso).getTime();
  return Number.isNaN(t) ? null : t;
}

/**
 * Place each step on the trajectory's time axis. A step starts at its timestamp (or, without
 * one, where the previous step ended) and lasts `durationMs` (0 when unknown).
 */
export function computeTimeline(steps: Step[], startTime: string | null, durationMs: number | null): Timeline {
  const origin = parseTime(startTime) ?? parseTime(steps[0]?.timestamp) ?? 0;
  const timings: StepTiming[] = new Array(steps.length);
  let cursor = 0;
  let span = durationMs && durationMs > 0 ? durationMs : 0;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i] as Step;
    const ts = parseTime(step.timestamp);
    const start = ts !== null ? Math.max(0, ts - origin) : cursor;
    const end = start + Math.max(0, step.durationMs ?? 0);
    timings[i] = { start, end };
    cursor = end;
    if (end > span) span = end;
  }
  return { timings, span: Math.max(1, span) };
}

/** Subagent identity from step metadata (`agent_id` / `agent_type`, camelCase accepted too). */
export function subagentOf(step: Step): { id: string | null; type: string | null } | null {
  const meta = step.metadata;
  if (!meta || typeof meta !== 'object') return null;
  const pick = (...names: string[]) => {
    for (const name of names) {
      const v = meta[name];
      if (typeof v === 'string' && v.trim()) return v;
      if (typeof v === 'number') return String(v);
    }
    return null;
  };
  const id = pick('agent_id', 'agentId');
  const type = pick('agent_type', 'agentType');
  return id || type ? { id, type } : null;
}

export interface Lane {
  first: number;
  last: number;
  start: number;
  end: number;
  errors: number;
  /** number of subagent steps in the lane */
  subagent: number;
}

/** Group consecutive steps into at most `maxLanes` lanes for the waterfall overview. */
export function buildLanes(steps: Step[], timeline: Timeline, maxLanes: number): Lane[] {
  const n = steps.length;
  if (n === 0) return [];
  const per = Math.max(1, Math.ceil(n / maxLanes));
  const lanes: Lane[] = [];
  for (let first = 0; first < n; first += per) {
    const last = Math.min(n - 1, first + per - 1);
    let start = Infinity;
    let end = 0;
    let errors = 0;
    let subagent = 0;
    for (let i = first; i <= last; i++) {
      const t = timeline.timings[i] as StepTiming;
      if (t.start < start) start = t.start;
      if (t.end > end) end = t.end;
      const step = steps[i] as Step;
      if (step.error) errors++;
      if (subagentOf(step)) subagent++;
    }
    lanes.push({ first, last, start, end, errors, subagent });
  }
  return lanes;
}
