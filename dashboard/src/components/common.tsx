import type { ReactNode } from 'react';
import { ApiError } from '../lib/api';
import type { Status } from '../lib/types';

export function StatusBadge({ status, success }: { status: Status | string; success?: boolean | null }) {
  const label = status === 'running' ? 'Running' : status === 'succeeded' || success === true ? 'Succeeded' : status === 'failed' || success === false ? 'Failed' : status;
  const tone = status === 'running' ? 'info' : label === 'Succeeded' ? 'ok' : label === 'Failed' ? 'bad' : 'neutral';
  return <span className={`badge badge-${tone}`}>{label}</span>;
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
