/**
 * Hook overhead benchmark: µs per PreToolUse + PostToolUse pair, measured in process around the
 * two callbacks (what the SDK awaits), with (a) a collector that accepts connections and never
 * answers and (b) the live collector binary. Not a test: it prints numbers.
 *
 *   npm run bench            (LIGHTNING_BIN or ../target/debug/lightning for the live run)
 *   BENCH_PAIRS=20000 BENCH_MAX_QUEUE=10000   (pairs measured; maxQueueSize of the instances)
 *   BENCH_ONLY=redaction     (only the redaction section: typical and 32 KiB outputs, redaction
 *                             on against off in the same process, and the cost per KiB)
 */
import { readFileSync } from 'node:fs';
import { Redactor } from '../src/redact.js';
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

// ------------------------------------------------------------------ redaction

const REDACTION_PAIRS = Number(process.env.BENCH_REDACTION_PAIRS ?? 3000);
const corpusDir = new URL('../../../testdata/redaction/', import.meta.url);
const benignTexts = (JSON.parse(readFileSync(new URL('benign.json', corpusDir), 'utf8')) as { text: string }[]).map((e) => e.text);
const secretTexts = (JSON.parse(readFileSync(new URL('secrets.json', corpusDir), 'utf8')) as { text: string }[]).map((e) => e.text);

/** About `bytes` of text cut from the given entries, repeated (cut at a line end). */
function textOf(entries: string[], bytes: number): string {
  let out = '';
  for (let i = 0; out.length < bytes; i++) out += entries[i % entries.length] + '\n';
  return out.slice(0, out.lastIndexOf('\n', bytes) + 1);
}

interface PairStats {
  hook: number[];
  withPrepare: number[];
}

/** Pairs whose stdout is `output`. `hook`: the two callbacks (what the SDK awaits); `withPrepare`:
 * the callbacks plus the deferred sanitizing/redaction they schedule (one setImmediate turn). */
async function pairs(lightning: Lightning, output: string, n: number): Promise<PairStats> {
  const pre = lightning.hooks.PreToolUse[0]!.hooks[0]!;
  const post = lightning.hooks.PostToolUse[0]!.hooks[0]!;
  const hook: number[] = [];
  const withPrepare: number[] = [];
  for (let i = 0; i < n + 200; i++) {
    const id = `toolu_red_${i}`;
    const base = { session_id: `red-session-${i % 4}`, transcript_path: '/tmp/t', cwd: '/tmp', permission_mode: 'default' };
    const toolInput = { command: `cat logs/app-${i % 7}.log`, description: 'read the log' };
    const t0 = process.hrtime.bigint();
    await pre({ ...base, hook_event_name: 'PreToolUse', tool_name: 'Bash', tool_input: toolInput, tool_use_id: id }, id, { signal });
    await post(
      { ...base, hook_event_name: 'PostToolUse', tool_name: 'Bash', tool_input: toolInput, tool_use_id: id, tool_response: { stdout: output, stderr: '', interrupted: false }, duration_ms: 12 },
      id,
      { signal },
    );
    const t1 = process.hrtime.bigint();
    await new Promise((r) => setImmediate(r));
    const t2 = process.hrtime.bigint();
    if (i >= 200) {
      hook.push(Number(t1 - t0) / 1000);
      withPrepare.push(Number(t2 - t0) / 1000);
    }
  }
  hook.sort((a, b) => a - b);
  withPrepare.sort((a, b) => a - b);
  return { hook, withPrepare };
}

const fmt = (xs: number[]): string => `p50=${percentile(xs, 50).toFixed(1)} p99=${percentile(xs, 99).toFixed(1)} µs`;

async function redactionSection(): Promise<void> {
  const server = await new HungServer().start();
  const typical = `src/a.ts:1: // TODO: tidy\n`.repeat(8);
  const outputs: [string, string][] = [
    ['typical (8 lines, 216 B)', typical],
    ['32 KiB of logs/lock files/code', textOf(benignTexts, 32 * 1024)],
    ['32 KiB full of secrets', textOf(secretTexts, 32 * 1024)],
  ];
  console.log(`\nredaction: ${REDACTION_PAIRS} pairs per row, collector never answers, redact on vs off in this process`);
  for (const [label, output] of outputs) {
    const rows: Record<string, PairStats> = {};
    // alternate on/off twice so that drift of the machine affects both alike
    for (const round of [0, 1]) {
      for (const redact of [true, false]) {
        const l = instrument({ collectorUrl: server.url, apiKey: 'k', agentId: `bench-red-${round}`, handleProcessExit: false, maxQueueSize: 200, redact, spool: false });
        const r = await pairs(l, output, REDACTION_PAIRS / 2);
        const key = redact ? 'on' : 'off';
        const acc = rows[key] ?? { hook: [], withPrepare: [] };
        acc.hook.push(...r.hook);
        acc.withPrepare.push(...r.withPrepare);
        rows[key] = acc;
        await l.shutdown({ timeoutMs: 50 });
      }
    }
    for (const k of ['on', 'off']) {
      rows[k]!.hook.sort((a, b) => a - b);
      rows[k]!.withPrepare.sort((a, b) => a - b);
    }
    const kib = Buffer.byteLength(output) / 1024;
    const extra = percentile(rows.on!.withPrepare, 50) - percentile(rows.off!.withPrepare, 50);
    console.log(`  ${label.padEnd(32)} hook pair: redact on ${fmt(rows.on!.hook)} | off ${fmt(rows.off!.hook)}`);
    console.log(`  ${''.padEnd(32)} pair + deferred prepare: on ${fmt(rows.on!.withPrepare)} | off ${fmt(rows.off!.withPrepare)}  => redaction adds ${extra.toFixed(0)} µs per pair, ${(extra / kib).toFixed(2)} µs per KiB of output`);
  }
  await server.close();

  // Redactor.text alone: µs per KiB, median and interquartile range over 41 runs
  const r = new Redactor(true);
  console.log('\nRedactor.text() alone (median [IQR] over 41 runs):');
  for (const [label, text] of [
    ['32 KiB of logs/lock files/code', textOf(benignTexts, 32 * 1024)],
    ['32 KiB full of secrets', textOf(secretTexts, 32 * 1024)],
    ['typical (8 lines)', typical],
  ] as [string, string][]) {
    const runs: number[] = [];
    for (let k = 0; k < 51; k++) {
      const t0 = process.hrtime.bigint();
      r.text(text);
      const dt = Number(process.hrtime.bigint() - t0) / 1000;
      if (k >= 10) runs.push(dt);
    }
    runs.sort((a, b) => a - b);
    const kib = Buffer.byteLength(text) / 1024;
    console.log(
      `  ${label.padEnd(32)} ${percentile(runs, 50).toFixed(1)} µs [${percentile(runs, 25).toFixed(1)}–${percentile(runs, 75).toFixed(1)}] = ${(percentile(runs, 50) / kib).toFixed(2)} µs/KiB`,
    );
  }
}

if (process.env.BENCH_ONLY === 'redaction') {
  await redactionSection();
  process.exit(0);
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
await redactionSection();
