"""The entropy heuristic's thresholds and the allowlist's boundaries, pinned (the same cases as
instrumentation/test/unit/entropy.test.ts): each number just below and just above, and each
allowlisted form as a keyword's value and as a nearby, context-free token."""

from __future__ import annotations

import math

from agent_lightning import Redactor
from agent_lightning._entropy import (
    HASH_HEX_LENGTHS,
    MAX_WORDINESS,
    MIN_ENTROPY,
    MIN_HEX_ENTROPY,
    MIN_TOKEN_LENGTH,
    allowlisted,
    is_high_entropy_secret,
    looks_random,
    shannon_entropy,
)

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def rand(n: int, alphabet: str, seed: int = 11) -> str:
    """Fake values, generated at run time."""
    x, out = seed, []
    for _ in range(n):
        x = (x * 1103515245 + 12345) % 2147483648
        out.append(alphabet[(x >> 8) % len(alphabet)])
    return "".join(out)


def hexs(n: int, seed: int = 5) -> str:
    return rand(n, "0123456789abcdef", seed)


UUID = f"{hexs(8)}-{hexs(4, 6)}-4{hexs(3, 7)}-a{hexs(3, 8)}-{hexs(12, 9)}"


def redact(text: str) -> str:
    return Redactor(True).text(text)


def test_documented_thresholds() -> None:
    assert (MIN_TOKEN_LENGTH, MIN_ENTROPY, MIN_HEX_ENTROPY, MAX_WORDINESS) == (20, 3.5, 3.0, 5)
    assert sorted(HASH_HEX_LENGTHS) == [32, 40, 64, 96, 128]


def test_length_entropy_and_alphabet_boundaries() -> None:
    t = rand(20, ALNUM)
    assert shannon_entropy(t[:19]) >= MIN_ENTROPY and not looks_random(t[:19]) and looks_random(t)
    under, over = "g1h2i3j4k5m" * 2, "g1h2i3j4k5mn" * 2  # log2(11) = 3.46, log2(12) = 3.58
    assert math.isclose(shannon_entropy(under), math.log2(11))
    assert not looks_random(under) and looks_random(over)
    assert shannon_entropy("0a1b2c3d" * 3) == 3 and looks_random("0a1b2c3d" * 3)  # hex: 3.0 is enough
    assert not looks_random("0a1b2c3" * 3)  # 2.81
    assert not looks_random("0a1b2c3z" * 3)  # not hex: held to 3.5
    assert not looks_random(rand(24, ALNUM[:52])) and not looks_random("12345678901234567890123")
    assert not looks_random("computeCacheKeyForRequest2") and looks_random("abcdQ1wxyzR2mnopS3ijklT4")


def test_allowlist_boundaries() -> None:
    assert allowlisted(UUID, "") and not allowlisted(UUID, "", True)
    for n in (32, 40, 64, 96, 128):
        assert allowlisted(hexs(n), "") and not allowlisted(hexs(n), "", True), n
    for n in (20, 31, 33, 39, 41, 48, 63, 65):
        assert not allowlisted(hexs(n), ""), n
    b64 = rand(43, ALNUM + "+/")
    assert allowlisted(f"sha512-{b64}==", "", True)
    assert allowlisted(hexs(64), "image sha256:", True)
    assert allowlisted(b64, "h1:", True)
    assert allowlisted(b64, "data:image/png;base64,", True)
    assert allowlisted(f"AAAA{b64}", "ssh-ed25519 ", True)
    assert is_high_entropy_secret(hexs(48), "")


def test_a_secret_keywords_value_is_redacted_whatever_its_alphabet() -> None:
    h32, h40 = hexs(32), hexs(40)
    for text in (f"Datadog API key: {h32}", f"Your API key is {h32}.", f"twilio auth token {h32}",
                 f"MASTER_KEY {h32}", f"heroku auth:token\n{UUID}", f"token: {UUID}"):  # fmt: skip
        out = redact(text)
        assert h32 not in out and UUID not in out, (text, out)
    for text in (f"cache key: {h32}", f"Idempotency-Key: {UUID}", f"gpg: using RSA key {h40.upper()}",
                 f"token_id: {UUID}", f"token refreshed at commit {h40}", f"$ md5sum secrets.md\n{h32}  secrets.md"):  # fmt: skip
        assert redact(text) == text
    assert redact(f"token refreshed at build {hexs(48)}") == "token refreshed at build [REDACTED:high_entropy]"


def test_window_and_next_line() -> None:
    t = rand(24, ALNUM, 3)
    assert redact(f"secret {'x ' * 35}{t}") == f"secret {'x ' * 35}[REDACTED:high_entropy]"
    assert redact(f"secret {'x ' * 40}{t}") == f"secret {'x ' * 40}{t}"
    assert redact(f"Your secret:\n  {t}") == "Your secret:\n  [REDACTED:high_entropy]"
    assert redact(f"the secret rotated\n{t}") == f"the secret rotated\n{t}"
