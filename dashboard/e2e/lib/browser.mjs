// Debian's headless Chromium driven by playwright-core (no browser download). playwright-core
// gives every launch a fresh temporary --user-data-dir of its own (it refuses one passed in args).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { repoDir } from './server.mjs';

export const screenshotDir = join(repoDir, 'artifacts', 'screenshots');

export async function launch() {
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  mkdirSync(screenshotDir, { recursive: true });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

/**
 * A page that records console errors and uncaught exceptions. `allow(pattern)` permits an
 * expected browser message (e.g. the network log of a deliberate 401) for the current test.
 */
export async function newPage(browser, { colorScheme = 'light', viewport = { width: 1400, height: 900 } } = {}) {
  const context = await browser.newContext({ colorScheme, viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  const allowed = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (allowed.some((re) => re.test(text))) return;
    problems.push(`console.error: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  return {
    page,
    context,
    problems,
    allow(re) {
      allowed.push(re);
    },
    clearAllowed() {
      allowed.length = 0;
    },
    async shot(name) {
      await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: false });
    },
  };
}
