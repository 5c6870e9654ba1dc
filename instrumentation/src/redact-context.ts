/**
 * Context rules: secrets recognised by what stands next to them rather than by their format.
 *
 * One pass finds credential keywords (in the lower-cased text) and looks at the word around
 * each one:
 *
 * - `--password x`, `--token=x`, `-storepass x`: a flag whose name is a sensitive key;
 * - `key: value`, `key=value`, `"key": "value"`, `key => 'value'`, `Key=value;` where the key
 *   is a sensitive key (the list used for object keys, {@link isSensitiveKey}): `.env`, YAML,
 *   JSON and INI text, HTTP header lines (`x-api-key:`, `authorization:`, `cookie:`), URL
 *   query parameters and connection strings (`Password=`, `AccountKey=`, `SharedAccessSignature=`);
 * - `name: DB_PASSWORD` followed by `value: x` (Kubernetes, ECS) and `.netrc` lines;
 * - command lines that take a password as a short flag: `mysql -p<pw>`, `sshpass -p <pw>`,
 *   `docker login -p <pw>`, `redis-cli -a <pw>`, `ldapsearch -w <pw>`, `sqlcmd -P <pw>`,
 *   `curl -u user:<pw>`, `smbclient -U user%<pw>`;
 * - otherwise, a random-looking token shortly after the keyword (the entropy heuristic of
 *   entropy.ts, with its allowlist).
 *
 * Placeholders (`${VAR}`, `$VAR`, `<token>`, `{{ secrets.X }}`) and code (`options.apiKey`,
 * `getToken()`, `password: string`) are not values and are left alone.
 */
import { allowlisted, isHighEntropySecret, isTokenChar, looksRandom, MIN_TOKEN_LENGTH } from './entropy.js';

/** A part of the text to replace by `[REDACTED:<kind>]`. */
export interface Span {
  start: number;
  end: number;
  kind: string;
}

/** Ranges (sorted, non-overlapping) where keywords are not looked for: PEM blocks, data URLs. */
export type Ranges = [number, number][];

// ------------------------------------------------------------------ sensitive keys

/** Normalised key names (lower case, punctuation removed) whose values are secrets, by suffix. */
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
  'accountkey',
  'sharedaccesskey',
  'sharedaccesssignature',
  'masterkey',
  'encryptionkey',
  'signingkey',
  'authkey',
  'keydata',
  'subscriptionkey',
  'functionskey',
  'dockerconfigjson',
  'dockercfg',
  'amzsignature',
  'googsignature',
  'keybase', // Rails secret_key_base
  'licensekey',
  'licencekey',
  'adminkey',
];
/** Whole normalised keys that are secrets. */
const SENSITIVE_KEYS = new Set(['auth', 'sig', 'signature']);
/** Last words that name a password when the key has more than one word (`MYSQL_PWD`, `db_pass`). */
const PASSWORD_LAST_WORDS = new Set(['pwd', 'pass', 'pw']);

const keyCache = new Map<string, boolean>();

function words(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0);
}

/** True if a value stored under this key must be withheld (e.g. `password`, `apiKey`, `x-auth-token`, `MYSQL_PWD`). */
export function isSensitiveKey(key: string): boolean {
  const cached = keyCache.get(key);
  if (cached !== undefined) return cached;
  const norm = key.toLowerCase().replace(/[^a-z0-9]/g, '');
  let result = SENSITIVE_KEYS.has(norm) || SENSITIVE_KEY_SUFFIXES.some((s) => norm.endsWith(s));
  if (!result) {
    const w = words(key);
    result = w.length >= 2 && PASSWORD_LAST_WORDS.has(w[w.length - 1] as string);
  }
  if (keyCache.size < 4096) keyCache.set(key, result);
  return result;
}

/** Words that make a random-looking token after them suspicious (entropy heuristic). */
const TRIGGER_WORDS = new Set([
  'password',
  'passwd',
  'passphrase',
  'pass',
  'pwd',
  'pw',
  'secret',
  'secrets',
  'token',
  'tokens',
  'key',
  'keys',
  'apikey',
  'auth',
  'authorization',
  'credential',
  'credentials',
  'cred',
  'creds',
  'cookie',
  'sig',
  'signature',
  'bearer',
  'pat',
]);
const TRIGGER_SUFFIXES = ['password', 'passwd', 'secret', 'token', 'apikey', 'accesskey', 'privatekey', 'secretkey'];
/** Words before `key` that make it a credential (`API key`, `ADMIN_KEY`, `license key`); other
 * keys (`cache key`, `primary key`, `Idempotency-Key`, `RSA key`) are not. */
const KEY_QUALIFIERS = new Set([
  'api',
  'secret',
  'private',
  'access',
  'admin',
  'master',
  'license',
  'licence',
  'auth',
  'signing',
  'encryption',
  'account',
  'client',
  'app',
  'application',
  'service',
  'deploy',
  'write',
  'ingest',
  'ingestion',
  'integration',
  'server',
  'webhook',
  'hmac',
  'shared',
  'session',
  'subscription',
  'developer',
  'personal',
  'rest',
  'live',
  'sdk',
]);

const triggerCache = new Map<string, boolean>();

function triggersEntropy(word: string): boolean {
  const cached = triggerCache.get(word);
  if (cached !== undefined) return cached;
  let result = false;
  for (const w of words(word)) {
    if (TRIGGER_WORDS.has(w) || TRIGGER_SUFFIXES.some((s) => w.endsWith(s))) {
      result = true;
      break;
    }
  }
  if (triggerCache.size < 4096) triggerCache.set(word, result);
  return result;
}

/** Last words that describe the secret itself (`secret_key_base`, `token_value`), skipped. */
const VALUE_WORDS = new Set(['base', 'value', 'string', 'str', 'data', 'text', 'raw', 'plain', 'plaintext', 'hex', 'b64', 'base64']);

const keywordCache = new Map<string, 'yes' | 'no' | 'key'>();

/** `yes`/`no` for secretKeyword() from the word alone; `key` when it depends on the word before. */
function keywordClass(word: string): 'yes' | 'no' | 'key' {
  const cached = keywordCache.get(word);
  if (cached !== undefined) return cached;
  const w = words(word);
  let n = w.length;
  while (n > 1 && VALUE_WORDS.has(w[n - 1] as string)) n--;
  const last = w[n - 1];
  let result: 'yes' | 'no' | 'key';
  if (last === undefined) result = 'no';
  else if (last !== 'key' && last !== 'keys') result = TRIGGER_WORDS.has(last) || TRIGGER_SUFFIXES.some((s) => last.endsWith(s)) ? 'yes' : 'no';
  else if (n > 1) result = KEY_QUALIFIERS.has(w[n - 2] as string) ? 'yes' : 'no';
  else result = 'key';
  if (keywordCache.size < 4096) keywordCache.set(word, result);
  return result;
}

/**
 * True when the token right after this keyword is its value and a secret whatever its alphabet
 * (the UUID / hash allowlist does not apply to it). The keyword's last word must name a secret
 * (`API_TOKEN`, `WEBHOOK_SECRET`, `token`, not `token_id` or `secrets.md`); `key` counts only
 * after a qualifier (KEY_QUALIFIERS), in the word (`ADMIN_KEY`) or as the word before it (`API key:`).
 */
function secretKeyword(text: string, ws: number, word: string): boolean {
  const of = keywordClass(word);
  if (of !== 'key') return of === 'yes';
  // the word before, on the same line: `API key`, `license key`
  let e = ws;
  while (e > 0 && ws - e < 8 && isSpace(text.charCodeAt(e - 1))) e--;
  if (e === ws) return false;
  let b = e;
  while (b > 0 && e - b < 24 && isAsciiLetter(text.charCodeAt(b - 1))) b--;
  if (b > 0 && isAsciiLetter(text.charCodeAt(b - 1))) return false; // a longer word
  return b < e && KEY_QUALIFIERS.has(text.slice(b, e).toLowerCase());
}

// ------------------------------------------------------------------ character helpers

function isAsciiLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

const NL = 10;
const CR = 13;

function isWordChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45 || c === 46
  );
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

function isQuote(c: number): boolean {
  return c === 34 || c === 39 || c === 96; // " ' `
}

function isBase64Char(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 43 || c === 47;
}

/** Start of the line holding index i, looking back at most `max` characters (else i - max). */
function lineStartOf(text: string, i: number, max = 256): number {
  const limit = Math.max(0, i - max);
  for (let j = i - 1; j >= limit; j--) {
    const c = text.charCodeAt(j);
    if (c === NL || c === CR) return j + 1;
  }
  return limit;
}

function lineEndOf(text: string, i: number, max = 4096): number {
  const limit = Math.min(text.length, i + max);
  for (let j = i; j < limit; j++) {
    const c = text.charCodeAt(j);
    if (c === NL || c === CR) return j;
  }
  return limit;
}

// ------------------------------------------------------------------ values

const PLACEHOLDER_RE =
  /^(?:\$\{\{[^}]*\}\}|\$\{[A-Za-z_][A-Za-z0-9_.]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\$\([^)]*\)|\{\{[^}]*\}\}|\{[A-Za-z_][A-Za-z0-9_.]*\}|#\{[^}]*\}|<[^<>\n]{1,64}>|%[A-Za-z_][A-Za-z0-9_]*%|%[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]|%\([A-Za-z_]+\)[a-z]|\{\d*\}|\*{3,}|x{3,}|X{3,}|\.\.\.|…|\[REDACTED[^\]]*\]|(?:process\.env|os\.environ|import\.meta\.env|ENV|env)[.[][^\s]*|os\.getenv\(.*)$/;

/** Tested on the start of an unquoted value: member chains, calls, identifiers followed by an
 * operator, keywords and type names are code, not values. */
const CODE_VALUE_RE =
  /^(?:[A-Za-z_$][\w$]*(?:\??\.[A-Za-z_$][\w$]*)+(?:[;,)}\]|&?:+]|$)|[A-Za-z_$][\w$.]*\s*\(|[A-Za-z_$][\w$]*[;,)}\]]|Option<|Optional\[|(?:await|new|typeof|function|async|lambda|yield|this|self|None|null|nil|undefined|true|false|True|False|yes|no|on|off|string|str|number|int|integer|bool|boolean|bytes|String|SecretStr|SecretString|any|unknown|object|required|optional)(?![\w$-]))/;

/** Version numbers (`9.0.2`, `^4.0.0`) under keys such as `jsonwebtoken:` in lock files. */
const VERSION_RE = /^[\^~>=<v]*\d+(?:\.\d+){1,3}(?:[-+][\w.]+)?[,;]?$/;

const JSON_SCALAR_RE = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)$/;

/** Placeholders and references are not secrets: `${VAR}`, `$VAR`, `<token>`, `{{ secrets.X }}`… */
export function isPlaceholder(value: string): boolean {
  return PLACEHOLDER_RE.test(value);
}

/** Finds the closing quote on the same line (honouring backslash escapes); -1 if none. */
function closingQuote(text: string, from: number, quote: number, escaped: boolean): number {
  const limit = Math.min(text.length, from + 8192);
  for (let i = from; i < limit; i++) {
    const c = text.charCodeAt(i);
    if (c === NL || c === CR) return -1;
    if (c === 92) {
      // backslash
      if (escaped && text.charCodeAt(i + 1) === quote) return i;
      i++;
      continue;
    }
    if (!escaped && c === quote) return i;
  }
  return -1;
}

interface Value {
  start: number;
  end: number;
  quoted: boolean;
}

/** Reads a quoted value (`"…"`, `'…'`, `\"…\"`) starting at `p`, or null. */
function quotedValue(text: string, p: number): Value | null {
  let c = text.charCodeAt(p);
  let escaped = false;
  let open = p;
  if (c === 92 && isQuote(text.charCodeAt(p + 1))) {
    escaped = true;
    open = p + 1;
    c = text.charCodeAt(open);
  }
  if (!isQuote(c)) return null;
  const start = open + 1;
  const close = closingQuote(text, start, c, escaped);
  return { start, end: close < 0 ? lineEndOf(text, start) : close, quoted: true };
}

type Stop = 'eol' | 'ws' | 'query' | 'quote';

/** Reads an unquoted value from `p` up to its terminator. */
function bareValue(text: string, p: number, stop: Stop, quote: number, pairs = true): Value {
  const limit = Math.min(text.length, p + 4096);
  let end = p;
  for (; end < limit; end++) {
    const c = text.charCodeAt(end);
    if (c === NL || c === CR) break;
    if (stop === 'quote' && (c === quote || (c === 92 && text.charCodeAt(end + 1) === quote))) break;
    if (stop === 'ws' && (isSpace(c) || isQuote(c))) break;
    if (stop === 'query' && (isSpace(c) || isQuote(c) || c === 38 || c === 35 || c === 60 || c === 62)) break; // & # < >
  }
  // connection strings: `Password=x;Other=y` ends at the `;` that starts the next pair
  let semi = -1;
  if (pairs) {
    for (let x = p; x < end; x++) {
      if (text.charCodeAt(x) === 59) {
        semi = x;
        break;
      }
    }
  }
  if (semi >= 0 && /^;\s*[A-Za-z][A-Za-z0-9 _.-]{0,40}=/.test(text.slice(semi, semi + 48))) end = semi;
  while (end > p && isSpace(text.charCodeAt(end - 1))) end--;
  return { start: p, end, quoted: false };
}

// ------------------------------------------------------------------ the scanner

const STEM_RE =
  /pass|pw|secret|token|key|auth|cred|cookie|sig|bearer|dockerc|mysql|mariadb|login|twine|mongo|redis|ldap|sqlcmd|smbclient|curl|wget|http/g;

const AUTH_SCHEME_RE = /^(Bearer|Basic|Token|Digest|Negotiate|NTLM|SSWS|Bot|ApiKey|Api-Key|Key|AWS4-HMAC-SHA256|GenieKey|Splunk)[ \t]+/i;

/** Finds context-rule spans in `text`. `lower` is `text` lower-cased (same length). */
export function scanContext(text: string, lower: string, exclude: Ranges, out: Span[]): void {
  STEM_RE.lastIndex = 0;
  entropyScanned = 0;
  nlFrom = -1;
  nlAt = -1;
  let r = 0; // index into exclude
  while (STEM_RE.test(lower)) {
    // the stem ends at lastIndex; it lies inside the word, so the word is found from there
    const i = STEM_RE.lastIndex - 1;
    while (r < exclude.length && (exclude[r] as [number, number])[1] <= i) r++;
    const range = exclude[r];
    if (range && range[0] <= i) {
      STEM_RE.lastIndex = range[1];
      continue;
    }
    let ws = i;
    while (ws > 0 && i - ws < 128 && isWordChar(text.charCodeAt(ws - 1))) ws--;
    let we = i + 1;
    while (we < text.length && we - i < 128 && isWordChar(text.charCodeAt(we))) we++;
    const before = out.length;
    handleWord(text, ws, we, out);
    // words inside a value just found are part of it: go on after it (keeps this linear)
    let next = we;
    for (let k = before; k < out.length; k++) {
      const sp = out[k] as Span;
      if (sp.kind !== 'high_entropy') next = Math.max(next, sp.end);
    }
    STEM_RE.lastIndex = next;
  }
}

function handleWord(text: string, ws: number, we: number, out: Span[]): void {
  let s = ws;
  let dashes = 0;
  while (s < we && text.charCodeAt(s) === 45) {
    s++;
    dashes++;
  }
  while (s < we && text.charCodeAt(s) === 46) s++;
  let e = we;
  while (e > s && (text.charCodeAt(e - 1) === 46 || text.charCodeAt(e - 1) === 45)) e--;
  if (e <= s) return;
  // our own markers: [REDACTED:github_token]
  if (ws >= 10 && text.startsWith('[REDACTED:', ws - 10)) return;
  const word = text.slice(s, e);
  const lw = word.toLowerCase();

  const cmd = commandOf(lw);
  if (cmd) {
    // `http`/`https` are HTTPie only as a command word (`http -a u:pw …`), not in a URL
    if (cmd !== 'httpie' || isSpace(text.charCodeAt(we))) commandSpans(text, ws, we, cmd, out);
    return;
  }
  if (dashes > 0) {
    // a command-line flag
    if (isSensitiveKey(word) || (lw.endsWith('pass') && lw !== 'bypass') || lw === 'passin' || lw === 'passout') {
      flagValue(text, we, lw, out);
    }
    return;
  }
  // if the word sits inside random data (a base64 blob), it is not a keyword
  if (embeddedInRandom(text, ws, we)) return;

  const sensitive = isSensitiveKey(word);
  const openQuote = ws > 0 && isQuote(text.charCodeAt(ws - 1)) ? text.charCodeAt(ws - 1) : 0;
  let q = we;
  let closedQuote = false;
  if (openQuote) {
    if (text.charCodeAt(q) === openQuote) {
      q++;
      closedQuote = true;
    } else if (text.charCodeAt(q) === 92 && text.charCodeAt(q + 1) === openQuote) {
      q += 2;
      closedQuote = true;
    }
    if (closedQuote && text.charCodeAt(q) === 93) q++; // ['password'] = …
  }
  let k = q;
  while (k < text.length && k - q < 16 && isSpace(text.charCodeAt(k))) k++;
  let sep = '';
  const c0 = text.charCodeAt(k);
  const c1 = text.charCodeAt(k + 1);
  if (c0 === 58 /* : */) {
    if (c1 === 61) sep = ':=';
    else if (c1 !== 58) sep = ':';
  } else if (c0 === 61 /* = */) {
    if (c1 === 62) sep = '=>';
    else if (c1 !== 61 && c1 !== 126) sep = '=';
  }
  // `pwd`, `pass`, `pw` alone: a quoted value, or `=` and a value that is not a path
  // (`Uid=sa;PWD=x;`, `user=u pass=x`, but not `PWD=/home/dev` in `env` output)
  const passLike =
    !sensitive && sep !== '' && PASSWORD_LAST_WORDS.has(lw) && (quotedAt(text, k + sep.length) || (sep === '=' && !pathAt(text, k + 1)));
  if (sep && (sensitive || passLike)) {
    const span = keyValue(text, ws, openQuote, closedQuote, k + sep.length, sep, lw);
    if (span) {
      out.push(span);
      return;
    }
    // no value on the line (`Your secret:` then the value on the next one): the entropy rule
  }
  if (sensitive && !sep) {
    let span = nameValue(text, ws, we) ?? netrc(text, ws, we, lw);
    if (!span && closedQuote && text.charCodeAt(k) === 44 /* , */ && quotedAt(text, k + 1)) {
      // define('DB_PASSWORD', 'x'), ("password", "x"), headers.set('X-Api-Key', 'x')
      span = keyValue(text, ws, openQuote, closedQuote, k + 1, ',', lw);
      if (span) span.kind = 'secret_field';
    }
    if (span) {
      out.push(span);
      return;
    }
  }
  if (triggersEntropy(word)) entropyWindow(text, we, secretKeyword(text, s, word), out);
}

/** True when a file system path starts at p (`/x`, `~/x`, `./x`, `..`, `C:\\x`, `\\\\host`). */
function pathAt(text: string, p: number): boolean {
  const c = text.charCodeAt(p);
  if (c === 47 || c === 126 || c === 46 || c === 92) return true;
  return isAsciiLetter(c) && text.charCodeAt(p + 1) === 58 && (text.charCodeAt(p + 2) === 92 || text.charCodeAt(p + 2) === 47);
}

/** True when a quoted value starts at p (after spaces). */
function quotedAt(text: string, p: number): boolean {
  let v = p;
  while (v < text.length && v - p < 16 && isSpace(text.charCodeAt(v))) v++;
  const c = text.charCodeAt(v);
  return isQuote(c) || (c === 92 && isQuote(text.charCodeAt(v + 1)));
}

/** True when the keyword at [ws, we) is a chance match inside a base64 / random blob. */
function embeddedInRandom(text: string, ws: number, we: number): boolean {
  const before = ws > 0 ? text.charCodeAt(ws - 1) : 0;
  const after = we < text.length ? text.charCodeAt(we) : 0;
  // the run is the word itself unless + or / continue it
  if (we - ws < 24 && before !== 43 && before !== 47 && after !== 43 && after !== 47) return false;
  let a = ws;
  while (a > 0 && ws - a < 256 && isBase64Char(text.charCodeAt(a - 1))) a--;
  let b = we;
  while (b < text.length && b - we < 256 && isBase64Char(text.charCodeAt(b))) b++;
  // the word's own characters may include _ - . which are not base64: look at the alnum run
  let x = ws;
  while (x < we && isBase64Char(text.charCodeAt(x))) x++;
  if (x < we) return false; // the word contains _ - or .: an identifier, not base64
  return b - a >= 24 && looksRandom(text.slice(a, b));
}

function isLineStartKey(text: string, keyStart: number): boolean {
  const ls = lineStartOf(text, keyStart, 24);
  if (ls > 0 && keyStart - ls >= 24) return false;
  const prefix = text.slice(ls, keyStart);
  return /^[ \t]*(?:#[ \t]*|[<>*][ \t]+)?(?:export[ \t]+|set[ \t]+|-[ \t]+|\$env:)?["']?$/.test(prefix);
}

function keyValue(
  text: string,
  keyStart: number,
  openQuote: number,
  closedQuote: boolean,
  afterSep: number,
  sep: string,
  lw: string,
): Span | null {
  let v = afterSep;
  while (v < text.length && v - afterSep < 16 && isSpace(text.charCodeAt(v))) v++;
  if (v >= text.length) return null;
  const c = text.charCodeAt(v);
  if (c === NL || c === CR) return null;
  // `"Password: "` : the quote closes the string the key is in
  if (openQuote && !closedQuote && (c === openQuote || (c === 92 && text.charCodeAt(v + 1) === openQuote))) return null;
  let value = quotedValue(text, v);
  const lineStart = isLineStartKey(text, keyStart - (openQuote ? 1 : 0));
  const before = text.charCodeAt(keyStart - (openQuote ? 2 : 1));
  let kind = 'secret_field';
  if (!value) {
    if (sep === '=>' || sep === ':=') return null; // arrow functions, Go assignments of expressions
    let stop: Stop = 'eol';
    if (before === 63 || before === 38) stop = 'query'; // ? &
    else if (openQuote && !closedQuote) stop = 'quote';
    else if (!lineStart) stop = 'ws';
    value = bareValue(text, v, stop, openQuote, sep === '=');
    if (stop === 'query') kind = 'url_param';
    else if (before === 59 || text.charCodeAt(value.end) === 59) kind = 'connection_string'; // ;
    else if (sep === ':' && !closedQuote && lineStart && /[-A-Z]/.test(text.slice(keyStart, keyStart + 1) + lw)) kind = 'http_header';
    else if (lineStart) kind = 'env_secret';
    else kind = 'secret_value';
  }
  let start = value.start;
  const end = value.end;
  if (end <= start) return null;
  let raw = text.slice(start, end);
  if (lw.endsWith('authorization')) {
    const scheme = AUTH_SCHEME_RE.exec(raw);
    if (scheme) {
      start += scheme[0].length;
      const name = (scheme[1] as string).toLowerCase();
      kind = name === 'bearer' || name === 'token' ? 'bearer_token' : name === 'basic' ? 'basic_auth' : 'authorization';
      raw = raw.slice(scheme[0].length);
      if (!raw) return null;
    }
  }
  if (lw.replace(/[^a-z]/g, '').endsWith('awssecretaccesskey')) kind = 'aws_secret_access_key';
  if (!value.quoted && sep === ':' && BLOCK_SCALAR_RE.test(raw)) return blockScalar(text, keyStart, end, kind);
  if (isPlaceholder(raw)) return null;
  if (!value.quoted) {
    const first = raw.charCodeAt(0);
    // structure (`{`, `[`), YAML block scalars / anchors / aliases, comparisons
    if (first === 123 || first === 91 || first === 124 || first === 62 || first === 38 || first === 42 || first === 61 || first === 40) return null;
    if (raw.length < 3 || CODE_VALUE_RE.test(raw) || VERSION_RE.test(raw)) return null;
    // mid-line `key: word` is prose or a log prefix (`DEBUG auth: token validated`), not a value
    if (sep === ':' && !lineStart && !openQuote && /^[A-Za-z]+[,.;]?$/.test(raw)) return null;
    if (closedQuote && JSON_SCALAR_RE.test(raw.replace(/,$/, ''))) return null;
  }
  return { start, end, kind };
}

/** A YAML block scalar indicator alone after `key:` (`|`, `>-`, `|+2`, `> # comment`). */
const BLOCK_SCALAR_RE = /^[|>][-+]?[1-9]?[-+]?(?:[ \t]+#.*)?$/;

/** The lines of a YAML block scalar (`api_key: >-` then more-indented lines): the value. */
function blockScalar(text: string, keyStart: number, indicatorEnd: number, kind: string): Span | null {
  const ls = lineStartOf(text, keyStart);
  let indent = 0;
  while (ls + indent < keyStart && (text.charCodeAt(ls + indent) === 32 || text.charCodeAt(ls + indent) === 45)) indent++;
  let p = lineEndOf(text, indicatorEnd);
  let start = -1;
  let end = -1;
  const limit = Math.min(text.length, p + 16384);
  while (p < limit) {
    // the next line
    p += text.charCodeAt(p) === CR && text.charCodeAt(p + 1) === NL ? 2 : 1;
    if (p >= text.length) break;
    let q = p;
    while (q < text.length && text.charCodeAt(q) === 32) q++;
    const lineEnd = lineEndOf(text, q);
    if (q === lineEnd) {
      p = lineEnd; // blank lines belong to the block
      continue;
    }
    if (q - p <= indent) break;
    if (start < 0) start = q;
    end = lineEnd;
    p = lineEnd;
  }
  while (end > start && isSpace(text.charCodeAt(end - 1))) end--;
  if (start < 0 || end <= start || isPlaceholder(text.slice(start, end))) return null;
  return { start, end, kind };
}

const NAME_BEFORE_RE = /name\\?["']?[ \t]*[:=][ \t]*\\?["']?$/i;
const VALUE_AFTER_RE = /\\?["']?[ \t]*,?[ \t]*(?:\r?\n[ \t]*(?:-[ \t]*)?)?\\?["']?value\\?["']?[ \t]*[:=][ \t]*/y;

/** `name: DB_PASSWORD` + `value: x` (Kubernetes env, ECS task definitions, `--set env[0]…`). */
function nameValue(text: string, ws: number, we: number): Span | null {
  let p = ws - 1;
  while (p >= 0 && ws - p < 8 && (isQuote(text.charCodeAt(p)) || isSpace(text.charCodeAt(p)) || text.charCodeAt(p) === 92)) p--;
  const sep = text.charCodeAt(p);
  if (sep !== 58 && sep !== 61) return null;
  if (!NAME_BEFORE_RE.test(text.slice(Math.max(0, ws - 24), ws))) return null;
  VALUE_AFTER_RE.lastIndex = we;
  const m = VALUE_AFTER_RE.exec(text);
  if (!m) return null;
  const v = we + m[0].length;
  const value = quotedValue(text, v) ?? bareValue(text, v, 'eol', 0);
  const raw = text.slice(value.start, value.end);
  if (value.end <= value.start || isPlaceholder(raw)) return null;
  return { start: value.start, end: value.end, kind: 'secret_value' };
}

/** `.netrc`: `machine h login u password p` (one line or several). */
function netrc(text: string, ws: number, we: number, lw: string): Span | null {
  if (lw !== 'password' || !isSpace(text.charCodeAt(we))) return null;
  const ls = lineStartOf(text, ws);
  const before = text.slice(ls, ws);
  if (!/(?:^|\s)login\s+\S+\s+$/.test(before) && !/^\s*$/.test(before)) return null;
  let v = we;
  while (v < text.length && isSpace(text.charCodeAt(v))) v++;
  const value = bareValue(text, v, 'ws', 0);
  if (value.end <= value.start) return null;
  if (/^\s*$/.test(before)) {
    // a line of its own must be the whole line (`password x`), in a file that has machine/login
    if (lineEndOf(text, value.end) !== value.end) return null;
    if (!/\b(?:machine|login)\s+\S/.test(text.slice(Math.max(0, ls - 512), ls))) return null;
  }
  if (isPlaceholder(text.slice(value.start, value.end))) return null;
  return { start: value.start, end: value.end, kind: 'netrc_password' };
}

/** `--password x`, `--token=x`, `-storepass x`, `-passin pass:x`. */
function flagValue(text: string, we: number, lw: string, out: Span[]): void {
  let p = we;
  const c = text.charCodeAt(p);
  if (c === 61) p++;
  else if (isSpace(c)) while (p < text.length && p - we < 16 && isSpace(text.charCodeAt(p))) p++;
  else return;
  if (text.charCodeAt(p) === 45 || p >= text.length) return; // the next flag
  const value = quotedValue(text, p) ?? bareValue(text, p, 'ws', 0);
  let start = value.start;
  if (lw === 'passin' || lw === 'passout' || lw === 'pass') {
    if (text.startsWith('pass:', start)) start += 5;
    else if (lw !== 'pass') return;
  }
  if (value.end <= start) return;
  if (isPlaceholder(text.slice(start, value.end))) return;
  out.push({ start, end: value.end, kind: 'cli_password' });
}

// ------------------------------------------------------------------ command lines

type Command = 'mysql' | 'sshpass' | 'login' | 'dashp' | 'redis' | 'ldap' | 'sqlcmd' | 'smb' | 'curl' | 'httpie';

const COMMANDS = new Map<string, Command>();
for (const name of ['mysql', 'mysqldump', 'mysqladmin', 'mysqlimport', 'mysqlshow', 'mysqlcheck', 'mysqlsh', 'mysqlbinlog', 'mariadb', 'mariadb-dump', 'mariadb-admin', 'mariadbdump', 'mariadbadmin']) COMMANDS.set(name, 'mysql');
for (const name of ['twine', 'mongo', 'mongosh', 'mongodump', 'mongorestore', 'mongoexport', 'mongoimport', 'mongostat', 'mongotop']) COMMANDS.set(name, 'dashp');
for (const name of ['ldapsearch', 'ldapmodify', 'ldapadd', 'ldapdelete', 'ldapwhoami', 'ldappasswd', 'ldapcompare', 'ldapmodrdn']) COMMANDS.set(name, 'ldap');
COMMANDS.set('sshpass', 'sshpass').set('login', 'login').set('redis-cli', 'redis').set('sqlcmd', 'sqlcmd');
COMMANDS.set('smbclient', 'smb').set('curl', 'curl').set('wget', 'curl');
COMMANDS.set('http', 'httpie').set('https', 'httpie');

function commandOf(lw: string): Command | null {
  const c = lw.charCodeAt(0);
  // every command starts with one of c h l m r s t w
  if (c !== 99 && c !== 104 && c !== 108 && c !== 109 && c !== 114 && c !== 115 && c !== 116 && c !== 119) return null;
  return COMMANDS.get(lw) ?? null;
}

const ARG = `(?:'([^'\\n]*)'|"([^"\\n]*)"|([^\\s'"]+))`;
const COMMAND_RES: Record<Command, RegExp> = {
  mysql: new RegExp(`(?:^|\\s)-p${ARG}`, 'dg'),
  sshpass: new RegExp(`(?:^|\\s)-p[ \\t]*${ARG}`, 'dg'),
  login: new RegExp(`(?:^|\\s)-p[ \\t]*${ARG}`, 'dg'),
  dashp: new RegExp(`(?:^|\\s)-p[ \\t]*${ARG}`, 'dg'),
  redis: new RegExp(`(?:^|\\s)(?:-a|--pass|--askpass)[ \\t]+${ARG}`, 'dg'),
  ldap: new RegExp(`(?:^|\\s)-w[ \\t]*${ARG}`, 'dg'),
  sqlcmd: new RegExp(`(?:^|\\s)-P[ \\t]*${ARG}`, 'dg'),
  smb: /(?:^|\s)-U[ \t]*["']?[^\s%'"]*%([^\s'"]+)/dg,
  curl: /(?:^|\s)(?:-u|--user|--proxy-user|-U)(?:=|[ \t]+)["']?[^\s:'"]*:([^\s'"]+)/dg,
  httpie: /(?:^|\s)(?:-a|--auth)(?:=|[ \t]+)["']?[^\s:'"]*:([^\s'"]+)/dg,
};
const LOGIN_TOOLS_RE = /\b(?:docker|podman|nerdctl|buildah|skopeo|helm|oras|az|crane|cf|oc|regctl|finch)\b/;

function commandSpans(text: string, ws: number, we: number, cmd: Command, out: Span[]): void {
  if (cmd === 'login' && !LOGIN_TOOLS_RE.test(text.slice(lineStartOf(text, ws), ws))) return;
  const end = lineEndOf(text, we, 2048);
  const segment = text.slice(we, end);
  const re = COMMAND_RES[cmd];
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(segment)) !== null) {
    let g = 1;
    while (g < m.length && m[g] === undefined) g++;
    const secret = m[g];
    const at = m.indices?.[g];
    if (secret === undefined || secret.length === 0 || !at) continue;
    const start = we + at[0];
    if (isPlaceholder(secret)) continue;
    out.push({ start, end: start + secret.length, kind: 'cli_password' });
  }
}

// ------------------------------------------------------------------ entropy window

const WINDOW = 80;
/** Everything before this index has been looked at by entropyWindow (windows of nearby keywords overlap). */
let entropyScanned = 0;
/** Cache for nextLineEnd(): the line end found at or after nlFrom. */
let nlFrom = -1;
let nlAt = -1;

/** Index of the first CR/LF at or after `from` (or the text's length); amortised O(1) as keywords move forward. */
function nextLineEnd(text: string, from: number): number {
  if (from >= nlFrom && from <= nlAt && nlFrom >= 0) return nlAt;
  let j = from;
  while (j < text.length) {
    const c = text.charCodeAt(j);
    if (c === NL || c === CR) break;
    j++;
  }
  nlFrom = from;
  nlAt = j;
  return j;
}

/** True when text[from, to) holds only spaces and `:=>"'\`-`. */
function onlyPunctuation(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (!(isSpace(c) || c === 58 || c === 61 || c === 62 || isQuote(c) || c === 45)) return false;
  }
  return true;
}

function endsWithColon(text: string, from: number, to: number): boolean {
  let e = to;
  while (e > from && isSpace(text.charCodeAt(e - 1))) e--;
  return e > from && text.charCodeAt(e - 1) === 58;
}

/** = : . _ ~ - */
function isLeadingSeparator(c: number): boolean {
  return c === 61 || c === 58 || c === 46 || c === 95 || c === 126 || c === 45;
}

function skipValueSeparators(text: string, from: number, limit: number): number {
  let p = from;
  while (p < limit) {
    const c = text.charCodeAt(p);
    if (isSpace(c) || c === 58 || c === 61 || c === 62 || isQuote(c) || c === 40 || c === 45) p++;
    else break;
  }
  return p;
}

const FILLER_RE = /(?:is|was)[ \t]/iy;

/** Where a keyword's value starts: after spaces, `:=>"'\`(-` and one `is`/`was` (`API key is <value>`). */
function valueStart(text: string, from: number, limit: number): number {
  const p = skipValueSeparators(text, from, limit);
  FILLER_RE.lastIndex = p;
  return p > from && FILLER_RE.test(text) ? skipValueSeparators(text, p + 3, limit) : p;
}

/** Redacts random-looking tokens within WINDOW characters after a keyword (same line, or the next
 * line when the keyword ends its line, as in `Your token:\n  abc…`). When `secretKey` is true the
 * token right after the keyword is its value: the UUID / hash allowlist does not apply to it. */
function entropyWindow(text: string, we: number, secretKey: boolean, out: Span[]): void {
  let from = we;
  let lineEnd = Math.min(nextLineEnd(text, from), from + WINDOW + 1);
  if ((onlyPunctuation(text, from, lineEnd) || endsWithColon(text, from, lineEnd)) && lineEnd < text.length && lineEnd - from <= WINDOW) {
    // the keyword ends its line: look at the next one
    from = lineEnd + (text.charCodeAt(lineEnd) === CR && text.charCodeAt(lineEnd + 1) === NL ? 2 : 1);
    lineEnd = Math.min(nextLineEnd(text, from), from + WINDOW);
  }
  const limit = Math.min(lineEnd, from + WINDOW);
  const valueAt = secretKey ? valueStart(text, from, limit) : -1;
  // a nearby keyword's window may have passed the value already (`auth token <hex>`): look again
  if (valueAt >= 0 && valueAt < entropyScanned && valueAt < limit && isTokenChar(text.charCodeAt(valueAt))) {
    entropyToken(text, valueAt, valueAt, out);
  }
  let i = Math.max(from, entropyScanned);
  while (i < limit) {
    if (!isTokenChar(text.charCodeAt(i))) {
      i++;
      continue;
    }
    i = entropyToken(text, i, valueAt, out);
  }
  if (i > entropyScanned) entropyScanned = i;
}

/** Looks at the token run starting at i (a keyword's value when it starts at valueAt); returns its end. */
function entropyToken(text: string, i: number, valueAt: number, out: Span[]): number {
  let j = i;
  while (j < text.length && j - i < 1024 && isTokenChar(text.charCodeAt(j))) j++;
  // the token proper: after the last `=` that is not base64 padding (`trace_id=abc`), without
  // leading separators (`-abc`)
  let ts = i;
  let pad = j;
  while (pad > i && text.charCodeAt(pad - 1) === 61) pad--;
  for (let x = pad - 1; x >= i; x--) {
    if (text.charCodeAt(x) === 61) {
      ts = x + 1;
      break;
    }
  }
  while (ts < j && isLeadingSeparator(text.charCodeAt(ts))) ts++;
  let te = j;
  while (te > ts && text.charCodeAt(te - 1) === 46) te--;
  if (te - ts < MIN_TOKEN_LENGTH) return j;
  const token = text.slice(ts, te);
  // paths and file names with versions are not credentials
  const c0 = token.charCodeAt(0);
  if (c0 === 47 || c0 === 126 || (token.includes('.') && /\d+\.\d+\.\d+/.test(token))) return j;
  const isValue = ts === valueAt;
  // the whole run the token belongs to (it may have started before the keyword's end)
  let rs = i;
  while (rs > 0 && i - rs < 256 && isTokenChar(text.charCodeAt(rs - 1))) rs--;
  const before = text.slice(Math.max(0, ts - 48), ts);
  const runAllowed = rs < i && allowlisted(text.slice(rs, te), text.slice(Math.max(0, rs - 48), rs), isValue);
  if (!runAllowed && isHighEntropySecret(token, before, isValue)) out.push({ start: ts, end: te, kind: 'high_entropy' });
  return j;
}
