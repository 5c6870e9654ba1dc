// End-to-end: a canary rollout in the dashboard, against a real `lightning serve` and Debian's
// headless Chromium. A person starts a canary of a candidate version, the agent's runs arrive,
// the comparison shows the canary significantly better, and the promotion (which shows its
// evidence before it is confirmed) lands in the registry and the decision history.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launch, newPage } from './lib/browser.mjs';
import { startServer } from './lib/server.mjs';

const AGENT = 'canary-agent';
let server;
let chrome;

before(async () => {
  server = await startServer();
  await server.api.ok('POST', `/api/agents/${AGENT}/prompts`, { text: 'You fix bugs.', promote: true });
  await server.api.ok('POST', `/api/agents/${AGENT}/prompts`, { text: 'You fix bugs. Run the tests before you finish.', note: 'from run 7' });
  chrome = await launch();
});

after(async () => {
  await chrome?.close();
  await server?.stop();
});

/** `n` finished runs of `version`, the first `successes` of them succeeded (20 at a time). */
async function runs(version, n, successes) {
  const one = async (i) => {
    const id = await server.api.start({ agentId: AGENT, promptVersion: String(version) });
    await server.api.complete(id, { success: i < successes, costUsd: 0.01 });
  };
  for (let i = 0; i < n; i += 20) await Promise.all(Array.from({ length: Math.min(20, n - i) }, (_, k) => one(i + k)));
}

/** The runs the chart counts per version: the sum of its points' `n` (each point's title). */
async function chartedRuns(chart) {
  const titles = await chart.locator('circle title').allTextContents();
  const sums = {};
  for (const t of titles) {
    const m = /^version (\S+): .* n = (\d+)$/.exec(t);
    assert.ok(m, t);
    sums[m[1]] = (sums[m[1]] ?? 0) + Number(m[2]);
  }
  return sums;
}

describe('canary rollout in the dashboard', () => {
  it('starts a canary, shows its comparison, and promotes it with the evidence shown first', async () => {
    const s = await newPage(chrome.browser);
    const { page } = s;
    await page.goto(`${server.url}/`);
    await page.getByLabel('API key').fill(server.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();

    await page.goto(`${server.url}/optimization/prompts/${AGENT}`);
    const panel = page.getByRole('region', { name: 'Canary rollout' });
    await panel.getByText('No decisions recorded yet.').waitFor();
    await panel.getByLabel('Version').selectOption('2');
    await panel.getByLabel('Percent of units').fill('50');
    await panel.getByRole('button', { name: 'Start canary' }).click();
    await panel.getByText(/Version 2 serves 50% of units beside promoted version 1/).waitFor();
    await panel.getByText('not enough runs yet').first().waitFor();
    await panel.getByText(/canary started version 2 at 50% by dashboard/).waitFor();

    // The agent's runs arrive: 50 % success on the promoted version, 90 % on the canary; more
    // runs than one page of trajectories (1,000) holds.
    await runs(1, 1100, 550);
    await runs(2, 40, 36);
    await panel.getByRole('button', { name: 'Refresh comparison' }).click();
    const table = panel.getByRole('table', { name: 'Canary comparison' });
    await table.getByRole('cell', { name: /^90\.0% \[/ }).waitFor();
    await panel.getByText('canary significantly better').first().waitFor();
    // Reward over time per version, with intervals: both versions' latest buckets are described.
    const chart = panel.getByRole('img', { name: /^Reward over time per version \(success\): version 1: .*over \d+ runs; version 2: .*over \d+ runs$/ });
    await chart.waitFor();
    assert.ok((await chart.locator('circle').count()) >= 2, 'a point per version and bucket');
    // Every run is in the chart, none dropped beyond the newest 1,000.
    assert.deepEqual(await chartedRuns(chart), { 1: 1100, 2: 40 });
    await s.shot('20-rollout-comparison');

    await panel.getByRole('button', { name: 'Promote canary…' }).click();
    const dialog = panel.getByRole('alertdialog', { name: 'Promote version 2?' });
    await dialog.getByText(/the collector stores its comparison at the moment you confirm/).waitFor();
    await dialog.getByRole('table', { name: 'Canary comparison' }).waitFor();
    await dialog.getByRole('button', { name: 'Confirm promote' }).click();

    await panel.getByText(/promoted version 2 by dashboard \(evidence: canary significantly better\)/).waitFor();
    await page.getByRole('heading', { name: /Version 2/ }).getByText('promoted').waitFor();
    const prompts = await server.api.ok('GET', `/api/agents/${AGENT}/prompts`);
    assert.equal(prompts.prompts.find((p) => p.promoted).version, 2);
    const rollout = await server.api.ok('GET', `/api/agents/${AGENT}/prompts/rollout`);
    assert.equal(rollout.rollout, null, 'the canary ended with the promotion');
    await s.shot('21-rollout-promoted');

    // A version's own Promote… shows its evidence first too: version 1 against promoted
    // version 2 is significantly worse; cancelling changes nothing.
    const v1 = page.getByRole('article', { name: /^Version 1/ });
    await v1.getByRole('button', { name: 'Promote…' }).click();
    let confirm = v1.getByRole('alertdialog', { name: 'Promote version 1?' });
    await confirm.getByRole('table', { name: 'Canary comparison' }).getByRole('cell', { name: /^50\.0% \[/ }).waitFor();
    await confirm.getByRole('note').getByText(/not significantly better \(candidate significantly worse\)/).waitFor();
    await confirm.getByText('candidate significantly worse', { exact: true }).waitFor();
    await s.shot('22-promote-version-evidence');
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await confirm.waitFor({ state: 'detached' });
    assert.equal((await server.api.ok('GET', `/api/agents/${AGENT}/prompts`)).prompts.find((p) => p.promoted).version, 2);
    // Promoting it anyway, with a reason: recorded with who and why.
    await v1.getByRole('button', { name: 'Promote…' }).click();
    confirm = v1.getByRole('alertdialog', { name: 'Promote version 1?' });
    await confirm.getByRole('table', { name: 'Canary comparison' }).waitFor();
    await confirm.getByLabel('Reason (optional)').fill('v2 breaks the release checklist');
    await confirm.getByRole('button', { name: 'Confirm promote' }).click();
    await page.getByText('Version 1 is now the promoted prompt of canary-agent.').waitFor();
    await panel.getByText(/promoted version 1 by dashboard — v2 breaks the release checklist/).waitFor();
    const events = await server.api.ok('GET', `/api/agents/${AGENT}/prompts/events?limit=1`);
    assert.deepEqual([events.events[0].kind, events.events[0].version, events.events[0].actor], ['promoted', 1, 'dashboard']);
    assert.deepEqual(s.problems, [], `page reported errors:\n${s.problems.join('\n')}`);
    await s.context.close();
  });
});
