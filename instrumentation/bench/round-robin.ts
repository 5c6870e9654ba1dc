/**
 * Round-robin benchmark (not a test: it prints figures). Two `lightning serve` processes share
 * one throwaway PostgreSQL database; one instrumented client sends every request to the next
 * collector in turn (so a trajectory's start, batches and completion land on both). At the end
 * the exact totals are checked straight in PostgreSQL and through both collectors.
 *
 *   npm run round-robin
 *   RR_TRAJECTORIES=2000 RR_STEPS=50 RR_CONCURRENCY=16   LIGHTNING_BIN=…   (PostgreSQL at 127.0.0.1:5432, user postgres)
 *
 * Loopback only; bounded in count (RR_TRAJECTORIES × RR_STEPS, at most 1,000,000 steps).
 */
import { instrument } from '../src/index.js';
import { Collector, collectorBinary } from '../test/helpers/collector.js';
import { ThrowawayDb, postgresAvailable } from '../test/helpers/faults.js';
import { SessionSim } from '../test/helpers/sim.js';

const num = (name: string, dflt: number, max: number): number => {
  const v = Math.floor(Number(process.env[name] ?? dflt));
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return Math.min(v, max);
};
const TRAJECTORIES = num('RR_TRAJECTORIES', 2000, 20_000);
const STEPS = num('RR_STEPS', 50, Math.floor(1_000_000 / TRAJECTORIES));
const CONCURRENCY = num('RR_CONCURRENCY', 16, 256);

const unavailable = postgresAvailable();
if (unavailable) {
  console.error(`round-robin needs PostgreSQL at 127.0.0.1:5432 (user postgres): ${unavailable}`);
  process.exit(1);
}

const db = new ThrowawayDb().create();
const apiKey = 'rr-' + Math.random().toString(36).slice(2);
const a = new Collector(undefined, { databaseUrl: db.url(), apiKey });
const b = new Collector(undefined, { databaseUrl: db.url(), apiKey });
let exitCode = 0;
try {
  await a.start();
  await b.start();
  console.log(
    `round-robin: ${collectorBinary()} ×2 (pids ${a.pid}, ${b.pid}) on PostgreSQL database ${db.name}; ` +
      `${TRAJECTORIES} trajectories × ${STEPS} steps, ${CONCURRENCY} sessions at a time`,
  );
  const targets = [a.url, b.url];
  const perTarget = [0, 0];
  const statusCounts = new Map<number, number>();
  let turn = 0;
  // the round-robin client: every request goes to the next collector
  const rrFetch: typeof fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const k = turn++ % 2;
    perTarget[k]!++;
    const r = await fetch(targets[k] + url.pathname + url.search, init);
    statusCounts.set(r.status, (statusCounts.get(r.status) ?? 0) + 1);
    return r;
  };
  const agentId = `rr-${Date.now().toString(36)}`;
  const lightning = instrument({
    collectorUrl: 'http://round-robin.invalid',
    apiKey,
    agentId,
    batchSize: 25,
    flushInterval: 100,
    handleProcessExit: false,
    maxQueueSize: 1_000_000,
    spool: false, // a benchmark must not leave data in the user's state directory
    fetch: rrFetch,
  });
  const t0 = Date.now();
  let nextIndex = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (;;) {
        const k = nextIndex++;
        if (k >= TRAJECTORIES) return;
        const s = new SessionSim(lightning.hooks, `rr-${k}`);
        await s.prompt(`round-robin task ${k}`);
        for (let i = 0; i < STEPS; i++) {
          if (i % 10 === 9) await s.call('Bash', { command: `false ${i}` }, null, `Exit code 1 (${i})`);
          else await s.call('Bash', { command: `echo ${i}` }, { stdout: `${i}` });
          if (i % 5 === 4) await new Promise((r) => setImmediate(r));
        }
        await s.stop('done');
      }
    }),
  );
  const driven = Date.now() - t0;
  await lightning.flush({ timeoutMs: 300_000 });
  const elapsed = Date.now() - t0;
  const st = lightning.stats();
  const steps = TRAJECTORIES * STEPS;
  let errorsPer = 0;
  for (let i = 0; i < STEPS; i++) if (i % 10 === 9) errorsPer++;

  const [trajectories, rows, sumSteps, sumErrors, completed] = db
    .query(
      `SELECT count(*), (SELECT count(*) FROM trajectory_steps s JOIN trajectories t ON t.id = s.trajectory_id WHERE t.agent_id = '${agentId}'), ` +
        `coalesce(sum(step_count), 0), coalesce(sum(error_count), 0), count(end_time) FROM trajectories WHERE agent_id = '${agentId}'`,
    )
    .split('|')
    .map(Number);
  const viaApi: number[] = [];
  for (const c of [a, b]) {
    const s = await c.get(`/api/stats?agentId=${agentId}`);
    viaApi.push(s.trajectories);
  }
  console.log(
    `drove ${steps} tool calls in ${(driven / 1000).toFixed(1)} s; all delivered after ${(elapsed / 1000).toFixed(1)} s ` +
      `(${(steps / (elapsed / 1000)).toFixed(0)} steps/s end to end)`,
  );
  console.log(
    `requests: ${perTarget[0]} to collector A, ${perTarget[1]} to collector B; statuses ${JSON.stringify(Object.fromEntries(statusCounts))}; ` +
      `instrumentation sent=${st.sent} dropped=${st.dropped} failed=${st.failed} retries=${st.retries}`,
  );
  console.log(
    `PostgreSQL: ${trajectories} trajectories (${completed} completed), ${rows} step rows, step_count sum ${sumSteps}, error_count sum ${sumErrors}; ` +
      `expected ${TRAJECTORIES} / ${steps} / ${TRAJECTORIES * errorsPer}; /api/stats trajectories via A ${viaApi[0]}, via B ${viaApi[1]}`,
  );
  const exact =
    trajectories === TRAJECTORIES &&
    completed === TRAJECTORIES &&
    rows === steps &&
    sumSteps === steps &&
    sumErrors === TRAJECTORIES * errorsPer &&
    viaApi.every((n) => n === TRAJECTORIES) &&
    st.dropped === 0;
  console.log(exact ? 'totals exact' : 'TOTALS MISMATCH');
  if (!exact) exitCode = 1;
  await lightning.shutdown({ timeoutMs: 2000 });
} finally {
  await a.dispose();
  await b.dispose();
  db.drop();
}
process.exit(exitCode);
