"""Turning arbitrary tool inputs/outputs into bounded, secret-free JSON data.

- never raises, whatever the value (cycles, properties that raise, bytes, dataclasses, …)
- redacts secrets in every string and withholds values under sensitive keys
- truncates to a byte budget, leaving the same marker as the TypeScript package
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Union

from ._redact import Redactor, is_sensitive_key

JsonValue = Union[None, bool, int, float, str, list["JsonValue"], dict[str, "JsonValue"]]

MAX_DEPTH = 32
MAX_KEYS = 1000
MAX_ARRAY = 10000
WITHHELD = "[REDACTED:sensitive_key]"


def error_message(e: BaseException | object) -> str:
    try:
        return str(e) or type(e).__name__
    except Exception:
        return "unknown error"


def dumps(value: object) -> str:
    """Compact JSON as JavaScript's JSON.stringify writes it (UTF-8, no spaces)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def byte_length(s: str) -> int:
    return len(s.encode("utf-8", "surrogatepass"))


def json_bytes(value: JsonValue) -> int:
    return byte_length(dumps(value))


def truncation_marker(omitted: int, total: int) -> str:
    return f"…[truncated: {omitted} of {total} bytes omitted]"


_MARKER_RE = re.compile(r"…\[truncated: (\d+) of (\d+) bytes omitted\]$")


def truncate_string(s: str, max_bytes: int) -> str:
    """Cuts a string to at most max_bytes UTF-8 bytes, marker included. A string cut before keeps
    counting against its original size."""
    data = s.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return s
    total = len(data)
    previous = _MARKER_RE.search(s)
    if previous:
        data = s[: previous.start()].encode("utf-8", "surrogatepass")
        total = int(previous.group(2))
    keep = min(len(data), max(0, max_bytes - byte_length(truncation_marker(total, total))))
    while True:
        while 0 < keep < len(data) and (data[keep] & 0xC0) == 0x80:
            keep -= 1
        cut = data[:keep].decode("utf-8", "ignore")
        kept = byte_length(cut)
        marker = truncation_marker(total - kept, total)
        if kept + byte_length(marker) <= max_bytes or keep == 0:
            return cut + marker
        keep = max(0, keep - 4)


def to_json_safe(value: object, redactor: Redactor, max_string_bytes: int | None = None) -> JsonValue:
    """Converts any value to JSON data, redacting strings. Never raises."""
    # Huge strings are cut before redaction; the margin keeps secrets that straddle the final cut
    # intact for the rules.
    pre_cut = None if max_string_bytes is None else max_string_bytes + 2048
    seen: set[int] = set()

    def text(s: str) -> str:
        if pre_cut is not None and len(s) > pre_cut:
            s = truncate_string(s, pre_cut)
        return redactor.text(s) if redactor.enabled else s

    def pairs(items: Any, depth: int, total: int) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        n = 0
        for k, v in items:
            if n >= MAX_KEYS:
                out["…"] = f"[{total - n} more keys]"
                break
            n += 1
            key = k if isinstance(k, str) else str(walk(k, depth + 1))
            if callable(v) and not isinstance(v, type):
                continue
            if is_sensitive_key(key) and v is not None and not isinstance(v, (bool, int, float)):
                out[key] = WITHHELD
            else:
                out[key] = walk(v, depth + 1)
        return out

    def walk(v: object, depth: int) -> JsonValue:
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, str):
            return text(v)
        if isinstance(v, int):
            return v if abs(v) < 2**53 else str(v)
        if isinstance(v, float):
            return v if math.isfinite(v) else str(v)
        if isinstance(v, (bytes, bytearray, memoryview)):
            return f"[binary {type(v).__name__}: {len(v)} bytes]"
        if isinstance(v, (datetime.datetime, datetime.date)):
            return v.isoformat()
        if depth >= MAX_DEPTH:
            return "[max depth]"
        ident = id(v)
        if ident in seen:
            return "[circular]"
        seen.add(ident)
        try:
            if isinstance(v, BaseException):
                err: dict[str, JsonValue] = {"name": type(v).__name__, "message": text(error_message(v))}
                return err
            if isinstance(v, Mapping):
                return pairs(v.items(), depth, len(v))
            if isinstance(v, (list, tuple, set, frozenset)):
                seq = list(v)
                out = [walk(x, depth + 1) for x in seq[:MAX_ARRAY]]
                if len(seq) > MAX_ARRAY:
                    out.append(f"[{len(seq) - MAX_ARRAY} more items]")
                return out
            if dataclasses.is_dataclass(v) and not isinstance(v, type):
                fields = [(f.name, getattr(v, f.name, None)) for f in dataclasses.fields(v)]
                return pairs(fields, depth, len(fields))
            attrs = getattr(v, "__dict__", None)
            if isinstance(attrs, dict):
                items = [(k, x) for k, x in attrs.items() if not k.startswith("_")]
                return pairs(items, depth, len(items))
            return text(repr(v))
        except Exception as e:
            return f"[unserializable: {error_message(e)}]"
        finally:
            seen.discard(ident)

    return walk(value, 0)


def _collect_strings(v: JsonValue, out: list[tuple[Any, Any, int]], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(v, list):
        for i, item in enumerate(v):
            if isinstance(item, str):
                out.append((v, i, len(item)))
            else:
                _collect_strings(item, out, depth + 1)
    elif isinstance(v, dict):
        for key, item in v.items():
            if isinstance(item, str):
                out.append((v, key, len(item)))
            else:
                _collect_strings(item, out, depth + 1)


def truncate_json(value: JsonValue, max_bytes: int) -> JsonValue:
    """Makes a JSON value serialize to at most max_bytes: the longest strings are cut first, keeping
    the structure; if that is not enough, a preview object replaces the value. Mutates `value`."""
    if isinstance(value, str):
        return truncate_string(value, max_bytes)
    if not isinstance(value, (dict, list)):
        return value
    size = json_bytes(value)
    if size <= max_bytes:
        return value
    original = size
    leaves: list[tuple[Any, Any, int]] = []
    _collect_strings(value, leaves, 0)
    leaves.sort(key=lambda leaf: -leaf[2])
    for parent, key, _ in leaves[:64]:
        if size <= max_bytes:
            break
        current: str = parent[key]
        nbytes = byte_length(current)
        target = max(0, nbytes - (size - max_bytes) - 96)
        if target >= nbytes:
            continue
        cut = truncate_string(current, max(target, 64))
        if len(cut) >= len(current):
            continue
        parent[key] = cut
        size = json_bytes(value)
    if size <= max_bytes:
        return value
    preview = truncate_string(dumps(value), max(0, max_bytes - 160))
    return {"[truncated]": f"value of {original} bytes cut to fit {max_bytes} bytes", "preview": preview}


def sanitize_field(value: object, redactor: Redactor, max_bytes: int) -> JsonValue:
    """Built-in redaction + truncation of one field."""
    return truncate_json(to_json_safe(value, redactor, max_bytes), max_bytes)
