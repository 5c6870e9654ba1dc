/**
 * Hook overhead benchmark: µs per PreToolUse + PostToolUse pair, measured in process around the
 * two callbacks (what the SDK awaits), with (a) a collector that accepts connections and never
 * answers and (b) the live collector binary. Not a test: it prints numbers.
 *
 *   npm run bench            (LIGHTNING_BIN or ../target/debug/lightning for the live run)
 *   BENCH_PAIRS=20000 BENCH_MAX_QUEUE=10000   (pairs measured; maxQueueSize of the instances)
 *   BENCH_ONLY=redaction     (only the redaction section: typical and 32 KiB outputs, hook p99
 *                             with redaction on against off in the same run, as a ratio, over
 *                             BENCH_RUNS runs (5) of BENCH_REDACTION_PAIRS pairs (2000); and the
 *                             redaction cost per KiB on the sender's turn; load average printed)
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
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

const REDACTION_PAIRS = Number(process.env.BENCH_REDACTION_PAIRS ?? 2000);
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
  /** Pre + Post callbacks (what the SDK awaits), µs, sorted */
  hook: number[];
  /** the deferred preparation (redaction, truncation) the Post hook scheduled, µs, sorted */
  deferred: number[];
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
/** the queue overflows by design here (the collector never answers): keep the loss warnings out of the output */
const quiet = { debug: () => {}, warn: () => {} };

/**
 * Pairs as a real agent makes them: PreToolUse, the tool runs (a turn of the event loop, in
 * which the Pre record is prepared), PostToolUse with `output`, then a turn in which the output
 * is prepared. `hook` times the two callbacks only; `deferred` the turn after Post.
 */
async function pairs(lightning: Lightning, output: string, n: number, busy: Redactor | null): Promise<PairStats> {
  const pre = lightning.hooks.PreToolUse[0]!.hooks[0]!;
  const post = lightning.hooks.PostToolUse[0]!.hooks[0]!;
  const hook: number[] = [];
  const deferred: number[] = [];
  for (let i = 0; i < n + 200; i++) {
    const id = `toolu_red_${i}`;
    const base = { session_id: `red-session-${i % 4}`, transcript_path: '/tmp/t', cwd: '/tmp', permission_mode: 'default' };
    const toolInput = { command: `cat logs/app-${i % 7}.log`, description: 'read the log' };
    const t0 = process.hrtime.bigint();
    inHook = true;
    await pre({ ...base, hook_event_name: 'PreToolUse', tool_name: 'Bash', tool_input: toolInput, tool_use_id: id }, id, { signal });
    inHook = false;
    const t1 = process.hrtime.bigint();
    await turn(); // the tool runs
    const t2 = process.hrtime.bigint();
    inHook = true;
    await post(
      { ...base, hook_event_name: 'PostToolUse', tool_name: 'Bash', tool_input: toolInput, tool_use_id: id, tool_response: { stdout: output, stderr: '', interrupted: false }, duration_ms: 12 },
      id,
      { signal },
    );
    inHook = false;
    const t3 = process.hrtime.bigint();
    await turn();
    const t4 = process.hrtime.bigint();
    // control: the same redaction work, done by the bench outside the package (redact off)
    if (busy) busy.text(output);
    if (i >= 200) {
      hook.push(Number(t1 - t0 + (t3 - t2)) / 1000);
      deferred.push(Number(t4 - t3) / 1000);
    }
  }
  hook.sort((a, b) => a - b);
  deferred.sort((a, b) => a - b);
  return { hook, deferred };
}

const RUNS = Number(process.env.BENCH_RUNS ?? 5);

// Counts Redactor.text() calls made inside a hook on a text of at least 1 KiB (a tool output);
// the hooks' own short log lines (a queue-overflow warning) are not counted.
let inHook = false;
let outputRedactionsInHooks = 0;
const redactorText = Redactor.prototype.text;
Redactor.prototype.text = function (this: Redactor, input: string): string {
  if (inHook && input.length >= 1024) outputRedactionsInHooks++;
  return redactorText.call(this, input);
};
const load = (): string => os.loadavg()[0]!.toFixed(2);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const range = (xs: number[], digits = 1): string => `${median(xs).toFixed(digits)} [${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}]`;

async function redactionSection(): Promise<void> {
  const server = await new HungServer().start();
  const typical = `src/a.ts:1: // TODO: tidy\n`.repeat(8);
  const outputs: [string, string][] = [
    ['typical (8 lines, 216 B)', typical],
    ['32 KiB of logs/lock files/code', textOf(benignTexts, 32 * 1024)],
    ['32 KiB full of secrets', textOf(secretTexts, 32 * 1024)],
  ];
  console.log(
    `\nredaction: ${RUNS} runs x ${REDACTION_PAIRS} pairs per setting, settings rotated within each run: on; off; control = off, and the bench redacts each output itself after the pair (the same CPU work, outside the package). A turn between Pre and Post as in an agent; collector never answers, spool off. Figures: median [min–max] over the runs.`,
  );
  for (const [label, output] of outputs) {
    const kib = Buffer.byteLength(output) / 1024;
    const p50: Record<string, number[]> = { on: [], off: [], control: [] };
    const p99: Record<string, number[]> = { on: [], off: [], control: [] };
    const ratioOff: number[] = [];
    const ratioControl: number[] = [];
    const perKib: number[] = [];
    const loads = [load()];
    outputRedactionsInHooks = 0;
    for (let run = 0; run < RUNS; run++) {
      const got: Record<string, PairStats> = {};
      const order = ['on', 'off', 'control'];
      for (let k = 0; k < order.length; k++) {
        const setting = order[(k + run) % order.length]!;
        const redact = setting === 'on';
        const l = instrument({ collectorUrl: server.url, apiKey: 'k', agentId: `bench-red-${run}`, handleProcessExit: false, maxQueueSize: 200, redact, spool: false, logger: quiet });
        got[setting] = await pairs(l, output, REDACTION_PAIRS, setting === 'control' ? new Redactor(true) : null);
        await l.shutdown({ timeoutMs: 50 });
      }
      for (const k of Object.keys(got)) {
        p50[k]!.push(percentile(got[k]!.hook, 50));
        p99[k]!.push(percentile(got[k]!.hook, 99));
      }
      ratioOff.push(percentile(got.on!.hook, 99) / percentile(got.off!.hook, 99));
      ratioControl.push(percentile(got.on!.hook, 99) / percentile(got.control!.hook, 99));
      perKib.push((percentile(got.on!.deferred, 50) - percentile(got.off!.deferred, 50)) / kib);
    }
    loads.push(load());
    console.log(`  ${label} (load average ${loads.join(' -> ')}; tool outputs redacted inside a hook: ${outputRedactionsInHooks})`);
    console.log(`    hook pair p50: on ${range(p50.on!)} µs, off ${range(p50.off!)} µs, control ${range(p50.control!)} µs`);
    console.log(`    hook pair p99: on ${range(p99.on!)} µs, off ${range(p99.off!)} µs, control ${range(p99.control!)} µs`);
    console.log(`    p99 ratio on/off ${range(ratioOff, 2)}; on/control ${range(ratioControl, 2)}`);
    console.log(`    deferred preparation, on minus off (p50): ${range(perKib, 2)} µs per KiB of output, on the sender's turn`);
  }
  await server.close();

  // Redactor.text alone: µs per KiB; per run the median of 41 calls, then median [min–max] over runs
  const r = new Redactor(true);
  console.log(`\nRedactor.text() alone, µs per KiB (median of 41 calls per run, median [min–max] over ${RUNS} runs):`);
  for (const [label, text] of [
    ['32 KiB of logs/lock files/code', textOf(benignTexts, 32 * 1024)],
    ['32 KiB full of secrets', textOf(secretTexts, 32 * 1024)],
    ['typical (8 lines)', typical],
  ] as [string, string][]) {
    const kib = Buffer.byteLength(text) / 1024;
    const perRun: number[] = [];
    const before = load();
    for (let run = 0; run < RUNS; run++) {
      const calls: number[] = [];
      for (let k = 0; k < 51; k++) {
        const t0 = process.hrtime.bigint();
        r.text(text);
        if (k >= 10) calls.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
      perRun.push(median(calls) / kib);
    }
    console.log(`  ${label.padEnd(32)} ${range(perRun, 2)} µs/KiB (load average ${before} -> ${load()})`);
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
