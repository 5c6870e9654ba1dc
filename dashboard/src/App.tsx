import { useEffect, useState } from 'react';
import { AuthProvider, useSession } from './auth';
import type { Api } from './lib/api';
import { Link, matchRoute, useLocation, type Route } from './lib/router';
import { applyTheme, readTheme, type ThemeChoice } from './theme';
import { Live } from './views/Live';
import { Optimization, PromptVersions, RunDetail } from './views/Optimization';
import { Overview } from './views/Overview';
import { SignIn } from './views/SignIn';
import { TrajectoryDetail } from './views/TrajectoryDetail';
import { Trajectories } from './views/Trajectories';
import { EmptyState } from './components/common';

const NAV: { href: string; label: string; match: Route['name'][] }[] = [
  { href: '/', label: 'Overview', match: ['overview'] },
  { href: '/trajectories', label: 'Trajectories', match: ['trajectories', 'trajectory'] },
  { href: '/live', label: 'Live', match: ['live'] },
  { href: '/optimization', label: 'Optimization', match: ['optimization', 'run', 'prompts'] },
];

const TITLES: Record<Route['name'], string> = {
  overview: 'Overview',
  trajectories: 'Trajectories',
  trajectory: 'Trajectory',
  live: 'Live',
  optimization: 'Optimization',
  run: 'Optimization run',
  prompts: 'Prompt versions',
  notFound: 'Not found',
};

function Page({ route }: { route: Route }) {
  switch (route.name) {
    case 'overview':
      return <Overview />;
    case 'trajectories':
      return <Trajectories />;
    case 'trajectory':
      return <TrajectoryDetail key={route.id} id={route.id} />;
    case 'live':
      return <Live />;
    case 'optimization':
      return <Optimization />;
    case 'run':
      return <RunDetail key={route.id} id={route.id} />;
    case 'prompts':
      return <PromptVersions key={route.agentId} agentId={route.agentId} />;
    case 'notFound':
      return (
        <EmptyState title="Page not found">
          <Link href="/">Go to the overview</Link>
        </EmptyState>
      );
  }
}

function ThemeSelect() {
  const [theme, setTheme] = useState<ThemeChoice>(readTheme);
  useEffect(() => applyTheme(theme), [theme]);
  return (
    <label className="theme-select">
      <span className="sr-only">Color theme</span>
      <select value={theme} onChange={(e) => setTheme(e.target.value as ThemeChoice)} aria-label="Color theme">
        <option value="system">System theme</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}

export function App({ api }: { api?: Api } = {}) {
  const session = useSession();
  const { path } = useLocation();
  const route = matchRoute(path);

  useEffect(() => {
    document.title = session.key ? `${TITLES[route.name]} · Agent Lightning` : 'Sign in · Agent Lightning';
  }, [route.name, session.key]);

  if (!session.key) {
    return (
      <>
        <div className="signin-theme">
          <ThemeSelect />
        </div>
        <SignIn onSignedIn={session.signIn} notice={session.notice} />
      </>
    );
  }

  return (
    <AuthProvider apiKey={session.key} signOut={session.signOut} api={api}>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link href="/" className="brand" aria-label="Agent Lightning, overview">
          <span className="brand-mark" aria-hidden="true">⚡</span> Agent Lightning
        </Link>
        <nav aria-label="Main" className="mainnav">
          {NAV.map((item) => (
            <Link key={item.href} href={item.href} aria-current={item.match.includes(route.name) ? 'page' : undefined}>
              {item.label}
            </Link>
          ))}
        </nav>
        <div className="topbar-end">
          <ThemeSelect />
          <button type="button" onClick={() => session.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
    </AuthProvider>
  );
}
