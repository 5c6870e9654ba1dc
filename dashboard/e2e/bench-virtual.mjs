// Benchmark of the virtualized step list on a 10,000-step trajectory, in Debian's headless
// Chromium against a real `lightning serve`: the scroll jump when a row above the viewport is
// re-measured (px), page render time and a long scroll (wall ms, and main-thread busy ms: the
// long scroll is paced by animation frames, so its wall time is mostly the display's frame rate). Several builds of the dashboard can be
// compared; their runs are interleaved (A B A B ...) so that machine load hits them alike.
// Prints figures; asserts nothing. Usage:
//   npm run bench:virtual [-- --runs 7 --dist dist --dist /tmp/other-build]
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { launch, newPage } from './lib/browser.mjs';
import { distDir, seedBulk, startServer } from './lib/server.mjs';
import { longScroll, reanchorJump } from './lib/virtual.mjs';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '7' },
    dist: { type: 'string', multiple: true },
  },
});
const STEPS = Number(values.steps);
const RUNS = Number(values.runs);
const dists = (values.dist ?? [distDir]).map((d) => resolve(d));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** 95% percentile-bootstrap interval of median(xs) / median(base), resampling both (seeded). */
function ratioInterval(xs, base, resamples = 2000) {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const pick = (v) => v.map(() => v[Math.floor(rand() * v.length)]);
  const rs = Array.from({ length: resamples }, () => median(pick(xs)) / median(pick(base))).sort((a, b) => a - b);
  return [rs[Math.floor(resamples * 0.025)], rs[Math.floor(resamples * 0.975)]];
}

/** One measurement on a fresh browser context: returns the figures of this run. */
async function measure(browser, server, id) {
  const s = await newPage(browser);
  const { page } = s;
  // Main-thread busy time (Chromium's TaskDuration) does not depend on the display's frame rate,
  // which bounds any rAF-paced wall time.
  const cdp = await s.context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const busy = async () => 1000 * (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'TaskDuration').value;
  await page.goto(`${server.url}/`);
  await page.evaluate((key) => localStorage.setItem('lightning.apiKey', key), server.key);
  await page.goto(`${server.url}/live`);
  await page.getByRole('heading', { name: 'Live', level: 1 }).waitFor();
  const busy0 = await busy();
  const start = await page.evaluate(() => performance.now());
  await page.evaluate((href) => {
    window.history.pushState(null, '', href);
    window.dispatchEvent(new PopStateEvent('popstate'));
  }, `/trajectories/${id}`);
  const list = page.getByRole('list', { name: `Steps (${STEPS.toLocaleString('en-US')})` });
  await list.getByRole('button', { name: /#0 / }).waitFor({ timeout: 60_000 });
  const idle = await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now())))));
  const render = idle - start;
  const renderBusy = (await busy()) - busy0;
  const busy1 = await busy();
  const scroll = await longScroll(page, 40);
  const scrollBusy = (await busy()) - busy1;
  const jump = await reanchorJump(page, { fraction: 0.5 });
  if (s.problems.length) throw new Error(`page errors: ${s.problems.join('\n')}`);
  await s.context.close();
  return { render, renderBusy, scroll, scrollBusy, jump: jump.moved, grewBy: jump.grewBy };
}

const servers = [];
const chrome = await launch();
try {
  for (const dist of dists) {
    const server = await startServer({ dist });
    servers.push({ dist, server, id: await seedBulk(server.api, STEPS), figures: { render: [], renderBusy: [], scroll: [], scrollBusy: [], jump: [], grewBy: [] } });
  }
  // One warm-up run per build (not counted), then interleaved runs.
  for (const s of servers) await measure(chrome.browser, s.server, s.id);
  for (let run = 0; run < RUNS; run++) {
    for (const s of servers) {
      const r = await measure(chrome.browser, s.server, s.id);
      for (const k of Object.keys(s.figures)) s.figures[k].push(r[k]);
      process.stderr.write('.');
    }
  }
  process.stderr.write('\n');
  const cell = (xs, digits) => `${median(xs).toFixed(digits).padStart(7)} [${Math.min(...xs).toFixed(digits)} – ${Math.max(...xs).toFixed(digits)}]`;
  console.log(`\nVirtual list, ${STEPS} steps, n = ${RUNS} interleaved runs per build, median [min – max], headless Chromium`);
  for (const s of servers) {
    const f = s.figures;
    console.log(`  ${s.dist}`);
    console.log(`    first visible row moved when a row above grew (px)  ${cell(f.jump, 1)}   (row grew by ${cell(f.grewBy, 0)} px)`);
    console.log(`    navigate → rendered and idle (ms)                  ${cell(f.render, 0)}`);
    console.log(`      main thread busy meanwhile (ms)                  ${cell(f.renderBusy, 0)}`);
    console.log(`    long scroll, 41 positions × 2 frames (ms)          ${cell(f.scroll, 0)}`);
    console.log(`      main thread busy meanwhile (ms)                  ${cell(f.scrollBusy, 0)}`);
  }
  if (servers.length > 1) {
    const base = servers[0].figures;
    const ratio = (k, s) => {
      const [lo, hi] = ratioInterval(s.figures[k], base[k]);
      return `${(median(s.figures[k]) / median(base[k])).toFixed(2)} [${lo.toFixed(2)} – ${hi.toFixed(2)}]`;
    };
    console.log(`  ratios of medians against ${servers[0].dist}, [95% bootstrap interval]:`);
    for (const s of servers.slice(1)) {
      console.log(`    ${s.dist}: render ${ratio('render', s)}, render busy ${ratio('renderBusy', s)}, long scroll busy ${ratio('scrollBusy', s)}`);
    }
  }
} finally {
  await chrome.close();
  for (const s of servers) await s.server.stop();
}
