/**
 * The canary of an agent's prompt versions: its live comparison with the baseline (reward with
 * 95 % intervals, always-valid difference and verdict), the decisions — promote or roll back, each
 * showing its evidence before it is confirmed — and the history of decisions.
 */
import { useState } from 'react';
import { useApi } from '../auth';
import { useAsync } from '../lib/hooks';
import { formatDateTime, formatNumber } from '../lib/format';
import { chartSeries, type Series } from '../lib/rolloutSeries';
import type { Comparison, Prompt, PromptEvent, RolloutStatus, RolloutVerdict } from '../lib/types';
import { Badge, ErrorBox } from './common';

const VERDICT: Record<RolloutVerdict, { text: string; tone: 'ok' | 'bad' | 'neutral' | 'warn' }> = {
  insufficient_data: { text: 'not enough runs yet', tone: 'neutral' },
  no_difference_yet: { text: 'no significant difference yet', tone: 'warn' },
  better: { text: 'canary significantly better', tone: 'ok' },
  worse: { text: 'canary significantly worse', tone: 'bad' },
};

const EVENT: Record<PromptEvent['kind'], string> = {
  rollout_started: 'canary started',
  rollout_updated: 'canary changed',
  rollout_ended: 'canary ended',
  rolled_back: 'rolled back',
  promoted: 'promoted',
};

function pct(v: number): string {
  return `${(v * 100).toFixed(1)}%`;
}

function signed(v: number): string {
  return `${v >= 0 ? '+' : '−'}${Math.abs(v * 100).toFixed(1)} pts`;
}

/** The comparison as a table plus the difference line: what every decision shows first. */
export function ComparisonTable({ comparison, candidate = 'canary' }: { comparison: Comparison; candidate?: string }) {
  const c = comparison;
  const verdict = VERDICT[c.verdict];
  return (
    <div className="comparison">
      <table className="data-table" aria-label="Canary comparison">
        <thead>
          <tr>
            <th scope="col">Arm</th>
            <th scope="col">Version</th>
            <th scope="col">Runs</th>
            <th scope="col">Rewarded</th>
            <th scope="col">Reward (95% CI)</th>
            <th scope="col">Mean cost</th>
            <th scope="col">Mean steps</th>
          </tr>
        </thead>
        <tbody>
          {c.arms.map((arm, i) => (
            <tr key={arm.version + i}>
              <th scope="row">{i === 0 ? 'baseline' : candidate}</th>
              <td>{arm.version === 'none' ? 'own prompt' : arm.version}</td>
              <td>{formatNumber(arm.runs)}</td>
              <td>{formatNumber(arm.rewarded)}</td>
              <td>{arm.reward ? `${pct(arm.reward.value)} [${pct(arm.reward.low)}, ${pct(arm.reward.high)}]` : '—'}</td>
              <td>{arm.meanCostUsd != null ? `$${arm.meanCostUsd.toFixed(4)}` : '—'}</td>
              <td>{arm.meanSteps != null ? arm.meanSteps.toFixed(1) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="comparison-verdict">
        <Badge tone={verdict.tone}>{verdict.text.replace('canary', candidate)}</Badge>{' '}
        {c.difference ? (
          <span>
            {candidate} − baseline {signed(c.difference.estimate)} (always-valid 95% CI {signed(c.difference.low)} to{' '}
            {signed(c.difference.high)}, p = {c.difference.pValue.toFixed(4)})
          </span>
        ) : (
          <span className="muted">no rewarded runs in both arms yet</span>
        )}
      </p>
      <p className="muted small">
        Reward: {c.reward}. mSPRT with alpha {c.method.alpha}, tau {c.method.tau}; no verdict before {c.method.minRuns} rewarded runs
        per arm. Looking often does not inflate false positives.
      </p>
    </div>
  );
}

const SERIES_CLASS = ['series-baseline', 'series-canary'];

/** Reward over time per version, each bucket with its 95 % interval (as error bars). */
export function RewardChart({ series, since, until, reward }: { series: Series[]; since: number; until: number; reward: string }) {
  const [w, h, left, bottom, top] = [560, 180, 40, 24, 8];
  const x = (t: number) => left + ((t - since) / Math.max(1, until - since)) * (w - left - 8);
  const values = series.flatMap((s) => s.points.flatMap((p) => [p.low, p.high]));
  const [lo, hi] = reward === 'success' ? [0, 1] : [Math.min(0, ...values), Math.max(1, ...values)];
  const y = (v: number) => top + (1 - (v - lo) / Math.max(1e-9, hi - lo)) * (h - top - bottom);
  const summary = series
    .map((s) => {
      const last = s.points[s.points.length - 1];
      return `version ${s.version}: ${s.points.length} buckets${last ? `, latest ${last.value.toFixed(2)} [${last.low.toFixed(2)}, ${last.high.toFixed(2)}] over ${last.n} runs` : ''}`;
    })
    .join('; ');
  return (
    <figure className="reward-chart">
      <svg viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`Reward over time per version (${reward}): ${summary}`}>
        <line className="axis" x1={left} x2={w - 8} y1={y(lo)} y2={y(lo)} />
        <line className="axis" x1={left} x2={left} y1={top} y2={h - bottom} />
        <text x={4} y={y(hi) + 4} className="tick">
          {hi.toFixed(1)}
        </text>
        <text x={4} y={y(lo)} className="tick">
          {lo.toFixed(1)}
        </text>
        {series.map((s, i) => (
          <g key={s.version} className={SERIES_CLASS[i] ?? 'series-canary'}>
            <polyline fill="none" points={s.points.map((p) => `${x(p.at)},${y(p.value)}`).join(' ')} />
            {s.points.map((p) => (
              <g key={p.at}>
                <line x1={x(p.at)} x2={x(p.at)} y1={y(p.low)} y2={y(p.high)} />
                <circle cx={x(p.at)} cy={y(p.value)} r={3}>
                  <title>{`version ${s.version}: ${p.value.toFixed(3)} [${p.low.toFixed(3)}, ${p.high.toFixed(3)}], n = ${p.n}`}</title>
                </circle>
              </g>
            ))}
          </g>
        ))}
      </svg>
      <figcaption className="muted small">
        {series.map((s, i) => (
          <span key={s.version} className={SERIES_CLASS[i] ?? 'series-canary'}>
            {i === 0 ? 'baseline' : 'canary'} {s.version === 'none' ? 'own prompt' : `v${s.version}`}{' '}
          </span>
        ))}
        — each point a time bucket of the runs since the canary started, with its 95% interval (not always-valid: the
        difference above is the one to decide on).
      </figcaption>
    </figure>
  );
}

/** The chart of the canary's arms since it started: the collector aggregates every run. */
function RolloutChart({ agentId, status }: { agentId: string; status: RolloutStatus }) {
  const api = useApi();
  const since = status.rollout.startedAt;
  const series = useAsync(
    (signal) => api.rewardSeries(agentId, { buckets: 12 }, signal),
    `rollout-series:${agentId}:${since}:${status.comparison.arms.map((a) => a.runs).join(',')}`,
  );
  if (series.error) return <ErrorBox error={series.error} onRetry={series.reload} />;
  if (!series.data) return null;
  const versions = status.comparison.arms.map((a) => a.version);
  const start = Date.parse(series.data.since);
  const until = Math.max(start + 1, Date.parse(series.data.until));
  return <RewardChart series={chartSeries(series.data, versions)} since={start} until={until} reward={series.data.reward} />;
}

/**
 * Promoting any version shows its evidence first: the canary's live comparison when the version
 * is in canary, else the version's runs against the promoted version's (or the agent's own
 * prompt's). The collector stores its comparison at the moment of the decision with the event.
 */
export function PromoteDialog({
  agentId,
  version,
  prompts,
  onDone,
  onCancel,
}: {
  agentId: string;
  version: number;
  prompts: Prompt[];
  onDone: () => void;
  onCancel: () => void;
}) {
  const api = useApi();
  const baseline = prompts.find((p) => p.promoted)?.version ?? null;
  const evidence = useAsync(async (signal) => {
    const active = await api.rollout(agentId, signal);
    if (active && active.rollout.version === version) return { comparison: active.comparison, canary: true };
    const comparison = await api.compare(agentId, { versions: `${baseline ?? 'none'},${version}` }, signal);
    return { comparison, canary: false };
  }, `promote-evidence:${agentId}:${version}:${baseline ?? 'none'}`);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.promote(agentId, version, { actor: 'dashboard', ...(reason.trim() ? { reason: reason.trim() } : {}) });
      onDone();
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setBusy(false);
    }
  };
  const c = evidence.data?.comparison;
  return (
    <div className="confirm" role="alertdialog" aria-labelledby={`promote-${version}-title`}>
      <h3 id={`promote-${version}-title`}>{`Promote version ${version}?`}</h3>
      {evidence.error ? (
        <ErrorBox error={evidence.error} onRetry={evidence.reload} />
      ) : !c ? (
        <p className="muted">Loading the comparison…</p>
      ) : (
        <>
          <p>
            {evidence.data?.canary
              ? 'The canary against its baseline since the rollout began'
              : `Version ${version}'s runs against ${baseline !== null ? `promoted version ${baseline}` : "the agent's own prompt"}`}
            ; the collector stores its comparison at the moment you confirm with the decision:
          </p>
          <ComparisonTable comparison={c} candidate={evidence.data?.canary ? 'canary' : 'candidate'} />
          {c.verdict !== 'better' && (
            <p className="warning" role="note">
              Version {version} is not significantly better ({VERDICT[c.verdict].text.replace('canary', evidence.data?.canary ? 'canary' : 'candidate')}).
            </p>
          )}
        </>
      )}
      {error && <ErrorBox error={error} />}
      <label>
        Reason (optional)
        <input type="text" value={reason} maxLength={4096} onChange={(e) => setReason(e.target.value)} />
      </label>
      <div className="toolbar">
        <button type="button" className="primary" disabled={busy || !c} onClick={() => void confirm()}>
          Confirm promote
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </div>
  );
}

type Pending = { kind: 'promote' | 'rollback'; status: RolloutStatus };

export function RolloutPanel({ agentId, prompts, onChange }: { agentId: string; prompts: Prompt[]; onChange: () => void }) {
  const api = useApi();
  // a promotion elsewhere on the page (a version's Promote…) changes the rollout and history
  const promotedVersion = prompts.find((p) => p.promoted)?.version ?? 'none';
  const status = useAsync((signal) => api.rollout(agentId, signal), `rollout:${agentId}:${promotedVersion}`);
  const events = useAsync((signal) => api.promptEvents(agentId, signal), `prompt-events:${agentId}:${promotedVersion}`);
  const [version, setVersion] = useState<number | ''>('');
  const [percent, setPercent] = useState('10');
  const [autoRollback, setAutoRollback] = useState(true);
  const [pending, setPending] = useState<Pending | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);

  const reloadAll = () => {
    status.reload();
    events.reload();
    onChange();
  };
  const act = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      setPending(null);
      reloadAll();
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setBusy(false);
    }
  };

  const candidates = prompts.filter((p) => !p.promoted);
  const active = status.data ?? null;
  const history = events.data?.events ?? [];

  return (
    <section className="card rollout" aria-labelledby="rollout-title">
      <div className="section-head">
        <h2 id="rollout-title">Canary rollout</h2>
        <button type="button" onClick={reloadAll}>
          Refresh comparison
        </button>
      </div>
      {error && <ErrorBox error={error} />}
      {status.error && <ErrorBox error={status.error} onRetry={status.reload} />}
      {active ? (
        <div>
          <p>
            Version {active.rollout.version} serves {active.rollout.percent}% of units beside{' '}
            {active.rollout.baselineVersion !== null ? `promoted version ${active.rollout.baselineVersion}` : "the agent's own prompt"} since{' '}
            {formatDateTime(active.rollout.startedAt)}
            {active.rollout.autoRollback ? ' · automatic rollback on' : ''}.
          </p>
          <ComparisonTable comparison={active.comparison} />
          <RolloutChart agentId={agentId} status={active} />
          {pending ? (
            <div className="confirm" role="alertdialog" aria-labelledby="confirm-title">
              <h3 id="confirm-title">
                {pending.kind === 'promote' ? `Promote version ${pending.status.rollout.version}?` : `Roll back version ${pending.status.rollout.version}?`}
              </h3>
              <p>The comparison now; the collector stores its comparison at the moment you confirm with the decision:</p>
              <ComparisonTable comparison={pending.status.comparison} />
              {pending.kind === 'promote' && pending.status.comparison.verdict !== 'better' && (
                <p className="warning" role="note">
                  The canary is not significantly better ({VERDICT[pending.status.comparison.verdict].text}).
                </p>
              )}
              <div className="toolbar">
                <button
                  type="button"
                  className="primary"
                  disabled={busy}
                  onClick={() =>
                    void act(() =>
                      pending.kind === 'promote'
                        ? api.promote(agentId, pending.status.rollout.version, { actor: 'dashboard' })
                        : api.endRollout(agentId, pending.status.rollout.version, true, 'dashboard'),
                    )
                  }
                >
                  {pending.kind === 'promote' ? 'Confirm promote' : 'Confirm rollback'}
                </button>
                <button type="button" onClick={() => setPending(null)}>
                  Cancel
                </button>
              </div>
            </div>
          ) : (
            <div className="toolbar">
              <button type="button" className="primary" onClick={() => setPending({ kind: 'promote', status: active })}>
                Promote canary…
              </button>
              <button type="button" onClick={() => setPending({ kind: 'rollback', status: active })}>
                Roll back…
              </button>
            </div>
          )}
        </div>
      ) : candidates.length === 0 ? (
        <p className="muted">No candidate version to canary: register one (lightning optimize) first.</p>
      ) : (
        <form
          className="filters"
          onSubmit={(e) => {
            e.preventDefault();
            if (version === '') return;
            const p = Number(percent);
            void act(() => api.startRollout(agentId, version, { percent: p, autoRollback, actor: 'dashboard' }));
          }}
        >
          <label>
            Version
            <select value={version} onChange={(e) => setVersion(e.target.value === '' ? '' : Number(e.target.value))}>
              <option value="">choose…</option>
              {candidates.map((p) => (
                <option key={p.version} value={p.version}>
                  {p.version}
                </option>
              ))}
            </select>
          </label>
          <label>
            Percent of units
            <input className="narrow" type="number" min={0} max={100} step="any" value={percent} onChange={(e) => setPercent(e.target.value)} />
          </label>
          <label className="checkbox">
            <input type="checkbox" checked={autoRollback} onChange={(e) => setAutoRollback(e.target.checked)} /> Roll back automatically when
            significantly worse
          </label>
          <button type="submit" className="primary" disabled={version === '' || busy}>
            Start canary
          </button>
        </form>
      )}
      <h3>Decisions</h3>
      {history.length === 0 ? (
        <p className="muted">No decisions recorded yet.</p>
      ) : (
        <ol className="event-list" aria-label="Prompt decisions">
          {history.map((e) => (
            <li key={e.id}>
              <span className="muted small">{formatDateTime(e.createdAt)}</span> <strong>{EVENT[e.kind]}</strong>
              {e.version !== null ? ` version ${e.version}` : ''}
              {e.percent !== null && e.kind !== 'promoted' ? ` at ${e.percent}%` : ''} by {e.actor}
              {e.reason ? ` — ${e.reason}` : ''}
              {e.evidence ? ` (evidence: ${VERDICT[e.evidence.verdict].text})` : ''}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
