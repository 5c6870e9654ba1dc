/**
 * Soak benchmark (not a test: it prints figures). Drives one `lightning serve` for several
 * minutes with concurrent instrumented sessions at a fixed step rate and samples the collector's
 * resident memory (VmRSS from /proc/<pid>/status) every few seconds. At the end it checks the
 * exact totals stored and prints the RSS series and its start/end/max ratios.
 *
 *   npm run soak
 *   SOAK_SECONDS=180 SOAK_RATE=1000 SOAK_SESSIONS=16 SOAK_SAMPLE_SECONDS=5 SOAK_STEPS_PER_TRAJECTORY=200
 *   LIGHTNING_BIN=../target/release/lightning   (default: ../target/debug/lightning)
 *   SOAK_BACKEND=postgres                        (a throwaway database on 127.0.0.1:5432, dropped at the end)
 *   SOAK_DATABASE_URL=postgres://…               (an existing database; default: SQLite in a temp dir)
 *
 * Loopback only; bounded in time (SOAK_SECONDS, at most 3600) and count (rate × time).
 */
import { readFileSync } from 'node:fs';
import { instrument } from '../src/index.js';
import { Collector, collectorBinary } from '../test/helpers/collector.js';
import { SessionSim } from '../test/helpers/sim.js';
import { ThrowawayDb } from '../test/helpers/faults.js';

const num = (name: string, dflt: number, max: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return Math.min(v, max);
};
const SECONDS = num('SOAK_SECONDS', 180, 3600);
const RATE = num('SOAK_RATE', 1000, 20_000); // tool calls per second, all sessions together
const SESSIONS = Math.floor(num('SOAK_SESSIONS', 16, 256));
const SAMPLE_MS = num('SOAK_SAMPLE_SECONDS', 5, 60) * 1000;
const PER_TRAJECTORY = Math.floor(num('SOAK_STEPS_PER_TRAJECTORY', 200, 100_000));

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (kib: number) => (kib / 1024).toFixed(1);

const throwaway = process.env.SOAK_BACKEND === 'postgres' && !process.env.SOAK_DATABASE_URL ? new ThrowawayDb().create() : null;
const databaseUrl = process.env.SOAK_DATABASE_URL ?? throwaway?.url();
const collector = new Collector(undefined, databaseUrl ? { databaseUrl } : {});
let exitCode = 0;
try {
  await collector.start();
  const pid = collector.pid;
  console.log(
    `soak: ${collectorBinary()} pid ${pid} (${databaseUrl ? 'PostgreSQL' : 'SQLite'}), ${SECONDS} s, ` +
      `${RATE} tool calls/s over ${SESSIONS} concurrent sessions, ${PER_TRAJECTORY} steps per trajectory, RSS every ${SAMPLE_MS / 1000} s`,
  );
  const agentId = `soak-${Date.now().toString(36)}`;
  const lightning = instrument({
    collectorUrl: collector.url,
    apiKey: collector.apiKey,
    agentId,
    batchSize: 50,
    flushInterval: 200,
    handleProcessExit: false,
    maxQueueSize: 100_000,
    spool: false, // a benchmark must not leave data in the user's state directory
  });

  const t0 = Date.now();
  const deadline = t0 + SECONDS * 1000;
  let calls = 0;
  let trajectories = 0;
  const samples: { t: number; rss: number; driverRss: number; calls: number; sent: number; queued: number }[] = [];
  const sample = () => {
    const st = lightning.stats();
    samples.push({ t: (Date.now() - t0) / 1000, rss: rssKiB(pid), driverRss: Math.round(process.memoryUsage().rss / 1024), calls, sent: st.sent, queued: st.queued });
    const s = samples[samples.length - 1]!;
    console.log(
      `  t=${s.t.toFixed(0).padStart(5)} s  collector RSS ${mib(s.rss).padStart(7)} MiB  driver RSS ${mib(s.driverRss).padStart(7)} MiB  ` +
        `calls ${String(s.calls).padStart(8)}  sent ${String(s.sent).padStart(8)}  queued ${s.queued}`,
    );
  };
  sample();
  const sampler = setInterval(sample, SAMPLE_MS);

  // each session: a trajectory of PER_TRAJECTORY calls, then the result, then a new session
  const perSessionInterval = (SESSIONS * 1000) / RATE; // ms between calls of one session
  const input = (i: number) => ({ command: `grep -rn "TODO" src/ | head -${i % 50}`, description: 'find todos' });
  const output = (i: number) => ({ stdout: `src/a.ts:${i}: // TODO: tidy\n`.repeat(8), stderr: '', interrupted: false });
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, k) => {
      let next = Date.now() + (k * perSessionInterval) / SESSIONS;
      let round = 0;
      while (Date.now() < deadline) {
        const s = new SessionSim(lightning.hooks, `soak-${k}-${round++}`);
        await s.prompt(`soak task ${k}`);
        for (let i = 0; i < PER_TRAJECTORY && Date.now() < deadline; i++) {
          const wait = next - Date.now();
          if (wait > 0) await sleep(wait);
          next += perSessionInterval;
          if (i % 10 === 9) await s.call('Bash', input(i), null, `Exit code 1\nfailure ${i}`);
          else await s.call('Bash', input(i), output(i));
          calls++;
        }
        await s.stop('soak round done'); // completes the trajectory (success)
        trajectories++;
      }
    }),
  );
  const driveSeconds = (Date.now() - t0) / 1000;
  const drain0 = Date.now();
  await lightning.flush({ timeoutMs: 120_000 });
  const drainMs = Date.now() - drain0;
  clearInterval(sampler);
  sample();
  const st = lightning.stats();

  // exact totals, from the collector
  let stored = 0;
  let storedTrajectories = 0;
  let completed = 0;
  let cursor: string | null = null;
  do {
    const page: any = await collector.get(`/api/trajectories?agentId=${agentId}&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    for (const t of page.trajectories) {
      storedTrajectories++;
      stored += t.stepCount;
      if (t.status !== 'running') completed++;
    }
    cursor = page.nextCursor;
  } while (cursor);

  const rss = samples.map((s) => s.rss);
  const warm = samples.find((s) => s.t >= Math.min(30, SECONDS / 6)) ?? samples[1] ?? samples[0]!;
  const first = samples[0]!;
  const last = samples[samples.length - 1]!;
  const max = Math.max(...rss);
  const secondHalf = samples.filter((s) => s.t >= SECONDS / 2).map((s) => s.rss);
  console.log(
    `\ndrove ${calls} tool calls in ${trajectories} trajectories over ${driveSeconds.toFixed(0)} s (${(calls / driveSeconds).toFixed(0)} calls/s); ` +
      `drained in ${drainMs} ms; instrumentation: sent=${st.sent} dropped=${st.dropped} failed=${st.failed} retries=${st.retries}`,
  );
  console.log(`stored: ${storedTrajectories} trajectories (${completed} completed), ${stored} steps (expected ${trajectories} / ${calls})`);
  console.log(
    `collector RSS MiB: start ${mib(first.rss)}, after warm-up (t=${warm.t.toFixed(0)} s) ${mib(warm.rss)}, end ${mib(last.rss)}, max ${mib(max)}; ` +
      `end/warm ${(last.rss / warm.rss).toFixed(3)}, max/warm ${(max / warm.rss).toFixed(3)}, end/start ${(last.rss / first.rss).toFixed(3)}; ` +
      `second-half range ${mib(Math.min(...secondHalf))}–${mib(Math.max(...secondHalf))}`,
  );
  console.log(`driver RSS MiB: start ${mib(first.driverRss)}, end ${mib(last.driverRss)}, max ${mib(Math.max(...samples.map((s) => s.driverRss)))}`);
  console.log(`series (t s:RSS MiB): ${samples.map((s) => `${s.t.toFixed(0)}:${mib(s.rss)}`).join(' ')}`);
  if (stored !== calls || storedTrajectories !== trajectories || completed !== trajectories || st.dropped !== 0) {
    console.log('TOTALS MISMATCH');
    exitCode = 1;
  } else {
    console.log('totals exact: every call stored once, every trajectory completed');
  }
  await lightning.shutdown({ timeoutMs: 5000 });
} finally {
  await collector.dispose();
  throwaway?.drop();
}
process.exit(exitCode);
