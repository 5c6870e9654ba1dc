/**
 * Turning arbitrary tool inputs/outputs into bounded, secret-free JSON.
 *
 * - never throws, whatever the value (circular, getters that throw, proxies, BigInt, binary…)
 * - redacts secrets in every string and withholds values under sensitive keys
 * - truncates to a byte budget, leaving a marker that says how much was cut
 */
import { isSensitiveKey, Redactor } from './redact.js';
import type { JsonValue, StepPayload, StepSanitizer } from './types.js';

const MAX_DEPTH = 32;
const MAX_KEYS = 1000;
const MAX_ARRAY = 10000;

export const WITHHELD = '[REDACTED:sensitive_key]';

function withheld(redactor: Redactor): string {
  redactor.countWithheld();
  return WITHHELD;
}

/** `{ name: 'DB_PASSWORD', value: '…' }` (Kubernetes env, ECS task definitions): the value is a secret. */
function withholdNamedValue(out: { [k: string]: JsonValue }, redactor: Redactor): void {
  const name = out.name ?? out.Name;
  const valueKey = 'value' in out ? 'value' : 'Value' in out ? 'Value' : null;
  if (valueKey === null || typeof name !== 'string' || !isSensitiveKey(name)) return;
  const value = out[valueKey];
  if (typeof value === 'string' && value !== WITHHELD) out[valueKey] = withheld(redactor);
}

function describeBinary(kind: string, bytes: number): string {
  return `[binary ${kind}: ${bytes} bytes]`;
}

/** Converts any value to JSON-safe data, redacting strings. Never throws. */
export function toJsonSafe(value: unknown, redactor: Redactor, maxStringBytes = Infinity): JsonValue {
  const seen = new Set<object>();
  // Huge strings are cut before redaction (which is linear, but still costs on megabytes).
  // The margin keeps secrets that straddle the final cut intact for the redaction rules.
  const preCut = maxStringBytes === Infinity ? Infinity : maxStringBytes + 2048;

  const walk = (v: unknown, depth: number): JsonValue => {
    switch (typeof v) {
      case 'string': {
        const s = v.length > preCut ? truncateString(v, preCut) : v;
        return redactor.enabled ? redactor.text(s) : s;
      }
      case 'number':
        return Number.isFinite(v) ? v : String(v);
      case 'boolean':
        return v;
      case 'bigint':
        return v.toString();
      case 'undefined':
        return null;
      case 'symbol':
        return v.toString();
      case 'function':
        return `[function ${(v as { name?: string }).name || 'anonymous'}]`;
      default:
        break;
    }
    if (v === null) return null;
    const obj = v as object;
    if (seen.has(obj)) return '[circular]';
    if (depth >= MAX_DEPTH) return '[max depth]';
    try {
      if (obj instanceof Date) {
        return Number.isNaN(obj.getTime()) ? 'Invalid Date' : obj.toISOString();
      }
      if (obj instanceof ArrayBuffer) return describeBinary('ArrayBuffer', obj.byteLength);
      if (ArrayBuffer.isView(obj)) {
        const name = (obj.constructor && obj.constructor.name) || 'ArrayBufferView';
        return describeBinary(name, obj.byteLength);
      }
      if (typeof SharedArrayBuffer !== 'undefined' && obj instanceof SharedArrayBuffer) {
        return describeBinary('SharedArrayBuffer', obj.byteLength);
      }
      if (obj instanceof RegExp) return obj.toString();
      seen.add(obj);
      try {
        if (obj instanceof Error) {
          const out: { [k: string]: JsonValue } = {
            name: walk(obj.name, depth + 1),
            message: walk(obj.message, depth + 1),
          };
          if (obj.stack) out.stack = walk(obj.stack, depth + 1);
          const cause = (obj as { cause?: unknown }).cause;
          if (cause !== undefined) out.cause = walk(cause, depth + 1);
          return out;
        }
        if (Array.isArray(obj)) {
          const n = Math.min(obj.length, MAX_ARRAY);
          const out: JsonValue[] = new Array<JsonValue>(n);
          for (let i = 0; i < n; i++) out[i] = walk(obj[i], depth + 1);
          if (obj.length > n) out.push(`[${obj.length - n} more items]`);
          return out;
        }
        if (obj instanceof Map) {
          const out: { [k: string]: JsonValue } = {};
          let i = 0;
          for (const [k, val] of obj) {
            if (i++ >= MAX_KEYS) break;
            const key = typeof k === 'string' ? k : String(walk(k, depth + 1));
            out[key] = isSensitiveKey(key) && val != null ? withheld(redactor) : walk(val, depth + 1);
          }
          return out;
        }
        if (obj instanceof Set) {
          const out: JsonValue[] = [];
          for (const val of obj) {
            if (out.length >= MAX_ARRAY) break;
            out.push(walk(val, depth + 1));
          }
          return out;
        }
        const toJSON = (obj as { toJSON?: unknown }).toJSON;
        if (typeof toJSON === 'function') {
          return walk(toJSON.call(obj), depth + 1);
        }
        const out: { [k: string]: JsonValue } = {};
        const keys = Object.keys(obj);
        const n = Math.min(keys.length, MAX_KEYS);
        for (let i = 0; i < n; i++) {
          const key = keys[i] as string;
          let val: unknown;
          try {
            val = (obj as Record<string, unknown>)[key];
          } catch (e) {
            out[key] = `[unreadable: ${errorMessage(e)}]`;
            continue;
          }
          if (val === undefined || typeof val === 'function' || typeof val === 'symbol') continue;
          out[key] =
            isSensitiveKey(key) && val !== null && typeof val !== 'boolean' && typeof val !== 'number'
              ? withheld(redactor)
              : walk(val, depth + 1);
        }
        if (keys.length > n) out['…'] = `[${keys.length - n} more keys]`;
        withholdNamedValue(out, redactor);
        return out;
      } finally {
        seen.delete(obj);
      }
    } catch (e) {
      return `[unserializable: ${errorMessage(e)}]`;
    }
  };

  return walk(value, 0);
}

export function errorMessage(e: unknown): string {
  try {
    if (e instanceof Error) return e.message;
    return String(e);
  } catch {
    return 'unknown error';
  }
}

export function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

export function jsonBytes(v: JsonValue | undefined): number {
  if (v === undefined) return 0;
  return byteLength(JSON.stringify(v));
}

export function truncationMarker(omittedBytes: number, totalBytes: number): string {
  return `…[truncated: ${omittedBytes} of ${totalBytes} bytes omitted]`;
}

const MARKER_RE = /…\[truncated: (\d+) of (\d+) bytes omitted\]$/;

/**
 * Cuts a string to at most maxBytes UTF-8 bytes (marker included when cut). A string that was
 * already cut keeps counting against its original size.
 */
export function truncateString(s: string, maxBytes: number): string {
  const size = byteLength(s);
  if (size <= maxBytes) return s;
  let base = s;
  let total = size;
  const previous = MARKER_RE.exec(s);
  if (previous) {
    base = s.slice(0, previous.index);
    total = Number(previous[2]);
  }
  const buf = Buffer.from(base, 'utf8');
  let keep = Math.min(buf.length, Math.max(0, maxBytes - byteLength(truncationMarker(total, total))));
  for (;;) {
    // back off to a UTF-8 character boundary (continuation bytes are 10xxxxxx)
    while (keep > 0 && keep < buf.length && ((buf[keep] as number) & 0xc0) === 0x80) keep--;
    const cut = buf.subarray(0, keep).toString('utf8');
    const kept = byteLength(cut);
    const marker = truncationMarker(total - kept, total);
    if (kept + byteLength(marker) <= maxBytes || keep === 0) return cut + marker;
    keep = Math.max(0, keep - 4);
  }
}

interface Leaf {
  parent: { [k: string]: JsonValue } | JsonValue[];
  key: string | number;
  length: number;
}

function collectStrings(v: JsonValue, out: Leaf[], depth: number): void {
  if (depth > MAX_DEPTH || v === null || typeof v !== 'object') return;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const item = v[i] as JsonValue;
      if (typeof item === 'string') out.push({ parent: v, key: i, length: item.length });
      else collectStrings(item, out, depth + 1);
    }
    return;
  }
  for (const key of Object.keys(v)) {
    const item = v[key] as JsonValue;
    if (typeof item === 'string') out.push({ parent: v, key, length: item.length });
    else collectStrings(item, out, depth + 1);
  }
}

/**
 * Ensures a JSON-safe value serializes to at most maxBytes. Strings are cut first (the longest
 * ones), keeping the structure; when that is not enough the value is replaced by a preview
 * object `{ "[truncated]": marker, preview }`. The value may be mutated (it must be our own copy).
 */
export function truncateJson(value: JsonValue, maxBytes: number): JsonValue {
  if (typeof value === 'string') return truncateString(value, maxBytes);
  if (value === null || typeof value !== 'object') return value;
  let size = jsonBytes(value);
  if (size <= maxBytes) return value;
  const original = size;
  const leaves: Leaf[] = [];
  collectStrings(value, leaves, 0);
  leaves.sort((a, b) => b.length - a.length);
  for (let i = 0; i < leaves.length && i < 64 && size > maxBytes; i++) {
    const leaf = leaves[i] as Leaf;
    const current = (leaf.parent as Record<string | number, JsonValue>)[leaf.key] as string;
    const bytes = byteLength(current);
    const excess = size - maxBytes;
    // leave room for the marker (~60 bytes) and JSON escaping slack
    const target = Math.max(0, bytes - excess - 96);
    if (target >= bytes) continue;
    const cut = truncateString(current, Math.max(target, 64));
    if (cut.length >= current.length) continue;
    (leaf.parent as Record<string | number, JsonValue>)[leaf.key] = cut;
    size = jsonBytes(value);
  }
  if (size <= maxBytes) return value;
  const text = JSON.stringify(value);
  const previewBudget = Math.max(0, maxBytes - 160);
  const preview = truncateString(text, previewBudget);
  return {
    '[truncated]': `value of ${original} bytes cut to fit ${maxBytes} bytes`,
    preview,
  };
}

/** Built-in redaction + truncation of one field. */
export function sanitizeField(value: unknown, redactor: Redactor, maxBytes: number): JsonValue {
  return truncateJson(toJsonSafe(value, redactor, maxBytes), maxBytes);
}

export const SANITIZE_FAILED = '[withheld: sanitize() failed]';

/**
 * Runs the user's sanitizer on a copy of the step. Fails closed: if it throws or returns
 * something that is not an object, toolInput/toolOutput/error are replaced, never sent raw.
 */
export function applyUserSanitizer(
  step: StepPayload,
  sanitize: StepSanitizer | undefined,
  onError: (message: string) => void,
): StepPayload {
  if (!sanitize) return step;
  let copy: StepPayload;
  try {
    copy = structuredClone(step);
  } catch {
    copy = JSON.parse(JSON.stringify(step)) as StepPayload;
  }
  try {
    const out = sanitize(copy);
    const result = out === undefined ? copy : out;
    if (result === null || typeof result !== 'object' || Array.isArray(result)) {
      throw new Error('sanitize() must return a step object or undefined');
    }
    // identity fields are ours: a sanitizer may not renumber or re-attribute steps
    result.stepNumber = step.stepNumber;
    if (typeof result.toolName !== 'string' || result.toolName.length === 0) result.toolName = step.toolName;
    return result;
  } catch (e) {
    const message = errorMessage(e);
    onError(message);
    const withheld: StepPayload = {
      stepNumber: step.stepNumber,
      toolName: step.toolName,
      metadata: { ...(step.metadata ?? {}), sanitizeError: 'sanitize() failed; fields withheld' },
    };
    if (step.timestamp !== undefined) withheld.timestamp = step.timestamp;
    if (step.toolUseId !== undefined) withheld.toolUseId = step.toolUseId;
    if (step.durationMs !== undefined) withheld.durationMs = step.durationMs;
    if (step.toolInput !== undefined) withheld.toolInput = SANITIZE_FAILED;
    if (step.toolOutput !== undefined) withheld.toolOutput = SANITIZE_FAILED;
    if (step.error !== undefined && step.error !== null) withheld.error = SANITIZE_FAILED;
    return withheld;
  }
}
