import { useEffect, useState, type AnchorHTMLAttributes, type MouseEvent } from 'react';

/** Minimal History-API router: the collector serves index.html for every non-API path. */

export interface Location {
  path: string;
  search: URLSearchParams;
}

const listeners = new Set<() => void>();

function current(): Location {
  return { path: window.location.pathname, search: new URLSearchParams(window.location.search) };
}

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === window.location.pathname + window.location.search) return;
  if (options.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  for (const listener of listeners) listener();
}

export function useLocation(): Location {
  const [location, setLocation] = useState(current);
  useEffect(() => {
    const update = () => setLocation(current());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return location;
}

/** Replace the query string of the current path (keeps history clean while filtering). */
export function setSearch(params: Record<string, string | null | undefined>): void {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) search.set(name, value);
  const text = search.toString();
  navigate(window.location.pathname + (text ? `?${text}` : ''), { replace: true });
}

export function Link({ href, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const handle = (event: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(event);
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey)
      return;
    event.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={handle} {...rest} />;
}

export type Route =
  | { name: 'overview' }
  | { name: 'trajectories' }
  | { name: 'trajectory'; id: string }
  | { name: 'live' }
  | { name: 'optimization' }
  | { name: 'run'; id: string }
  | { name: 'prompts'; agentId: string }
  | { name: 'notFound' };

export function matchRoute(path: string): Route {
  const parts = path.replace(/\/+$/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [a, b, c, ...rest] = parts;
  if (parts.length === 0) return { name: 'overview' };
  if (a === 'trajectories' && parts.length === 1) return { name: 'trajectories' };
  if (a === 'trajectories' && b && parts.length === 2) return { name: 'trajectory', id: b };
  if (a === 'live' && parts.length === 1) return { name: 'live' };
  if (a === 'optimization' && parts.length === 1) return { name: 'optimization' };
  if (a === 'optimization' && b === 'runs' && c && rest.length === 0) return { name: 'run', id: c };
  if (a === 'optimization' && b === 'prompts' && c && rest.length === 0) return { name: 'prompts', agentId: c };
  return { name: 'notFound' };
}
