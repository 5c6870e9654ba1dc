"""Built-in secret redaction for free text and for values under sensitive object keys.

The rules mirror the TypeScript package (instrumentation/src/redact.ts): each replaces the secret,
and only the secret (key names, ``Bearer``, URL user names are kept), by ``[REDACTED:<kind>]``.
Both packages' tests run the same corpus (testdata/redaction/).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class RedactionRule:
    kind: str
    pattern: re.Pattern[str]
    replace: str
    # A match needs one of these substrings (of the lowercased text when the rule ignores case):
    # a fast `in` test spares the regex engine on the text of almost every tool output.
    needles: tuple[str, ...] = ()

    def may_match(self, text: str, lower: str) -> bool:
        if not self.needles:
            return True
        haystack = lower if self.pattern.flags & re.IGNORECASE else text
        return any(n in haystack for n in self.needles)


def _rule(kind: str, pattern: str, flags: int = 0, keep: bool = False, needles: tuple[str, ...] = ()) -> RedactionRule:
    # `keep`: the pattern has a group named k (context to keep in front of the secret)
    replace = f"\\g<k>[REDACTED:{kind}]" if keep else f"[REDACTED:{kind}]"
    return RedactionRule(kind, re.compile(pattern, flags), replace, needles)


_AWS_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA")
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "_key", "apikey", "credential", "private")
_FIELD_WORDS = ("password", "passwd", "passphrase", "secret", "api", "token", "private")


# Ordered: the most specific formats first so they get the most precise label.
BUILTIN_RULES: tuple[RedactionRule, ...] = (
    # PEM private key blocks (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP), also when cut off before END.
    _rule(
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
    # Anthropic (sk-ant-api03-…, sk-ant-admin01-…, sk-ant-oat01-…)
    _rule("anthropic_key", r"\bsk-ant-[A-Za-z0-9]{2,12}-[A-Za-z0-9_-]{20,}"),
    # OpenAI project / service account / legacy user keys
    _rule("openai_key", r"\bsk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}"),
    _rule("openai_key", r"\bsk-[A-Za-z0-9]{20,}T3BlbkFJ[A-Za-z0-9]{20,}"),
    _rule("openai_key", r"\bsk-[A-Za-z0-9]{32,}\b"),
    # AWS access key ids and secrets given as aws_secret_access_key
    _rule("aws_access_key_id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
    _rule(
        "aws_secret_access_key",
        r"(?P<k>aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}",
        re.IGNORECASE,
        keep=True,
    ),
    # GitHub
    _rule("github_token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b"),
    _rule("github_token", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
    # GitLab
    _rule("gitlab_token", r"\bglpat-[A-Za-z0-9_-]{20,}\b"),
    # Slack tokens and webhooks
    _rule("slack_token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}"),
    _rule("slack_webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+"),
    # Google API keys, OAuth access tokens and refresh tokens
    _rule("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    _rule("google_oauth_token", r"\bya29\.[0-9A-Za-z_-]{20,}"),
    _rule("google_refresh_token", r"\b1//0[0-9A-Za-z_-]{30,}"),
    # Stripe secret / restricted / publishable keys and webhook secrets
    _rule("stripe_key", r"\b(?:sk|rk|pk)_(?:live|test)_[0-9a-zA-Z]{10,}\b"),
    _rule("stripe_webhook_secret", r"\bwhsec_[0-9a-zA-Z]{20,}\b"),
    # npm, PyPI, Hugging Face, SendGrid, Twilio, Azure storage
    _rule("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    _rule("pypi_token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
    _rule("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    _rule("sendgrid_key", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b"),
    _rule("twilio_key", r"\bSK[0-9a-fA-F]{32}\b"),
    _rule("azure_storage_key", r"(?P<k>AccountKey=)[A-Za-z0-9+/=]{40,}", keep=True),
    # JSON Web Tokens
    _rule("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    # Authorization headers: Bearer / Basic / Token
    _rule(
        "bearer_token",
        r"(?P<k>\b(?:Bearer|Token)\s+)(?!\[REDACTED)[A-Za-z0-9._~+/=-]{8,}",
        keep=True,
    ),
    _rule("basic_auth", r"(?P<k>\bBasic\s+)(?!\[REDACTED)[A-Za-z0-9+/]{8,}={0,2}", keep=True),
    # URLs with a password: scheme://user:password@host
    _rule(
        "url_password",
        r"(?P<k>\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@'\"]{1,256}:)(?!\[REDACTED)[^\s@/'\"]{1,1024}(?=@)",
        keep=True,
    ),
    # .env-like lines: NAME=value where NAME mentions a secret
    _rule(
        "env_secret",
        r"^(?P<k>[ \t]{0,16}(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_.-]{0,80}"
        r"(?:PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN(?!S)|_KEY|APIKEY|CREDENTIALS?|PRIVATE_?KEY)"
        r"[A-Za-z0-9_]{0,80}[ \t]{0,8}[=:][ \t]{0,8})(?!\[REDACTED)(?=\S)[^\r\n]+",
        re.IGNORECASE | re.MULTILINE,
        keep=True,
    ),
    # JSON / YAML-ish pairs: "password": "…", client_secret: …
    _rule(
        "secret_field",
        r"(?<![A-Za-z0-9_-])(?P<k>[\"']?[A-Za-z0-9_-]{0,40}"
        r"(?:password|passwd|passphrase|secret|api[_-]?key|access[_-]?token|refresh[_-]?token|auth[_-]?token|private[_-]?key)"
        r"[\"']?[ \t]{0,8}[:=][ \t]{0,8}[\"'])(?!\[REDACTED)[^\"'\r\n]{1,4096}(?=[\"'])",
        re.IGNORECASE,
        keep=True,
    ),
)

_NEEDLES: dict[str, tuple[str, ...]] = {
    "private_key": ("PRIVATE KEY",),
    "anthropic_key": ("sk-ant-",),
    "openai_key": ("sk-",),
    "aws_access_key_id": _AWS_PREFIXES,
    "aws_secret_access_key": ("secret",),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "gitlab_token": ("glpat-",),
    "slack_token": ("xox",),
    "slack_webhook": ("hooks.slack.com",),
    "google_api_key": ("AIza",),
    "google_oauth_token": ("ya29.",),
    "google_refresh_token": ("1//0",),
    "stripe_key": ("_live_", "_test_"),
    "stripe_webhook_secret": ("whsec_",),
    "npm_token": ("npm_",),
    "pypi_token": ("pypi-",),
    "huggingface_token": ("hf_",),
    "sendgrid_key": ("SG.",),
    "twilio_key": ("SK",),
    "azure_storage_key": ("AccountKey=",),
    "jwt": ("eyJ",),
    "bearer_token": ("Bearer", "Token"),
    "basic_auth": ("Basic",),
    "url_password": ("://",),
    "env_secret": _SECRET_WORDS,
    "secret_field": _FIELD_WORDS,
}
BUILTIN_RULES = tuple(RedactionRule(r.kind, r.pattern, r.replace, _NEEDLES.get(r.kind, ())) for r in BUILTIN_RULES)

# Normalised key names whose string values are always withheld.
_SENSITIVE_KEY_SUFFIXES = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "credentials",
    "privatekey",
    "accesskey",
    "secretkey",
    "clientsecret",
    "sessiontoken",
)

_NON_ALNUM = re.compile(r"[^a-z0-9]")


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """True if a value stored under this object key must be withheld (``password``, ``apiKey``, …)."""
    norm = _NON_ALNUM.sub("", key.lower())
    return norm == "auth" or norm.endswith(_SENSITIVE_KEY_SUFFIXES)


class Redactor:
    """Applies the built-in rules (when enabled) and any extra patterns to free text."""

    def __init__(self, enabled: bool, extra: Iterable[re.Pattern[str] | str] = ()) -> None:
        extra_rules = [
            RedactionRule("custom", p if isinstance(p, re.Pattern) else re.compile(p), "[REDACTED:custom]")
            for p in extra
        ]
        self._rules: list[RedactionRule] = [*BUILTIN_RULES, *extra_rules] if enabled else extra_rules

    @property
    def enabled(self) -> bool:
        return len(self._rules) > 0

    def text(self, value: str) -> str:
        out = value
        lower = value.lower()
        for rule in self._rules:
            if rule.may_match(out, lower) and rule.pattern.search(out):
                out = rule.pattern.sub(rule.replace, out)
                lower = out.lower()
        return out
