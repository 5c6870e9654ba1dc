import { useEffect, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import { formatDuration } from '../lib/format';
import { buildLanes, type Timeline } from '../lib/steps';
import type { Step } from '../lib/types';

const LANE_H = 6;
const MAX_LANES = 80;
const PAD = { top: 8, right: 12, bottom: 22, left: 12 };

/**
 * Overview waterfall of all steps: each lane is one step (or, for long trajectories, a run of
 * consecutive steps) drawn from its start to its end. Click a lane, or focus the chart and use
 * the arrow keys and Enter, to jump to that step in the list.
 */
export function Waterfall({
  steps,
  timeline,
  onJump,
  depth,
}: {
  steps: Step[];
  timeline: Timeline;
  onJump: (index: number) => void;
  /** nesting depth by step number: nested lanes are indented and linked to their spawning step */
  depth?: Map<number, number>;
}) {
  const wrapRef = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(720);
  const [active, setActive] = useState<number | null>(null);
  useEffect(() => {
    const el = wrapRef.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver((entries) => {
      const w = entries[0]?.contentRect.width;
      if (w && w > 0) setWidth(Math.floor(w));
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const lanes = useMemo(() => buildLanes(steps, timeline, MAX_LANES), [steps, timeline]);
  const laneH = lanes.length > 40 ? 2 : LANE_H;
  const gap = lanes.length > 40 ? 1 : 2;
  const innerW = Math.max(10, width - PAD.left - PAD.right);
  const height = PAD.top + lanes.length * (laneH + gap) + PAD.bottom;
  const x = (ms: number) => PAD.left + (ms / timeline.span) * innerW;
  const perLane = lanes[0] ? lanes[0].last - lanes[0].first + 1 : 1;
  const errorSteps = steps.reduce((n, s) => n + (s.error ? 1 : 0), 0);

  const onKey = (event: KeyboardEvent<SVGSVGElement>) => {
    if (lanes.length === 0) return;
    let next: typeof active;
    if (event.key === 'ArrowDown' || event.key === 'ArrowRight') next = active === null ? 0 : Math.min(lanes.length - 1, active + 1);
    else if (event.key === 'ArrowUp' || event.key === 'ArrowLeft') next = active === null ? 0 : Math.max(0, active - 1);
    else if (event.key === 'Home') next = 0;
    else if (event.key === 'End') next = lanes.length - 1;
    else if ((event.key === 'Enter' || event.key === ' ') && active !== null) {
      event.preventDefault();
      onJump(lanes[active]!.first);
      return;
    } else return;
    event.preventDefault();
    setActive(next);
  };

  const current = active !== null ? lanes[active] : undefined;
  const ticks = [0, 0.25, 0.5, 0.75, 1];

  return (
    <div className="waterfall" ref={wrapRef}>
      <svg
        width={width}
        height={height}
        role="img"
        tabIndex={0}
        aria-label={`Waterfall of ${steps.length} steps over ${formatDuration(timeline.span)}${perLane > 1 ? `, ${perLane} steps per lane` : ''}, ${errorSteps} with errors. Use the arrow keys and Enter to jump to a step.`}
        onKeyDown={onKey}
        onBlur={() => setActive(null)}
      >
        {ticks.map((t) => (
          <g key={t} className="chart-grid">
            <line x1={x(t * timeline.span)} x2={x(t * timeline.span)} y1={PAD.top} y2={height - PAD.bottom + 4} />
            <text x={x(t * timeline.span)} y={height - 6} textAnchor={t === 0 ? 'start' : t === 1 ? 'end' : 'middle'}>
              {formatDuration(t * timeline.span)}
            </text>
          </g>
        ))}
        {lanes.map((lane, i) => {
          const y = PAD.top + i * (laneH + gap);
          const left = x(lane.start);
          const w = Math.max(2, x(lane.end) - left);
          // A lane of several steps is drawn as subagent work when most of its steps are.
          const size = lane.last - lane.first + 1;
          const cls = lane.errors > 0 ? 'wf-bar wf-error' : lane.subagent * 2 >= size ? 'wf-bar wf-sub' : 'wf-bar';
          // one step per lane: a nested step hangs from the lane above it (its spawning call or a sibling)
          const d = size === 1 ? (depth?.get(steps[lane.first]?.stepNumber ?? -1) ?? 0) : 0;
          return (
            <g key={lane.first} className={active === i ? 'wf-lane active' : 'wf-lane'} onClick={() => onJump(lane.first)} onMouseEnter={() => setActive(i)} data-depth={d}>
              <rect className="wf-hit" x={PAD.left} y={y - gap / 2} width={innerW} height={laneH + gap} />
              {d > 0 && <line className="wf-link" x1={left - 3} x2={left - 3} y1={y - gap - laneH / 2} y2={y + laneH / 2} />}
              <rect className={cls} x={left} y={y} width={w} height={laneH} rx={1} />
            </g>
          );
        })}
      </svg>
      <p className="chart-readout" aria-live="polite">
        {current
          ? `${current.first === current.last ? `Step ${steps[current.first]?.stepNumber}` : `Steps ${steps[current.first]?.stepNumber}–${steps[current.last]?.stepNumber}`}: ${formatDuration(current.start)} → ${formatDuration(current.end)}${current.errors ? `, ${current.errors} error${current.errors > 1 ? 's' : ''}` : ''}${current.subagent ? `, ${current.subagent} subagent step${current.subagent > 1 ? 's' : ''}` : ''}`
          : '\u00a0'}
      </p>
    </div>
  );
}
