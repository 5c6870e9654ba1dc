/** The published entry points: ESM and CJS builds load and expose the same API with types. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

const root = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8'));

test('package.json declares ESM and CJS entries with types, and no runtime dependencies', () => {
  assert.equal(pkg.name, '@agent-lightning/instrumentation');
  assert.equal(pkg.dependencies, undefined);
  assert.ok(pkg.peerDependencies['@anthropic-ai/claude-agent-sdk']);
  assert.ok(pkg.devDependencies['@anthropic-ai/claude-agent-sdk']);
  const entry = pkg.exports['.'];
  for (const file of [entry.import.default, entry.import.types, entry.require.default, entry.require.types]) {
    assert.ok(existsSync(resolve(root, file)), `${file} is built`);
  }
});

test('the CommonJS build loads with require()', () => {
  const require = createRequire(import.meta.url);
  const cjs = require(resolve(root, pkg.exports['.'].require.default));
  assert.equal(typeof cjs.instrument, 'function');
  assert.equal(typeof cjs.mergeHooks, 'function');
  const l = cjs.instrument({ collectorUrl: 'http://127.0.0.1:9', apiKey: 'k', agentId: 'a', handleProcessExit: false, flushInterval: 0, spool: false });
  assert.deepEqual(Object.keys(l.hooks).sort(), [
    'MessageDisplay', 'PermissionRequest', 'PostToolBatch', 'PostToolUse', 'PostToolUseFailure', 'PreToolUse', 'SessionEnd', 'SessionStart', 'Stop', 'StopFailure', 'SubagentStart', 'SubagentStop', 'UserPromptSubmit',
  ]);
});

test('the ESM build loads with import()', async () => {
  const esm = await import(resolve(root, pkg.exports['.'].import.default));
  assert.equal(typeof esm.instrument, 'function');
  assert.equal(typeof esm.mergeHooks, 'function');
  assert.equal(esm.VERSION, pkg.version);
});

test('the built code imports nothing outside node built-ins (the SDK only lazily, for lightning.query)', () => {
  for (const dir of ['esm', 'cjs']) {
    const files = readdirSync(resolve(root, 'dist', dir)).filter((f) => f.endsWith('.js'));
    assert.ok(files.length >= 15, files.join(', '));
    for (const file of files) {
      const text = readFileSync(resolve(root, 'dist', dir, file), 'utf8');
      const specifiers = [...text.matchAll(/(?:from\s+|require\(|import\()\s*["']([^"']+)["']/g)].map((m) => m[1]!);
      for (const s of specifiers) assert.ok(s.startsWith('./') || s.startsWith('node:'), `${dir}/${file} imports ${s}`);
      // the one exception: the peer dependency, loaded on first use of lightning.query()
      const sdk = text.match(/@anthropic-ai\/claude-agent-sdk/g)?.length ?? 0;
      assert.equal(sdk, file === 'tracking.js' ? 1 : 0, `${dir}/${file} names the SDK ${sdk} times`);
    }
  }
});
