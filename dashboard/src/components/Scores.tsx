import { useState } from 'react';
import { ApiError, type Api } from '../lib/api';
import { DASH, formatDateTime, formatNumber } from '../lib/format';
import type { Score, ScoreStats, ScoreValue, Step } from '../lib/types';
import { Badge, EmptyState } from './common';

/** The score name the dashboard's thumbs are stored under (boolean, source `human`). */
export const THUMBS = 'thumbs';

/** A score's value as text: 👍/👎 for thumbs, true/false, the label, or the number. */
export function formatScoreValue(name: string, value: ScoreValue | undefined): string {
  if (value === undefined) return DASH;
  if (typeof value === 'boolean') return name === THUMBS ? (value ? '👍 up' : '👎 down') : String(value);
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(3);
  return value;
}

/** The value of `name` for a trajectory (its latest trajectory-level score, else a step's). */
export function scoreFor(scores: Score[], trajectoryId: string, name: string): Score | undefined {
  let best: Score | undefined;
  for (const s of scores) {
    if (s.trajectoryId !== trajectoryId || s.name !== name) continue;
    if (!best || (best.stepNumber !== null && s.stepNumber === null) || (s.stepNumber === best.stepNumber && s.updatedAt > best.updatedAt)) best = s;
  }
  return best;
}

const VOTER_STORAGE = 'lightning.voter';

function randomToken(): string {
  const c = globalThis.crypto;
  if (c && 'randomUUID' in c) return c.randomUUID().replace(/-/g, '').slice(0, 16);
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}

/** This browser's voter id, kept in localStorage so a person's later votes replace earlier ones. */
export function voterId(storage: Pick<Storage, 'getItem' | 'setItem'> | null = safeLocalStorage()): string {
  const stored = storage?.getItem(VOTER_STORAGE);
  if (stored && /^[A-Za-z0-9]{1,32}$/.test(stored)) return stored;
  const fresh = randomToken();
  try {
    storage?.setItem(VOTER_STORAGE, fresh);
  } catch {
    // storage full or disabled: votes of this page still replace each other
  }
  return fresh;
}

function safeLocalStorage(): Storage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

/**
 * The score id of one person's thumbs on one target (the trajectory, or one step): the same
 * for every vote they cast there, so the collector updates the score (the newest vote wins)
 * instead of adding one. Fits the id rule `[A-Za-z0-9_.:-]{1,128}`.
 */
export function feedbackId(voter: string, trajectoryId: string, stepNumber: number | undefined): string {
  return `dash:${voter}:${trajectoryId}:${stepNumber === undefined ? 't' : `s${stepNumber}`}`;
}

/** A clear message for a failed feedback call; a 403 says which key it takes. */
export function feedbackError(e: unknown, action: 'save' | 'delete'): string {
  if (e instanceof ApiError && e.forbidden) {
    return action === 'save'
      ? 'This key cannot save feedback: posting a score needs the ingest scope, and the dashboard also needs read, so sign in with an admin key. A read key can only view scores.'
      : 'This key cannot delete scores: deleting needs an admin key.';
  }
  return e instanceof Error ? e.message : String(e);
}

/** Every score of a trajectory with its source and comment (comments rendered as text). */
export function ScoreTable({ scores, onDelete }: { scores: Score[]; onDelete?: (s: Score) => void }) {
  if (scores.length === 0) return <EmptyState title="No scores yet">Add feedback below, or grade runs with lightning grade.</EmptyState>;
  return (
    <div className="table-scroll">
      <table className="table compact scores-table">
        <caption className="sr-only">Scores</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Value</th>
            <th scope="col">Source</th>
            <th scope="col">Target</th>
            <th scope="col">Comment</th>
            <th scope="col">When</th>
            {onDelete && <th scope="col"><span className="sr-only">Actions</span></th>}
          </tr>
        </thead>
        <tbody>
          {scores.map((s) => (
            <tr key={s.id} data-score-id={s.id}>
              <th scope="row" className="mono">{s.name}</th>
              <td>{formatScoreValue(s.name, s.value)}</td>
              <td>
                <Badge tone={s.source === 'human' ? 'accent' : s.source === 'llm' ? 'info' : 'neutral'}>{s.source}</Badge>
              </td>
              <td>{s.stepNumber === null ? 'trajectory' : `step ${s.stepNumber}`}</td>
              <td className="score-comment">{s.comment || DASH}</td>
              <td className="small">{formatDateTime(s.updatedAt)}</td>
              {onDelete && (
                <td>
                  <button type="button" className="link-button" onClick={() => onDelete(s)} aria-label={`Delete score ${s.name} ${formatScoreValue(s.name, s.value)}`}>
                    Delete
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Thumbs up/down and a comment on the trajectory or one of its steps, stored as `human`. */
export function FeedbackForm({ api, trajectoryId, steps, onSaved }: { api: Api; trajectoryId: string; steps: Step[]; onSaved: () => void }) {
  const [target, setTarget] = useState('');
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const send = (up: boolean) => {
    setBusy(true);
    setError(null);
    const stepNumber = target === '' ? undefined : Number(target);
    // The comment is always sent (empty when none) so a changed vote does not keep the old one.
    api
      .addScore(trajectoryId, { name: THUMBS, value: up, comment: comment.trim(), source: 'human', id: feedbackId(voterId(), trajectoryId, stepNumber), stepNumber })
      .then(() => {
        setComment('');
        onSaved();
      })
      .catch((e: unknown) => setError(feedbackError(e, 'save')))
      .finally(() => setBusy(false));
  };
  return (
    <form className="feedback" aria-label="Add feedback" onSubmit={(e) => e.preventDefault()}>
      <label className="inline-field">
        On{' '}
        <select value={target} onChange={(e) => setTarget(e.target.value)} aria-label="Feedback target">
          <option value="">the whole trajectory</option>
          {steps.map((s) => (
            <option key={s.stepNumber} value={String(s.stepNumber)}>
              step {s.stepNumber} · {s.toolName}
            </option>
          ))}
        </select>
      </label>
      <label className="feedback-comment">
        <span className="sr-only">Comment</span>
        <textarea rows={2} placeholder="What was good or wrong? (optional)" value={comment} onChange={(e) => setComment(e.target.value)} aria-label="Feedback comment" />
      </label>
      <div className="toolbar">
        <button type="button" disabled={busy} onClick={() => send(true)} aria-label="Thumbs up">
          👍 Good
        </button>
        <button type="button" disabled={busy} onClick={() => send(false)} aria-label="Thumbs down">
          👎 Bad
        </button>
      </div>
      {error && (
        <p className="bad-text" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

/** Count and mean per bucket of one score name, as bars (count) and a line (mean). */
export function ScoreChart({ stats }: { stats: ScoreStats }) {
  const points = stats.timeline;
  const width = 640;
  const height = 140;
  const pad = 28;
  const maxCount = Math.max(1, ...points.map((p) => p.count));
  const means = points.map((p) => p.mean).filter((m): m is number => m !== null);
  const lo = Math.min(0, ...means);
  const hi = Math.max(1, ...means);
  const x = (i: number) => pad + ((width - 2 * pad) * (i + 0.5)) / Math.max(1, points.length);
  const barW = Math.max(2, (width - 2 * pad) / Math.max(1, points.length) - 4);
  const yMean = (m: number) => height - pad - ((height - 2 * pad) * (m - lo)) / (hi - lo || 1);
  const line = points
    .map((p, i) => (p.mean == null ? null : `${x(i)},${yMean(p.mean)}`))
    .filter((v): v is string => v !== null)
    .join(' ');
  const summary =
    stats.mean !== null
      ? `mean ${formatScoreValue('', stats.mean)} over ${formatNumber(stats.count)} scores`
      : `${formatNumber(stats.count)} scores: ${stats.labels.map((l) => `${l.label} ${l.count}`).join(', ')}`;
  return (
    <figure className="score-chart">
      <figcaption>
        <span className="mono">{stats.name}</span> <span className="muted">({stats.dataType}) {summary}</span>
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${stats.name} over time: ${summary}`} width="100%" height={height}>
        {points.map((p, i) => {
          const h = ((height - 2 * pad) * p.count) / maxCount;
          return (
            <rect key={p.bucket} x={x(i) - barW / 2} y={height - pad - h} width={barW} height={h} className="score-bar">
              <title>{`${formatDateTime(p.bucket)}: ${p.count} scores${p.mean != null ? `, mean ${p.mean.toFixed(3)}` : ''}`}</title>
            </rect>
          );
        })}
        {line && <polyline points={line} className="score-line" fill="none" />}
        <line x1={pad} x2={width - pad} y1={height - pad} y2={height - pad} className="axis" />
      </svg>
      {stats.byPromptVersion.length > 1 && (
        <p className="small muted">
          By prompt version:{' '}
          {stats.byPromptVersion
            .map((v) => `${v.promptVersion ?? 'none'}: ${v.mean != null ? v.mean.toFixed(3) : v.labels.map((l) => `${l.label} ${l.count}`).join('/')} (n=${v.count})`)
            .join(' · ')}
        </p>
      )}
    </figure>
  );
}
