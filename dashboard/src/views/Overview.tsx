import { useMemo } from 'react';
import { useApi } from '../auth';
import { AgentSelect } from '../components/AgentSelect';
import { EmptyState, ErrorBox, Loading, PageHeader, StatCard } from '../components/common';
import { RangeField } from '../components/Filters';
import { ScoreChart } from '../components/Scores';
import { TimelineChart } from '../components/TimelineChart';
import { formatCost, formatDuration, formatNumber, formatPercent } from '../lib/format';
import { useAsync } from '../lib/hooks';
import { Link, setSearch, useLocation } from '../lib/router';
import { sinceFor } from '../lib/timeRange';
import type { Stats } from '../lib/types';

function RateBar({ rate, tone }: { rate: number | null; tone: 'ok' | 'bad' }) {
  return (
    <span className="ratebar" aria-hidden="true">
      <span className={`ratebar-fill ${tone}`} style={{ width: `${Math.round((rate ?? 0) * 100)}%` }} />
    </span>
  );
}

export function Overview() {
  const api = useApi();
  const { search } = useLocation();
  const agentId = search.get('agentId') ?? '';
  const range = search.get('range') ?? '7d';
  const since = useMemo(() => sinceFor(range), [range]);
  const { data, error, loading, reload } = useAsync<Stats>((signal) => api.stats({ agentId, since }, signal), `stats:${agentId}:${since}`);
  const update = (patch: { agentId?: string; range?: string }) => {
    const next = { agentId, range, ...patch };
    setSearch({ agentId: next.agentId, range: next.range === '7d' ? null : next.range });
  };
  const listLink = (extra: Record<string, string> = {}) => {
    const params = new URLSearchParams();
    if (agentId) params.set('agentId', agentId);
    if (range !== 'all') params.set('range', range);
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    const text = params.toString();
    return `/trajectories${text ? `?${text}` : ''}`;
  };

  return (
    <div>
      <PageHeader title="Overview">
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </PageHeader>
      <form className="filters card" aria-label="Overview filters" onSubmit={(e) => e.preventDefault()}>
        <AgentSelect value={agentId} onChange={(v) => update({ agentId: v })} />
        <RangeField value={range} onChange={(v) => update({ range: v })} />
      </form>
      {error && <ErrorBox error={error} onRetry={reload} />}
      {loading && !data && <Loading label="Loading statistics…" />}
      {data && (
        <div aria-busy={loading}>
          <div className="stats-grid">
            <StatCard label="Trajectories" value={formatNumber(data.trajectories)} hint={`${formatNumber(data.running)} running`} />
            <StatCard label="Success rate" value={formatPercent(data.successRate, 1)} hint={`${formatNumber(data.succeeded)} succeeded · ${formatNumber(data.failed)} failed`} />
            <StatCard label="Steps per trajectory" value={formatNumber(data.meanSteps, 1)} hint="mean" />
            <StatCard label="Duration" value={formatDuration(data.meanDurationMs)} hint="mean" />
            <StatCard label="Cost" value={formatCost(data.meanCostUsd)} hint={`mean · ${formatCost(data.totalCostUsd)} total`} />
          </div>
          <section className="card" aria-labelledby="chart-h">
            <h2 id="chart-h">Trajectories and success rate over time</h2>
            {data.timeline.length ? <TimelineChart timeline={data.timeline} /> : <EmptyState title="No trajectories in this range" />}
          </section>
          {data.scores && data.scores.length > 0 && (
            <section className="card" aria-labelledby="scores-chart-h">
              <h2 id="scores-chart-h">Scores over time</h2>
              <div className="score-charts">
                {data.scores.map((s) => (
                  <ScoreChart key={`${s.name}:${s.dataType}`} stats={s} />
                ))}
              </div>
            </section>
          )}
          <div className="two-col">
            <section className="card" aria-labelledby="tools-h">
              <h2 id="tools-h">Top tools</h2>
              {data.tools.length ? (
                <div className="table-scroll">
                <table className="table compact">
                  <thead>
                    <tr>
                      <th scope="col">Tool</th>
                      <th scope="col" className="num">Calls</th>
                      <th scope="col" className="num">Errors</th>
                      <th scope="col">Error rate</th>
                      <th scope="col" className="num">Mean duration</th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.tools.slice(0, 15).map((tool) => (
                      <tr key={tool.toolName}>
                        <th scope="row" className="mono">{tool.toolName}</th>
                        <td className="num">{formatNumber(tool.calls)}</td>
                        <td className="num">{formatNumber(tool.errors)}</td>
                        <td>
                          <span className="rate-cell">
                            <RateBar rate={tool.errorRate} tone="bad" />
                            {formatPercent(tool.errorRate, 1)}
                          </span>
                        </td>
                        <td className="num">{formatDuration(tool.meanDurationMs)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                </div>
              ) : (
                <EmptyState title="No tool calls in this range" />
              )}
            </section>
            <section className="card" aria-labelledby="agents-h">
              <h2 id="agents-h">Agents</h2>
              {data.agents.length ? (
                <div className="table-scroll">
                <table className="table compact">
                  <thead>
                    <tr>
                      <th scope="col">Agent</th>
                      <th scope="col" className="num">Trajectories</th>
                      <th scope="col" className="num">Succeeded</th>
                      <th scope="col" className="num">Failed</th>
                      <th scope="col">Success rate</th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.agents.map((a) => (
                      <tr key={a.agentId}>
                        <th scope="row">
                          <Link href={listLink({ agentId: a.agentId })}>{a.agentId}</Link>
                        </th>
                        <td className="num">{formatNumber(a.trajectories)}</td>
                        <td className="num">{formatNumber(a.succeeded)}</td>
                        <td className="num">{formatNumber(a.failed)}</td>
                        <td>
                          <span className="rate-cell">
                            <RateBar rate={a.successRate ?? null} tone="ok" />
                            {formatPercent(a.successRate, 1)}
                          </span>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                </div>
              ) : (
                <EmptyState title="No agents in this range" />
              )}
            </section>
          </div>
        </div>
      )}
    </div>
  );
}
