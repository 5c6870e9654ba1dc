import type { Step, StepKind } from './types';

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

/** The kind of a step: `kind` when the collector sends it, else inferred from older data. */
export function stepKind(step: Step): StepKind {
  if (step.kind === 'message' || step.kind === 'event' || step.kind === 'tool') return step.kind;
  if (step.toolName === 'assistant' && typeof step.toolOutput === 'string' && !step.toolUseId) return 'message';
  return 'tool';
}

/** The step's parent tool call (`metadata.parentToolUseId`: the Task/Agent call that spawned it). */
export function parentToolUseIdOf(step: Step): string | null {
  const v = step.metadata?.parentToolUseId ?? step.metadata?.parent_tool_use_id;
  return typeof v === 'string' && v ? v : null;
}

export interface Nesting {
  /** steps in display order: each spawning step followed by the steps of its subagent */
  ordered: Step[];
  /** nesting depth by step number (0: top level) */
  depth: Map<number, number>;
  /** step number of the spawning step, by step number */
  parent: Map<number, number>;
}

const MAX_DEPTH = 8;

/** Nests subagent steps under the Task/Agent step that spawned them (by tool_use id). */
export function nestSteps(steps: Step[]): Nesting {
  const byToolUse = new Map<string, Step>();
  for (const s of steps) if (s.toolUseId && stepKind(s) === 'tool') byToolUse.set(s.toolUseId, s);
  const children = new Map<number, Step[]>();
  const parent = new Map<number, number>();
  const roots: Step[] = [];
  for (const s of steps) {
    const pid = parentToolUseIdOf(s);
    const p = pid ? byToolUse.get(pid) : undefined;
    if (p && p.stepNumber !== s.stepNumber) {
      parent.set(s.stepNumber, p.stepNumber);
      const list = children.get(p.stepNumber) ?? [];
      list.push(s);
      children.set(p.stepNumber, list);
    } else roots.push(s);
  }
  const ordered: Step[] = [];
  const depth = new Map<number, number>();
  const placed = new Set<number>();
  const visit = (s: Step, d: number) => {
    if (placed.has(s.stepNumber)) return;
    placed.add(s.stepNumber);
    ordered.push(s);
    depth.set(s.stepNumber, Math.min(d, MAX_DEPTH));
    for (const c of children.get(s.stepNumber) ?? []) visit(c, d + 1);
  };
  for (const r of roots) visit(r, 0);
  // a cycle in bad data: whatever was not reached keeps its place at the end
  for (const s of steps) if (!placed.has(s.stepNumber)) visit(s, 0);
  return { ordered, depth, parent };
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
