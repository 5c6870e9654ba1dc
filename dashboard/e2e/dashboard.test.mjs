// End-to-end: a real `lightning serve` (filled through its HTTP API) and the built dashboard in
// Debian's headless Chromium. Every test fails on any console error or uncaught exception.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launch, newPage } from './lib/browser.mjs';
import { startFakeLlm } from './lib/fakeLlm.mjs';
import { reanchorJump } from './lib/virtual.mjs';
import { OPT_AGENT, OPT_START_PROMPT, runOptimize, seed, seedBulk, seedOptimizable, startServer, makeSteps } from './lib/server.mjs';

let server;
let chrome;
let ids;
let bulkId;
let session; // signed-in page shared by the tests that follow sign-in

async function expectNoProblems(s) {
  assert.deepEqual(s.problems, [], `page reported errors:\n${s.problems.join('\n')}`);
}

async function signIn(s, key) {
  await s.page.goto(`${server.url}/`);
  await s.page.getByLabel('API key').fill(key);
  await s.page.getByRole('button', { name: 'Sign in' }).click();
}

before(async () => {
  server = await startServer();
  ids = await seed(server.api);
  bulkId = await seedBulk(server.api, 10_000);
  chrome = await launch();
});

after(async () => {
  await session?.context.close();
  await chrome?.close();
  await server?.stop();
});

describe('dashboard against lightning serve', () => {
  it('serves the app with single-page fallback, and keeps /api/* out of it', async () => {
    const deep = await fetch(`${server.url}/trajectories/${ids.coder}`);
    assert.equal(deep.status, 200);
    assert.match(await deep.text(), /<div id="root">/);
    const api = await fetch(`${server.url}/api/definitely-not-a-route`, { headers: { Authorization: `Bearer ${server.key}` } });
    assert.equal(api.status, 404);
    assert.match(api.headers.get('content-type') ?? '', /json/);
  });

  it('rejects a wrong key with a clear message', async () => {
    const s = await newPage(chrome.browser);
    // The browser logs the deliberate 401 response; nothing else may be logged.
    s.allow(/Failed to load resource: the server responded with a status of 401/);
    await signIn(s, 'not-the-key');
    const alert = s.page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /Wrong API key.*401 Unauthorized/s);
    assert.equal(await s.page.getByLabel('API key').getAttribute('aria-invalid'), 'true');
    assert.equal(await s.page.evaluate(() => localStorage.getItem('lightning.apiKey')), null);
    await s.shot('01-wrong-key');
    await expectNoProblems(s);
    await s.context.close();
  });

  it('signs in and shows the overview', async () => {
    session = await newPage(chrome.browser);
    await signIn(session, server.key);
    const { page } = session;
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    // The key is kept for this tab only (no "remember on this device").
    assert.equal(await page.evaluate(() => sessionStorage.getItem('lightning.apiKey')), server.key);
    assert.equal(await page.evaluate(() => localStorage.getItem('lightning.apiKey')), null);
    await page.locator('.chart svg rect.bar-ok').first().waitFor();
    const trajectories = page.locator('.stat', { hasText: 'Trajectories' }).locator('.stat-value');
    assert.equal(await trajectories.innerText(), '11');
    const tools = page.getByRole('region', { name: 'Top tools' });
    await tools.getByRole('rowheader', { name: 'Read' }).waitFor();
    const agents = page.locator('section', { has: page.getByRole('heading', { name: 'Agents' }) });
    for (const agent of ['support-bot', 'coder', 'bulk-agent']) await agents.getByRole('link', { name: agent }).waitFor();
    await session.shot('02-overview');

    // Filter the overview by agent.
    await page.getByLabel('Agent', { exact: true }).selectOption('coder');
    await page.waitForFunction(() => document.querySelector('.stat .stat-value')?.textContent === '2');
    assert.match(page.url(), /agentId=coder/);
    await expectNoProblems(session);
  });

  it('filters and searches the trajectory list', async () => {
    const { page } = session;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Trajectories' }).click();
    const rows = page.locator('table.trajectories-table tbody tr');
    await page.waitForFunction(() => document.querySelectorAll('table.trajectories-table tbody tr').length === 11);

    await page.getByLabel('Agent', { exact: true }).selectOption('support-bot');
    await page.waitForFunction(() => document.querySelectorAll('table.trajectories-table tbody tr').length === 8);
    await page.getByLabel('Outcome', { exact: true }).selectOption('failed');
    await page.waitForFunction(() => document.querySelectorAll('table.trajectories-table tbody tr').length === 2);
    for (const text of await rows.allInnerTexts()) assert.match(text, /support-bot[\s\S]*Failed/);
    await session.shot('03-trajectories-filtered');

    await page.getByRole('button', { name: 'Clear filters' }).click();
    await page.getByLabel('Search', { exact: true }).fill('parser.rs');
    await page.waitForFunction(() => document.querySelectorAll('table.trajectories-table tbody tr').length === 1);
    assert.match(await rows.first().innerText(), /coder[\s\S]*bugfix[\s\S]*Failed/);
    await expectNoProblems(session);
  });

  it('leaves optimizer evaluation runs out of the list unless the switch shows them', async () => {
    const { page } = session;
    const evalId = await server.api.start({ agentId: 'support-bot', taskType: 'triage', prompt: 'evaluation rollout of a candidate', promptVersion: 'opt-0190e2e0-candidate' });
    const count = (n) => page.waitForFunction((n) => document.querySelectorAll('table.trajectories-table tbody tr').length === n, n);
    try {
      await page.goto(`${server.url}/trajectories?agentId=support-bot`);
      await count(8);
      const toggle = page.getByLabel('Show evaluation runs');
      assert.equal(await toggle.isChecked(), false);
      await toggle.check();
      await count(9);
      assert.match(page.url(), /evaluations=include/);
      await page.getByRole('link', { name: `Open trajectory ${evalId} of support-bot` }).waitFor();
      await toggle.uncheck();
      await count(8);
      assert.equal(await page.getByRole('link', { name: `Open trajectory ${evalId} of support-bot` }).count(), 0);
    } finally {
      await server.api.ok('DELETE', `/api/trajectories/${evalId}`);
    }
    // Back to the search the next test starts from.
    await page.goto(`${server.url}/trajectories?q=parser.rs`);
    await count(1);
    await expectNoProblems(session);
  });

  it('opens a trajectory, expands a step and shows the error step', async () => {
    const { page } = session;
    await page.locator('table.trajectories-table tbody tr').first().click();
    await page.getByRole('heading', { name: /coder/, level: 1 }).waitFor();
    assert.ok(page.url().endsWith(`/trajectories/${ids.failedCoder}`));
    assert.equal(await page.getByLabel('Trajectory error').innerText(), 'Tests still failing after 3 attempts');
    await page.getByText('claude-opus').waitFor();
    await page.getByText('48,000 in · 5,200 out · 30,000 cache read · 2,000 cache write').waitFor();

    const list = page.getByRole('list', { name: 'Steps (12)' });
    assert.equal(await list.getByRole('listitem').count(), 12);
    assert.equal(await list.locator('.badge', { hasText: /^subagent/ }).count(), 2);

    // Expand step 6 whose output looks like HTML: it must show as text.
    const head6 = list.getByRole('button', { name: /#6 Read/ });
    await head6.click();
    assert.equal(await head6.getAttribute('aria-expanded'), 'true');
    const output = list.getByLabel('Output');
    assert.equal(await output.innerText(), '<script>alert("not html")</script><b>raw</b>');
    assert.equal(await list.locator('b, script').count(), 0);
    const input = list.getByLabel('Input');
    assert.match(await input.innerText(), /^\{\n {2}"flags": \[|^\{\n {2}"path"/);

    // The error step is highlighted and its error shown when expanded.
    const errorStep = list.locator('.step-has-error');
    assert.equal(await errorStep.count(), 1);
    await errorStep.getByRole('button').click();
    assert.match(await list.getByLabel('Error').innerText(), /parse_nested \.\.\. FAILED/);
    const border = await errorStep.locator('.step-head').evaluate((el) => getComputedStyle(el).borderLeftColor);
    assert.notEqual(border, 'rgba(0, 0, 0, 0)');
    await session.shot('04-trajectory-detail');

    // Keyboard: errors-only filter, then the step header is reachable and toggles with Enter.
    await page.getByLabel(/Errors only/).check();
    const only = page.getByRole('list', { name: 'Steps (1)' });
    await only.getByRole('button').focus();
    await page.keyboard.press('Enter');
    assert.equal(await only.getByRole('button').getAttribute('aria-expanded'), 'false');
    await expectNoProblems(session);
  });

  it('makes a 10,000-step trajectory usable', async () => {
    const { page } = session;
    await page.goto(`${server.url}/trajectories/${bulkId}`);
    const list = page.getByRole('list', { name: 'Steps (10,000)' });
    await list.waitFor({ timeout: 30_000 });
    const mounted = await list.getByRole('listitem').count();
    assert.ok(mounted > 5 && mounted < 200, `virtualized list mounted ${mounted} rows`);
    assert.equal(await list.getByRole('listitem').first().getAttribute('aria-setsize'), '10000');

    // Keyboard to the last step and open it.
    await list.getByRole('button', { name: /#0 Read/ }).focus();
    await page.keyboard.press('End');
    const last = list.getByRole('button', { name: /#9999 / });
    await last.waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.querySelector('.step-no')?.textContent), '#9999');
    await page.keyboard.press('Enter');
    assert.equal(await last.getAttribute('aria-expanded'), 'true');
    await list.getByLabel('Output').waitFor();

    // Jump to the first error from the toolbar.
    await page.getByRole('button', { name: 'First error' }).click();
    await list.getByRole('button', { name: /#996 / }).waitFor();
    assert.ok((await list.getByRole('listitem').count()) < 200);
    await session.shot('05-ten-thousand-steps');
    await expectNoProblems(session);
  });

  it('keeps the rows in view still when a row above the viewport grows', async () => {
    const { page } = session;
    await page.goto(`${server.url}/trajectories/${bulkId}`);
    await page.getByRole('list', { name: 'Steps (10,000)' }).getByRole('button', { name: /#0 / }).waitFor({ timeout: 30_000 });
    const jump = await reanchorJump(page, { fraction: 0.5 });
    assert.ok(jump.expandedIndex < jump.anchorIndex && jump.anchorIndex > 1000, `expanded #${jump.expandedIndex} above #${jump.anchorIndex}`);
    assert.ok(jump.grewBy > 100, `the row above grew by only ${jump.grewBy}px`);
    assert.ok(Math.abs(jump.moved) <= 2, `first visible row #${jump.anchorIndex} moved ${jump.moved}px when #${jump.expandedIndex} above it grew by ${jump.grewBy}px`);
    await expectNoProblems(session);
  });

  it('shows new trajectories and steps live, without a reload', async () => {
    const { page } = session;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Live' }).click();
    await page.getByRole('heading', { name: 'Recent trajectories' }).waitFor();
    const startTime = new Date().toISOString();
    const id = await server.api.start({ agentId: 'live-agent', taskType: 'streaming', startTime, prompt: 'watch me' });
    await page.locator('.live-item', { hasText: 'live-agent' }).waitFor({ timeout: 15_000 });
    await page.locator('.live-item', { hasText: 'live-agent' }).getByRole('button').click();
    await server.api.steps(id, makeSteps(3, startTime));
    const list = page.getByRole('list', { name: /^Steps \(/ });
    await page.getByRole('list', { name: 'Steps (3)' }).waitFor({ timeout: 15_000 });
    await server.api.steps(id, makeSteps(2, startTime, { from: 3, errorEvery: 5 }));
    await page.getByRole('list', { name: 'Steps (5)' }).waitFor({ timeout: 15_000 });
    assert.equal(await list.locator('.step-has-error').count(), 1);
    await server.api.complete(id, { success: true, duration: 1000 });
    await page.locator('.live-item', { hasText: 'live-agent' }).getByText('Succeeded').waitFor({ timeout: 15_000 });
    await session.shot('06-live');
    await expectNoProblems(session);
  });

  it('shows optimization runs and prompt versions, or a clear empty state', async () => {
    const { page } = session;
    const probe = await server.api.call('GET', '/api/optimization-runs');
    if (probe.status === 404) session.allow(/Failed to load resource: the server responded with a status of 404/);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Optimization' }).click();
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    if (probe.status === 404) {
      await page.getByText('No optimization runs yet').waitFor();
    } else {
      assert.equal(probe.status, 200);
      const count = probe.data.runs.length;
      if (count === 0) await page.getByText('No optimization runs yet').waitFor();
      else assert.equal(await page.locator('table tbody tr').count(), count);
    }

    // Prompt versions: create two through the API when the server supports it, then promote in the UI.
    const created = await server.api.call('POST', '/api/agents/coder/prompts', { text: 'You are a careful engineer.', note: 'baseline' });
    await page.goto(`${server.url}/optimization/prompts/coder`);
    if (created.status === 404) {
      session.allow(/Failed to load resource: the server responded with a status of 404/);
      await page.getByText('No prompt versions yet').waitFor();
    } else {
      assert.equal(created.status, 201);
      await server.api.ok('POST', '/api/agents/coder/prompts', { text: 'You are a careful engineer.\nAlways run the tests.', note: 'from run', promote: true });
      await page.reload();
      await page.getByRole('heading', { name: /Version 2/ }).waitFor();
      await page.getByRole('button', { name: 'Promote…', exact: true }).click();
      // the evidence first (no runs yet: not significantly better), then the confirmation
      const dialog = page.getByRole('alertdialog', { name: 'Promote version 1?' });
      await dialog.getByRole('table', { name: 'Canary comparison' }).waitFor();
      await dialog.getByRole('note').getByText(/not significantly better/).waitFor();
      await dialog.getByRole('button', { name: 'Confirm promote' }).click();
      await page.getByText('Version 1 is now the promoted prompt of coder.').waitFor();
      const latest = await server.api.ok('GET', '/api/agents/coder/prompts/latest');
      assert.equal(latest.version, 1);
      await page.getByRole('heading', { name: /Version 2/ }).getByText('candidate').waitFor();
      await page.getByRole('button', { name: 'Diff with previous' }).click();
      await page.getByRole('region', { name: 'Diff of Version 1 and Version 2' }).waitFor();
    }
    await session.shot('07-optimization');
    await expectNoProblems(session);
    session.clearAllowed();
  });

  it('shows a real optimization run: scores, lineage, critique and the diff against the parent', async () => {
    const { page } = session;
    // `lightning optimize` runs for real on the collector's own store, with a scripted LLM.
    const llm = await startFakeLlm();
    let outcome;
    try {
      // 80 recorded runs: 32 train / 24 validation / 24 test (the test set needs at least 20). APO's
      // beam search, whose rounds and lineage this test reads (GEPA, the default, proposes one
      // candidate per iteration).
      await seedOptimizable(server.api, 80);
      ({ outcome } = await runOptimize(server, llm.url, ['--agent', OPT_AGENT, '--strategy', 'apo', '--rounds', '2', '--beam', '2', '--branch', '2', '--minibatch', '4', '--seed', '1', '--register-judged']));
    } finally {
      await llm.close();
    }
    assert.deepEqual(llm.problems, []);
    assert.ok(llm.calls.critique > 0 && llm.calls.edit > 0 && llm.calls.judge > 0, JSON.stringify(llm.calls));
    const { run, candidates } = outcome;
    assert.equal(run.status, 'completed');
    assert.equal(run.trajectories, 80);
    // The run's scores are the test scores; the judge's are estimates.
    assert.equal(run.baselineScore, 0.5);
    assert.equal(run.bestScore, 1);
    assert.equal(run.evidence.verdict, 'registered');
    assert.equal(run.evidence.estimate, true);
    assert.deepEqual(run.evidence.split, { train: 32, validation: 24, test: 24 });
    const fmt = (s, signed = false) => {
      const f = (x) => (signed && x > 0 ? '+' : '') + x.toFixed(3);
      return `${f(s.mean)} [${f(s.low)}, ${f(s.high)}] n=${s.n}`;
    };
    const byId = new Map(candidates.map((c) => [c.id, c]));
    const best = byId.get(run.bestCandidateId);
    const parent = byId.get(best.parentId);
    const seedCandidate = candidates.find((c) => c.status === 'seed');
    // With this seed the winner is a round-2 child of a round-1 child of the seed.
    assert.deepEqual([best.round, parent.round, parent.parentId], [2, 1, seedCandidate.id]);
    assert.equal(seedCandidate.prompt, OPT_START_PROMPT);
    assert.ok(best.prompt.startsWith(`${parent.prompt}\n`), best.prompt);
    const added = best.prompt.slice(parent.prompt.length + 1);
    // Short ids tell candidates apart (they are UUIDv7s made within the same second).
    const short = (id) => id.slice(-8);
    assert.equal(new Set(candidates.map((c) => short(c.id))).size, candidates.length);

    // Runs list: the run with its scores.
    await page.goto(`${server.url}/optimization?agentId=${OPT_AGENT}`);
    const row = page.locator('table tbody tr', { has: page.getByRole('link', { name: `Open run ${run.id}` }) });
    await row.waitFor();
    const cells = await row.locator('td').allInnerTexts();
    assert.equal(cells[1], OPT_AGENT);
    assert.equal(cells[2], 'completed');
    assert.deepEqual(cells.slice(5, 9), [fmt(run.evidence.baselineTest), fmt(run.evidence.bestTest), 'significant, registered (judge estimate)', String(run.evaluations)]);
    assert.match(cells[5], /^0\.500 \[0\.\d{3}, 0\.\d{3}\] n=24$/);
    await session.shot('10-optimization-runs');

    // Run detail: summary, rounds, lineage tree.
    await row.getByRole('link', { name: `Open run ${run.id}` }).click();
    await page.getByRole('heading', { name: `Run ${short(run.id)} · ${OPT_AGENT}`, level: 1 }).waitFor();
    const summary = async (label) => page.locator('.summary-item', { has: page.getByText(label, { exact: true }) }).first().locator('dd').innerText();
    assert.equal(await summary('Start on test (judge estimate) [95% CI] n'), fmt(run.evidence.baselineTest));
    assert.equal(await summary('Best on test (judge estimate) [95% CI] n'), fmt(run.evidence.bestTest));
    assert.match(await summary('Best − start (paired) (judge estimate) [95% CI] n'), /^\+0\.500 \[\+0\.\d{3}, \+0\.\d{3}\] n=24 · 12 better, 0 worse$/);
    assert.equal(await summary('Split'), '32 train / 24 validation / 24 test');
    assert.equal(await summary('Candidates'), String(candidates.length));
    const perRound = [0, 1, 2].map((r) => candidates.filter((c) => c.round === r).length);
    const roundItems = await page.getByRole('list', { name: 'Rounds' }).getByRole('listitem').allInnerTexts();
    assert.deepEqual(
      roundItems.map((t) => t.replace(/\s+/g, ' ').replace(/ · best.*/, '')),
      perRound.map((n, r) => `Round ${r} ${n} candidate${n === 1 ? '' : 's'}`),
    );
    // The round's best is the selection maximum, with its interval and n, and said to be one.
    assert.match(roundItems[2], /best 1\.000 \[0\.\d{3}, 1\.000\] n=24 \(judge estimate\), a maximum over candidates/);

    const tree = page.getByRole('tree', { name: 'Candidate lineage' });
    assert.equal(await tree.getByRole('treeitem').count(), candidates.length);
    const level = (n) => tree.locator(`li[role="treeitem"][aria-level="${n}"]`);
    // Each candidate is drawn one level below its parent (a round-2 child may hang off the seed).
    const depth = (c) => (c.parentId ? depth(byId.get(c.parentId)) + 1 : 1);
    const perLevel = [1, 2, 3, 4].map((n) => candidates.filter((c) => depth(c) === n).length);
    assert.deepEqual(await Promise.all([1, 2, 3, 4].map((n) => level(n).count())), perLevel);
    const node = (root, n, c) => root.locator(`li[role="treeitem"][aria-level="${n}"]`).filter({ has: page.locator(':scope > button', { hasText: short(c.id) }) });
    assert.match(await node(tree, 1, seedCandidate).locator(':scope > button').innerText(), /R0[\s\S]*seed[\s\S]*0\.500/);
    // parent → child: the best candidate sits in its parent's group, which sits in the seed's.
    const bestNode = node(node(node(tree, 1, seedCandidate), 2, parent), 3, best);
    assert.equal(await bestNode.count(), 1);
    assert.match(await bestNode.locator(':scope > button').innerText(), /R2[\s\S]*best[\s\S]*1\.000 \[0\.\d{3}, 1\.000\] n=24[\s\S]*judge estimate$/);
    assert.equal(await bestNode.getAttribute('aria-selected'), 'true');

    // The selected (best) candidate: its critique, and the diff against its parent.
    const panel = page.getByRole('region', { name: /^Candidate / });
    await panel.getByRole('heading', { name: new RegExp(`Candidate ${short(best.id)}`) }).waitFor();
    assert.equal(await panel.getByLabel('Critique').innerText(), best.critique);
    assert.match(best.critique, /^- Add the rule/);
    const diff = panel.getByRole('region', { name: `Diff of Parent ${short(parent.id)} (round 1) and Candidate ${short(best.id)} (round 2)` });
    await diff.waitFor();
    assert.equal(await panel.getByRole('status').innerText(), '0 lines removed, 1 line added.');
    assert.deepEqual(await diff.locator('td.diff-ins').allTextContents(), [`added: ${added}`]);
    assert.equal(await diff.locator('td.diff-del').count(), 0);
    const parentLines = parent.prompt.split('\n');
    assert.deepEqual((await diff.locator('tbody tr td:nth-child(2)').allInnerTexts()).slice(0, parentLines.length), parentLines);
    await diff.scrollIntoViewIfNeeded();
    await session.shot('11-optimization-run-detail');

    // The evidence grid: a row per evaluated candidate, a column per example, grouped by split;
    // the test set holds only the seed's and the best candidate's evaluations.
    const evals = (await server.api.ok('GET', `/api/optimization-runs/${run.id}/evaluations`)).evaluations;
    assert.equal(evals.length, run.evaluations);
    assert.deepEqual([...new Set(evals.filter((e) => e.split === 'test').map((e) => e.candidateId))].sort(), [seedCandidate.id, best.id].sort());
    const grid = page.getByRole('table', { name: 'Evaluations: candidates by example' });
    await grid.waitFor();
    const groups = await grid.locator('thead th[scope="colgroup"]').allInnerTexts();
    assert.deepEqual(groups.map((g) => g.split(' ')[0]), ['train', 'validation', 'test']);
    assert.ok(groups.includes('test (24)'), JSON.stringify(groups));
    const seedRow = grid.locator('tbody tr', { has: page.locator('th', { hasText: short(seedCandidate.id) }) });
    assert.equal(await seedRow.locator('td.cell').count(), evals.filter((e) => e.candidateId === seedCandidate.id).length);
    await grid.scrollIntoViewIfNeeded();
    await session.shot('12-optimization-evidence-grid');

    // Walk up the lineage: the parent's own diff against the seed, then the seed itself.
    await panel.getByRole('button', { name: short(parent.id), exact: true }).click();
    await panel.getByRole('region', { name: `Diff of Parent ${short(seedCandidate.id)} (round 0) and Candidate ${short(parent.id)} (round 1)` }).waitFor();
    assert.equal(await panel.getByLabel('Critique').innerText(), parent.critique);
    assert.equal(await node(tree, 2, parent).getAttribute('aria-selected'), 'true');
    await node(tree, 1, seedCandidate).locator(':scope > button').first().click();
    await panel.getByText('none (seed)').waitFor();
    assert.equal(await panel.getByLabel('Prompt', { exact: true }).innerText(), OPT_START_PROMPT);

    // The best prompt was registered as version 1, linked back to this run.
    await page.getByRole('link', { name: 'Prompt versions' }).click();
    await page.getByRole('heading', { name: /Version 1/ }).waitFor();
    assert.equal(await page.getByLabel('Prompt version 1').innerText(), best.prompt);
    // Registered without --promote: a candidate, not served as latest.
    await page.getByRole('heading', { name: /Version 1/ }).getByText('candidate').waitFor();
    assert.equal((await server.api.call('GET', `/api/agents/${OPT_AGENT}/prompts/latest`)).status, 404);
    await page.getByRole('link', { name: `from run ${short(run.id)}` }).waitFor();
    await expectNoProblems(session);
  });

  it('renders the dark theme', async () => {
    const s = await newPage(chrome.browser, { colorScheme: 'dark' });
    await s.page.goto(`${server.url}/`);
    await s.page.evaluate((key) => localStorage.setItem('lightning.apiKey', key), server.key);
    await s.page.goto(`${server.url}/trajectories/${ids.failedCoder}`);
    await s.page.getByRole('list', { name: 'Steps (12)' }).waitFor();
    const bg = await s.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, 'rgb(15, 17, 21)');
    await s.shot('08-dark-detail');
    await s.page.goto(`${server.url}/`);
    await s.page.locator('.chart svg rect.bar-ok').first().waitFor();
    await s.shot('09-dark-overview');
    await expectNoProblems(s);
    await s.context.close();
  });
  it('is served with browser hardening: CSP without inline script, no framing, no sniffing, no referrer', async () => {
    const s = await newPage(chrome.browser);
    const response = await s.page.goto(`${server.url}/`);
    const headers = response.headers();
    assert.match(headers['content-security-policy'], /script-src 'self'/);
    assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
    assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline|unsafe-eval/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['referrer-policy'], 'no-referrer');
    assert.equal(headers['x-frame-options'], 'DENY');
    // API answers are never cached.
    const api = await s.page.evaluate(async (key) => {
      const r = await fetch('/api/agents', { headers: { Authorization: `Bearer ${key}` } });
      return r.headers.get('cache-control');
    }, server.key);
    assert.equal(api, 'no-store');

    // The browser enforces the policy: an injected inline script does not run.
    s.allow(/Content Security Policy|Refused to execute inline script/);
    const ran = await s.page.evaluate(() => {
      const el = document.createElement('script');
      el.textContent = 'window.__inlineRan = true';
      document.body.appendChild(el);
      return window.__inlineRan === true;
    });
    assert.equal(ran, false, 'inline script ran despite the CSP');

    // Another page cannot frame the dashboard (the Promote button cannot be clickjacked).
    s.allow(/Refused to (frame|display)|frame-ancestors|X-Frame-Options/);
    await s.page.goto('about:blank');
    await s.page.setContent(`<iframe id="victim" src="${server.url}/" width="600" height="400"></iframe>`);
    await s.page.waitForTimeout(1500);
    const framed = s.page.frames().find((f) => f !== s.page.mainFrame());
    const framedRoot = framed ? await framed.evaluate(() => !!document.getElementById('root')).catch(() => false) : false;
    assert.equal(framedRoot, false, 'the dashboard rendered inside a frame');

    // `//assets` stays on this host (no redirect to a host named "assets").
    const r = await fetch(`${server.url}//assets`, { redirect: 'manual' });
    assert.equal(r.headers.get('location'), null);
    await expectNoProblems(s);
    await s.context.close();
  });
});
