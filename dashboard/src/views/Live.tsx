import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useApi } from '../auth';
import { Badge, EmptyState, ErrorBox, PageHeader, StatusBadge } from '../components/common';
import { StepList } from '../components/StepList';
import { formatDuration, formatNumber, formatRelative, shortId } from '../lib/format';
import { useInterval } from '../lib/hooks';
import { Link } from '../lib/router';
import { computeTimeline } from '../lib/steps';
import type { Step, Trajectory } from '../lib/types';
import { mergeSteps } from './TrajectoryDetail';

const POLL_MS = 2000;
const RECENT = 30;

/** Polls the list and, for the selected trajectory, its new steps (`steps?after=N`). */
export function Live({ pollMs = POLL_MS }: { pollMs?: number } = {}) {
  const api = useApi();
  const [trajectories, setTrajectories] = useState<Trajectory[]>([]);
  const [fresh, setFresh] = useState<Set<string>>(() => new Set());
  const [error, setError] = useState<Error | null>(null);
  const [paused, setPaused] = useState(false);
  const [selected, setSelected] = useState<string | null>(null);
  const [steps, setSteps] = useState<Step[]>([]);
  const [expanded, setExpanded] = useState<Set<number>>(() => new Set());
  const [lastPoll, setLastPoll] = useState<string | null>(null);
  const seen = useRef<Set<string> | null>(null);
  const inFlight = useRef(false);
  const stepsRef = useRef<Step[]>([]);
  stepsRef.current = steps;
  const selectedRef = useRef<string | null>(null);
  selectedRef.current = selected;

  const poll = useCallback(async () => {
    if (inFlight.current) return;
    inFlight.current = true;
    try {
      const page = await api.listTrajectories({ limit: RECENT });
      const ids = page.trajectories.map((t) => t.id);
      if (seen.current) {
        const known = seen.current;
        const added = ids.filter((id) => !known.has(id));
        if (added.length) setFresh((prev) => new Set([...prev, ...added]));
        for (const id of ids) known.add(id);
      } else {
        seen.current = new Set(ids);
      }
      setTrajectories(page.trajectories);
      const target = selectedRef.current;
      if (target) {
        const current = stepsRef.current;
        const after = current.length ? (current[current.length - 1] as Step).stepNumber : -1;
        const more = await api.stepsAfter(target, after, 2000);
        if (selectedRef.current === target && more.steps.length) setSteps((prev) => mergeSteps(prev, more.steps));
      }
      setError(null);
      setLastPoll(new Date().toISOString());
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      inFlight.current = false;
    }
  }, [api]);

  useEffect(() => {
    void poll();
  }, [poll]);
  useInterval(() => void poll(), pollMs, !paused);

  // Follow the newest running trajectory until the user picks one.
  useEffect(() => {
    if (selected) return;
    const running = trajectories.find((t) => t.status === 'running');
    if (running) setSelected(running.id);
  }, [trajectories, selected]);

  useEffect(() => {
    setSteps([]);
    stepsRef.current = [];
    setExpanded(new Set());
    if (selected) void poll();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [selected]);

  const current = trajectories.find((t) => t.id === selected) ?? null;
  const timeline = useMemo(() => computeTimeline(steps, current?.startTime ?? null, null), [steps, current?.startTime]);
  const onToggle = useCallback((n: number) => {
    setExpanded((prev) => {
      const next = new Set(prev);
      if (next.has(n)) next.delete(n);
      else next.add(n);
      return next;
    });
  }, []);

  return (
    <div>
      <PageHeader title="Live">
        <span className="muted small" aria-live="off">
          {paused ? 'Paused' : `Polling every ${pollMs / 1000}s`}
          {lastPoll ? ` · updated ${formatRelative(lastPoll)}` : ''}
        </span>
        <button type="button" aria-pressed={paused} onClick={() => setPaused(!paused)}>
          {paused ? 'Resume' : 'Pause'}
        </button>
      </PageHeader>
      {error && <ErrorBox error={error} />}
      <div className="live-grid">
        <section className="card" aria-labelledby="recent-h">
          <h2 id="recent-h">Recent trajectories</h2>
          {trajectories.length === 0 ? (
            <EmptyState title="Waiting for trajectories…">New trajectories appear here as agents start them.</EmptyState>
          ) : (
            <ul className="live-list" aria-live="polite" aria-relevant="additions">
              {trajectories.map((t) => (
                <li key={t.id} className={fresh.has(t.id) ? 'live-item fresh' : 'live-item'}>
                  <button type="button" className={t.id === selected ? 'live-pick selected' : 'live-pick'} aria-pressed={t.id === selected} onClick={() => setSelected(t.id)}>
                    <span className="live-line">
                      <strong>{t.agentId}</strong>
                      {t.taskType && <span className="muted"> · {t.taskType}</span>}
                      {fresh.has(t.id) && <Badge tone="info">new</Badge>}
                    </span>
                    <span className="live-line muted small">
                      <StatusBadge status={t.status} success={t.success} /> {formatNumber(t.stepCount)} steps · {formatRelative(t.startTime)}
                      {t.durationMs !== null ? ` · ${formatDuration(t.durationMs)}` : ''}
                    </span>
                  </button>
                </li>
              ))}
            </ul>
          )}
        </section>
        <section className="card steps-card" aria-labelledby="tail-h">
          <div className="section-head">
            <h2 id="tail-h">
              {current ? (
                <>
                  Steps of {current.agentId} <span className="muted mono small">{shortId(current.id)}</span>
                </>
              ) : (
                'Steps'
              )}
            </h2>
            {current && (
              <div className="toolbar">
                <StatusBadge status={current.status} success={current.success} />
                <Link href={`/trajectories/${encodeURIComponent(current.id)}`}>Open detail</Link>
              </div>
            )}
          </div>
          {!selected ? (
            <EmptyState title="Pick a trajectory">Its steps stream in here as they are recorded.</EmptyState>
          ) : steps.length === 0 ? (
            <EmptyState title="No steps yet" />
          ) : (
            <StepList steps={steps} timeline={timeline} expanded={expanded} onToggle={onToggle} followTail />
          )}
        </section>
      </div>
    </div>
  );
}
