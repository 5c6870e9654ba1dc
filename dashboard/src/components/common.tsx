import type { ReactNode } from 'react';
import { ApiError } from '../lib/api';
import type { Status } from '../lib/types';

const STATUS_TITLES: Record<string, string> = {
  interrupted: 'The agent process ended (signal, exit or crash) before the agent finished',
  abandoned: 'No activity for the collector\'s idle time: the agent likely crashed before it could report',
};

export function StatusBadge({ status, success }: { status: Status | string; success?: boolean | null }) {
  let label: string;
  let tone: 'ok' | 'bad' | 'info' | 'warn' | 'neutral';
  if (status === 'running') [label, tone] = ['Running', 'info'];
  else if (status === 'interrupted') [label, tone] = ['Interrupted', 'warn'];
  else if (status === 'abandoned') [label, tone] = ['Abandoned', 'warn'];
  else if (status === 'succeeded' || (status !== 'failed' && success === true)) [label, tone] = ['Succeeded', 'ok'];
  else if (status === 'failed' || success === false) [label, tone] = ['Failed', 'bad'];
  else [label, tone] = [status, 'neutral'];
  return (
    <span className={`badge badge-${tone}`} title={STATUS_TITLES[status]}>
      {label}
    </span>
  );
}

export function Badge({ tone = 'neutral', children, title }: { tone?: 'ok' | 'bad' | 'info' | 'warn' | 'neutral' | 'accent'; children: ReactNode; title?: string }) {
  return (
    <span className={`badge badge-${tone}`} title={title}>
      {children}
    </span>
  );
}

export function ErrorBox({ error, onRetry }: { error: Error; onRetry?: () => void }) {
  const status = error instanceof ApiError && error.status ? ` (${error.status})` : '';
  return (
    <div className="error-box" role="alert">
      <strong>Could not load{status}.</strong> <span>{error.message}</span>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <p className="empty-title">{title}</p>
      {children && <div className="muted">{children}</div>}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="loading muted" role="status" aria-live="polite">
      {label}
    </p>
  );
}

export function StatCard({ label, value, hint }: { label: string; value: ReactNode; hint?: ReactNode }) {
  return (
    <div className="stat card">
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
      {hint && <div className="stat-hint muted">{hint}</div>}
    </div>
  );
}

/** Pre-formatted text. Content is always rendered as a text node, never parsed as HTML. */
export function CodeBlock({ text, label, tone }: { text: string; label?: string; tone?: 'error' }) {
  return (
    <pre className={`code${tone === 'error' ? ' code-error' : ''}`} aria-label={label} tabIndex={0}>
      {text}
    </pre>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="page-header">
      <h1>{title}</h1>
      {children && <div className="page-actions">{children}</div>}
    </div>
  );
}
