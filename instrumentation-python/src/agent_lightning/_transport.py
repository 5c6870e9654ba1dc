"""HTTP client for the collector (standard library only), retry classification and backoff."""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import random
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from ._sanitize import error_message

OutcomeKind = Literal["ok", "retry", "unauthorized", "rejected"]


@dataclass
class Outcome:
    """ok: 2xx; retry: network error, timeout, 408/425/429/5xx; unauthorized: 401;
    rejected: any other 4xx (not retried)."""

    kind: OutcomeKind
    status: int | None
    body: Any = None
    error: str = ""
    retry_after: float | None = None


def is_retriable_status(status: int) -> bool:
    return status in (408, 425, 429) or 500 <= status <= 599


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Retry-After when given (capped, small jitter), else full-jitter exponential backoff."""
        if retry_after is not None:
            return float(min(retry_after, self.max_retry_after) + random.random() * min(1.0, self.base))
        ceiling = min(self.max_delay, self.base * 2 ** min(30, max(0, attempt - 1)))
        return max(0.001, random.random() * float(ceiling))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    v = value.strip()
    try:
        seconds = float(v)
        return seconds if seconds >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Client:
    """One keep-alive connection, used by one thread at a time (the sender, or a caller of prompt())."""

    def __init__(self, collector_url: str, api_key: str, timeout: float, user_agent: str) -> None:
        parsed = urllib.parse.urlsplit(collector_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"instrument(): collector_url is not an http(s) URL: {collector_url}")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._prefix = parsed.path.rstrip("/")
        self._timeout = timeout
        self._headers = {
            "authorization": f"Bearer {api_key}",
            "accept": "application/json",
            "user-agent": user_agent,
        }
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: bytes | None = None) -> Outcome:
        """Never raises."""
        headers = dict(self._headers)
        if body is not None:
            headers["content-type"] = "application/json"
        url = self._prefix + path
        try:
            for attempt in (0, 1):
                conn = self._connection()
                try:
                    conn.request(method, url, body=body, headers=headers)
                    response = conn.getresponse()
                    text = response.read().decode("utf-8", "replace")
                    break
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    # a kept-alive connection the server closed meanwhile: once more on a fresh one
                    self.close()
                    if attempt == 1:
                        raise
            status = response.status
            if response.getheader("connection", "").lower() == "close":
                self.close()
        except TimeoutError:
            self.close()
            return Outcome("retry", None, error=f"{method} {path}: no answer within {self._timeout:g} s")
        except Exception as e:
            self.close()
            return Outcome("retry", None, error=f"{method} {path}: {type(e).__name__}: {error_message(e)}")
        if 200 <= status < 300:
            parsed: Any = None
            if text:
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = text
            return Outcome("ok", status, body=parsed)
        error = f"{method} {path} -> {status}" + (f": {text[:300]}" if text else "")
        if status == 401:
            return Outcome("unauthorized", 401, error=error)
        if is_retriable_status(status):
            return Outcome(
                "retry", status, error=error, retry_after=parse_retry_after(response.getheader("retry-after"))
            )
        return Outcome("rejected", status, error=error)
