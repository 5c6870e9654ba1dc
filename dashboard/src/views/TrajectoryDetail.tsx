import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useApi } from '../auth';
import { Badge, CodeBlock, EmptyState, ErrorBox, Loading, StatusBadge } from '../components/common';
import { FeedbackForm, ScoreTable, feedbackError } from '../components/Scores';
import { StepList } from '../components/StepList';
import type { VirtualListHandle } from '../components/VirtualList';
import { Waterfall } from '../components/Waterfall';
import { ApiError } from '../lib/api';
import { DASH, formatCost, formatDateTime, formatDuration, formatNumber, prettyValue } from '../lib/format';
import { useAsync, useInterval } from '../lib/hooks';
import { Link } from '../lib/router';
import { computeTimeline, nestSteps, subagentOf } from '../lib/steps';
import type { Score, Step, Trajectory, TrajectoryDetail as Detail } from '../lib/types';

function tokens(t: Trajectory): string {
  const u = t.usage;
  if (!u) return DASH;
  const parts = [`${formatNumber(u.inputTokens)} in`, `${formatNumber(u.outputTokens)} out`];
  if (u.cacheReadInputTokens) parts.push(`${formatNumber(u.cacheReadInputTokens)} cache read`);
  if (u.cacheCreationInputTokens) parts.push(`${formatNumber(u.cacheCreationInputTokens)} cache write`);
  return parts.join(' · ');
}

function Summary({ t }: { t: Trajectory }) {
  const items: [string, string][] = [
    ['Agent', t.agentId],
    ['Task type', t.taskType ?? DASH],
    ['Model', t.model ?? DASH],
    ['System prompt version', t.promptVersion ?? DASH],
    ['Started', formatDateTime(t.startTime)],
    ['Ended', formatDateTime(t.endTime)],
    ['Duration', formatDuration(t.durationMs)],
    ['Steps', `${formatNumber(t.stepCount)}${t.totalSteps !== null && t.totalSteps !== t.stepCount ? ` stored of ${formatNumber(t.totalSteps)}` : ''}`],
    ['Errors', formatNumber(t.errorCount)],
    ['Cost', formatCost(t.costUsd)],
    ['Tokens', tokens(t)],
    ['Turns', formatNumber(t.numTurns)],
    ['Session', t.sessionId ?? DASH],
  ];
  return (
    <dl className="summary card">
      {items.map(([k, v]) => (
        <div key={k} className="summary-item">
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

export function TrajectoryDetail({ id }: { id: string }) {
  const api = useApi();
  const { data, error, loading, reload } = useAsync<Detail>((signal) => api.trajectory(id, signal), `trajectory:${id}`);
  const [trajectory, setTrajectory] = useState<Trajectory | null>(null);
  const [steps, setSteps] = useState<Step[]>([]);
  const [scores, setScores] = useState<Score[]>([]);
  const [scoreError, setScoreError] = useState<string | null>(null);
  const [expanded, setExpanded] = useState<Set<number>>(() => new Set());
  const [errorsOnly, setErrorsOnly] = useState(false);
  const [tool, setTool] = useState('');
  const listRef = useRef<VirtualListHandle>(null);
  const polling = useRef(false);

  useEffect(() => {
    if (!data) return;
    const { steps: loaded, scores: loadedScores, ...rest } = data;
    setTrajectory(rest);
    setSteps(loaded);
    setScores(loadedScores ?? []);
  }, [data]);

  const reloadScores = useCallback(() => {
    api
      .scores(id)
      .then((r) => {
        setScores(r.scores);
        setScoreError(null);
      })
      .catch((e: unknown) => setScoreError(e instanceof Error ? e.message : String(e)));
  }, [api, id]);
  const deleteScore = useCallback(
    (s: Score) => {
      api
        .deleteScore(s.id)
        .then(reloadScores)
        .catch((e: unknown) => setScoreError(feedbackError(e, 'delete')));
    },
    [api, reloadScores],
  );

  // Tail a running trajectory: new steps and the final status appear without a reload.
  const running = trajectory?.status === 'running';
  useInterval(
    () => {
      if (polling.current || !trajectory) return;
      polling.current = true;
      const after = steps.length ? (steps[steps.length - 1] as Step).stepNumber : -1;
      Promise.all([api.stepsAfter(id, after, 5000), api.listTrajectories({ q: id, limit: 5 })])
        .then(([more, page]) => {
          if (more.steps.length) setSteps((prev) => mergeSteps(prev, more.steps));
          const fresh = page.trajectories.find((t) => t.id === id);
          if (fresh) setTrajectory(fresh);
        })
        .catch(() => {
          /* transient: the next tick retries */
        })
        .finally(() => {
          polling.current = false;
        });
    },
    2000,
    running,
  );

  const onToggle = useCallback((stepNumber: number) => {
    setExpanded((prev) => {
      const next = new Set(prev);
      if (next.has(stepNumber)) next.delete(stepNumber);
      else next.add(stepNumber);
      return next;
    });
  }, []);

  const tools = useMemo(() => [...new Set(steps.map((s) => s.toolName))].sort(), [steps]);
  // subagent steps are shown under the Task/Agent step that spawned them
  const nesting = useMemo(() => nestSteps(steps), [steps]);
  const ordered = nesting.ordered;
  const visible = useMemo(
    () => (errorsOnly || tool ? ordered.filter((s) => (!errorsOnly || s.error) && (!tool || s.toolName === tool)) : ordered),
    [ordered, errorsOnly, tool],
  );
  const fullTimeline = useMemo(
    () => computeTimeline(ordered, trajectory?.startTime ?? null, trajectory?.durationMs ?? null),
    [ordered, trajectory?.startTime, trajectory?.durationMs],
  );
  const visibleTimeline = useMemo(() => {
    if (visible === ordered) return fullTimeline;
    const index = new Map(ordered.map((s, i) => [s.stepNumber, i]));
    return { span: fullTimeline.span, timings: visible.map((s) => fullTimeline.timings[index.get(s.stepNumber) ?? 0]!) };
  }, [visible, ordered, fullTimeline]);
  const errorCount = useMemo(() => steps.reduce((n, s) => n + (s.error ? 1 : 0), 0), [steps]);
  const subagentCount = useMemo(() => steps.reduce((n, s) => n + (subagentOf(s) ? 1 : 0), 0), [steps]);

  const jumpTo = useCallback(
    (stepIndex: number) => {
      const stepNumber = ordered[stepIndex]?.stepNumber;
      if (stepNumber === undefined) return;
      const target = visible.findIndex((s) => s.stepNumber === stepNumber);
      if (target >= 0) {
        listRef.current?.scrollToIndex(target, 'start');
        listRef.current?.focusIndex(target);
      } else {
        setErrorsOnly(false);
        setTool('');
        requestAnimationFrame(() => listRef.current?.focusIndex(stepIndex));
      }
    },
    [ordered, visible],
  );

  if (error && !trajectory) {
    if (error instanceof ApiError && error.notFound)
      return (
        <EmptyState title="Trajectory not found">
          No trajectory has the id <code>{id}</code>. <Link href="/trajectories">Back to trajectories</Link>
        </EmptyState>
      );
    return <ErrorBox error={error} onRetry={reload} />;
  }
  if (loading && !trajectory) return <Loading label="Loading trajectory…" />;
  if (!trajectory) return null;
  const t = trajectory;
  const firstError = ordered.findIndex((s) => s.error);

  return (
    <div className="detail">
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link href="/trajectories">Trajectories</Link> <span aria-hidden="true">/</span> <span>{t.id}</span>
      </nav>
      <div className="page-header">
        <h1>
          {t.agentId}
          {t.taskType && <span className="muted"> · {t.taskType}</span>}
        </h1>
        <div className="page-actions">
          <StatusBadge status={t.status} success={t.success} />
          {running && <Badge tone="info">live</Badge>}
        </div>
      </div>
      <Summary t={t} />

      <div className="two-col">
        <section className="card" aria-labelledby="prompt-h">
          <h2 id="prompt-h">Prompt</h2>
          {t.prompt ? <CodeBlock text={t.prompt} label="Prompt" /> : <p className="muted">No prompt recorded.</p>}
          {t.systemPrompt && (
            <details className="disclosure">
              <summary>System prompt{t.promptVersion != null ? ` (version ${t.promptVersion})` : ''}</summary>
              <CodeBlock text={t.systemPrompt} label="System prompt" />
            </details>
          )}
        </section>
        <section className="card" aria-labelledby="outcome-h">
          <h2 id="outcome-h">{t.error ? 'Error' : 'Result'}</h2>
          {t.error ? (
            <CodeBlock text={t.error} label="Trajectory error" tone="error" />
          ) : t.result !== null && t.result !== undefined ? (
            <CodeBlock text={prettyValue(t.result)} label="Trajectory result" />
          ) : (
            <p className="muted">{t.status === 'running' ? 'Still running.' : 'No result recorded.'}</p>
          )}
          {t.metadata && Object.keys(t.metadata).length > 0 && (
            <details className="disclosure">
              <summary>Metadata</summary>
              <CodeBlock text={prettyValue(t.metadata)} label="Metadata" />
            </details>
          )}
        </section>
      </div>

      <section className="card" aria-labelledby="scores-h">
        <h2 id="scores-h">
          Scores and feedback <span className="muted">({formatNumber(scores.length)})</span>
        </h2>
        <ScoreTable scores={scores} onDelete={deleteScore} />
        {scoreError && (
          <p className="bad-text" role="alert">
            {scoreError}
          </p>
        )}
        <FeedbackForm api={api} trajectoryId={t.id} steps={steps} onSaved={reloadScores} />
      </section>

      <section className="card" aria-labelledby="timeline-h">
        <h2 id="timeline-h">Timeline</h2>
        {steps.length ? <Waterfall steps={ordered} timeline={fullTimeline} onJump={jumpTo} depth={nesting.depth} /> : <p className="muted">No steps yet.</p>}
        <div className="chart-legend" aria-hidden="true">
          <span><i className="swatch wf-bar" /> Step</span>
          <span><i className="swatch wf-sub" /> Subagent</span>
          <span><i className="swatch wf-error" /> Error</span>
        </div>
      </section>

      <section className="card steps-card" aria-labelledby="steps-h">
        <div className="section-head">
          <h2 id="steps-h">
            Steps <span className="muted">({formatNumber(visible.length)}{visible.length !== steps.length ? ` of ${formatNumber(steps.length)}` : ''})</span>
          </h2>
          <div className="toolbar">
            {subagentCount > 0 && <Badge tone="accent">{formatNumber(subagentCount)} subagent steps</Badge>}
            <label className="check">
              <input type="checkbox" checked={errorsOnly} onChange={(e) => setErrorsOnly(e.target.checked)} /> Errors only ({formatNumber(errorCount)})
            </label>
            <label className="inline-field">
              Tool{' '}
              <select value={tool} onChange={(e) => setTool(e.target.value)}>
                <option value="">All tools</option>
                {tools.map((name) => (
                  <option key={name} value={name}>
                    {name}
                  </option>
                ))}
              </select>
            </label>
            <button type="button" disabled={firstError < 0} onClick={() => jumpTo(firstError)}>
              First error
            </button>
            <button type="button" disabled={expanded.size === 0} onClick={() => setExpanded(new Set())}>
              Collapse all
            </button>
          </div>
        </div>
        <div className="step-columns" aria-hidden="true">
          <span />
          <span>Step · tool</span>
          <span>Time</span>
          <span>Duration</span>
          <span>Waterfall</span>
        </div>
        {visible.length ? (
          <StepList
            steps={visible}
            timeline={visibleTimeline}
            expanded={expanded}
            onToggle={onToggle}
            handleRef={listRef}
            followTail={running}
            depth={nesting.depth}
            parent={nesting.parent}
          />
        ) : (
          <EmptyState title={steps.length ? 'No steps match these filters' : 'No steps recorded'} />
        )}
      </section>
    </div>
  );
}

/** Append steps from a tail poll, replacing any with the same step number (merged on the server). */
export function mergeSteps(prev: Step[], incoming: Step[]): Step[] {
  if (incoming.length === 0) return prev;
  const byNumber = new Map(prev.map((s, i) => [s.stepNumber, i]));
  const next = prev.slice();
  for (const step of incoming) {
    const at = byNumber.get(step.stepNumber);
    if (at !== undefined) next[at] = step;
    else {
      byNumber.set(step.stepNumber, next.length);
      next.push(step);
    }
  }
  next.sort((a, b) => a.stepNumber - b.stepNumber);
  return next;
}
