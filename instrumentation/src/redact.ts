/**
 * Built-in secret redaction for free text and for values under sensitive object keys.
 *
 * Each rule replaces the secret (and only the secret: key names, `Bearer`, URL user names are
 * kept) by `[REDACTED:<kind>]`.
 */

export interface RedactionRule {
  kind: string;
  pattern: RegExp;
  /** Replacement; `$<name>` groups may be used to keep context. */
  replace: string;
}

const R = (kind: string, pattern: RegExp, replace?: string): RedactionRule => ({
  kind,
  pattern,
  replace: replace ?? `[REDACTED:${kind}]`,
});

/** Ordered: the most specific formats first so they get the most precise label. */
export const BUILTIN_RULES: readonly RedactionRule[] = [
  // PEM private key blocks (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP), also when cut off before END.
  R(
    'private_key',
    /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)/g,
  ),
  // Anthropic (sk-ant-api03-…, sk-ant-admin01-…, sk-ant-oat01-…)
  R('anthropic_key', /\bsk-ant-[A-Za-z0-9]{2,12}-[A-Za-z0-9_-]{20,}/g),
  // OpenAI project / service account / legacy user keys
  R('openai_key', /\bsk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}/g),
  R('openai_key', /\bsk-[A-Za-z0-9]{20,}T3BlbkFJ[A-Za-z0-9]{20,}/g),
  R('openai_key', /\bsk-[A-Za-z0-9]{32,}\b/g),
  // AWS access key ids and secrets given as aws_secret_access_key
  R('aws_access_key_id', /\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b/g),
  R(
    'aws_secret_access_key',
    /(?<k>aws_?secret_?access_?key["']?\s*[:=]\s*["']?)[A-Za-z0-9/+=]{40}/gi,
    '$<k>[REDACTED:aws_secret_access_key]',
  ),
  // GitHub
  R('github_token', /\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b/g),
  R('github_token', /\bgithub_pat_[A-Za-z0-9_]{22,255}\b/g),
  // GitLab
  R('gitlab_token', /\bglpat-[A-Za-z0-9_-]{20,}\b/g),
  // Slack tokens and webhooks
  R('slack_token', /\bxox[abposre]-[A-Za-z0-9-]{10,}/g),
  R('slack_webhook', /https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9/_-]+/g),
  // Google API keys, OAuth access tokens and refresh tokens
  R('google_api_key', /\bAIza[0-9A-Za-z_-]{35}\b/g),
  R('google_oauth_token', /\bya29\.[0-9A-Za-z_-]{20,}/g),
  R('google_refresh_token', /\b1\/\/0[0-9A-Za-z_-]{30,}/g),
  // Stripe secret / restricted / publishable keys and webhook secrets
  R('stripe_key', /\b(?:sk|rk|pk)_(?:live|test)_[0-9a-zA-Z]{10,}\b/g),
  R('stripe_webhook_secret', /\bwhsec_[0-9a-zA-Z]{20,}\b/g),
  // npm, PyPI, Hugging Face, SendGrid, Twilio, Azure storage
  R('npm_token', /\bnpm_[A-Za-z0-9]{36}\b/g),
  R('pypi_token', /\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}/g),
  R('huggingface_token', /\bhf_[A-Za-z0-9]{30,}\b/g),
  R('sendgrid_key', /\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b/g),
  R('twilio_key', /\bSK[0-9a-fA-F]{32}\b/g),
  R('azure_storage_key', /(?<k>AccountKey=)[A-Za-z0-9+/=]{40,}/g, '$<k>[REDACTED:azure_storage_key]'),
  // JSON Web Tokens
  R('jwt', /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g),
  // Authorization headers: Bearer / Basic / Token
  R(
    'bearer_token',
    /(?<k>\b(?:Bearer|Token)\s+)(?!\[REDACTED)[A-Za-z0-9._~+/=-]{8,}/g,
    '$<k>[REDACTED:bearer_token]',
  ),
  R('basic_auth', /(?<k>\bBasic\s+)(?!\[REDACTED)[A-Za-z0-9+/]{8,}={0,2}/g, '$<k>[REDACTED:basic_auth]'),
  // URLs with a password: scheme://user:password@host
  R(
    'url_password',
    /(?<k>\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}:\/\/[^\s:/@'"]{1,256}:)(?!\[REDACTED)[^\s@/'"]{1,1024}(?=@)/g,
    '$<k>[REDACTED:url_password]',
  ),
  // .env-like lines: NAME=value where NAME mentions a secret
  R(
    'env_secret',
    /^(?<k>[ \t]{0,16}(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_.-]{0,80}(?:PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN(?!S)|_KEY|APIKEY|CREDENTIALS?|PRIVATE_?KEY)[A-Za-z0-9_]{0,80}[ \t]{0,8}[=:][ \t]{0,8})(?!\[REDACTED)(?=\S)[^\r\n]+/gim,
    '$<k>[REDACTED:env_secret]',
  ),
  // JSON / YAML-ish pairs: "password": "…", client_secret: …
  R(
    'secret_field',
    /(?<![A-Za-z0-9_-])(?<k>["']?[A-Za-z0-9_-]{0,40}(?:password|passwd|passphrase|secret|api[_-]?key|access[_-]?token|refresh[_-]?token|auth[_-]?token|private[_-]?key)["']?[ \t]{0,8}[:=][ \t]{0,8}["'])(?!\[REDACTED)[^"'\r\n]{1,4096}(?=["'])/gi,
    '$<k>[REDACTED:secret_field]',
  ),
];

/** Normalised key names whose string values are always withheld. */
const SENSITIVE_KEY_SUFFIXES = [
  'password',
  'passwd',
  'passphrase',
  'secret',
  'token',
  'apikey',
  'authorization',
  'cookie',
  'credential',
  'credentials',
  'privatekey',
  'accesskey',
  'secretkey',
  'clientsecret',
  'sessiontoken',
];

const keyCache = new Map<string, boolean>();

/** True if a value stored under this object key must be withheld (e.g. `password`, `apiKey`, `x-auth-token`). */
export function isSensitiveKey(key: string): boolean {
  const cached = keyCache.get(key);
  if (cached !== undefined) return cached;
  const norm = key.toLowerCase().replace(/[^a-z0-9]/g, '');
  const result = norm === 'auth' || SENSITIVE_KEY_SUFFIXES.some((s) => norm.endsWith(s));
  if (keyCache.size < 4096) keyCache.set(key, result);
  return result;
}

export class Redactor {
  private readonly rules: RedactionRule[];

  constructor(enabled: boolean, extra: RegExp[] = []) {
    const extraRules = extra.map((p) =>
      R('custom', p.global ? p : new RegExp(p.source, p.flags + 'g')),
    );
    this.rules = enabled ? [...BUILTIN_RULES, ...extraRules] : extraRules;
  }

  get enabled(): boolean {
    return this.rules.length > 0;
  }

  /** Redacts secrets in free text. */
  text(input: string): string {
    let out = input;
    for (const rule of this.rules) {
      rule.pattern.lastIndex = 0;
      if (rule.pattern.test(out)) {
        rule.pattern.lastIndex = 0;
        out = out.replace(rule.pattern, rule.replace);
      }
      rule.pattern.lastIndex = 0;
    }
    return out;
  }
}
