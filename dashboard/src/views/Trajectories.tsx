import { useEffect, useMemo, useState } from 'react';
import { useApi } from '../auth';
import { AgentSelect } from '../components/AgentSelect';
import { EmptyState, ErrorBox, PageHeader, StatusBadge } from '../components/common';
import { Field, RangeField, SelectField } from '../components/Filters';
import { formatScoreValue, scoreFor, THUMBS } from '../components/Scores';
import type { Query } from '../lib/api';
import { DASH, formatCost, formatDateTime, formatDuration, formatNumber, formatRelative, shortId } from '../lib/format';
import { useAsync } from '../lib/hooks';
import { Link, navigate, setSearch, useLocation } from '../lib/router';
import { sinceFor } from '../lib/timeRange';
import type { Stats, TrajectoryPage } from '../lib/types';

const PAGE_SIZE = 50;

const OUTCOMES = [
  { value: 'running', label: 'Running' },
  { value: 'succeeded', label: 'Succeeded' },
  { value: 'failed', label: 'Failed' },
  { value: 'interrupted', label: 'Interrupted' },
  { value: 'abandoned', label: 'Abandoned' },
];

function ScoreCell({ score, name }: { score: ReturnType<typeof scoreFor>; name: string }) {
  if (!score) return <td className="muted">{DASH}</td>;
  return (
    <td className="score-cell" title={score.comment ?? undefined}>
      {formatScoreValue(name, score.value)}
      {score.comment && <div className="muted small score-comment">{score.comment}</div>}
    </td>
  );
}

export function Trajectories() {
  const api = useApi();
  const { search } = useLocation();
  const agentId = search.get('agentId') ?? '';
  const taskType = search.get('taskType') ?? '';
  const status = search.get('status') ?? '';
  const range = search.get('range') ?? 'all';
  const q = search.get('q') ?? '';
  const scoreName = search.get('scoreName') ?? '';
  const minScore = search.get('minScore') ?? '';
  const maxScore = search.get('maxScore') ?? '';
  const scoreLabel = search.get('scoreLabel') ?? '';
  const scoreColumn = search.get('scoreColumn') ?? '';
  // Optimizer evaluation runs (promptVersion opt-…) are left out unless asked for, as in the stats.
  const evaluations = search.get('evaluations') ?? '';
  const [qDraft, setQDraft] = useState(q);
  const [taskDraft, setTaskDraft] = useState(taskType);

  const params = useMemo(
    () => ({ agentId, taskType, status, range, q, scoreName, minScore, maxScore, scoreLabel, scoreColumn, evaluations }),
    [agentId, taskType, status, range, q, scoreName, minScore, maxScore, scoreLabel, scoreColumn, evaluations],
  );
  const update = (patch: Partial<typeof params>) => {
    const next = { ...params, ...patch };
    setSearch({ ...next, range: next.range === 'all' ? null : next.range });
  };
  const filterKey = JSON.stringify(params);
  // cursors[i] is the cursor that loads page i (page 0 has none); any filter change starts over.
  const [pager, setPager] = useState<{ key: string; cursors: (string | null)[]; page: number }>({ key: filterKey, cursors: [null], page: 0 });
  const { cursors, page } = pager.key === filterKey ? pager : { cursors: [null], page: 0 };
  const setPage = (p: number) => setPager({ key: filterKey, cursors, page: p });

  // Debounce free-text inputs into the URL.
  useEffect(() => {
    if (qDraft === q) return;
    const timer = setTimeout(() => update({ q: qDraft.trim() }), 300);
    return () => clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [qDraft]);
  useEffect(() => {
    if (taskDraft === taskType) return;
    const timer = setTimeout(() => update({ taskType: taskDraft.trim() }), 300);
    return () => clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [taskDraft]);
  useEffect(() => setQDraft((d) => (d.trim() === q ? d : q)), [q]);
  useEffect(() => setTaskDraft((d) => (d.trim() === taskType ? d : taskType)), [taskType]);

  const cursor = cursors[page] ?? null;
  // Range is resolved to a timestamp when the filters change, not on every render.
  const since = useMemo(() => sinceFor(range), [range, filterKey]); // eslint-disable-line react-hooks/exhaustive-deps
  const scoreQuery = scoreName ? { scoreName, minScore, maxScore, scoreLabel } : {};
  const includeEvaluations = evaluations === 'include' ? true : undefined;
  const query: Query = { agentId, taskType, status, q, since, limit: PAGE_SIZE, cursor, includeEvaluations, ...scoreQuery };
  const { data, error, loading, reload } = useAsync<TrajectoryPage>((signal) => api.listTrajectories(query, signal), JSON.stringify(query));

  const nextCursor = data?.nextCursor ?? null;
  const goNext = () => {
    if (!nextCursor) return;
    setPager({ key: filterKey, cursors: [...cursors.slice(0, page + 1), nextCursor], page: page + 1 });
  };

  const rows = useMemo(() => data?.trajectories ?? [], [data]);
  const taskTypes = useMemo(() => [...new Set(rows.map((r) => r.taskType).filter((t): t is string => !!t))].sort(), [rows]);
  const open = (id: string) => navigate(`/trajectories/${encodeURIComponent(id)}`);
  const filtered = !!(agentId || taskType || status || q || scoreName || evaluations || range !== 'all');
  // Score names known to the collector (for the filter and the column), plus the dashboard's thumbs.
  const names = useAsync<Stats>((signal) => api.stats({ agentId }, signal), `score-names:${agentId}`);
  const scoreNames = useMemo(() => {
    const known = new Set((names.data?.scores ?? []).map((s) => s.name));
    known.add(THUMBS);
    for (const s of data?.scores ?? []) known.add(s.name);
    return [...known].sort();
  }, [names.data, data]);
  const column = scoreColumn || scoreName;
  const pageScores = data?.scores ?? [];
  const setThumbsDown = () => update({ scoreName: THUMBS, minScore: '', maxScore: '0', scoreLabel: '' });

  return (
    <div>
      <PageHeader title="Trajectories">
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </PageHeader>
      <form className="filters card" role="search" aria-label="Filter trajectories" onSubmit={(e) => e.preventDefault()}>
        <Field label="Search">
          {(id) => <input id={id} type="search" placeholder="id, agent, task type or prompt" value={qDraft} onChange={(e) => setQDraft(e.target.value)} />}
        </Field>
        <AgentSelect value={agentId} onChange={(v) => update({ agentId: v })} />
        <Field label="Task type">
          {(id) => (
            <>
              <input id={id} type="text" list={`${id}-list`} placeholder="Any" value={taskDraft} onChange={(e) => setTaskDraft(e.target.value)} />
              <datalist id={`${id}-list`}>
                {taskTypes.map((t) => (
                  <option key={t} value={t} />
                ))}
              </datalist>
            </>
          )}
        </Field>
        <SelectField label="Outcome" value={status} onChange={(v) => update({ status: v })} options={OUTCOMES} allLabel="Any outcome" />
        <RangeField value={range} onChange={(v) => update({ range: v })} />
        <SelectField
          label="Score"
          value={scoreName}
          onChange={(v) => update({ scoreName: v, ...(v ? {} : { minScore: '', maxScore: '', scoreLabel: '' }) })}
          options={scoreNames.map((n) => ({ value: n, label: n }))}
          allLabel="Any score"
        />
        {scoreName && (
          <>
            <Field label="Min score">
              {(id) => <input id={id} type="number" step="any" className="narrow" value={minScore} onChange={(e) => update({ minScore: e.target.value })} />}
            </Field>
            <Field label="Max score">
              {(id) => <input id={id} type="number" step="any" className="narrow" value={maxScore} onChange={(e) => update({ maxScore: e.target.value })} />}
            </Field>
            <Field label="Label">
              {(id) => <input id={id} type="text" className="narrow" placeholder="Any" value={scoreLabel} onChange={(e) => update({ scoreLabel: e.target.value })} />}
            </Field>
          </>
        )}
        <button type="button" className="link-button" onClick={setThumbsDown}>
          Thumbs-down only
        </button>
        <SelectField
          label="Score column"
          value={scoreColumn}
          onChange={(v) => update({ scoreColumn: v })}
          options={scoreNames.map((n) => ({ value: n, label: n }))}
          allLabel={scoreName ? `(${scoreName})` : 'None'}
        />
        <label className="check" title="Runs recorded while lightning optimize scored candidates (promptVersion opt-…)">
          <input type="checkbox" checked={evaluations === 'include'} onChange={(e) => update({ evaluations: e.target.checked ? 'include' : '' })} /> Show
          evaluation runs
        </label>
        {filtered && (
          <button type="button" className="link-button clear" onClick={() => setSearch({})}>
            Clear filters
          </button>
        )}
      </form>

      {error && <ErrorBox error={error} onRetry={reload} />}
      <div className="card table-card" aria-busy={loading}>
        <table className="table trajectories-table">
          <caption className="sr-only">Trajectories, newest first{loading ? ' (loading)' : ''}</caption>
          <thead>
            <tr>
              <th scope="col">Agent</th>
              <th scope="col">Task type</th>
              <th scope="col">Started</th>
              <th scope="col" className="num">Duration</th>
              <th scope="col" className="num">Steps</th>
              <th scope="col">Outcome</th>
              <th scope="col" className="num">Cost</th>
              {column && (
                <th scope="col" className="mono">
                  {column}
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <tr key={t.id} className="clickable" onClick={() => open(t.id)}>
                <td>
                  <Link href={`/trajectories/${encodeURIComponent(t.id)}`} onClick={(e) => e.stopPropagation()} aria-label={`Open trajectory ${t.id} of ${t.agentId}`}>
                    {t.agentId}
                  </Link>
                  <div className="muted mono small">{shortId(t.id)}</div>
                </td>
                <td>{t.taskType ?? DASH}</td>
                <td title={formatDateTime(t.startTime)}>
                  {formatDateTime(t.startTime)}
                  <div className="muted small">{formatRelative(t.startTime)}</div>
                </td>
                <td className="num">{formatDuration(t.durationMs)}</td>
                <td className="num">
                  {formatNumber(t.stepCount)}
                  {t.errorCount > 0 && <div className="bad-text small">{formatNumber(t.errorCount)} err</div>}
                </td>
                <td>
                  <StatusBadge status={t.status} success={t.success} />
                </td>
                <td className="num">{formatCost(t.costUsd)}</td>
                {column && <ScoreCell score={scoreFor(pageScores, t.id, column)} name={column} />}
              </tr>
            ))}
          </tbody>
        </table>
        {!loading && !error && rows.length === 0 && (
          <EmptyState title={filtered ? 'No trajectories match these filters' : 'No trajectories yet'}>
            {filtered ? 'Try a wider time range or clear the filters.' : 'Send one with POST /api/trajectories/start.'}
          </EmptyState>
        )}
        <nav className="pager" aria-label="Pagination">
          <button type="button" onClick={() => setPage(page - 1)} disabled={page === 0}>
            ← Newer
          </button>
          <span className="muted" aria-live="polite">
            Page {page + 1}
            {loading ? ' · loading…' : ''}
          </span>
          <button type="button" onClick={goNext} disabled={!nextCursor}>
            Older →
          </button>
        </nav>
      </div>
    </div>
  );
}
