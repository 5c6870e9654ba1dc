/**
 * Disk spool: records that could not be delivered are appended as JSON lines to a file owned by
 * this process; the next process using the same directory claims such files (atomic rename),
 * replays them and deletes them once their records were delivered or re-spooled.
 *
 * Replays may duplicate records a crashed process had already sent; the collector makes that
 * harmless (idempotent starts, steps merged by (trajectoryId, stepNumber), idempotent completes,
 * scores keyed by their client id). The format is specified in docs/spool.md.
 *
 * Only prepared records are written: redacted and truncated exactly as they would be sent. The
 * directory is created 0700 and files 0600.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { CompletePayload, Logger, ScorePayload, StartPayload, StepPayload } from './types.js';
import { errorMessage } from './sanitize.js';

export type SpoolRecord =
  | { v: 1; kind: 'start'; trajectoryId: string; body: StartPayload }
  | { v: 1; kind: 'step'; trajectoryId: string; body: StepPayload }
  | { v: 1; kind: 'complete'; trajectoryId: string; body: CompletePayload }
  | { v: 1; kind: 'score'; trajectoryId: string; body: ScorePayload };

const KINDS = new Set(['start', 'step', 'complete', 'score']);

const SUFFIX = '.jsonl';
const CLAIM = '.claimed-';

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class Spool {
  private readonly file: string;
  private readonly claimed: string[] = [];
  private bytesWritten = 0;
  private warnedFull = false;

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly logger: Logger,
    private readonly debug: boolean,
  ) {
    this.file = path.join(dir, `spool-${Date.now()}-${process.pid}-${randomUUID().slice(0, 8)}${SUFFIX}`);
  }

  private dirReady = false;

  private ensureDir(): void {
    if (this.dirReady) return;
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    try {
      const st = fs.statSync(this.dir);
      // tighten a directory this user created earlier with looser permissions
      if (typeof process.getuid === 'function' && st.uid === process.getuid() && (st.mode & 0o077) !== 0) {
        fs.chmodSync(this.dir, 0o700);
      }
    } catch {
      /* best effort */
    }
    this.dirReady = true;
  }

  /** Bytes currently held by the directory's spool files (approximate, never throws). */
  private dirBytes(): number {
    try {
      let total = 0;
      for (const name of fs.readdirSync(this.dir)) {
        if (!name.startsWith('spool-')) continue;
        try {
          total += fs.statSync(path.join(this.dir, name)).size;
        } catch {
          /* vanished */
        }
      }
      return total;
    } catch {
      return 0;
    }
  }

  /** Appends records synchronously (safe in 'exit' handlers). Returns how many were written. */
  write(records: SpoolRecord[]): number {
    if (records.length === 0) return 0;
    try {
      this.ensureDir();
      let used = this.dirBytes();
      const lines: string[] = [];
      for (const r of records) {
        const line = JSON.stringify(r) + '\n';
        const size = Buffer.byteLength(line);
        if (used + size > this.maxBytes) {
          if (!this.warnedFull) {
            this.warnedFull = true;
            this.logger.warn(
              `[Lightning Instrumentation] Spool ${this.dir} is full (${this.maxBytes} bytes); dropping records`,
            );
          }
          break;
        }
        used += size;
        lines.push(line);
      }
      if (lines.length === 0) return 0;
      const data = lines.join('');
      fs.appendFileSync(this.file, data, { mode: 0o600 });
      this.bytesWritten += Buffer.byteLength(data);
      if (this.debug) this.logger.debug(`[Spool] Wrote ${lines.length} records to ${this.file}`);
      return lines.length;
    } catch (e) {
      this.logger.warn(`[Lightning Instrumentation] Could not write spool ${this.file}: ${errorMessage(e)}`);
      return 0;
    }
  }

  /**
   * Claims every spool file left by other processes (and claims of dead processes) and returns
   * their records in file order. Unparsable lines are skipped.
   */
  claim(): SpoolRecord[] {
    const out: SpoolRecord[] = [];
    let names: string[];
    try {
      names = fs.readdirSync(this.dir).sort();
    } catch {
      return out;
    }
    const own = path.basename(this.file);
    for (const name of names) {
      if (!name.startsWith('spool-') || name === own) continue;
      let source: string;
      if (name.endsWith(SUFFIX)) {
        source = name;
      } else if (name.includes(CLAIM)) {
        const pid = Number(name.slice(name.lastIndexOf(CLAIM) + CLAIM.length));
        if (pidAlive(pid)) continue;
        source = name;
      } else {
        continue;
      }
      const base = source.includes(CLAIM) ? source.slice(0, source.lastIndexOf(CLAIM)) : source;
      const target = path.join(this.dir, `${base}${CLAIM}${process.pid}`);
      try {
        fs.renameSync(path.join(this.dir, source), target);
      } catch {
        continue; // another process got it first
      }
      this.claimed.push(target);
      let text = '';
      try {
        text = fs.readFileSync(target, 'utf8');
      } catch (e) {
        this.logger.warn(`[Lightning Instrumentation] Could not read spool ${target}: ${errorMessage(e)}`);
        continue;
      }
      for (const line of text.split('\n')) {
        if (!line.trim()) continue;
        try {
          const r = JSON.parse(line) as SpoolRecord;
          if (
            r &&
            r.v === 1 &&
            typeof r.trajectoryId === 'string' &&
            KINDS.has(r.kind) &&
            r.body &&
            typeof r.body === 'object'
          ) {
            out.push(r);
          }
        } catch {
          /* a torn last line from a crash */
        }
      }
    }
    if (this.debug && out.length > 0) {
      this.logger.debug(`[Spool] Replaying ${out.length} records from ${this.claimed.length} file(s)`);
    }
    return out;
  }

  /** Deletes the files claimed by claim(): call once their records are delivered or re-spooled. */
  releaseClaimed(): void {
    while (this.claimed.length > 0) {
      const file = this.claimed.pop() as string;
      try {
        fs.unlinkSync(file);
      } catch {
        /* already gone */
      }
    }
  }

  get hasClaimed(): boolean {
    return this.claimed.length > 0;
  }
}
