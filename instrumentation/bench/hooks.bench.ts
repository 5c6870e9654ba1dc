/**
 * Hook overhead benchmark: µs per PreToolUse + PostToolUse pair, measured in process around the
 * two callbacks (what the SDK awaits), with (a) a collector that accepts connections and never
 * answers and (b) the live collector binary. Not a test: it prints numbers.
 *
 *   npm run bench            (LIGHTNING_BIN or ../target/debug/lightning for the live run)
 *   BENCH_PAIRS=20000 BENCH_MAX_QUEUE=10000   (pairs measured; maxQueueSize of the instances)
 */
import { instrument } from '../src/index.js';
import type { Lightning } from '../src/types.js';
import { Collector } from '../test/helpers/collector.js';
import { HungServer } from '../test/helpers/proxy.js';

const PAIRS = Number(process.env.BENCH_PAIRS ?? 20000);
const WARMUP = 2000;
/** maxQueueSize of the instrumented instances (default: the package default, 10,000) */
const MAX_QUEUE = process.env.BENCH_MAX_QUEUE ? { maxQueueSize: Number(process.env.BENCH_MAX_QUEUE) } : {};
const signal = new AbortController().signal;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function run(label: string, lightning: Lightning): Promise<void> {
  const pre = lightning.hooks.PreToolUse[0]!.hooks[0]!;
  const post = lightning.hooks.PostToolUse[0]!.hooks[0]!;
  const samples: number[] = [];
  const sessions = 20;
  for (let i = 0; i < PAIRS + WARMUP; i++) {
    const id = `toolu_bench_${i}`;
    const base = { session_id: `bench-session-${i % sessions}`, transcript_path: '/tmp/t', cwd: '/tmp', permission_mode: 'default' };
    const toolInput = { command: `grep -rn "TODO" src/ | head -${i % 50}`, description: 'find todos' };
    const t0 = process.hrtime.bigint();
    await pre({ ...base, hook_event_name: 'PreToolUse', tool_name: 'Bash', tool_input: toolInput, tool_use_id: id }, id, { signal });
    await post(
      { ...base, hook_event_name: 'PostToolUse', tool_name: 'Bash', tool_input: toolInput, tool_use_id: id, tool_response: { stdout: `src/a.ts:${i}: // TODO: tidy\n`.repeat(8), stderr: '', interrupted: false }, duration_ms: 12 },
      id,
      { signal },
    );
    const dt = Number(process.hrtime.bigint() - t0) / 1000;
    if (i >= WARMUP) samples.push(dt);
    // let background work (sanitizing, sending) run between tool calls, as it does in an agent
    if (i % 10 === 9) await new Promise((r) => setImmediate(r));
  }
  samples.sort((a, b) => a - b);
  const st = lightning.stats();
  console.log(
    `${label.padEnd(28)} pairs=${PAIRS}  p50=${percentile(samples, 50).toFixed(1)} µs  p99=${percentile(samples, 99).toFixed(1)} µs  max=${samples[samples.length - 1]!.toFixed(0)} µs  (sent=${st.sent} queued=${st.queued} dropped=${st.dropped})`,
  );
}

const hung = await new HungServer().start();
const stalled = instrument({ collectorUrl: hung.url, apiKey: 'k', agentId: 'bench-hung', handleProcessExit: false, spool: false, requestTimeoutMs: 10_000, ...MAX_QUEUE });
await run('collector never answers', stalled);
await stalled.shutdown({ timeoutMs: 100 });
await hung.close();

const collector = await new Collector().start();
const live = instrument({ collectorUrl: collector.url, apiKey: collector.apiKey, agentId: 'bench-live', handleProcessExit: false, spool: false, ...MAX_QUEUE });
await run('live collector', live);
await live.shutdown({ timeoutMs: 30_000 });
console.log(`live collector after shutdown: ${JSON.stringify(live.stats())}`);
await collector.dispose();
