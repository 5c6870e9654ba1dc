/**
 * The high-entropy heuristic and its allowlist.
 *
 * A token (a run of `[A-Za-z0-9+/=_.~-]`) is taken for a secret when all of these hold:
 *
 * - it is at least {@link MIN_TOKEN_LENGTH} (20) characters long;
 * - it has at least one letter and at least one digit;
 * - its Shannon entropy is at least {@link MIN_ENTROPY} (3.5) bits per character, or
 *   {@link MIN_HEX_ENTROPY} (3.0) when it is made of hex digits only;
 * - it does not read like words: the average length of its letter runs (split at case changes,
 *   digits and punctuation) is below {@link MAX_WORDINESS} (5), which keeps identifiers such as
 *   `computeCacheKeyForRequest2` out (paths starting with `/` or `~` are skipped by the caller);
 * - it is not allowlisted ({@link allowlisted}). Kept whatever their position: SRI / npm
 *   integrity strings (`sha512-…`), digests after `sha256:` / `sha1=` / `h1:` / `md5:`…, base64
 *   payloads of `data:` URLs and SSH public key blobs. Kept only when they are not the keyword's
 *   own value (context-free): UUIDs and hex strings of exactly 32, 40, 64, 96 or 128 digits
 *   (MD5, git SHA-1, SHA-256/384/512). A hex string of any other length is not kept.
 *
 * The heuristic only runs on tokens that follow a credential keyword (see redact-context.ts),
 * so a random-looking token elsewhere (a content hash in a lock file, a trace id) is never touched.
 * The token right after the keyword (`API key: <hex>`, `token\n<uuid>`, `MASTER_KEY <hex>`) is
 * the keyword's value: there a UUID or a hash-length hex string is a secret like any other.
 */

export const MIN_TOKEN_LENGTH = 20;
export const MIN_ENTROPY = 3.5;
export const MIN_HEX_ENTROPY = 3.0;
export const MAX_WORDINESS = 5;

/** Lengths of the hex digests kept when they are not a keyword's value (MD5, SHA-1, SHA-256/384/512). */
export const HASH_HEX_LENGTHS: ReadonlySet<number> = new Set([32, 40, 64, 96, 128]);

const counts = new Uint32Array(65536);

/** Shannon entropy of a string, in bits per character. */
export function shannonEntropy(str: string): number {
  const n = str.length;
  if (n === 0) return 0;
  for (let i = 0; i < n; i++) counts[str.charCodeAt(i)] = (counts[str.charCodeAt(i)] as number) + 1;
  let h = 0;
  for (let i = 0; i < n; i++) {
    const c = str.charCodeAt(i);
    const k = counts[c] as number;
    if (k === 0) continue;
    const p = k / n;
    h -= p * Math.log2(p);
    counts[c] = 0;
  }
  return h;
}

/** True for `[A-Za-z0-9+/=_.~-]`, the characters a token is made of. */
export function isTokenChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) || // 0-9
    (c >= 65 && c <= 90) || // A-Z
    (c >= 97 && c <= 122) || // a-z
    c === 43 || // +
    c === 47 || // /
    c === 61 || // =
    c === 95 || // _
    c === 46 || // .
    c === 126 || // ~
    c === 45 // -
  );
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const HEX_RE = /^[0-9a-fA-F]+$/;
const SRI_RE = /^sha(?:1|256|384|512)-[A-Za-z0-9+/]+={0,2}$/;
const DIGEST_PREFIX_RE = /(?:sha(?:1|224|256|384|512)|md5|h1|blake2b|blake3|xxh64|xxh3)[:=]$/i;
const SSH_PUBLIC_RE = /(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp\d{3}|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)[ \t]+$/;

/**
 * True when a token must be kept for debugging even next to a keyword. `before` is the text
 * just before the token (up to ~48 characters), used for prefixes such as `sha256:` or `base64,`.
 * `value` is true when the token is the keyword's own value: then UUIDs and hash-length hex
 * strings are not kept (they are common secret formats: Heroku keys, Rails master keys…).
 */
export function allowlisted(token: string, before: string, value = false): boolean {
  if (!value && UUID_RE.test(token)) return true;
  if (!value && HEX_RE.test(token) && HASH_HEX_LENGTHS.has(token.length)) return true;
  if (SRI_RE.test(token)) return true;
  if (DIGEST_PREFIX_RE.test(before)) return true;
  if (before.endsWith('base64,')) return true;
  if (token.startsWith('AAAA') && SSH_PUBLIC_RE.test(before)) return true;
  return false;
}

/** Average length of the letter runs of a token (camelCase humps count as separate runs). */
function wordiness(token: string): number {
  let runs = 0;
  let letters = 0;
  let inRun = false;
  let prevLower = false;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const upper = c >= 65 && c <= 90;
    const lower = c >= 97 && c <= 122;
    if (upper || lower) {
      // a new run starts after a non-letter, or at a lower->upper change (camelCase)
      if (!inRun || (upper && prevLower)) runs++;
      inRun = true;
      letters++;
      prevLower = lower;
    } else {
      inRun = false;
      prevLower = false;
    }
  }
  return runs === 0 ? 0 : letters / runs;
}

/** True when a token looks like a random credential (see the module comment for the rule). */
export function looksRandom(token: string): boolean {
  if (token.length < MIN_TOKEN_LENGTH) return false;
  let digits = 0;
  let letters = 0;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
    else if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) letters++;
  }
  if (digits === 0 || letters === 0) return false;
  const hex = HEX_RE.test(token);
  if (shannonEntropy(token) < (hex ? MIN_HEX_ENTROPY : MIN_ENTROPY)) return false;
  return hex || wordiness(token) < MAX_WORDINESS;
}

/** looksRandom() and not allowlisted(). */
export function isHighEntropySecret(token: string, before: string, value = false): boolean {
  return looksRandom(token) && !allowlisted(token, before, value);
}
