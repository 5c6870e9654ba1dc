import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from 'react';
import { Api, KEY_STORAGE } from './lib/api';

interface AuthValue {
  api: Api;
  signOut: (reason?: string) => void;
}

const AuthContext = createContext<AuthValue | null>(null);

export function useApi(): Api {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useApi must be used inside <AuthProvider>');
  return value.api;
}

export function useSignOut(): (reason?: string) => void {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useSignOut must be used inside <AuthProvider>');
  return value.signOut;
}

/**
 * The key lives in sessionStorage (gone when the tab closes) unless the user chose
 * "Remember on this device", which keeps it in localStorage.
 */
export function readStoredKey(): string | null {
  try {
    return window.sessionStorage.getItem(KEY_STORAGE) ?? window.localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function storeKey(key: string | null, remember = false): void {
  try {
    window.sessionStorage.removeItem(KEY_STORAGE);
    window.localStorage.removeItem(KEY_STORAGE);
    if (key !== null) (remember ? window.localStorage : window.sessionStorage).setItem(KEY_STORAGE, key);
  } catch {
    /* storage unavailable (private mode): the session just won't persist */
  }
}

export interface SessionState {
  key: string | null;
  notice: string | null;
}

export function useSession() {
  const [state, setState] = useState<SessionState>(() => ({ key: readStoredKey(), notice: null }));
  const signIn = useCallback((key: string, remember = false) => {
    storeKey(key, remember);
    setState({ key, notice: null });
  }, []);
  const signOut = useCallback((notice?: string) => {
    storeKey(null);
    setState({ key: null, notice: notice ?? null });
  }, []);
  return { ...state, signIn, signOut };
}

export function AuthProvider({
  apiKey,
  signOut,
  children,
  api: injected,
}: {
  apiKey: string;
  signOut: (reason?: string) => void;
  children: ReactNode;
  api?: Api;
}) {
  const value = useMemo<AuthValue>(() => {
    const api = injected ?? new Api(apiKey);
    api.onUnauthorized = () => signOut('The collector no longer accepts this API key. Sign in again.');
    return { api, signOut };
  }, [apiKey, signOut, injected]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}
