import { instrument } from '../../src/index.js';
import type { InstrumentOptions, Lightning } from '../../src/types.js';

export interface Logs {
  debug: string[];
  warn: string[];
}

export function make(url: string, over: Partial<InstrumentOptions> = {}): { lightning: Lightning; logs: Logs } {
  const logs: Logs = { debug: [], warn: [] };
  const lightning = instrument({
    collectorUrl: url,
    apiKey: 'test-key',
    agentId: 'unit-agent',
    flushInterval: 60_000,
    spool: over.spoolDir !== undefined,
    handleProcessExit: false,
    retry: { baseDelayMs: 20, maxDelayMs: 200 },
    requestTimeoutMs: 2000,
    logger: { debug: (m) => logs.debug.push(m), warn: (m) => logs.warn.push(m) },
    ...over,
  });
  return { lightning, logs };
}
