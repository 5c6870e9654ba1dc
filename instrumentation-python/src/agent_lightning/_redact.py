"""Built-in secret redaction for free text and for values under sensitive object keys.

The same detectors as the TypeScript package (instrumentation/src/redact.ts, redact-context.ts,
entropy.ts); both packages' tests run the shared corpus in testdata/redaction/. Each finding
replaces the secret, and only the secret (key names, ``Bearer``, URL user names are kept), by
``[REDACTED:<kind>]``. Three families look at the original text, their findings are merged, then
the text is rebuilt once:

- token formats (``sk-ant-…``, ``ghp_…``, ``AKIA…``, JWTs, PEM private keys…), by literal prefix;
- URLs with credentials (``scheme://user:password@host``);
- context rules (``--password x``, ``key: value`` under a sensitive key, ``mysql -p…``, ``.netrc``,
  ``name: DB_PASSWORD`` + ``value: x``) and, after a credential keyword, the entropy heuristic.

Placeholders (``${VAR}``, ``<token>``, ``{{ secrets.X }}``) and code (``options.apiKey``,
``password: str``) are not values and are left alone.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from ._entropy import MIN_TOKEN_LENGTH, allowlisted, is_high_entropy_secret, is_token_char, looks_random


@dataclass
class Span:
    start: int
    end: int
    kind: str


def _trie_pattern(words: Iterable[str]) -> str:
    """An alternation of literals as a trie (``a(?:b|c)``): Python's regex engine then tries one
    branch per position instead of every word, which keeps long outputs cheap to scan. Longer
    words win over their prefixes, as in a longest-first alternation."""

    class Node(dict[str, "Node"]):
        end = False

    root = Node()
    for w in words:
        node = root
        for c in w:
            node = node.setdefault(c, Node())
        node.end = True

    def build(node: Node) -> str:
        branches = [re.escape(c) + build(child) for c, child in sorted(node.items())]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if node.end else body

    return build(root)


# ---------------------------------------------------------------------------------- sensitive keys

_SENSITIVE_KEY_SUFFIXES = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "authorization", "cookie", "credential",
    "credentials", "privatekey", "accesskey", "secretkey", "clientsecret", "sessiontoken", "accountkey",
    "sharedaccesskey", "sharedaccesssignature", "masterkey", "encryptionkey", "signingkey", "authkey", "keydata",
    "subscriptionkey", "functionskey", "dockerconfigjson", "dockercfg", "amzsignature", "googsignature",
    "keybase", "licensekey", "licencekey", "adminkey",
)  # fmt: skip
_SENSITIVE_KEYS = {"auth", "sig", "signature"}
_PASSWORD_LAST_WORDS = {"pwd", "pass", "pw"}
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _words(key: str) -> list[str]:
    return [w for w in _NON_ALNUM.split(_CAMEL.sub(r"\1 \2", key).lower()) if w]


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """True if a value stored under this key is withheld (``password``, ``apiKey``, ``MYSQL_PWD``…)."""
    norm = re.sub(r"[^a-z0-9]", "", key.lower())
    if norm in _SENSITIVE_KEYS or norm.endswith(_SENSITIVE_KEY_SUFFIXES):
        return True
    w = _words(key)
    return len(w) >= 2 and w[-1] in _PASSWORD_LAST_WORDS


_TRIGGER_WORDS = {
    "password", "passwd", "passphrase", "pass", "pwd", "pw", "secret", "secrets", "token", "tokens", "key", "keys",
    "apikey", "auth", "authorization", "credential", "credentials", "cred", "creds", "cookie", "sig", "signature",
    "bearer", "pat",
}  # fmt: skip
_TRIGGER_SUFFIXES = ("password", "passwd", "secret", "token", "apikey", "accesskey", "privatekey", "secretkey")


# Words before ``key`` that make it a credential (``API key``, ``ADMIN_KEY``); ``cache key``,
# ``primary key``, ``Idempotency-Key``, ``RSA key`` are not.
_KEY_QUALIFIERS = {
    "api", "secret", "private", "access", "admin", "master", "license", "licence", "auth", "signing", "encryption",
    "account", "client", "app", "application", "service", "deploy", "write", "ingest", "ingestion", "integration",
    "server", "webhook", "hmac", "shared", "session", "subscription", "developer", "personal", "rest", "live", "sdk",
}  # fmt: skip
# Last words that describe the secret itself (``secret_key_base``, ``token_value``), skipped.
_VALUE_WORDS = {"base", "value", "string", "str", "data", "text", "raw", "plain", "plaintext", "hex", "b64", "base64"}
_LETTERS_BEFORE_RE = re.compile(r"(?<![A-Za-z])([A-Za-z]{1,24})[ \t]{1,8}$")


@lru_cache(maxsize=4096)
def _triggers_entropy(word: str) -> bool:
    return any(w in _TRIGGER_WORDS or w.endswith(_TRIGGER_SUFFIXES) for w in _words(word))


@lru_cache(maxsize=4096)
def _keyword_class(word: str) -> str:
    """``yes``/``no`` for _secret_keyword() from the word alone; ``key`` when the word before decides."""
    w = _words(word)
    n = len(w)
    while n > 1 and w[n - 1] in _VALUE_WORDS:
        n -= 1
    if n == 0:
        return "no"
    last = w[n - 1]
    if last not in ("key", "keys"):
        return "yes" if last in _TRIGGER_WORDS or last.endswith(_TRIGGER_SUFFIXES) else "no"
    if n > 1:
        return "yes" if w[n - 2] in _KEY_QUALIFIERS else "no"
    return "key"


def _secret_keyword(text: str, ws: int, word: str) -> bool:
    """True when the token right after this keyword is its value and a secret whatever its alphabet
    (the UUID / hash allowlist does not apply). The last word must name a secret (``API_TOKEN``,
    ``token``, not ``token_id``); ``key`` counts only after a qualifier, in the word (``ADMIN_KEY``) or
    as the word before it (``API key:``)."""
    of = _keyword_class(word)
    if of != "key":
        return of == "yes"
    m = _LETTERS_BEFORE_RE.search(text, max(0, ws - 32), ws)
    return m is not None and m.group(1).lower() in _KEY_QUALIFIERS


# ---------------------------------------------------------------------------------- token formats

_END = "(?![A-Za-z0-9])"


@dataclass(frozen=True)
class _Format:
    kind: str
    prefixes: tuple[str, ...]
    pattern: re.Pattern[str]
    back: re.Pattern[str] | None = None


def _f(kind: str, prefixes: Iterable[str], source: str, back: str | None = None) -> _Format:
    return _Format(kind, tuple(prefixes), re.compile(source), re.compile(back) if back else None)


_AWS = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA")
_GITLAB = ("glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "glimt-", "gloas-", "glsoat-", "glffct-", "glagent-")
_DISCORD = (
    "https://discord.com/api/webhooks/", "https://discordapp.com/api/webhooks/",
    "https://ptb.discord.com/api/webhooks/", "https://canary.discord.com/api/webhooks/",
)  # fmt: skip

# Ordered within a prefix: the most specific formats first.
FORMAT_RULES: tuple[_Format, ...] = (
    _f("anthropic_key", ["sk-ant-"], r"sk-ant-[A-Za-z0-9]{2,12}-[A-Za-z0-9_-]{20,}"),
    _f("openrouter_key", ["sk-or-"], rf"sk-or-v1-[a-f0-9]{{64}}{_END}"),
    _f("openai_key", ["sk-"], r"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}"),
    _f("openai_key", ["sk-"], r"sk-[A-Za-z0-9]{20,}T3BlbkFJ[A-Za-z0-9]{20,}"),
    _f("openai_key", ["sk-"], rf"sk-[A-Za-z0-9]{{32,}}{_END}"),
    _f("aws_access_key_id", _AWS, rf"[A-Z]{{4}}[A-Z0-9]{{16}}{_END}"),
    _f("github_token", ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], rf"gh[pousr]_[A-Za-z0-9]{{36,255}}{_END}"),
    _f("github_token", ["github_pat_"], r"github_pat_[A-Za-z0-9_]{22,255}"),
    _f("gitlab_token", _GITLAB, r"gl[a-z]{2,6}-[A-Za-z0-9_-]{20,}"),
    _f("grafana_token", ["glc_"], r"glc_[A-Za-z0-9+/]{32,}={0,2}"),
    _f("grafana_token", ["glsa_"], r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"),
    _f("slack_token", ["xoxa", "xoxb", "xoxp", "xoxo", "xoxs", "xoxr", "xoxe"], r"xox[abposre][.-][A-Za-z0-9.-]{10,}"),
    _f("slack_token", ["xapp-"], r"xapp-[0-9]-[A-Za-z0-9-]{20,}"),
    _f("slack_webhook", ["https://hooks.slack.com/"], r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+"),
    _f("discord_webhook", _DISCORD, r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_-]+"),
    _f("telegram_bot_token", [":AA"], rf":AA[0-9A-Za-z_-]{{33}}{_END}", r"(?:(?<![0-9A-Za-z])|(?<=bot))[0-9]{8,10}$"),
    _f("google_api_key", ["AIza"], r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    _f("google_oauth_token", ["ya29."], r"ya29\.[0-9A-Za-z_-]{20,}"),
    _f("google_refresh_token", ["1//0"], r"1//0[0-9A-Za-z_-]{30,}"),
    _f("google_client_secret", ["GOCSPX-"], r"GOCSPX-[A-Za-z0-9_-]{28}"),
    _f("stripe_key", ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_"], rf"[srp]k_(?:live|test)_[0-9a-zA-Z]{{10,}}{_END}"),
    _f("stripe_webhook_secret", ["whsec_"], r"whsec_[0-9a-zA-Z+/=]{20,}"),
    _f("npm_token", ["npm_"], rf"npm_[A-Za-z0-9]{{36}}{_END}"),
    _f("pypi_token", ["pypi-AgE"], r"pypi-AgE[A-Za-z0-9_-]{50,}"),
    _f("rubygems_token", ["rubygems_"], rf"rubygems_[a-f0-9]{{48}}{_END}"),
    _f("docker_hub_token", ["dckr_pat_"], r"dckr_pat_[A-Za-z0-9_-]{27,}"),
    _f("huggingface_token", ["hf_"], rf"hf_[A-Za-z0-9]{{30,}}{_END}"),
    _f("sendgrid_key", ["SG."], r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"),
    _f("twilio_key", ["SK"], rf"SK[0-9a-fA-F]{{32}}{_END}"),
    _f("mailgun_key", ["key-"], rf"key-[0-9a-f]{{32}}{_END}"),
    _f("jwt", ["eyJ"], r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    _f("digitalocean_token", ["dop_v1_", "doo_v1_", "dor_v1_"], rf"do[opr]_v1_[a-f0-9]{{64}}{_END}"),
    _f("shopify_token", ["shpat_", "shpss_", "shpca_", "shppa_"], rf"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{{32}}{_END}"),
    _f("vault_token", ["hvs.", "hvb.", "hvr."], r"hv[sbr]\.[A-Za-z0-9_-]{24,}"),
    _f("databricks_token", ["dapi"], rf"dapi[a-f0-9]{{32}}(?:-[0-9])?{_END}"),
    _f("groq_key", ["gsk_"], rf"gsk_[A-Za-z0-9]{{48,}}{_END}"),
    _f("xai_key", ["xai-"], rf"xai-[A-Za-z0-9]{{60,}}{_END}"),
    _f("replicate_token", ["r8_"], rf"r8_[A-Za-z0-9]{{37}}{_END}"),
    _f("perplexity_key", ["pplx-"], rf"pplx-[A-Za-z0-9]{{40,}}{_END}"),
    _f("nvidia_key", ["nvapi-"], r"nvapi-[A-Za-z0-9_-]{60,}"),
    _f("linear_key", ["lin_api_"], rf"lin_api_[A-Za-z0-9]{{40}}{_END}"),
    _f("sentry_token", ["sntrys_"], r"sntrys_[A-Za-z0-9+/=_-]{40,}"),
    _f("sentry_token", ["sntryu_"], rf"sntryu_[a-f0-9]{{64}}{_END}"),
    _f("postman_key", ["PMAK-"], r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}"),
    _f("age_secret_key", ["AGE-SECRET-KEY-1"], r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
    _f("newrelic_key", ["NRAK-"], rf"NRAK-[A-Z0-9]{{27}}{_END}"),
    _f("atlassian_token", ["ATATT"], r"ATATT[A-Za-z0-9_=-]{50,}"),
    _f("bitbucket_app_password", ["ATBB"], rf"ATBB[A-Za-z0-9]{{32}}{_END}"),
    _f("pulumi_token", ["pul-"], rf"pul-[a-f0-9]{{40}}{_END}"),
    _f("terraform_token", [".atlasv1."], r"\.atlasv1\.[A-Za-z0-9_=-]{60,}", r"(?<![A-Za-z0-9])[A-Za-z0-9]{14}$"),
    _f("doppler_token", ["dp.pt.", "dp.st.", "dp.ct.", "dp.sa.", "dp.scim.", "dp.audit."], r"dp\.[a-z]{2,5}\.[A-Za-z0-9]{40,}"),
    _f("square_token", ["sq0atp-", "sq0csp-"], r"sq0(?:atp|csp)-[0-9A-Za-z_-]{22,}"),
    _f("tailscale_key", ["tskey-"], r"tskey-[a-z]+-[A-Za-z0-9]+-[A-Za-z0-9]+"),
    _f("notion_token", ["ntn_"], rf"ntn_[0-9]{{11}}[A-Za-z0-9]{{35}}{_END}"),
    _f("notion_token", ["secret_"], rf"secret_[A-Za-z0-9]{{43}}{_END}"),
    _f("flyio_token", ["FlyV1 fm"], r"FlyV1 fm[0-9]_[A-Za-z0-9+/=_,-]{50,}"),
)  # fmt: skip

_RULES_BY_PREFIX: dict[str, list[_Format]] = {}
for _rule in FORMAT_RULES:
    for _p in _rule.prefixes:
        _RULES_BY_PREFIX.setdefault(_p, []).append(_rule)
for _p in ("Bearer ", "bearer ", "BEARER ", "Basic ", "basic ", "BASIC "):
    _RULES_BY_PREFIX[_p] = []
_PREFIX_RE = re.compile(_trie_pattern(_RULES_BY_PREFIX))
_BEARER_VALUE_RE = re.compile(r"[ \t]*([A-Za-z0-9._~+/=-]{8,})")
_BASIC_VALUE_RE = re.compile(r"[ \t]*([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])")
_PRINTABLE_RE = re.compile(r"^[\x20-\x7e]+$")
_LETTERS_RE = re.compile(r"^[A-Za-z]+$")


def _is_alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def _scheme_span(text: str, at: int, prefix: str) -> Span | None:
    if at > 0 and _is_alnum(text[at - 1]):
        return None
    basic = prefix.lower().startswith("basic")
    m = (_BASIC_VALUE_RE if basic else _BEARER_VALUE_RE).match(text, at + len(prefix))
    if not m:
        return None
    value = m.group(1)
    start = m.start(1)
    if basic:
        # Basic credentials are base64 of `user:password`
        try:
            decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=False).decode("latin1")
        except (binascii.Error, ValueError):
            return None
        if ":" not in decoded or not _PRINTABLE_RE.match(decoded):
            return None
        return Span(start, start + len(value), "basic_auth")
    if _LETTERS_RE.match(value):
        return None  # `Bearer authentication` is prose: a token has a digit or punctuation
    return Span(start, start + len(value), "bearer_token")


def _format_spans(text: str, out: list[Span]) -> None:
    pos = 0
    while True:
        m = _PREFIX_RE.search(text, pos)
        if m is None:
            return
        at, prefix = m.start(), m.group(0)
        pos = at + 1
        rules = _RULES_BY_PREFIX[prefix]
        if not rules:
            span = _scheme_span(text, at, prefix)
            if span is not None:
                out.append(span)
                pos = span.end
            else:
                pos = m.end()
            continue
        for rule in rules:
            start = at
            if rule.back is not None:
                b = rule.back.search(text[max(0, at - 16) : at])
                if b is None:
                    continue
                start = at - len(b.group(0))
            elif at > 0 and _is_alnum(text[at - 1]) and _is_alnum(prefix[0]):
                continue
            r = rule.pattern.match(text, at)
            if r is None:
                continue
            out.append(Span(start, r.end(), rule.kind))
            pos = r.end()
            break
        else:
            pos = m.end()


# ---------------------------------------------------------------------------------- PEM, data URLs, URLs


def _bounded_find(text: str, needle: str, start: int, end: int) -> int:
    return text.find(needle, start, max(start, end))


def _pem_spans(text: str, out: list[Span], exclude: list[tuple[int, int]]) -> None:
    pos = 0
    while True:
        at = text.find("-----BEGIN ", pos)
        if at < 0:
            break
        label_end = _bounded_find(text, "-----", at + 11, at + 91)
        if label_end < 0:
            pos = at + 11
            continue
        label = text[at + 11 : label_end]
        end_at = text.find("-----END ", label_end + 5)
        end = len(text)
        if end_at >= 0:
            close = text.find("-----", end_at + 9)
            end = close + 5 if close >= 0 and close - end_at < 90 else end_at + 9
        if "PRIVATE KEY" in label:
            out.append(Span(at, end, "private_key"))
        exclude.append((at, end))
        pos = end
    # PuTTY .ppk files: the private part follows `Private-Lines: N`
    ppk = text.find("Private-Lines:")
    if ppk >= 0:
        start = text.find("\n", ppk)
        if start >= 0:
            mac = text.find("Private-MAC:", start)
            end = mac if mac >= 0 else len(text)
            out.append(Span(start + 1, end, "private_key"))
            exclude.append((start + 1, end))


def _data_url_ranges(text: str, exclude: list[tuple[int, int]]) -> None:
    pos = 0
    while True:
        at = text.find(";base64,", pos)
        if at < 0:
            return
        end = at + 8
        while end < len(text) and (_is_alnum(text[end]) or text[end] in "+/=%"):
            end += 1
        exclude.append((at, end))
        pos = end


def _is_url_end(c: str) -> bool:
    return ord(c) <= 32 or c in "\"'<>`"


_URL_SCHEME_CHAR = re.compile(r"[A-Za-z0-9+.-]")


def _url_spans(text: str, out: list[Span]) -> None:
    pos = 0
    while True:
        at = text.find("://", pos)
        if at < 0:
            return
        pos = at + 3
        if at == 0 or not _URL_SCHEME_CHAR.match(text[at - 1]):
            continue
        start = at + 3
        end = start
        while end < len(text) and end - start < 2048 and not _is_url_end(text[end]):
            end += 1
        first_at = _bounded_find(text, "@", start, end)
        if first_at < 0:
            pos = end
            continue
        slash = _bounded_find(text, "/", first_at, end)
        if slash < 0:
            slash = end
        at_sign = text.rfind("@", 0, slash)
        userinfo = text[start:at_sign]
        if "/" in userinfo:
            continue
        colon = userinfo.find(":")
        if colon >= 0:
            pw = userinfo[colon + 1 :]
            if pw and not is_placeholder(pw) and not pw.startswith("[REDACTED"):
                out.append(Span(start + colon + 1, at_sign, "url_password"))
        elif is_high_entropy_secret(userinfo, "", True):
            # https://<token>@github.com/… (the user info is a credential's place: hex and UUIDs too)
            out.append(Span(start, at_sign, "url_token"))
        pos = slash


# ---------------------------------------------------------------------------------- context rules

_PLACEHOLDER_RE = re.compile(
    r"^(?:\$\{\{[^}]*\}\}|\$\{[A-Za-z_][A-Za-z0-9_.]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\$\([^)]*\)|\{\{[^}]*\}\}"
    r"|\{[A-Za-z_][A-Za-z0-9_.]*\}|#\{[^}]*\}|<[^<>\n]{1,64}>|%[A-Za-z_][A-Za-z0-9_]*%|%[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]"
    r"|%\([A-Za-z_]+\)[a-z]|\{\d*\}|\*{3,}|x{3,}|X{3,}|\.\.\.|…|\[REDACTED[^\]]*\]"
    r"|(?:process\.env|os\.environ|import\.meta\.env|ENV|env)[.\[][^\s]*|os\.getenv\(.*)$"
)
_CODE_VALUE_RE = re.compile(
    r"^(?:[A-Za-z_$][\w$]*(?:\??\.[A-Za-z_$][\w$]*)+(?:[;,)}\]|&?:+]|$)|[A-Za-z_$][\w$.]*\s*\(|[A-Za-z_$][\w$]*[;,)}\]]"
    r"|Option<|Optional\[|(?:await|new|typeof|function|async|lambda|yield|this|self|None|null|nil|undefined|true|false"
    r"|True|False|yes|no|on|off|string|str|number|int|integer|bool|boolean|bytes|String|SecretStr|SecretString|any"
    r"|unknown|object|required|optional)(?![\w$-]))",
    re.ASCII,
)
_VERSION_RE = re.compile(r"^[\^~>=<v]*\d+(?:\.\d+){1,3}(?:[-+][\w.]+)?[,;]?$", re.ASCII)
_JSON_SCALAR_RE = re.compile(r"^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)$")
_STEM_RE = re.compile(
    _trie_pattern(
        [
            "pass",
            "pw",
            "secret",
            "token",
            "key",
            "auth",
            "cred",
            "cookie",
            "sig",
            "bearer",
            "dockerc",
            "mysql",
            "mariadb",
            "login",
            "twine",
            "mongo",
            "redis",
            "ldap",
            "sqlcmd",
            "smbclient",
            "curl",
            "wget",
            "http",
        ]
    )
)
_AUTH_SCHEME_RE = re.compile(
    r"^(Bearer|Basic|Token|Digest|Negotiate|NTLM|SSWS|Bot|ApiKey|Api-Key|Key|AWS4-HMAC-SHA256|GenieKey|Splunk)[ \t]+",
    re.IGNORECASE,
)
_LINE_START_PREFIX_RE = re.compile(r"^[ \t]*(?:#[ \t]*|[<>*][ \t]+)?(?:export[ \t]+|set[ \t]+|-[ \t]+|\$env:)?[\"']?$")
_NAME_BEFORE_RE = re.compile(r"name\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?$", re.IGNORECASE)
_VALUE_AFTER_RE = re.compile(
    r"\\?[\"']?[ \t]*,?[ \t]*(?:\r?\n[ \t]*(?:-[ \t]*)?)?\\?[\"']?value\\?[\"']?[ \t]*[:=][ \t]*"
)
_PAIR_AFTER_SEMI_RE = re.compile(r"^;\s*[A-Za-z][A-Za-z0-9 _.-]{0,40}=")
_WORD_ONLY_RE = re.compile(r"^[A-Za-z]+[,.;]?$")
_HEADER_CASE_RE = re.compile(r"[-A-Z]")
_NETRC_LOGIN_RE = re.compile(r"(?:^|\s)login\s+\S+\s+$")
_BLANK_RE = re.compile(r"^\s*$")
_MACHINE_RE = re.compile(r"\b(?:machine|login)\s+\S")
_SEMVER_IN_RE = re.compile(r"\d+\.\d+\.\d+")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_QUOTES = "\"'`"
_NL = "\n\r"


def is_placeholder(value: str) -> bool:
    """Placeholders and references are not secrets: ``${VAR}``, ``$VAR``, ``<token>``, ``{{ secrets.X }}``…"""
    return _PLACEHOLDER_RE.match(value) is not None


def _ch(text: str, i: int) -> str:
    return text[i] if 0 <= i < len(text) else ""


def _is_space(c: str) -> bool:
    return c in (" ", "\t")


def _is_quote(c: str) -> bool:
    return c != "" and c in _QUOTES


def _line_start(text: str, i: int, max_back: int = 256) -> int:
    """Start of the line holding index i, looking back at most `max_back` characters."""
    limit = max(0, i - max_back)
    j = max(text.rfind("\n", limit, i), text.rfind("\r", limit, i))
    return j + 1 if j >= 0 else limit


def _line_end(text: str, i: int, max_len: int = 4096) -> int:
    limit = min(len(text), i + max_len)
    ends = [j for j in (text.find("\n", i, limit), text.find("\r", i, limit)) if j >= 0]
    return min(ends) if ends else limit


def _closing_quote(text: str, start: int, quote: str, escaped: bool) -> int:
    limit = min(len(text), start + 8192)
    i = start
    while i < limit:
        c = text[i]
        if c in _NL:
            return -1
        if c == "\\":
            if escaped and _ch(text, i + 1) == quote:
                return i
            i += 2
            continue
        if not escaped and c == quote:
            return i
        i += 1
    return -1


@dataclass
class _Value:
    start: int
    end: int
    quoted: bool


def _quoted_value(text: str, p: int) -> _Value | None:
    c = _ch(text, p)
    escaped = False
    open_at = p
    if c == "\\" and _is_quote(_ch(text, p + 1)):
        escaped = True
        open_at = p + 1
        c = text[open_at]
    if not _is_quote(c):
        return None
    start = open_at + 1
    close = _closing_quote(text, start, c, escaped)
    return _Value(start, _line_end(text, start) if close < 0 else close, True)


def _bare_value(text: str, p: int, stop: str, quote: str, pairs: bool = True) -> _Value:
    limit = min(len(text), p + 4096)
    end = p
    while end < limit:
        c = text[end]
        if c in _NL:
            break
        if stop == "quote" and (c == quote or (c == "\\" and _ch(text, end + 1) == quote)):
            break
        if stop == "ws" and (_is_space(c) or _is_quote(c)):
            break
        if stop == "query" and (_is_space(c) or _is_quote(c) or c in "&#<>"):
            break
        end += 1
    if pairs:
        semi = text.find(";", p, end)
        if semi >= 0 and _PAIR_AFTER_SEMI_RE.match(text[semi : semi + 48]):
            end = semi  # connection strings: `Password=x;Other=y`
    while end > p and _is_space(text[end - 1]):
        end -= 1
    return _Value(p, end, False)


_COMMANDS: dict[str, str] = {}
for _n in ("mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mysqlcheck", "mysqlsh", "mysqlbinlog",
           "mariadb", "mariadb-dump", "mariadb-admin", "mariadbdump", "mariadbadmin"):  # fmt: skip
    _COMMANDS[_n] = "mysql"
for _n in (
    "twine",
    "mongo",
    "mongosh",
    "mongodump",
    "mongorestore",
    "mongoexport",
    "mongoimport",
    "mongostat",
    "mongotop",
):
    _COMMANDS[_n] = "dashp"
for _n in (
    "ldapsearch",
    "ldapmodify",
    "ldapadd",
    "ldapdelete",
    "ldapwhoami",
    "ldappasswd",
    "ldapcompare",
    "ldapmodrdn",
):
    _COMMANDS[_n] = "ldap"
_COMMANDS.update({"sshpass": "sshpass", "login": "login", "redis-cli": "redis", "sqlcmd": "sqlcmd",
                  "smbclient": "smb", "curl": "curl", "wget": "curl", "http": "httpie", "https": "httpie"})  # fmt: skip
_ARG = r"(?:'([^'\n]*)'|\"([^\"\n]*)\"|([^\s'\"]+))"
_COMMAND_RES: dict[str, re.Pattern[str]] = {
    "mysql": re.compile(rf"(?:^|\s)-p{_ARG}"),
    "sshpass": re.compile(rf"(?:^|\s)-p[ \t]*{_ARG}"),
    "login": re.compile(rf"(?:^|\s)-p[ \t]*{_ARG}"),
    "dashp": re.compile(rf"(?:^|\s)-p[ \t]*{_ARG}"),
    "redis": re.compile(rf"(?:^|\s)(?:-a|--pass|--askpass)[ \t]+{_ARG}"),
    "ldap": re.compile(rf"(?:^|\s)-w[ \t]*{_ARG}"),
    "sqlcmd": re.compile(rf"(?:^|\s)-P[ \t]*{_ARG}"),
    "smb": re.compile(r"(?:^|\s)-U[ \t]*[\"']?[^\s%'\"]*%([^\s'\"]+)"),
    "curl": re.compile(r"(?:^|\s)(?:-u|--user|--proxy-user|-U)(?:=|[ \t]+)[\"']?[^\s:'\"]*:([^\s'\"]+)"),
    "httpie": re.compile(r"(?:^|\s)(?:-a|--auth)(?:=|[ \t]+)[\"']?[^\s:'\"]*:([^\s'\"]+)"),
}
_LOGIN_TOOLS_RE = re.compile(r"\b(?:docker|podman|nerdctl|buildah|skopeo|helm|oras|az|crane|cf|oc|regctl|finch)\b")
_WINDOW = 80
# A YAML block scalar indicator alone after ``key:`` (``|``, ``>-``, ``|+2``, ``> # comment``).
_BLOCK_SCALAR_RE = re.compile(r"^[|>][-+]?[1-9]?[-+]?(?:[ \t]+#.*)?$")
_VALUE_SEPARATORS = frozenset(" \t:=>\"'`(-")
_FILLER_RE = re.compile(r"(?:is|was)[ \t]", re.IGNORECASE)


def _path_at(text: str, p: int) -> bool:
    """True when a file system path starts at p (``/x``, ``~/x``, ``./x``, ``C:\\x``, ``\\\\host``)."""
    c = _ch(text, p)
    if c != "" and c in "/~.\\":
        return True
    return c.isascii() and c.isalpha() and _ch(text, p + 1) == ":" and _ch(text, p + 2) in ("\\", "/")


def _skip_value_separators(text: str, start: int, limit: int) -> int:
    p = start
    while p < limit and text[p] in _VALUE_SEPARATORS:
        p += 1
    return p


def _value_start(text: str, start: int, limit: int) -> int:
    """Where a keyword's value starts: after spaces, ``:=>"'`(-`` and one ``is``/``was``."""
    p = _skip_value_separators(text, start, limit)
    if p > start and _FILLER_RE.match(text, p):
        return _skip_value_separators(text, p + 3, limit)
    return p


class _Scanner:
    """One pass of the context rules over one text (the state of the TS module's scan)."""

    def __init__(self, text: str, lower: str, exclude: list[tuple[int, int]], out: list[Span]) -> None:
        self.text = text
        self.lower = lower
        self.exclude = exclude
        self.out = out
        self.entropy_scanned = 0
        self.nl_from = -1
        self.nl_at = -1
        # per command kind, how far its flags were already scanned (a later occurrence of the
        # same command on that stretch finds nothing new): keeps command-dense text linear
        self.cmd_scanned: dict[str, int] = {}

    def scan(self) -> None:
        text = self.text
        r = 0
        pos = 0
        while True:
            m = _STEM_RE.search(self.lower, pos)
            if m is None:
                return
            i = m.end() - 1  # the stem lies inside the word: the word is found from its last character
            while r < len(self.exclude) and self.exclude[r][1] <= i:
                r += 1
            if r < len(self.exclude) and self.exclude[r][0] <= i:
                pos = self.exclude[r][1]
                continue
            ws = i
            while ws > 0 and i - ws < 128 and text[ws - 1] in _WORD_CHARS:
                ws -= 1
            we = i + 1
            while we < len(text) and we - i < 128 and text[we] in _WORD_CHARS:
                we += 1
            before = len(self.out)
            self.handle_word(ws, we)
            # words inside a value just found are part of it: go on after it (keeps this linear)
            pos = max([we, *(sp.end for sp in self.out[before:] if sp.kind != "high_entropy")])

    def handle_word(self, ws: int, we: int) -> None:
        text = self.text
        s = ws
        dashes = 0
        while s < we and text[s] == "-":
            s += 1
            dashes += 1
        while s < we and text[s] == ".":
            s += 1
        e = we
        while e > s and text[e - 1] in ".-":
            e -= 1
        if e <= s:
            return
        if ws >= 10 and text.startswith("[REDACTED:", ws - 10):
            return
        word = text[s:e]
        lw = word.lower()
        cmd = _COMMANDS.get(lw)
        if cmd is not None:
            # ``http``/``https`` are HTTPie only as a command word (``http -a u:pw …``), not in a URL
            if cmd != "httpie" or _is_space(_ch(text, we)):
                self.command_spans(ws, we, cmd)
            return
        if dashes > 0:
            if is_sensitive_key(word) or (lw.endswith("pass") and lw != "bypass") or lw in ("passin", "passout"):
                self.flag_value(we, lw)
            return
        if self.embedded_in_random(ws, we):
            return
        sensitive = is_sensitive_key(word)
        open_quote = text[ws - 1] if ws > 0 and _is_quote(text[ws - 1]) else ""
        q = we
        closed_quote = False
        if open_quote:
            if _ch(text, q) == open_quote:
                q += 1
                closed_quote = True
            elif _ch(text, q) == "\\" and _ch(text, q + 1) == open_quote:
                q += 2
                closed_quote = True
            if closed_quote and _ch(text, q) == "]":
                q += 1
        k = q
        while k < len(text) and k - q < 16 and _is_space(text[k]):
            k += 1
        sep = ""
        c0, c1 = _ch(text, k), _ch(text, k + 1)
        if c0 == ":":
            if c1 == "=":
                sep = ":="
            elif c1 != ":":
                sep = ":"
        elif c0 == "=":
            if c1 == ">":
                sep = "=>"
            elif c1 not in ("=", "~"):
                sep = "="
        # ``pwd``, ``pass``, ``pw`` alone: a quoted value, or ``=`` and a value that is not a path
        # (``Uid=sa;PWD=x;``, ``user=u pass=x``, but not ``PWD=/home/dev`` in ``env`` output)
        pass_like = (
            not sensitive
            and sep != ""
            and lw in _PASSWORD_LAST_WORDS
            and (self.quoted_at(k + len(sep)) or (sep == "=" and not _path_at(text, k + 1)))
        )
        if sep and (sensitive or pass_like):
            span = self.key_value(ws, open_quote, closed_quote, k + len(sep), sep, lw)
            if span is not None:
                self.out.append(span)
                return
            # no value on the line (``Your secret:`` then the value on the next one): the entropy rule
        if sensitive and not sep:
            span = self.name_value(ws, we) or self.netrc(ws, we, lw)
            if span is None and closed_quote and _ch(text, k) == "," and self.quoted_at(k + 1):
                span = self.key_value(ws, open_quote, closed_quote, k + 1, ",", lw)
                if span is not None:
                    span.kind = "secret_field"
            if span is not None:
                self.out.append(span)
                return
        if _triggers_entropy(word):
            self.entropy_window(we, _secret_keyword(text, s, word))

    def quoted_at(self, p: int) -> bool:
        text = self.text
        v = p
        while v < len(text) and v - p < 16 and _is_space(text[v]):
            v += 1
        c = _ch(text, v)
        return _is_quote(c) or (c == "\\" and _is_quote(_ch(text, v + 1)))

    def embedded_in_random(self, ws: int, we: int) -> bool:
        text = self.text
        a = ws
        while a > 0 and ws - a < 256 and text[a - 1] in _B64_CHARS:
            a -= 1
        b = we
        while b < len(text) and b - we < 256 and text[b] in _B64_CHARS:
            b += 1
        x = ws
        while x < we and text[x] in _B64_CHARS:
            x += 1
        if x < we:
            return False
        return b - a >= 24 and looks_random(text[a:b])

    def is_line_start_key(self, key_start: int) -> bool:
        ls = _line_start(self.text, key_start, 24)
        if ls > 0 and key_start - ls >= 24:
            return False
        return _LINE_START_PREFIX_RE.match(self.text[ls:key_start]) is not None

    def key_value(
        self, key_start: int, open_quote: str, closed_quote: bool, after_sep: int, sep: str, lw: str
    ) -> Span | None:
        text = self.text
        v = after_sep
        while v < len(text) and v - after_sep < 16 and _is_space(text[v]):
            v += 1
        if v >= len(text):
            return None
        c = text[v]
        if c in _NL:
            return None
        if open_quote and not closed_quote and (c == open_quote or (c == "\\" and _ch(text, v + 1) == open_quote)):
            return None
        value = _quoted_value(text, v)
        line_start = self.is_line_start_key(key_start - (1 if open_quote else 0))
        before = _ch(text, key_start - (2 if open_quote else 1))
        kind = "secret_field"
        if value is None:
            if sep in ("=>", ":="):
                return None
            stop = "eol"
            if before in ("?", "&"):
                stop = "query"
            elif open_quote and not closed_quote:
                stop = "quote"
            elif not line_start:
                stop = "ws"
            value = _bare_value(text, v, stop, open_quote, sep == "=")
            if stop == "query":
                kind = "url_param"
            elif before == ";" or _ch(text, value.end) == ";":
                kind = "connection_string"
            elif (
                sep == ":"
                and not closed_quote
                and line_start
                and _HEADER_CASE_RE.search(text[key_start : key_start + 1] + lw)
            ):
                kind = "http_header"
            elif line_start:
                kind = "env_secret"
            else:
                kind = "secret_value"
        start, end = value.start, value.end
        if end <= start:
            return None
        raw = text[start:end]
        if lw.endswith("authorization"):
            scheme = _AUTH_SCHEME_RE.match(raw)
            if scheme:
                start += len(scheme.group(0))
                name = scheme.group(1).lower()
                kind = (
                    "bearer_token"
                    if name in ("bearer", "token")
                    else "basic_auth"
                    if name == "basic"
                    else "authorization"
                )
                raw = raw[len(scheme.group(0)) :]
                if not raw:
                    return None
        if re.sub(r"[^a-z]", "", lw).endswith("awssecretaccesskey"):
            kind = "aws_secret_access_key"
        if not value.quoted and sep == ":" and _BLOCK_SCALAR_RE.match(raw):
            return self.block_scalar(key_start, end, kind)
        if is_placeholder(raw):
            return None
        if not value.quoted:
            first = raw[0]
            if first in "{[|>&*=(":
                return None
            if len(raw) < 3 or _CODE_VALUE_RE.match(raw) or _VERSION_RE.match(raw):
                return None
            if sep == ":" and not line_start and not open_quote and _WORD_ONLY_RE.match(raw):
                return None
            if closed_quote and _JSON_SCALAR_RE.match(raw.removesuffix(",")):
                return None
        return Span(start, end, kind)

    def block_scalar(self, key_start: int, indicator_end: int, kind: str) -> Span | None:
        """The lines of a YAML block scalar (``api_key: >-`` then more-indented lines): the value."""
        text = self.text
        ls = _line_start(text, key_start)
        indent = 0
        while ls + indent < key_start and text[ls + indent] in " -":
            indent += 1
        p = _line_end(text, indicator_end)
        start = end = -1
        limit = min(len(text), p + 16384)
        while p < limit:
            p += 2 if text[p] == "\r" and _ch(text, p + 1) == "\n" else 1
            if p >= len(text):
                break
            q = p
            while q < len(text) and text[q] == " ":
                q += 1
            line_end = _line_end(text, q)
            if q == line_end:
                p = line_end  # blank lines belong to the block
                continue
            if q - p <= indent:
                break
            if start < 0:
                start = q
            end = line_end
            p = line_end
        while end > start and _is_space(text[end - 1]):
            end -= 1
        if start < 0 or end <= start or is_placeholder(text[start:end]):
            return None
        return Span(start, end, kind)

    def name_value(self, ws: int, we: int) -> Span | None:
        text = self.text
        if not _NAME_BEFORE_RE.search(text[max(0, ws - 24) : ws]):
            return None
        m = _VALUE_AFTER_RE.match(text, we)
        if m is None:
            return None
        v = m.end()
        value = _quoted_value(text, v) or _bare_value(text, v, "eol", "")
        raw = text[value.start : value.end]
        if value.end <= value.start or is_placeholder(raw):
            return None
        return Span(value.start, value.end, "secret_value")

    def netrc(self, ws: int, we: int, lw: str) -> Span | None:
        text = self.text
        if lw != "password" or not _is_space(_ch(text, we)):
            return None
        ls = _line_start(text, ws)
        before = text[ls:ws]
        if not _NETRC_LOGIN_RE.search(before) and not _BLANK_RE.match(before):
            return None
        v = we
        while v < len(text) and _is_space(text[v]):
            v += 1
        value = _bare_value(text, v, "ws", "")
        if value.end <= value.start:
            return None
        if _BLANK_RE.match(before):
            if _line_end(text, value.end) != value.end:
                return None
            if not _MACHINE_RE.search(text[max(0, ls - 512) : ls]):
                return None
        if is_placeholder(text[value.start : value.end]):
            return None
        return Span(value.start, value.end, "netrc_password")

    def flag_value(self, we: int, lw: str) -> None:
        text = self.text
        p = we
        c = _ch(text, p)
        if c == "=":
            p += 1
        elif _is_space(c):
            while p < len(text) and p - we < 16 and _is_space(text[p]):
                p += 1
        else:
            return
        if p >= len(text) or text[p] == "-":
            return
        value = _quoted_value(text, p) or _bare_value(text, p, "ws", "")
        start = value.start
        if lw in ("passin", "passout", "pass"):
            if text.startswith("pass:", start):
                start += 5
            elif lw != "pass":
                return
        if value.end <= start or is_placeholder(text[start : value.end]):
            return
        self.out.append(Span(start, value.end, "cli_password"))

    def command_spans(self, ws: int, we: int, cmd: str) -> None:
        text = self.text
        if cmd == "login" and not _LOGIN_TOOLS_RE.search(text[_line_start(text, ws) : ws]):
            return
        end = _line_end(text, we, 2048)
        if we < self.cmd_scanned.get(cmd, -1):
            return
        self.cmd_scanned[cmd] = end
        segment = text[we:end]
        for m in _COMMAND_RES[cmd].finditer(segment):
            g = next((i for i in range(1, (m.lastindex or 0) + 1) if m.group(i) is not None), None)
            if g is None:
                continue
            secret = m.group(g)
            if not secret or is_placeholder(secret):
                continue
            start = we + m.start(g)
            self.out.append(Span(start, start + len(secret), "cli_password"))

    def next_line_end(self, start: int) -> int:
        if self.nl_from >= 0 and self.nl_from <= start <= self.nl_at:
            return self.nl_at
        j = _line_end(self.text, start, len(self.text))
        self.nl_from, self.nl_at = start, j
        return j

    def entropy_window(self, we: int, secret_key: bool) -> None:
        """Random-looking tokens within _WINDOW characters after a keyword (same line, or the next
        when the keyword ends its line). With ``secret_key`` the token right after the keyword is
        its value: the UUID / hash allowlist does not apply to it."""
        text = self.text
        start = we
        line_end = min(self.next_line_end(start), start + _WINDOW + 1)
        segment = text[start:line_end]
        only_punct = all(_is_space(c) or c in ":=>-" or _is_quote(c) for c in segment)
        ends_colon = segment.rstrip(" \t").endswith(":")
        if (only_punct or ends_colon) and line_end < len(text) and line_end - start <= _WINDOW:
            start = line_end + (2 if text[line_end] == "\r" and _ch(text, line_end + 1) == "\n" else 1)
            line_end = min(self.next_line_end(start), start + _WINDOW)
        limit = min(line_end, start + _WINDOW)
        value_at = _value_start(text, start, limit) if secret_key else -1
        # a nearby keyword's window may have passed the value already (``auth token <hex>``): look again
        if 0 <= value_at < min(self.entropy_scanned, limit) and is_token_char(text[value_at]):
            self.entropy_token(value_at, value_at)
        i = max(start, self.entropy_scanned)
        while i < limit:
            if not is_token_char(text[i]):
                i += 1
                continue
            i = self.entropy_token(i, value_at)
        self.entropy_scanned = max(self.entropy_scanned, i)

    def entropy_token(self, i: int, value_at: int) -> int:
        """Looks at the token run starting at i (a keyword's value when it starts at value_at)."""
        text = self.text
        j = i
        while j < len(text) and j - i < 1024 and is_token_char(text[j]):
            j += 1
        ts = i
        pad = j
        while pad > i and text[pad - 1] == "=":
            pad -= 1
        eq = text.rfind("=", i, pad)
        if eq >= 0:
            ts = eq + 1
        while ts < j and text[ts] in "=:._~-":
            ts += 1
        te = j
        while te > ts and text[te - 1] == ".":
            te -= 1
        if te - ts < MIN_TOKEN_LENGTH:
            return j
        token = text[ts:te]
        if token[0] in "/~" or _SEMVER_IN_RE.search(token):
            return j
        is_value = ts == value_at
        rs = i
        while rs > 0 and i - rs < 256 and is_token_char(text[rs - 1]):
            rs -= 1
        before = text[max(0, ts - 48) : ts]
        run_allowed = rs < i and allowlisted(text[rs:te], text[max(0, rs - 48) : rs], is_value)
        if not run_allowed and is_high_entropy_secret(token, before, is_value):
            self.out.append(Span(ts, te, "high_entropy"))
        return j


# ---------------------------------------------------------------------------------- the redactor

_UPPER_RUN = re.compile(r"[A-Z]+")


class Redactor:
    """Applies the built-in detectors (when enabled) and extra patterns to free text. An extra
    pattern with a group named ``secret`` redacts only that group."""

    def __init__(self, enabled: bool, extra: Iterable[re.Pattern[str] | str] = ()) -> None:
        self.builtin = enabled
        self.custom = [p if isinstance(p, re.Pattern) else re.compile(p) for p in extra]

    @property
    def enabled(self) -> bool:
        return self.builtin or bool(self.custom)

    def text(self, value: str) -> str:
        spans: list[Span] = []
        if self.builtin and len(value) >= 8:
            exclude: list[tuple[int, int]] = []
            _format_spans(value, spans)
            _pem_spans(value, spans, exclude)
            _data_url_ranges(value, exclude)
            _url_spans(value, spans)
            lower = value.lower()
            if len(lower) != len(value):  # a few characters change length when lower-cased
                lower = _UPPER_RUN.sub(lambda m: m.group(0).lower(), value)
            exclude.sort()
            _Scanner(value, lower, exclude, spans).scan()
        for pattern in self.custom:
            for m in pattern.finditer(value):
                if m.end() == m.start():
                    continue
                if "secret" in pattern.groupindex and m.group("secret") is not None:
                    if m.end("secret") > m.start("secret"):
                        spans.append(Span(m.start("secret"), m.end("secret"), "custom"))
                else:
                    spans.append(Span(m.start(), m.end(), "custom"))
        if not spans:
            return value
        spans.sort(key=lambda s: (s.start, -s.end))
        out: list[str] = []
        pos = 0
        i = 0
        while i < len(spans):
            first = spans[i]
            end = first.end
            i += 1
            while i < len(spans) and spans[i].start < end:  # overlapping findings become one
                end = max(end, spans[i].end)
                i += 1
            out.append(value[pos : first.start])
            out.append(f"[REDACTED:{first.kind}]")
            pos = end
        out.append(value[pos:])
        return "".join(out)
