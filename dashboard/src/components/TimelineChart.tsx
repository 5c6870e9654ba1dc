import { useEffect, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import { formatPercent } from '../lib/format';
import type { TimelineBucket } from '../lib/types';

const HEIGHT = 240;
const PAD = { top: 16, right: 44, bottom: 28, left: 40 };

/** Top of the count axis: four equal whole-number intervals that cover `n`. */
export function niceMax(n: number): number {
  const raw = Math.max(1, n) / 4;
  if (raw <= 1) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const step of [1, 2, 5, 10]) if (step * magnitude >= raw) return step * magnitude * 4;
  return 40 * magnitude;
}

function bucketLabel(iso: string, hourly: boolean): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return hourly
    ? d.toLocaleString('en-US', { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false })
    : d.toLocaleDateString('en-US', { month: 'short', day: 'numeric' });
}

function useWidth<T extends HTMLElement>(fallback: number) {
  const ref = useRef<T>(null);
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const observer = new ResizeObserver((entries) => {
      const w = entries[0]?.contentRect.width;
      if (w && w > 0) setWidth(Math.floor(w));
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return [ref, width] as const;
}

/**
 * Trajectories per bucket (stacked: succeeded, failed, still running) with the success rate as
 * a line on the right axis. Focus the chart and use the arrow keys to read each bucket.
 */
export function TimelineChart({ timeline }: { timeline: TimelineBucket[] }) {
  const [wrapRef, width] = useWidth<HTMLDivElement>(720);
  const [active, setActive] = useState<number | null>(null);
  const hourly = useMemo(() => {
    if (timeline.length < 2) return true;
    const a = new Date(timeline[0]!.bucket).getTime();
    const b = new Date(timeline[1]!.bucket).getTime();
    return b - a < 24 * 3600_000;
  }, [timeline]);

  const innerW = Math.max(10, width - PAD.left - PAD.right);
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const max = niceMax(Math.max(0, ...timeline.map((b) => b.trajectories)));
  const n = timeline.length;
  const slot = n > 0 ? innerW / n : innerW;
  const barW = Math.max(1, Math.min(48, slot * 0.7));
  const y = (v: number) => PAD.top + innerH - (v / max) * innerH;
  const yRate = (r: number) => PAD.top + innerH - r * innerH;
  const x = (i: number) => PAD.left + slot * i + slot / 2;

  const ratePoints = timeline
    .map((b, i) => {
      const done = b.succeeded + b.failed;
      return done > 0 ? { i, rate: b.succeeded / done } : null;
    })
    .filter((p): p is { i: number; rate: number } => p !== null);
  const ratePath = ratePoints.map((p, k) => `${k === 0 ? 'M' : 'L'}${x(p.i).toFixed(1)},${yRate(p.rate).toFixed(1)}`).join(' ');
  const labelEvery = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(innerW / 90))));
  const ticks = [0, 0.25, 0.5, 0.75, 1];

  const total = timeline.reduce((s, b) => s + b.trajectories, 0);
  const totalOk = timeline.reduce((s, b) => s + b.succeeded, 0);
  const totalDone = timeline.reduce((s, b) => s + b.succeeded + b.failed, 0);
  const summary = `Trajectories over time: ${total} in ${n} ${hourly ? 'hourly' : 'daily'} buckets, overall success rate ${formatPercent(totalDone ? totalOk / totalDone : null)}. Use the arrow keys to read each bucket.`;

  const onKey = (event: KeyboardEvent<SVGSVGElement>) => {
    if (n === 0) return;
    let next: typeof active;
    if (event.key === 'ArrowRight') next = active === null ? 0 : Math.min(n - 1, active + 1);
    else if (event.key === 'ArrowLeft') next = active === null ? n - 1 : Math.max(0, active - 1);
    else if (event.key === 'Home') next = 0;
    else if (event.key === 'End') next = n - 1;
    else if (event.key === 'Escape') next = null;
    else return;
    event.preventDefault();
    setActive(next);
  };

  const current = active !== null ? timeline[active] : undefined;

  return (
    <div className="chart" ref={wrapRef}>
      <svg
        width={width}
        height={HEIGHT}
        role="img"
        aria-label={summary}
        tabIndex={0}
        onKeyDown={onKey}
        onBlur={() => setActive(null)}
        onMouseLeave={() => setActive(null)}
        className="chart-svg"
      >
        {ticks.map((t) => (
          <g key={t} className="chart-grid">
            <line x1={PAD.left} x2={PAD.left + innerW} y1={y(t * max)} y2={y(t * max)} />
            <text x={PAD.left - 6} y={y(t * max)} dy="0.32em" textAnchor="end">
              {t * max}
            </text>
            <text x={PAD.left + innerW + 6} y={yRate(t)} dy="0.32em" textAnchor="start" className="chart-rate-axis">
              {Math.round(t * 100)}%
            </text>
          </g>
        ))}
        {timeline.map((b, i) => {
          const running = Math.max(0, b.trajectories - b.succeeded - b.failed);
          const left = x(i) - barW / 2;
          const segments: { cls: string; value: number }[] = [
            { cls: 'bar-ok', value: b.succeeded },
            { cls: 'bar-bad', value: b.failed },
            { cls: 'bar-running', value: running },
          ];
          let acc = 0;
          return (
            <g key={b.bucket} className={active === i ? 'chart-bucket active' : 'chart-bucket'} onMouseEnter={() => setActive(i)}>
              <rect className="chart-hit" x={PAD.left + slot * i} y={PAD.top} width={slot} height={innerH} />
              {segments.map((s) => {
                if (s.value <= 0) return null;
                const top = y(acc + s.value);
                const h = y(acc) - top;
                acc += s.value;
                return <rect key={s.cls} className={s.cls} x={left} y={top} width={barW} height={Math.max(0.5, h)} rx={1.5} />;
              })}
              {i % labelEvery === 0 && (
                <text className="chart-x" x={x(i)} y={HEIGHT - 8} textAnchor="middle">
                  {bucketLabel(b.bucket, hourly)}
                </text>
              )}
            </g>
          );
        })}
        {ratePath && <path className="chart-rate" d={ratePath} fill="none" />}
        {ratePoints.map((p) => (
          <circle key={p.i} className="chart-rate-dot" cx={x(p.i)} cy={yRate(p.rate)} r={active === p.i ? 4.5 : 3} />
        ))}
        <line className="chart-axis" x1={PAD.left} x2={PAD.left + innerW} y1={PAD.top + innerH} y2={PAD.top + innerH} />
      </svg>
      <div className="chart-legend" aria-hidden="true">
        <span><i className="swatch bar-ok" /> Succeeded</span>
        <span><i className="swatch bar-bad" /> Failed</span>
        <span><i className="swatch bar-running" /> Running</span>
        <span><i className="swatch swatch-line" /> Success rate</span>
      </div>
      <p className="chart-readout" aria-live="polite">
        {current
          ? `${bucketLabel(current.bucket, hourly)}: ${current.trajectories} trajectories, ${current.succeeded} succeeded, ${current.failed} failed, success rate ${formatPercent(
              current.succeeded + current.failed ? current.succeeded / (current.succeeded + current.failed) : null,
            )}`
          : '\u00a0'}
      </p>
    </div>
  );
}
