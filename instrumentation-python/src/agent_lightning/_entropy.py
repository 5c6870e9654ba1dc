"""The high-entropy heuristic and its allowlist (the same rules as instrumentation/src/entropy.ts).

A token (a run of ``[A-Za-z0-9+/=_.~-]``) is taken for a secret when it is at least 20 characters
long, has a letter and a digit, has a Shannon entropy of at least 3.5 bits per character (3.0 for
hex), does not read like words (average letter-run length below 5), and is not allowlisted.
Kept wherever they stand: SRI strings, digests after ``sha256:`` / ``h1:``…, ``data:`` payloads,
SSH public keys. Kept only when they are not the keyword's own value (context-free): UUIDs and hex
strings of exactly 32, 40, 64, 96 or 128 digits. It only runs on tokens that follow a credential
keyword (see _redact.py); the token right after the keyword is its value.
"""

from __future__ import annotations

import math
import re

MIN_TOKEN_LENGTH = 20
MIN_ENTROPY = 3.5
MIN_HEX_ENTROPY = 3.0
MAX_WORDINESS = 5
HASH_HEX_LENGTHS = frozenset({32, 40, 64, 96, 128})
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_.~-")

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
_SRI_RE = re.compile(r"^sha(?:1|256|384|512)-[A-Za-z0-9+/]+={0,2}$")
_DIGEST_PREFIX_RE = re.compile(r"(?:sha(?:1|224|256|384|512)|md5|h1|blake2b|blake3|xxh64|xxh3)[:=]$", re.IGNORECASE)
_SSH_PUBLIC_RE = re.compile(
    r"(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp\d{3}|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)[ \t]+$"
)


def is_token_char(c: str) -> bool:
    return c in _TOKEN_CHARS


def shannon_entropy(s: str) -> float:
    n = len(s)
    if n == 0:
        return 0.0
    counts: dict[str, int] = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    return -sum((k / n) * math.log2(k / n) for k in counts.values())


def allowlisted(token: str, before: str, value: bool = False) -> bool:
    """True when a token is kept for debugging even next to a keyword. ``value``: the token is the
    keyword's own value, where UUIDs and hash-length hex strings are secrets like any other."""
    if not value and _UUID_RE.match(token):
        return True
    if not value and _HEX_RE.match(token) and len(token) in HASH_HEX_LENGTHS:
        return True
    if _SRI_RE.match(token) or _DIGEST_PREFIX_RE.search(before) or before.endswith("base64,"):
        return True
    return token.startswith("AAAA") and _SSH_PUBLIC_RE.search(before) is not None


def _wordiness(token: str) -> float:
    runs = letters = 0
    in_run = prev_lower = False
    for c in token:
        upper = "A" <= c <= "Z"
        lower = "a" <= c <= "z"
        if upper or lower:
            if not in_run or (upper and prev_lower):
                runs += 1
            in_run = True
            letters += 1
            prev_lower = lower
        else:
            in_run = prev_lower = False
    return 0.0 if runs == 0 else letters / runs


def looks_random(token: str) -> bool:
    if len(token) < MIN_TOKEN_LENGTH:
        return False
    digits = sum(1 for c in token if "0" <= c <= "9")
    letters = sum(1 for c in token if ("A" <= c <= "Z") or ("a" <= c <= "z"))
    if digits == 0 or letters == 0:
        return False
    hexy = _HEX_RE.match(token) is not None
    if shannon_entropy(token) < (MIN_HEX_ENTROPY if hexy else MIN_ENTROPY):
        return False
    return hexy or _wordiness(token) < MAX_WORDINESS


def is_high_entropy_secret(token: str, before: str, value: bool = False) -> bool:
    return looks_random(token) and not allowlisted(token, before, value)
