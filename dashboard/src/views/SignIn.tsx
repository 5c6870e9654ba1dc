import { useId, useState, type FormEvent } from 'react';
import { ApiError, verifyKey } from '../lib/api';

export function SignIn({ onSignedIn, notice }: { onSignedIn: (key: string, remember: boolean) => void; notice: string | null }) {
  const [key, setKey] = useState('');
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const inputId = useId();
  const errorId = useId();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) {
      setError('Enter the API key the collector was started with.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await verifyKey(trimmed);
      onSignedIn(trimmed, remember);
    } catch (err) {
      if (err instanceof ApiError && err.unauthorized) {
        setError('Wrong API key: the collector answered 401 Unauthorized. Use the key given to `lightning serve --api-key` (or API_KEY), or a `read` key from `lightning keys create`.');
      } else if (err instanceof ApiError) {
        setError(`Could not sign in: ${err.message}`);
      } else {
        setError(`Could not sign in: ${err instanceof Error ? err.message : String(err)}`);
      }
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={submit} noValidate aria-labelledby="signin-title">
        <div className="brand brand-large" aria-hidden="true">
          <span className="brand-mark">⚡</span> Agent Lightning
        </div>
        <h1 id="signin-title">Sign in</h1>
        <p className="muted">Enter the collector's API key (a <code>read</code> key is enough to browse). It is kept in this tab only, unless you choose to remember it.</p>
        {notice && !error && (
          <p className="notice" role="status">
            {notice}
          </p>
        )}
        <label htmlFor={inputId}>API key</label>
        <input
          id={inputId}
          name="apiKey"
          type="password"
          autoComplete="current-password"
          autoFocus
          value={key}
          onChange={(e) => setKey(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? errorId : undefined}
        />
        <label className="checkbox">
          <input type="checkbox" name="remember" checked={remember} onChange={(e) => setRemember(e.target.checked)} />
          Remember on this device
        </label>
        {error && (
          <p id={errorId} className="form-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
