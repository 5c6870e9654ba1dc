/**
 * Built-in secret redaction for free text and for values under sensitive object keys.
 *
 * Each finding replaces the secret (and only the secret: key names, `Bearer`, URL user names are
 * kept) by `[REDACTED:<kind>]`. Three families of detectors look at the original text, their
 * findings are merged, then the text is rebuilt once:
 *
 * - token formats (`sk-ant-…`, `ghp_…`, `AKIA…`, JWTs, PEM private keys…), found by their literal
 *   prefixes in a single pass;
 * - URLs with credentials (`scheme://user:password@host`);
 * - context rules and the entropy heuristic (redact-context.ts, entropy.ts).
 *
 * Every detector is linear in the text (bounded look-around, no nested quantifiers).
 */
import { isHighEntropySecret } from './entropy.js';
import { isPlaceholder, isSensitiveKey, scanContext, type Ranges, type Span } from './redact-context.js';
import type { Logger, RedactOptions } from './types.js';

export { isSensitiveKey } from './redact-context.js';
export { MIN_ENTROPY, MIN_HEX_ENTROPY, MIN_TOKEN_LENGTH } from './entropy.js';

/** Per-kind counts of redacted values. */
export type RedactionCounts = Record<string, number>;

export interface RedactionRule {
  kind: string;
  pattern: RegExp;
  /** Replacement; `$<name>` groups may be used to keep context. */
  replace: string;
}

// ------------------------------------------------------------------ token formats

interface FormatRule {
  kind: string;
  /** literal prefixes that start a match */
  prefixes: string[];
  /** sticky regex matched at the prefix position */
  re: RegExp;
  /** characters before the prefix that belong to the token (digits of a Telegram bot id…) */
  back?: RegExp;
}

const F = (kind: string, prefixes: string[], source: string, back?: RegExp): FormatRule => ({
  kind,
  prefixes,
  re: new RegExp(source, 'y'),
  ...(back ? { back } : {}),
});

const END = '(?![A-Za-z0-9])';

/** Ordered within a prefix: the most specific formats first. */
const FORMAT_RULES: FormatRule[] = [
  F('anthropic_key', ['sk-ant-'], 'sk-ant-[A-Za-z0-9]{2,12}-[A-Za-z0-9_-]{20,}'),
  F('openrouter_key', ['sk-or-'], `sk-or-v1-[a-f0-9]{64}${END}`),
  F('openai_key', ['sk-'], 'sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}'),
  F('openai_key', ['sk-'], 'sk-[A-Za-z0-9]{20,}T3BlbkFJ[A-Za-z0-9]{20,}'),
  F('openai_key', ['sk-'], `sk-[A-Za-z0-9]{32,}${END}`),
  F('aws_access_key_id', ['AKIA', 'ASIA', 'ABIA', 'ACCA', 'AGPA', 'AIDA', 'AROA', 'ANPA', 'ANVA', 'AIPA'], `[A-Z]{4}[A-Z0-9]{16}${END}`),
  F('github_token', ['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_'], `gh[pousr]_[A-Za-z0-9]{36,255}${END}`),
  F('github_token', ['github_pat_'], 'github_pat_[A-Za-z0-9_]{22,255}'),
  F('gitlab_token', ['glpat-', 'gldt-', 'glptt-', 'glrt-', 'glcbt-', 'glimt-', 'gloas-', 'glsoat-', 'glffct-', 'glagent-'], 'gl[a-z]{2,6}-[A-Za-z0-9_-]{20,}'),
  F('grafana_token', ['glc_'], 'glc_[A-Za-z0-9+/]{32,}={0,2}'),
  F('grafana_token', ['glsa_'], 'glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}'),
  F('slack_token', ['xoxa', 'xoxb', 'xoxp', 'xoxo', 'xoxs', 'xoxr', 'xoxe'], 'xox[abposre][.-][A-Za-z0-9.-]{10,}'),
  F('slack_token', ['xapp-'], 'xapp-[0-9]-[A-Za-z0-9-]{20,}'),
  F('slack_webhook', ['https://hooks.slack.com/'], 'https://hooks\\.slack\\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+'),
  F('discord_webhook', ['https://discord.com/api/webhooks/', 'https://discordapp.com/api/webhooks/', 'https://ptb.discord.com/api/webhooks/', 'https://canary.discord.com/api/webhooks/'], 'https://(?:ptb\\.|canary\\.)?discord(?:app)?\\.com/api/webhooks/[0-9]+/[A-Za-z0-9_-]+'),
  F('telegram_bot_token', [':AA'], `:AA[0-9A-Za-z_-]{33}${END}`, /(?:(?<![0-9A-Za-z])|(?<=bot))[0-9]{8,10}$/),
  F('google_api_key', ['AIza'], 'AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])'),
  F('google_oauth_token', ['ya29.'], 'ya29\\.[0-9A-Za-z_-]{20,}'),
  F('google_refresh_token', ['1//0'], '1//0[0-9A-Za-z_-]{30,}'),
  F('google_client_secret', ['GOCSPX-'], 'GOCSPX-[A-Za-z0-9_-]{28}'),
  F('stripe_key', ['sk_live_', 'sk_test_', 'rk_live_', 'rk_test_', 'pk_live_', 'pk_test_'], `[srp]k_(?:live|test)_[0-9a-zA-Z]{10,}${END}`),
  F('stripe_webhook_secret', ['whsec_'], `whsec_[0-9a-zA-Z+/=]{20,}`),
  F('npm_token', ['npm_'], `npm_[A-Za-z0-9]{36}${END}`),
  F('pypi_token', ['pypi-AgE'], 'pypi-AgE[A-Za-z0-9_-]{50,}'),
  F('rubygems_token', ['rubygems_'], `rubygems_[a-f0-9]{48}${END}`),
  F('docker_hub_token', ['dckr_pat_'], 'dckr_pat_[A-Za-z0-9_-]{27,}'),
  F('huggingface_token', ['hf_'], `hf_[A-Za-z0-9]{30,}${END}`),
  F('sendgrid_key', ['SG.'], 'SG\\.[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}'),
  F('twilio_key', ['SK'], `SK[0-9a-fA-F]{32}${END}`),
  F('mailgun_key', ['key-'], `key-[0-9a-f]{32}${END}`),
  F('jwt', ['eyJ'], 'eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{8,}'),
  F('digitalocean_token', ['dop_v1_', 'doo_v1_', 'dor_v1_'], `do[opr]_v1_[a-f0-9]{64}${END}`),
  F('shopify_token', ['shpat_', 'shpss_', 'shpca_', 'shppa_'], `shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}${END}`),
  F('vault_token', ['hvs.', 'hvb.', 'hvr.'], 'hv[sbr]\\.[A-Za-z0-9_-]{24,}'),
  F('databricks_token', ['dapi'], `dapi[a-f0-9]{32}(?:-[0-9])?${END}`),
  F('groq_key', ['gsk_'], `gsk_[A-Za-z0-9]{48,}${END}`),
  F('xai_key', ['xai-'], `xai-[A-Za-z0-9]{60,}${END}`),
  F('replicate_token', ['r8_'], `r8_[A-Za-z0-9]{37}${END}`),
  F('perplexity_key', ['pplx-'], `pplx-[A-Za-z0-9]{40,}${END}`),
  F('nvidia_key', ['nvapi-'], 'nvapi-[A-Za-z0-9_-]{60,}'),
  F('linear_key', ['lin_api_'], `lin_api_[A-Za-z0-9]{40}${END}`),
  F('sentry_token', ['sntrys_'], 'sntrys_[A-Za-z0-9+/=_-]{40,}'),
  F('sentry_token', ['sntryu_'], `sntryu_[a-f0-9]{64}${END}`),
  F('postman_key', ['PMAK-'], 'PMAK-[a-f0-9]{24}-[a-f0-9]{34}'),
  F('age_secret_key', ['AGE-SECRET-KEY-1'], 'AGE-SECRET-KEY-1[0-9A-Z]{58}'),
  F('newrelic_key', ['NRAK-'], `NRAK-[A-Z0-9]{27}${END}`),
  F('atlassian_token', ['ATATT'], 'ATATT[A-Za-z0-9_=-]{50,}'),
  F('bitbucket_app_password', ['ATBB'], `ATBB[A-Za-z0-9]{32}${END}`),
  F('pulumi_token', ['pul-'], `pul-[a-f0-9]{40}${END}`),
  F('terraform_token', ['.atlasv1.'], '\\.atlasv1\\.[A-Za-z0-9_=-]{60,}', /(?<![A-Za-z0-9])[A-Za-z0-9]{14}$/),
  F('doppler_token', ['dp.pt.', 'dp.st.', 'dp.ct.', 'dp.sa.', 'dp.scim.', 'dp.audit.'], 'dp\\.[a-z]{2,5}\\.[A-Za-z0-9]{40,}'),
  F('square_token', ['sq0atp-', 'sq0csp-'], 'sq0(?:atp|csp)-[0-9A-Za-z_-]{22,}'),
  F('tailscale_key', ['tskey-'], 'tskey-[a-z]+-[A-Za-z0-9]+-[A-Za-z0-9]+'),
  F('notion_token', ['ntn_'], `ntn_[0-9]{11}[A-Za-z0-9]{35}${END}`),
  F('notion_token', ['secret_'], `secret_[A-Za-z0-9]{43}${END}`),
  F('flyio_token', ['FlyV1 fm'], 'FlyV1 fm[0-9]_[A-Za-z0-9+/=_,-]{50,}'),
];

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

const RULES_BY_PREFIX = new Map<string, FormatRule[]>();
for (const rule of FORMAT_RULES) {
  for (const p of rule.prefixes) {
    const list = RULES_BY_PREFIX.get(p) ?? [];
    list.push(rule);
    RULES_BY_PREFIX.set(p, list);
  }
}
// `Bearer x` / `Basic x` outside header lines
for (const p of ['Bearer ', 'bearer ', 'BEARER ', 'Basic ', 'basic ', 'BASIC ']) RULES_BY_PREFIX.set(p, []);
const PREFIX_RE = new RegExp(
  [...RULES_BY_PREFIX.keys()]
    .sort((a, b) => b.length - a.length)
    .map(escapeRe)
    .join('|'),
  'g',
);

/** The token formats, as global regexes (informational; the redactor matches them by prefix). */
export const BUILTIN_RULES: readonly RedactionRule[] = FORMAT_RULES.map((r) => ({
  kind: r.kind,
  pattern: new RegExp(r.re.source, 'g'),
  replace: `[REDACTED:${r.kind}]`,
}));

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

const BEARER_VALUE_RE = /[ \t]*([A-Za-z0-9._~+/=-]{8,})/y;
const BASIC_VALUE_RE = /[ \t]*([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])/y;

function schemeSpan(text: string, at: number, prefix: string): Span | null {
  if (at > 0 && isAlnum(text.charCodeAt(at - 1))) return null;
  const basic = prefix.toLowerCase().startsWith('basic');
  const re = basic ? BASIC_VALUE_RE : BEARER_VALUE_RE;
  re.lastIndex = at + prefix.length;
  const m = re.exec(text);
  if (!m) return null;
  const value = m[1] as string;
  const start = m.index + m[0].length - value.length;
  if (basic) {
    // Basic credentials are base64 of `user:password`
    let decoded: string;
    try {
      decoded = Buffer.from(value, 'base64').toString('latin1');
    } catch {
      return null;
    }
    if (!decoded.includes(':') || !/^[\x20-\x7e]+$/.test(decoded)) return null;
    return { start, end: start + value.length, kind: 'basic_auth' };
  }
  // `Bearer authentication` is prose: a token has a digit or punctuation
  if (/^[A-Za-z]+$/.test(value)) return null;
  return { start, end: start + value.length, kind: 'bearer_token' };
}

function formatSpans(text: string, out: Span[]): void {
  PREFIX_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = PREFIX_RE.exec(text)) !== null) {
    const at = m.index;
    const prefix = m[0];
    const rules = RULES_BY_PREFIX.get(prefix) as FormatRule[];
    if (rules.length === 0) {
      const span = schemeSpan(text, at, prefix);
      if (span) {
        out.push(span);
        PREFIX_RE.lastIndex = span.end;
      }
      continue;
    }
    for (const rule of rules) {
      let start = at;
      if (rule.back) {
        const b = rule.back.exec(text.slice(Math.max(0, at - 16), at));
        if (!b) continue;
        start = at - b[0].length;
      } else if (at > 0 && isAlnum(text.charCodeAt(at - 1)) && isAlnum(prefix.charCodeAt(0))) {
        continue;
      }
      rule.re.lastIndex = at;
      const r = rule.re.exec(text);
      if (!r) continue;
      out.push({ start, end: at + r[0].length, kind: rule.kind });
      PREFIX_RE.lastIndex = at + r[0].length;
      break;
    }
  }
}

// ------------------------------------------------------------------ PEM blocks, data URLs

/** Private key blocks are redacted (also when cut off before END); public blocks and
 * certificates are kept and excluded from keyword scanning. */
function pemSpans(text: string, out: Span[], exclude: Ranges): void {
  let from = 0;
  for (;;) {
    const at = text.indexOf('-----BEGIN ', from);
    if (at < 0) break;
    const labelEnd = boundedIndexOf(text, '-----', at + 11, at + 91);
    if (labelEnd < 0) {
      from = at + 11;
      continue;
    }
    const label = text.slice(at + 11, labelEnd);
    const endAt = text.indexOf('-----END ', labelEnd + 5);
    let end = text.length;
    if (endAt >= 0) {
      const close = text.indexOf('-----', endAt + 9);
      end = close >= 0 && close - endAt < 90 ? close + 5 : endAt + 9;
    }
    if (label.includes('PRIVATE KEY')) out.push({ start: at, end, kind: 'private_key' });
    exclude.push([at, end]);
    from = end;
  }
  // PuTTY .ppk files: the private part follows `Private-Lines: N`
  const ppk = text.indexOf('Private-Lines:');
  if (ppk >= 0) {
    const start = text.indexOf('\n', ppk);
    if (start >= 0) {
      const mac = text.indexOf('Private-MAC:', start);
      const end = mac >= 0 ? mac : text.length;
      out.push({ start: start + 1, end, kind: 'private_key' });
      exclude.push([start + 1, end]);
    }
  }
}

/** Payloads of `data:…;base64,` URLs are opaque: excluded from keyword scanning. */
function dataUrlRanges(text: string, exclude: Ranges): void {
  let from = 0;
  for (;;) {
    const at = text.indexOf(';base64,', from);
    if (at < 0) break;
    let end = at + 8;
    while (end < text.length) {
      const c = text.charCodeAt(end);
      if (isAlnum(c) || c === 43 || c === 47 || c === 61 || c === 37) end++;
      else break;
    }
    exclude.push([at, end]);
    from = end;
  }
}

// ------------------------------------------------------------------ URLs with credentials

/** indexOf limited to [from, to). */
function boundedIndexOf(text: string, needle: string, from: number, to: number): number {
  const i = text.slice(from, to).indexOf(needle);
  return i >= 0 ? from + i : -1;
}

function isUrlEnd(c: number): boolean {
  // whitespace quotes < > `
  return c <= 32 || c === 34 || c === 39 || c === 60 || c === 62 || c === 96;
}

function urlSpans(text: string, out: Span[]): void {
  let from = 0;
  for (;;) {
    const at = text.indexOf('://', from);
    if (at < 0) break;
    from = at + 3;
    if (at === 0 || !/[A-Za-z0-9+.-]/.test(text[at - 1] as string)) continue;
    const start = at + 3;
    let end = start;
    while (end < text.length && end - start < 2048 && !isUrlEnd(text.charCodeAt(end))) end++;
    const firstAt = boundedIndexOf(text, '@', start, end);
    if (firstAt < 0) {
      from = end;
      continue;
    }
    // the user info ends at the last @ before the path (passwords may hold raw # ? @)
    let slash = boundedIndexOf(text, '/', firstAt, end);
    if (slash < 0) slash = end;
    const atSign = text.lastIndexOf('@', slash - 1);
    const userinfo = text.slice(start, atSign);
    if (userinfo.includes('/')) continue;
    const colon = userinfo.indexOf(':');
    if (colon >= 0) {
      const pw = userinfo.slice(colon + 1);
      if (pw.length > 0 && !isPlaceholder(pw) && !pw.startsWith('[REDACTED')) {
        out.push({ start: start + colon + 1, end: atSign, kind: 'url_password' });
      }
    } else if (isHighEntropySecret(userinfo, '', true)) {
      // https://<token>@github.com/… (the user info is a credential's place: hex and UUIDs too)
      out.push({ start, end: atSign, kind: 'url_token' });
    }
    from = slash;
  }
}

// ------------------------------------------------------------------ the redactor

interface CustomRule {
  kind: string;
  pattern: RegExp;
}

function toCustom(p: unknown, where: string): CustomRule {
  let pattern: unknown = p;
  let kind = 'custom';
  if (p && typeof p === 'object' && !(p instanceof RegExp)) {
    const o = p as { kind?: unknown; pattern?: unknown };
    pattern = o.pattern;
    if (o.kind !== undefined) {
      if (typeof o.kind !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(o.kind)) {
        throw new TypeError(`instrument(): ${where}.kind must be 1..64 characters of [A-Za-z0-9_.:-]`);
      }
      kind = o.kind;
    }
  }
  if (!(pattern instanceof RegExp)) throw new TypeError(`instrument(): ${where} must be a RegExp or {kind, pattern: RegExp}`);
  let flags = pattern.flags.replace(/[gyd]/g, '');
  flags += 'g';
  if (/\(\?<secret>/.test(pattern.source)) flags += 'd';
  return { kind, pattern: new RegExp(pattern.source, flags) };
}

function toAllow(a: unknown, where: string): string | RegExp {
  if (typeof a === 'string') return a;
  if (a instanceof RegExp) return new RegExp(`^(?:${a.source})$`, a.flags.replace(/[gyd]/g, ''));
  throw new TypeError(`instrument(): ${where} must be a string or a RegExp`);
}

export class Redactor {
  private readonly builtin: boolean;
  private readonly custom: CustomRule[];
  private readonly allowExact: Set<string>;
  private readonly allowRe: RegExp[];
  /** Where counts go while a record is prepared (see RedactionTally). */
  sink: RedactionCounts | null = null;

  constructor(enabled: boolean, extra: (RegExp | { kind?: string; pattern: RegExp })[] = [], allow: (string | RegExp)[] = []) {
    this.builtin = enabled;
    this.custom = extra.map((p, i) => toCustom(p, `redact.extraPatterns[${i}]`));
    const allowed = allow.map((a, i) => toAllow(a, `redact.allow[${i}]`));
    this.allowExact = new Set(allowed.filter((a): a is string => typeof a === 'string'));
    this.allowRe = allowed.filter((a): a is RegExp => a instanceof RegExp);
  }

  /** Builds the redactor for `instrument({ redact, redactPatterns })`. Throws TypeError on bad options. */
  static fromOptions(redact: boolean | RedactOptions | undefined, redactPatterns: RegExp[] | undefined): Redactor {
    if (redactPatterns !== undefined && !Array.isArray(redactPatterns)) {
      throw new TypeError('instrument(): redactPatterns must be an array of RegExp');
    }
    const legacy = (redactPatterns ?? []).map((p, i) => {
      if (!(p instanceof RegExp)) throw new TypeError(`instrument(): redactPatterns[${i}] must be a RegExp`);
      return p;
    });
    if (redact === undefined || typeof redact === 'boolean') return new Redactor(redact !== false, legacy);
    if (redact === null || typeof redact !== 'object') throw new TypeError('instrument(): redact must be a boolean or {extraPatterns, allow}');
    const { extraPatterns, allow } = redact;
    if (extraPatterns !== undefined && !Array.isArray(extraPatterns)) throw new TypeError('instrument(): redact.extraPatterns must be an array');
    if (allow !== undefined && !Array.isArray(allow)) throw new TypeError('instrument(): redact.allow must be an array');
    return new Redactor(true, [...legacy, ...(extraPatterns ?? [])], allow ?? []);
  }

  get enabled(): boolean {
    return this.builtin || this.custom.length > 0;
  }

  /** Counts a value withheld under a sensitive object key. */
  countWithheld(): void {
    if (this.sink) this.sink.sensitive_key = (this.sink.sensitive_key ?? 0) + 1;
  }

  /** Redacts secrets in free text. */
  text(input: string): string {
    const spans: Span[] = [];
    if (this.builtin && input.length >= 8) {
      const exclude: Ranges = [];
      formatSpans(input, spans);
      pemSpans(input, spans, exclude);
      dataUrlRanges(input, exclude);
      urlSpans(input, spans);
      let lower = input.toLowerCase();
      // a few characters change length when lower-cased (İ): keep indexes aligned
      if (lower.length !== input.length) lower = input.replace(/[A-Z]+/g, (s) => s.toLowerCase());
      if (exclude.length > 1) exclude.sort((a, b) => a[0] - b[0]);
      scanContext(input, lower, exclude, spans);
    }
    for (const rule of this.custom) customSpans(input, rule, spans);
    if (spans.length === 0) return input;
    return this.apply(input, spans);
  }

  private allowed(value: string): boolean {
    if (this.allowExact.has(value)) return true;
    for (const re of this.allowRe) if (re.test(value)) return true;
    return false;
  }

  private apply(input: string, spans: Span[]): string {
    const kept = this.allowExact.size > 0 || this.allowRe.length > 0 ? spans.filter((s) => !this.allowed(input.slice(s.start, s.end))) : spans;
    if (kept.length === 0) return input;
    kept.sort((a, b) => a.start - b.start || b.end - a.end);
    let out = '';
    let pos = 0;
    let i = 0;
    while (i < kept.length) {
      const first = kept[i] as Span;
      let end = first.end;
      i++;
      // overlapping findings become one; the first (outermost) names it
      while (i < kept.length && (kept[i] as Span).start < end) {
        end = Math.max(end, (kept[i] as Span).end);
        i++;
      }
      out += input.slice(pos, first.start) + `[REDACTED:${first.kind}]`;
      pos = end;
      if (this.sink) this.sink[first.kind] = (this.sink[first.kind] ?? 0) + 1;
    }
    return out + input.slice(pos);
  }
}

function customSpans(input: string, rule: CustomRule, out: Span[]): void {
  const re = rule.pattern;
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  let guard = 0;
  while ((m = re.exec(input)) !== null && guard++ < 100_000) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    const g = m.indices?.groups?.secret;
    if (g) {
      if (g[1] > g[0]) out.push({ start: g[0], end: g[1], kind: rule.kind });
    } else {
      out.push({ start: m.index, end: m.index + m[0].length, kind: rule.kind });
    }
  }
  re.lastIndex = 0;
}

// ------------------------------------------------------------------ counting and logging

/**
 * Per-kind totals for `stats().redactions`. A record may be prepared more than once (a step's
 * input, then again with its output): each record's latest counts replace its earlier ones.
 */
export class RedactionTally {
  private readonly totals: RedactionCounts = {};
  private readonly last = new WeakMap<object, RedactionCounts>();

  constructor(
    private readonly redactor: Redactor,
    private readonly log?: (message: string) => void,
  ) {}

  track<T>(record: object, prepare: () => T): T {
    const sink: RedactionCounts = {};
    const previous = this.redactor.sink;
    this.redactor.sink = sink;
    try {
      return prepare();
    } finally {
      this.redactor.sink = previous;
      const before = this.last.get(record);
      const added: string[] = [];
      for (const kind of new Set([...Object.keys(sink), ...Object.keys(before ?? {})])) {
        const delta = (sink[kind] ?? 0) - (before?.[kind] ?? 0);
        if (delta === 0) continue;
        const total = Math.max(0, (this.totals[kind] ?? 0) + delta);
        if (total === 0) delete this.totals[kind];
        else this.totals[kind] = total;
        if (delta > 0) added.push(`${kind} x${delta}`);
      }
      this.last.set(record, sink);
      if (added.length > 0 && this.log) this.log(`[Lightning Redaction] Redacted ${added.join(', ')} (values are never logged)`);
    }
  }

  snapshot(): RedactionCounts {
    return { ...this.totals };
  }
}

/** A logger whose lines pass through the built-in redaction first, whatever `redact` says. */
export function redactingLogger(logger: Logger, redactor: Redactor = new Redactor(true)): Logger {
  const scrub = (m: string): string => {
    const sink = redactor.sink;
    redactor.sink = null;
    try {
      return typeof m === 'string' ? redactor.text(m) : m;
    } finally {
      redactor.sink = sink;
    }
  };
  return {
    debug: (m) => logger.debug(scrub(m)),
    warn: (m) => logger.warn(scrub(m)),
  };
}
