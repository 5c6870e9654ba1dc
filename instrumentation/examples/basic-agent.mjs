#!/usr/bin/env node
// A runnable example agent: the Claude Agent SDK with Agent Lightning instrumentation.
//
//   cd instrumentation && npm ci && npm run build
//   COLLECTOR_URL=http://localhost:4000 LIGHTNING_API_KEY=... ANTHROPIC_API_KEY=... \
//     node examples/basic-agent.mjs "Summarise README.md in one sentence"
//
// Environment: COLLECTOR_URL (default http://localhost:4000), LIGHTNING_API_KEY (an `ingest` key,
// never the admin API_KEY: `lightning keys create --name example-agent --scope ingest`), AGENT_ID (default example-agent), ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL for a
// compatible endpoint), WORKDIR (default: the current directory), LIGHTNING_DEBUG=1 for logs.
import { query } from '@anthropic-ai/claude-agent-sdk';
import { instrument, mergeHooks } from '../dist/esm/index.js';

const task = process.argv.slice(2).join(' ') || 'List the files in this directory and say which one is largest.';

const lightning = instrument({
  collectorUrl: process.env.COLLECTOR_URL ?? 'http://localhost:4000',
  apiKey: process.env.LIGHTNING_API_KEY ?? '',
  agentId: process.env.AGENT_ID ?? 'example-agent',
  taskType: 'example',
  debug: process.env.LIGHTNING_DEBUG === '1',
  spoolDir: process.env.LIGHTNING_SPOOL_DIR, // optional: keep data when the collector is down
});

// The latest optimized prompt for this agent, or this fallback when the collector has none.
const systemPrompt = await lightning.prompt('You are a concise, careful assistant working in a code repository.');

// Your own hooks still work: merge them with the instrumentation's.
const blockDangerous = async (input) => {
  const command = String(input.tool_input?.command ?? '');
  if (/\brm\s+-rf\b/.test(command)) {
    return { hookSpecificOutput: { hookEventName: 'PreToolUse', permissionDecision: 'deny', permissionDecisionReason: 'rm -rf is not allowed here' } };
  }
  return {};
};

let exitCode = 0;
try {
  for await (const message of lightning.track(
    query({
      prompt: task,
      options: {
        cwd: process.env.WORKDIR ?? process.cwd(),
        systemPrompt,
        allowedTools: ['Read', 'Glob', 'Grep', 'Bash'],
        maxTurns: 10,
        hooks: mergeHooks(lightning.hooks, { PreToolUse: [{ matcher: 'Bash', hooks: [blockDangerous] }] }),
      },
    }),
    { prompt: task, systemPrompt },
  )) {
    if (message.type === 'assistant') {
      for (const block of message.message.content) {
        if (block.type === 'text') console.log(block.text);
        if (block.type === 'tool_use') console.log(`→ ${block.name} ${JSON.stringify(block.input)}`);
      }
    } else if (message.type === 'result') {
      console.log(`\n[${message.subtype}] turns=${message.num_turns} cost=$${message.total_cost_usd.toFixed(4)}`);
    }
  }
} catch (error) {
  // the SDK throws after an error result; the trajectory is already recorded as failed
  console.error(`agent failed: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
} finally {
  await lightning.shutdown();
  const s = lightning.stats();
  console.error(`[lightning] sent=${s.sent} dropped=${s.dropped} spooled=${s.spooled}${s.lastError ? ` lastError=${s.lastError}` : ''}`);
}
process.exit(exitCode);
