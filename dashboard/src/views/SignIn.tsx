import { useId, useState, type FormEvent } from 'react';
import { ApiError, verifyKey } from '../lib/api';

export function SignIn({ onSignedIn, notice }: { onSignedIn: (key: string) => void; notice: string | null }) {
  const [key, setKey] = useState('');
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
      onSignedIn(trimmed);
    } catch (err) {
      if (err instanceof ApiError && err.unauthorized) {
        setError('Wrong API key: the collector answered 401 Unauthorized. Use the key given to `lightning serve --api-key` (or API_KEY).');
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
        <p className="muted">Enter the collector's API key. It is kept in this browser only.</p>
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
