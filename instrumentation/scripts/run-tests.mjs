// Runs the compiled tests with node's built-in test runner, one file at a time (the machine is
// small and the integration tests start servers). `node scripts/run-tests.mjs unit` runs only
// the unit tests. Integration and e2e tests need the collector binary: LIGHTNING_BIN or
// ../target/debug/lightning, built here with cargo when missing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const build = join(root, '.test-build', 'test');
const groups = process.argv.slice(2);
const wanted = groups.length ? groups : ['unit', 'integration', 'e2e', 'faults'];

const files = [];
for (const group of wanted) {
  const dir = join(build, group);
  if (!existsSync(dir)) {
    console.error(`no compiled tests in ${dir}: run "npm run build:test" first`);
    process.exit(1);
  }
  for (const f of readdirSync(dir).sort()) if (f.endsWith('.test.js')) files.push(join(dir, f));
}

if (wanted.some((g) => g !== 'unit') && !process.env.LIGHTNING_BIN) {
  const bin = resolve(root, '..', 'target', 'debug', 'lightning');
  if (!existsSync(bin)) {
    console.error(`collector binary ${bin} not found: building it with cargo`);
    const r = spawnSync('cargo', ['build', '-p', 'lightning'], { cwd: resolve(root, '..'), stdio: 'inherit' });
    if (r.status !== 0) {
      console.error('cargo build -p lightning failed; set LIGHTNING_BIN to a collector binary');
      process.exit(1);
    }
  }
}

// the spool is on by default: keep the tests' spools out of the user's state directory
const state = mkdtempSync(join(tmpdir(), 'lightning-test-state-'));
const env = { ...process.env, XDG_STATE_HOME: state };
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { cwd: root, stdio: 'inherit', env });
rmSync(state, { recursive: true, force: true });
process.exit(r.status ?? 1);
