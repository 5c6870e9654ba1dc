/**
 * Lifecycle: bounded delivery for flush()/shutdown(), and what happens when the process ends —
 * the event loop empties (beforeExit), process.exit(), an uncaught exception or unhandled
 * rejection, SIGINT or SIGTERM. Every ending completes the trajectories still open with an honest
 * status and writes what could not be sent to the spool, synchronously where it must be. Nothing
 * here changes the process's exit code or keeps it alive longer than `shutdownTimeoutMs`.
 */
import type { LightningClient } from './client.js';
import type { Outbox } from './outbox.js';
import type { Recorder } from './recorder.js';
import { errorMessage } from './sanitize.js';

/** The SDK's error after an error result (max turns, API error, …): the agent ended, failing. */
const SDK_ERROR_RESULT = /^Claude Code returned an error result: ?([\s\S]*)$/;

export interface DeliverOptions {
  /** end the request in flight at the deadline (the caller is about to spool) */
  abortAtDeadline: boolean;
  /** stop at once when the collector cannot be reached (refused/reset/timed out) */
  giveUpOnNetworkError: boolean;
}

export interface LifecycleDeps {
  outbox: Outbox;
  client: LightningClient;
  recorder: Recorder;
  shutdownTimeoutMs: number;
  debug: (message: string) => void;
  /** stops capture (hooks and track() become no-ops) */
  close: () => void;
}

const sleep = (ms: number): Promise<void> => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * Tries to deliver everything (with short retries) until the deadline. The deadline timer is
 * referenced: while a caller awaits this, the process stays alive (at most `timeoutMs`).
 */
export async function deliverWithin(deps: Pick<LifecycleDeps, 'outbox' | 'client'>, timeoutMs: number, opts: DeliverOptions): Promise<void> {
  const { outbox, client } = deps;
  const deadline = Date.now() + timeoutMs;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let expiredFlag = false;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      expiredFlag = true;
      resolve();
    }, Math.max(0, timeoutMs));
  });
  const loop = async (): Promise<void> => {
    let attempt = 0;
    while (outbox.sending && outbox.pending > 0 && Date.now() < deadline && !expiredFlag) {
      outbox.prepareAll();
      await outbox.flush();
      if (outbox.pending === 0 || !outbox.sending || expiredFlag) return;
      if (opts.giveUpOnNetworkError && outbox.lastOk === false && outbox.lastFailureNetwork) return;
      attempt++;
      const wait = Math.min(deadline - Date.now(), 50 * 2 ** Math.min(attempt, 6));
      if (wait <= 0) return;
      await sleep(wait);
    }
  };
  try {
    await Promise.race([loop(), expired]);
  } finally {
    if (timer) clearTimeout(timer);
  }
  if (opts.abortAtDeadline && (client.inFlight > 0 || outbox.pending > 0)) {
    // the process is ending: no new request may start; the one in flight is cut off now
    outbox.stopSending();
    client.abortAll();
    await outbox.idle();
  }
}

export class Lifecycle {
  private readonly detach: (() => void)[] = [];
  private exitFlushRunning = false;
  private fatal: { message: string; origin: string } | null = null;

  constructor(private readonly deps: LifecycleDeps) {}

  /** Completes every open trajectory: the process (or instance) ends before they did. */
  endOpen(why: string): void {
    const open = this.deps.recorder.openTrajectories();
    if (open.length === 0) return;
    const fatal = this.fatal;
    const sdkError = fatal ? SDK_ERROR_RESULT.exec(fatal.message) : null;
    if (sdkError) {
      // the agent itself ended with an error result that the caller did not catch
      this.deps.recorder.endAll(open, 'failed', sdkError[1]!.trim() || fatal!.message);
    } else if (fatal) {
      // (a throw at an ES module's top level reaches the monitor as an unhandled rejection)
      this.deps.recorder.endAll(open, 'interrupted', `An uncaught error ended the process before the agent finished: ${fatal.message}`);
    } else {
      this.deps.recorder.endAll(open, 'interrupted', why);
    }
  }

  /** flush(), shutdown() and the exit paths share this; exits give up early on a dead collector. */
  deliver(timeoutMs: number, exiting: boolean): Promise<void> {
    return deliverWithin(this.deps, timeoutMs, { abortAtDeadline: exiting, giveUpOnNetworkError: exiting });
  }

  /** Delivers within the timeout, then writes the rest to the spool (synchronously). */
  async finish(timeoutMs: number): Promise<void> {
    try {
      await this.deliver(timeoutMs, true);
    } finally {
      this.deps.outbox.stopSending();
      this.deps.outbox.spoolAll();
    }
  }

  detachAll(): void {
    for (const d of this.detach.splice(0)) d();
  }

  attach(): void {
    const { outbox, shutdownTimeoutMs } = this.deps;
    const onBeforeExit = (): void => {
      // the event loop emptied: nothing the agent does can still come. Complete what is open,
      // deliver within shutdownTimeoutMs (the deadline timer keeps the process alive that long),
      // then spool the rest so the process can exit.
      if (this.exitFlushRunning) return;
      this.endOpen('The process ended before the agent finished (no Stop hook or result was seen)');
      if (outbox.pending === 0) return;
      this.exitFlushRunning = true;
      void this.deliver(shutdownTimeoutMs, true).finally(() => {
        this.exitFlushRunning = false;
        if (outbox.pending > 0) outbox.spoolAll();
      });
    };
    const onExit = (code: number): void => {
      // synchronous: nothing can be sent any more, but the spool can be written
      try {
        this.endOpen(`The process exited (code ${code}) before the agent finished`);
      } finally {
        outbox.stopSending();
        outbox.spoolAll();
      }
    };
    const onFatal = (error: unknown, origin: string): void => {
      // a monitor only observes: the process still crashes as it would without us
      this.fatal = { message: errorMessage(error), origin };
      // if a handler of the caller's keeps the process alive, this was not its end
      setImmediate(() => {
        this.fatal = null;
      }).unref();
    };
    const signalHandler = (signal: NodeJS.Signals): (() => void) => {
      const handler = (): void => {
        process.removeListener(signal, handler);
        if (process.listenerCount(signal) > 0) return; // the caller handles it: its process, its call
        this.deps.close();
        this.endOpen(`The process received ${signal} before the agent finished`);
        void this.finish(shutdownTimeoutMs).finally(() => {
          // the default action: the process ends by the signal, as it would without us
          if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
        });
      };
      return handler;
    };
    const onSigint = signalHandler('SIGINT');
    const onSigterm = signalHandler('SIGTERM');
    process.on('beforeExit', onBeforeExit);
    process.on('exit', onExit);
    process.on('uncaughtExceptionMonitor', onFatal);
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
    this.detach.push(
      () => process.removeListener('beforeExit', onBeforeExit),
      () => process.removeListener('exit', onExit),
      () => process.removeListener('uncaughtExceptionMonitor', onFatal),
      () => process.removeListener('SIGINT', onSigint),
      () => process.removeListener('SIGTERM', onSigterm),
    );
  }
}
