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

/** `n` finished runs of `version`, the first `successes` of them succeeded. */
async function runs(version, n, successes) {
  for (let i = 0; i < n; i++) {
    const id = await server.api.start({ agentId: AGENT, promptVersion: String(version) });
    await server.api.complete(id, { success: i < successes, costUsd: 0.01 });
  }
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
    await panel.getByText(/canary started version 2 at 50% by api/).waitFor();

    // The agent's runs arrive: 50 % success on the promoted version, 90 % on the canary.
    await runs(1, 40, 20);
    await runs(2, 40, 36);
    await panel.getByRole('button', { name: 'Refresh comparison' }).click();
    const table = panel.getByRole('table', { name: 'Canary comparison' });
    await table.getByRole('cell', { name: /^90\.0% \[/ }).waitFor();
    await panel.getByText('canary significantly better').first().waitFor();
    // Reward over time per version, with intervals: both versions' latest buckets are described.
    const chart = panel.getByRole('img', { name: /^Reward over time per version \(success\): version 1: .*over \d+ runs; version 2: .*over \d+ runs$/ });
    await chart.waitFor();
    assert.ok((await chart.locator('circle').count()) >= 2, 'a point per version and bucket');
    await s.shot('20-rollout-comparison');

    await panel.getByRole('button', { name: 'Promote canary…' }).click();
    const dialog = panel.getByRole('alertdialog', { name: 'Promote version 2?' });
    await dialog.getByText('This evidence is stored with the decision:').waitFor();
    await dialog.getByRole('table', { name: 'Canary comparison' }).waitFor();
    await dialog.getByRole('button', { name: 'Confirm promote' }).click();

    await panel.getByText(/promoted version 2 by api \(evidence: canary significantly better\)/).waitFor();
    await page.getByRole('heading', { name: /Version 2/ }).getByText('promoted').waitFor();
    const prompts = await server.api.ok('GET', `/api/agents/${AGENT}/prompts`);
    assert.equal(prompts.prompts.find((p) => p.promoted).version, 2);
    const rollout = await server.api.ok('GET', `/api/agents/${AGENT}/prompts/rollout`);
    assert.equal(rollout.rollout, null, 'the canary ended with the promotion');
    await s.shot('21-rollout-promoted');
    assert.deepEqual(s.problems, [], `page reported errors:\n${s.problems.join('\n')}`);
    await s.context.close();
  });
});
