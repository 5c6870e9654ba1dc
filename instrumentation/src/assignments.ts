/**
 * Which prompt assignment a trajectory records (`promptVersion` and metadata `promptAssignment`).
 *
 * prompt() may be asked for several units before their runs start (a server handling users A and
 * B), so the assignment is not an instance-wide "last answer": each run records the assignment it
 * used, decided when its trajectory starts, in this order:
 *
 * 1. the `assignment` passed to track()/query() (the PromptResult of that run's prompt() call);
 * 2. the assignment an earlier trajectory of the same SDK session recorded;
 * 3. the prompt() result whose text is part of the run's system prompt (known from
 *    track()/query(); the longest such text, then the newest), so the version is the one whose
 *    text the run really used;
 * 4. the only prompt() result no trajectory has used yet;
 * 5. several unused results for different units and nothing to tell them apart: the run is
 *    recorded as `unattributed` (no promptVersion) rather than with another unit's version;
 * 6. every result already used (prompt() once, many runs): the newest one.
 */
import type { PromptAssignment, PromptResult } from './types.js';
import type { StartDraft } from './outbox.js';

const MAX_REMEMBERED = 1000;

interface Remembered {
  text: string;
  version: string | null;
  assignment: PromptAssignment;
  used: boolean;
}

type Attribution = { version: string | null; assignment: Record<string, unknown> };

export class PromptAssignments {
  /** prompt() results, one per unit, oldest first. */
  private readonly byUnit = new Map<string, Remembered>();
  /** what each SDK session's trajectories record once one of them was attributed */
  private readonly bySession = new Map<string, Attribution>();
  /** The version of the newest prompt() result (stats().promptVersion). */
  latestVersion: string | null = null;

  remember(result: PromptResult): void {
    const unit = result.assignment.unit;
    this.byUnit.delete(unit);
    this.byUnit.set(unit, { text: result.text, version: result.version, assignment: result.assignment, used: false });
    trim(this.byUnit);
    this.latestVersion = result.version;
  }

  /**
   * Sets `promptVersion` and `metadata.promptAssignment` of a start record (replacing what an
   * earlier, less informed call set). `explicit` is the run's own prompt() result, if given.
   */
  attribute(body: StartDraft['body'], explicit?: PromptResult): void {
    const chosen = explicit ? { version: explicit.version, assignment: { ...explicit.assignment } } : this.pick(body);
    if (!chosen) return;
    if (chosen.version !== null) body.promptVersion = chosen.version;
    else delete body.promptVersion;
    body.metadata = { ...(body.metadata ?? {}), promptAssignment: chosen.assignment };
    if (chosen.assignment.arm !== 'unattributed' && body.sessionId !== undefined) {
      this.bySession.delete(body.sessionId);
      this.bySession.set(body.sessionId, chosen);
      trim(this.bySession);
    }
  }

  private pick(body: StartDraft['body']): Attribution | undefined {
    if (this.byUnit.size === 0) return undefined;
    const session = body.sessionId !== undefined ? this.bySession.get(body.sessionId) : undefined;
    if (session) return session;
    const newestFirst = [...this.byUnit.values()].reverse();
    const use = (r: Remembered): Attribution => {
      r.used = true;
      return { version: r.version, assignment: { ...r.assignment } };
    };
    const system = typeof body.systemPrompt === 'string' ? body.systemPrompt : undefined;
    if (system !== undefined) {
      // the longest text wins: a candidate that extends the promoted text contains it
      let match: Remembered | undefined;
      for (const r of newestFirst) {
        if (r.text.length > 0 && system.includes(r.text) && (!match || r.text.length > match.text.length)) match = r;
      }
      if (match) return use(match);
    }
    const unused = newestFirst.filter((r) => !r.used);
    if (unused.length === 1) return use(unused[0]!);
    if (unused.length > 1) {
      return {
        version: null,
        assignment: {
          arm: 'unattributed',
          units: unused.length,
          reason: 'prompt() was asked for several units before this run started; pass its result to track()/query() as `assignment`',
        },
      };
    }
    return use(newestFirst[0]!);
  }
}

function trim<K, V>(map: Map<K, V>): void {
  while (map.size > MAX_REMEMBERED) map.delete(map.keys().next().value as K);
}
