// Benchmark: how quickly a 10,000-step trajectory becomes usable in the dashboard, measured in
// Debian's headless Chromium against a real `lightning serve`. Prints figures; asserts nothing
// about wall time. Usage: npm run bench [-- --steps 10000 --runs 5]
import { parseArgs } from 'node:util';
import { launch, newPage } from './lib/browser.mjs';
import { seedBulk, startServer } from './lib/server.mjs';

const { values } = parseArgs({ options: { steps: { type: 'string', default: '10000' }, runs: { type: 'string', default: '5' } } });
const STEPS = Number(values.steps);
const RUNS = Number(values.runs);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (ms) => `${ms.toFixed(0).padStart(6)} ms`;

const server = await startServer();
const chrome = await launch();
try {
  const t0 = performance.now();
  const id = await seedBulk(server.api, STEPS);
  const seedMs = performance.now() - t0;

  const apiTimes = [];
  for (let i = 0; i < RUNS; i++) {
    const a = performance.now();
    const res = await fetch(`${server.url}/api/trajectories/${id}`, { headers: { Authorization: `Bearer ${server.key}` } });
    await res.json();
    apiTimes.push(performance.now() - a);
  }

  const figures = { firstRow: [], fullyLoaded: [], jumpToEnd: [], expandLast: [], scroll: [], mounted: [], heapMb: [] };
  const label = `Steps (${STEPS.toLocaleString('en-US')})`;
  for (let run = 0; run < RUNS; run++) {
    const s = await newPage(chrome.browser);
    const { page } = s;
    await page.goto(`${server.url}/`);
    await page.evaluate((key) => localStorage.setItem('lightning.apiKey', key), server.key);
    await page.goto(`${server.url}/live`); // an app page that is not the one being measured
    await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor();

    // Navigate inside the app (as a click would) and time until the first step row is on screen.
    const start = await page.evaluate(() => performance.now());
    await page.evaluate((href) => {
      window.history.pushState(null, '', href);
      window.dispatchEvent(new PopStateEvent('popstate'));
    }, `/trajectories/${id}`);
    const list = page.getByRole('list', { name: label });
    await list.getByRole('button', { name: /#0 / }).waitFor({ timeout: 60_000 });
    const firstRow = (await page.evaluate(() => performance.now())) - start;
    // ... and until the main thread is idle again (two animation frames rendered).
    const idle = await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now())))));
    figures.firstRow.push(firstRow);
    figures.fullyLoaded.push(idle - start);

    // Keyboard: End jumps to the last step and focuses it.
    await list.getByRole('button', { name: /#0 / }).focus();
    const endAt = await page.evaluate(() => performance.now());
    await page.keyboard.press('End');
    await page.waitForFunction((last) => document.activeElement?.querySelector('.step-no')?.textContent === `#${last}`, STEPS - 1);
    figures.jumpToEnd.push((await page.evaluate(() => performance.now())) - endAt);

    const expandAt = await page.evaluate(() => performance.now());
    await page.keyboard.press('Enter');
    await list.getByLabel('Output').waitFor();
    figures.expandLast.push((await page.evaluate(() => performance.now())) - expandAt);

    // Scroll through the whole list in 40 jumps, waiting a frame each time.
    figures.scroll.push(
      await page.evaluate(async () => {
        const el = document.querySelector('.step-list');
        const a = performance.now();
        for (let i = 0; i <= 40; i++) {
          el.scrollTop = (el.scrollHeight * i) / 40;
          el.dispatchEvent(new Event('scroll'));
          await new Promise((r) => requestAnimationFrame(() => r()));
        }
        return (performance.now() - a) / 41;
      }),
    );
    figures.mounted.push(await list.getByRole('listitem').count());
    const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0);
    figures.heapMb.push(heap / 1024 / 1024);
    if (s.problems.length) throw new Error(`page errors: ${s.problems.join('\n')}`);
    await s.context.close();
  }

  console.log(`\n10,000-step benchmark (${STEPS} steps, ${RUNS} runs, median [min–max]) — headless Chromium, lightning serve on loopback`);
  console.log(`  seed via API (${STEPS / 1000} batches of 1000)  ${fmt(seedMs)}`);
  const row = (name, xs, unit = fmt) => console.log(`  ${name.padEnd(40)} ${unit(median(xs))}   [${unit(Math.min(...xs)).trim()} – ${unit(Math.max(...xs)).trim()}]`);
  row('GET /api/trajectories/{id} (fetch+parse)', apiTimes);
  row('navigate → first step row visible', figures.firstRow);
  row('navigate → rendered and idle', figures.fullyLoaded);
  row('End key → last step focused', figures.jumpToEnd);
  row('Enter → last step expanded', figures.expandLast);
  row('scroll jump → next frame (mean of 41)', figures.scroll, (v) => `${v.toFixed(1).padStart(6)} ms`);
  row('step rows mounted in the DOM', figures.mounted, (v) => `${String(Math.round(v)).padStart(6)}   `);
  row('JS heap after run', figures.heapMb, (v) => `${v.toFixed(1).padStart(6)} MB`);
} finally {
  await chrome.close();
  await server.stop();
}
