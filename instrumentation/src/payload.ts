/**
 * Payload preparation: turns captured drafts into the wire payloads — every string redacted,
 * every field truncated to maxFieldBytes, the user's sanitizer applied (fail closed). Runs off
 * the hook path; its output is the only form in which data is kept, sent or spooled.
 */
import type { CompleteDraft, Preparer, ScoreDraft, StartDraft, StepDraft } from './outbox.js';
import { Redactor } from './redact.js';
import { applyUserSanitizer, sanitizeField, toJsonSafe, truncateJson } from './sanitize.js';
import type { CompletePayload, ScorePayload, StartPayload, StepPayload, StepSanitizer } from './types.js';

/** The collector's limit for a score's comment, in Unicode characters (not bytes). */
export const MAX_SCORE_COMMENT_CHARS = 16_384;

/**
 * Cuts a (redacted) comment to the collector's character limit, marker included, instead of
 * letting the collector refuse the whole score. Counts code points, as the collector does.
 */
export function capScoreComment(s: string, maxChars: number = MAX_SCORE_COMMENT_CHARS): string {
  const chars = Array.from(s);
  if (chars.length <= maxChars) return s;
  const marker = (omitted: number): string => `…[truncated: ${omitted} of ${chars.length} characters omitted]`;
  // the marker for fewer omitted characters is never longer than this one
  const reserve = Array.from(marker(chars.length)).length;
  if (reserve >= maxChars) return chars.slice(0, maxChars).join('');
  const keep = maxChars - reserve;
  return chars.slice(0, keep).join('') + marker(chars.length - keep);
}

export class PayloadPreparer implements Preparer {
  constructor(
    private readonly redactor: Redactor,
    private readonly maxFieldBytes: number,
    private readonly sanitize: StepSanitizer | undefined,
    private readonly onSanitizeError: (message: string) => void,
  ) {}

  private text(v: unknown, max: number): string {
    const safe = sanitizeField(v, this.redactor, max);
    return typeof safe === 'string' ? safe : JSON.stringify(safe);
  }

  start(d: StartDraft): StartPayload {
    const b = d.body;
    const max = this.maxFieldBytes;
    const out: StartPayload = { trajectoryId: b.trajectoryId, agentId: b.agentId, startTime: b.startTime };
    if (b.taskType !== undefined) out.taskType = b.taskType;
    if (b.sessionId !== undefined) out.sessionId = b.sessionId;
    if (b.promptVersion !== undefined) out.promptVersion = b.promptVersion;
    if (b.model !== undefined) out.model = b.model;
    if (b.prompt !== undefined) out.prompt = this.text(b.prompt, max);
    if (b.systemPrompt !== undefined) out.systemPrompt = this.text(b.systemPrompt, max);
    if (b.metadata !== undefined) {
      const md = sanitizeField(b.metadata, this.redactor, max);
      if (md && typeof md === 'object' && !Array.isArray(md)) out.metadata = md;
    }
    return out;
  }

  step(d: StepDraft): StepPayload {
    const max = this.maxFieldBytes;
    let step: StepPayload = { stepNumber: d.stepNumber, toolName: d.toolName };
    if (d.kind !== undefined && d.kind !== 'tool') step.kind = d.kind;
    if (d.timestampMs !== undefined) step.timestamp = new Date(d.timestampMs).toISOString();
    if (d.toolUseId !== undefined) step.toolUseId = d.toolUseId;
    if (d.hasInput) step.toolInput = toJsonSafe(d.input, this.redactor, max);
    if (d.hasOutput) step.toolOutput = toJsonSafe(d.output, this.redactor, max);
    if (d.error !== undefined) step.error = toJsonSafe(d.error, this.redactor, max) as string;
    if (d.durationMs !== undefined) step.durationMs = Math.max(0, Math.round(d.durationMs));
    if (d.metadata !== undefined) {
      const md = toJsonSafe(d.metadata, this.redactor, max);
      if (md && typeof md === 'object' && !Array.isArray(md)) step.metadata = md;
    }
    if (this.sanitize) {
      step = applyUserSanitizer(step, this.sanitize, this.onSanitizeError);
      // whatever the sanitizer returned must still be JSON data
      step = this.rebuildStep(step, d);
    }
    if (step.toolInput !== undefined) step.toolInput = truncateJson(step.toolInput, max);
    if (step.toolOutput !== undefined) step.toolOutput = truncateJson(step.toolOutput, max);
    if (typeof step.error === 'string') step.error = truncateJson(step.error, max) as string;
    if (step.metadata !== undefined) {
      const md = truncateJson(step.metadata, max);
      step.metadata = md && typeof md === 'object' && !Array.isArray(md) ? md : { truncated: md };
    }
    return step;
  }

  private rebuildStep(step: StepPayload, d: StepDraft): StepPayload {
    const plain = new Redactor(false);
    const out: StepPayload = {
      stepNumber: d.stepNumber,
      toolName: typeof step.toolName === 'string' && step.toolName ? step.toolName : d.toolName,
    };
    if (d.kind !== undefined && d.kind !== 'tool') out.kind = d.kind;
    if (typeof step.timestamp === 'string') out.timestamp = step.timestamp;
    if (typeof step.toolUseId === 'string') out.toolUseId = step.toolUseId;
    if (step.toolInput !== undefined) out.toolInput = toJsonSafe(step.toolInput, plain);
    if (step.toolOutput !== undefined) out.toolOutput = toJsonSafe(step.toolOutput, plain);
    if (step.error !== undefined && step.error !== null) {
      out.error = typeof step.error === 'string' ? step.error : JSON.stringify(toJsonSafe(step.error, plain));
    }
    if (typeof step.durationMs === 'number' && Number.isFinite(step.durationMs)) out.durationMs = Math.max(0, Math.round(step.durationMs));
    if (step.metadata !== undefined) {
      const md = toJsonSafe(step.metadata, plain);
      if (md && typeof md === 'object' && !Array.isArray(md)) out.metadata = md;
    }
    return out;
  }

  complete(d: CompleteDraft): CompletePayload {
    const b = d.body;
    const max = this.maxFieldBytes;
    const out: CompletePayload = { success: b.success, endTime: b.endTime };
    if (b.status !== undefined) out.status = b.status;
    if (b.result !== undefined) out.result = sanitizeField(b.result, this.redactor, max);
    if (b.error !== undefined) out.error = this.text(b.error, max);
    if (b.totalSteps !== undefined) out.totalSteps = Math.max(0, Math.round(b.totalSteps));
    if (b.duration !== undefined) out.duration = Math.max(0, Math.round(b.duration));
    if (b.costUsd !== undefined) out.costUsd = b.costUsd;
    if (b.usage !== undefined) out.usage = b.usage;
    if (b.numTurns !== undefined) out.numTurns = Math.max(0, Math.round(b.numTurns));
    return out;
  }

  score(d: ScoreDraft): ScorePayload {
    const b = d.body;
    const max = this.maxFieldBytes;
    const out: ScorePayload = { id: b.id, name: b.name, value: b.value };
    if (b.comment !== undefined) out.comment = capScoreComment(this.text(b.comment, max));
    if (b.source !== undefined) out.source = b.source;
    if (b.stepNumber !== undefined) out.stepNumber = b.stepNumber;
    if (b.metadata !== undefined) {
      const md = truncateJson(toJsonSafe(b.metadata, this.redactor, max), max);
      if (md && typeof md === 'object' && !Array.isArray(md)) out.metadata = md;
    }
    return out;
  }
}
