export type ThemeChoice = 'system' | 'light' | 'dark';
const STORAGE = 'lightning.theme';

export function readTheme(): ThemeChoice {
  try {
    const v = window.localStorage.getItem(STORAGE);
    return v === 'light' || v === 'dark' ? v : 'system';
  } catch {
    return 'system';
  }
}

export function applyTheme(choice: ThemeChoice): void {
  const root = document.documentElement;
  if (choice === 'system') root.removeAttribute('data-theme');
  else root.setAttribute('data-theme', choice);
  try {
    if (choice === 'system') window.localStorage.removeItem(STORAGE);
    else window.localStorage.setItem(STORAGE, choice);
  } catch {
    /* ignore */
  }
}
