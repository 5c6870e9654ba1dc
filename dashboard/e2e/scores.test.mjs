// End-to-end: scores and human feedback in the dashboard, against a real `lightning serve` and
// Debian's headless Chromium. A person adds a thumbs-down with a comment, sees it after a reload,
// and filters the list by it; graded scores show as a column and as charts on the overview.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launch, newPage } from './lib/browser.mjs';
import { makeSteps, startServer } from './lib/server.mjs';

let server;
let chrome;
let good;
let bad;

before(async () => {
  server = await startServer();
  const api = server.api;
  const start = Date.now() - 60_000;
  good = await api.start({ agentId: 'scored-agent', taskType: 'fix', prompt: 'fix the parser', promptVersion: '1', startTime: new Date(start).toISOString() });
  await api.steps(good, makeSteps(3, new Date(start).toISOString()));
  await api.complete(good, { success: true });
  bad = await api.start({ agentId: 'scored-agent', taskType: 'fix', prompt: 'fix the lexer', promptVersion: '2', startTime: new Date(start + 1000).toISOString() });
  await api.steps(bad, makeSteps(3, new Date(start + 1000).toISOString()));
  await api.complete(bad, { success: true });
  // A grader already scored both runs; the comment carries markup that must stay text.
  await api.ok('POST', `/api/trajectories/${good}/scores`, { name: 'correctness', value: 0.9, source: 'llm', comment: 'complete fix' });
  await api.ok('POST', `/api/trajectories/${bad}/scores`, { name: 'correctness', value: 0.2, source: 'llm', comment: '<img src=x onerror="window.__pwned=1">still broken' });
  chrome = await launch();
});

after(async () => {
  await chrome?.close();
  await server?.stop();
});

async function signIn(s) {
  await s.page.goto(`${server.url}/`);
  await s.page.getByLabel('API key').fill(server.key);
  await s.page.getByRole('button', { name: 'Sign in' }).click();
  await s.page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
}

describe('scores in the dashboard', () => {
  it('shows graded scores as text, takes a thumbs-down with a comment, keeps it after reload, and filters by it', async () => {
    const s = await newPage(chrome.browser);
    await signIn(s);
    const { page } = s;

    // The overview charts each score name over time.
    const charts = page.getByRole('region', { name: 'Scores over time' });
    await charts.getByRole('img', { name: /correctness over time: mean 0\.550 over 2 scores/ }).waitFor();

    // The detail lists the grader's scores with source and comment, rendered as text.
    await page.goto(`${server.url}/trajectories/${bad}`);
    const scores = page.getByRole('region', { name: /Scores and feedback/ });
    await scores.getByRole('cell', { name: /still broken/ }).waitFor();
    assert.equal(await scores.locator('img').count(), 0, 'markup in a comment is not rendered');
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.match(await scores.getByRole('cell', { name: /still broken/ }).innerText(), /<img src=x/);
    await scores.getByRole('cell', { name: 'llm' }).first().waitFor();

    // A thumbs-down with a comment on step 1.
    await scores.getByLabel('Feedback target').selectOption('1');
    await scores.getByLabel('Feedback comment').fill('read the wrong file\nthen gave up');
    await scores.getByRole('button', { name: 'Thumbs down' }).click();
    const row = scores.locator('tr', { hasText: 'read the wrong file' });
    await row.waitFor();
    assert.match(await row.innerText(), /thumbs\s+👎 down\s+human\s+step 1/);

    // On the other trajectory as a whole: a thumbs-down with a comment, then the person changes
    // their mind. The second vote replaces the first (one score, up, the old comment gone).
    await page.goto(`${server.url}/trajectories/${good}`);
    const goodScores = page.getByRole('region', { name: /Scores and feedback/ });
    await goodScores.getByRole('cell', { name: 'complete fix' }).waitFor();
    await goodScores.getByLabel('Feedback comment').fill('looked wrong at first');
    await goodScores.getByRole('button', { name: 'Thumbs down' }).click();
    await goodScores.locator('tr', { hasText: '👎 down' }).waitFor();
    await goodScores.getByRole('button', { name: 'Thumbs up' }).click();
    await goodScores.locator('tr', { hasText: '👍 up' }).waitFor();
    assert.equal(await goodScores.locator('tr', { hasText: '👎 down' }).count(), 0, 'the earlier vote is replaced');
    const goodThumbs = (await server.api.ok('GET', `/api/trajectories/${good}/scores`)).scores.filter((x) => x.name === 'thumbs');
    assert.equal(goodThumbs.length, 1, JSON.stringify(goodThumbs));
    assert.deepEqual([goodThumbs[0].value, goodThumbs[0].source, goodThumbs[0].stepNumber, goodThumbs[0].comment || null], [true, 'human', null, null]);

    // Still there after a reload, from the server.
    await page.goto(`${server.url}/trajectories/${bad}`);
    await page.reload();
    const reloaded = page.getByRole('region', { name: /Scores and feedback/ }).locator('tr', { hasText: 'read the wrong file' });
    await reloaded.waitFor();
    assert.match(await reloaded.innerText(), /human/);
    const stored = await server.api.ok('GET', `/api/trajectories/${bad}/scores`);
    const thumb = stored.scores.find((x) => x.name === 'thumbs');
    assert.deepEqual(
      { value: thumb.value, source: thumb.source, stepNumber: thumb.stepNumber, comment: thumb.comment },
      { value: false, source: 'human', stepNumber: 1, comment: 'read the wrong file\nthen gave up' },
    );

    // Filter the list by it: only the thumbs-down trajectory, with the score column showing it.
    await page.goto(`${server.url}/trajectories`);
    const table = page.locator('table.trajectories-table');
    await table.locator('tbody tr').nth(1).waitFor();
    await page.getByRole('button', { name: 'Thumbs-down only' }).click();
    await page.waitForFunction(() => document.querySelectorAll('table.trajectories-table tbody tr').length === 1);
    assert.match(page.url(), /scoreName=thumbs/);
    assert.match(page.url(), /maxScore=0/);
    const only = table.locator('tbody tr');
    assert.match(await only.innerText(), /👎 down/);
    assert.match(await only.innerText(), /read the wrong file/);
    await table.getByRole('link', { name: new RegExp(`Open trajectory ${bad}`) }).waitFor();

    // A column for a chosen score name.
    await page.getByLabel('Score', { exact: true }).selectOption('');
    await page.waitForFunction(() => document.querySelectorAll('table.trajectories-table tbody tr').length === 2);
    await page.getByLabel('Score column').selectOption('correctness');
    await table.getByRole('columnheader', { name: 'correctness' }).waitFor();
    const cells = await table.locator('tbody td.score-cell').allInnerTexts();
    assert.deepEqual(cells.map((c) => c.split('\n')[0]).sort(), ['0.200', '0.900']);
    await s.shot('20-scores-list');

    assert.deepEqual(s.problems, [], `page reported errors:\n${s.problems.join('\n')}`);
    await s.context.close();
  });

  it('with a read key: scores are shown, and feedback says which key it needs instead of failing silently', async () => {
    const created = await server.api.ok('POST', '/api/keys', { name: `viewer-${Date.now()}`, scope: 'read' });
    const before = (await server.api.ok('GET', `/api/trajectories/${bad}/scores`)).scores.length;
    const s = await newPage(chrome.browser);
    s.allow(/status of 403/); // the browser's own log line for the two deliberate 403 answers
    const { page } = s;
    await page.goto(`${server.url}/`);
    await page.getByLabel('API key').fill(created.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    await page.goto(`${server.url}/trajectories/${bad}`);
    const scores = page.getByRole('region', { name: /Scores and feedback/ });
    await scores.getByRole('cell', { name: /still broken/ }).waitFor();
    await scores.getByRole('button', { name: 'Thumbs up' }).click();
    const alert = scores.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /cannot save feedback.*ingest scope.*admin key.*read key can only view/s);
    await scores.getByRole('button', { name: /^Delete score correctness/ }).click();
    await scores.getByRole('alert').filter({ hasText: 'deleting needs an admin key' }).waitFor();
    const after = (await server.api.ok('GET', `/api/trajectories/${bad}/scores`)).scores.length;
    assert.equal(after, before, 'nothing was stored or deleted');
    assert.deepEqual(s.problems, [], `page reported errors:\n${s.problems.join('\n')}`);
    await s.context.close();
  });
});
