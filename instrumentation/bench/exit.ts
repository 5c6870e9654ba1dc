/**
 * Agent end → process exit: how long instrumentation keeps a finished agent process alive, with a
 * healthy collector (`lightning serve`), a down one (connection refused) and a hung one (accepts,
 * never answers), against a baseline child that does not instrument at all. Children run one at a
 * time, interleaved across conditions, so machine load affects all conditions alike.
 *
 *   npm run bench:exit          (BENCH_EXIT_RUNS=10 per condition)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Collector, freePort } from '../test/helpers/collector.js';
import { HungServer } from '../test/helpers/proxy.js';

const RUNS = Number(process.env.BENCH_EXIT_RUNS ?? 10);
const pkgRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const child = join(pkgRoot, 'bench', 'fixtures', 'exit-child.mjs');
const state = mkdtempSync(join(tmpdir(), 'lightning-bench-exit-'));

function once(env: Record<string, string>): Promise<number> {
  return new Promise((done, fail) => {
    const c = spawn(process.execPath, [child], { env: { ...process.env, XDG_STATE_HOME: state, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let end = 0;
    c.stdout!.on('data', (d: Buffer) => {
      if (!end && d.toString().includes('END ')) end = Date.now();
    });
    c.on('exit', (code) => (code === 0 && end ? done(Date.now() - end) : fail(new Error(`child exited ${code}`))));
  });
}

const pct = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;

const collector = await new Collector().start();
const hung = await new HungServer().start();
const down = `http://127.0.0.1:${await freePort()}`;
const conditions: [string, Record<string, string>][] = [
  ['baseline (no instrument)', { MODE: 'baseline' }],
  ['healthy collector', { COLLECTOR_URL: collector.url, API_KEY: collector.apiKey }],
  ['collector down', { COLLECTOR_URL: down, API_KEY: 'k' }],
  ['collector hung', { COLLECTOR_URL: hung.url, API_KEY: 'k' }],
];
const samples = new Map<string, number[]>(conditions.map(([n]) => [n, []]));
try {
  for (let i = 0; i < RUNS; i++) {
    for (const [name, env] of conditions) samples.get(name)!.push(await once(env));
  }
} finally {
  await hung.close();
  await collector.dispose();
  rmSync(state, { recursive: true, force: true });
}
console.log(`agent end → process exit, n=${RUNS} per condition (ms): median [min – max], p90`);
for (const [name] of conditions) {
  const s = samples.get(name)!.sort((a, b) => a - b);
  console.log(`${name.padEnd(26)} ${String(pct(s, 50)).padStart(5)}  [${s[0]} – ${s[s.length - 1]}]  p90 ${pct(s, 90)}`);
}
