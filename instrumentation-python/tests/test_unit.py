"""Unit tests: hooks, trajectories per prompt, scores, sanitizing, truncation, backoff, the spool."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent_lightning import Lightning, Redactor, merge_hooks
from agent_lightning._instrument import MAX_SCORE_COMMENT_CHARS, cap_score_comment
from agent_lightning._sanitize import to_json_safe, truncate_json, truncate_string
from agent_lightning._spool import Spool, SpoolRecord, default_spool_dir
from agent_lightning._transport import Backoff, is_retriable_status, parse_retry_after

from .sim import call, session


class Recorder:
    """A local HTTP server that records every request and answers from a script of statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.statuses = list(statuses or [])
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                rec.requests.append((self.path, json.loads(raw) if raw else None))
                status = rec.statuses.pop(0) if rec.statuses else 200
                body = b'{"success":true}' if status == 200 else b'{"error":"scripted"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self, part: str) -> list[Any]:
        return [body for path, body in self.requests if part in path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Any:
    r = Recorder()
    yield r
    r.close()


def make(url: str, **extra: Any) -> Lightning:
    return Lightning(
        collector_url=url,
        api_key="k",
        agent_id="unit",
        spool=False,
        handle_process_exit=False,
        flush_interval=0.02,
        retry_base_delay=0.01,
        **extra,
    )


# ------------------------------------------------------------------------------------------- hooks


async def test_hooks_return_empty_at_once_and_never_raise(recorder: Recorder) -> None:
    lightning = make(recorder.url)
    garbage: list[Any] = [
        None,
        42,
        "x",
        [],
        {},
        {"session_id": 5},
        {"tool_use_id": object(), "tool_input": object()},
        {"session_id": "s", "tool_calls": "nope", "tool_name": None, "error": {"a": 1}},
    ]
    for event in lightning.hooks:
        for data in garbage:
            for matcher in lightning.hooks[event]:
                for cb in matcher.hooks:
                    assert await cb(data, None, {"signal": None}) == {}
    await lightning.shutdown(1)
    for event in lightning.hooks:  # after shutdown too
        assert await call(lightning, event, {"session_id": "s", "hook_event_name": event}) == [{}]


async def test_merge_hooks_keeps_both(recorder: Recorder) -> None:
    lightning = make(recorder.url)

    async def mine(input_data: Any, tool_use_id: str | None, context: Any) -> Any:
        return {}

    from claude_agent_sdk import HookMatcher

    merged = merge_hooks(lightning.hooks, {"PreToolUse": [HookMatcher(matcher="Bash", hooks=[mine])]})
    assert len(merged["PreToolUse"]) == 2 and merged["Stop"] == lightning.hooks["Stop"]
    await lightning.shutdown(0)


async def test_each_prompt_is_its_own_trajectory(recorder: Recorder) -> None:
    lightning = make(recorder.url)
    sid = await session(lightning, 2, prompt="first")
    first = lightning.current_trajectory_id()
    await session(lightning, 1, prompt="second", session_id=sid)
    second = lightning.current_trajectory_id()
    # a late step after the last Stop opens a third trajectory, never lands on a completed one
    await call(
        lightning,
        "PreToolUse",
        {
            "session_id": sid,
            "hook_event_name": "PreToolUse",
            "tool_name": "Read",
            "tool_input": {},
            "tool_use_id": "late",
        },
        "late",
    )
    third = lightning.current_trajectory_id()
    assert await lightning.flush(5)
    await lightning.shutdown(2)
    starts = recorder.paths("/start")
    assert [s["prompt"] for s in starts[:2]] == ["first", "second"]
    assert len({first, second, third}) == 3
    assert {s["sessionId"] for s in starts} == {sid}
    completes = {path.split("/")[3]: body for path, body in recorder.requests if path.endswith("/complete")}
    assert completes[str(first)]["status"] == "succeeded" and completes[str(first)]["totalSteps"] == 2
    assert completes[str(third)]["status"] == "interrupted"
    for path, _body in recorder.requests:
        if "/steps/batch" in path:
            tid = path.split("/")[3]
            assert tid in (first, second, third)


async def test_send_at_once_with_batch_size_1_and_flush_interval_0(recorder: Recorder) -> None:
    lightning = Lightning(
        collector_url=recorder.url,
        api_key="k",
        agent_id="unit",
        spool=False,
        handle_process_exit=False,
        batch_size=1,
        flush_interval=0,
    )
    await session(lightning, 1, stop=False)
    deadline = time.monotonic() + 5
    while not recorder.paths("/steps/batch") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.paths("/steps/batch"), "a step is sent without waiting for a timer or a flush"
    await lightning.shutdown(1)


# ------------------------------------------------------------------------------------------- scores


async def test_score_wire_format_and_idempotent_retries() -> None:
    rec = Recorder()
    try:
        lightning = make(rec.url)
        await session(lightning, 1)
        tid = lightning.current_trajectory_id()
        assert await lightning.flush(5)
        rec.statuses = [503, 503]  # the first score is answered 503 twice, then accepted
        score_id = lightning.score("correctness", 0.75, comment="token=ghp_" + "a" * 36, step_number=1)
        other = lightning.score("human:thumbs", True, source="human")
        assert score_id is not None and other is not None and score_id != other
        assert lightning.score("bad name!", 1) is None
        assert lightning.score("n", float("nan")) is None
        assert lightning.score("label", "") is None
        assert await lightning.flush(5)
        await lightning.shutdown(1)
    finally:
        rec.close()
    sent = [(path, body) for path, body in rec.requests if "/scores" in path]
    assert all(path == f"/api/trajectories/{tid}/scores" for path, _ in sent)
    ids = [body["id"] for _, body in sent]
    # the retries repeat the same client id: the server updates, never duplicates
    assert ids == [score_id, score_id, score_id, other]
    body = sent[0][1]
    assert body["name"] == "correctness" and body["value"] == 0.75 and body["source"] == "sdk"
    assert body["stepNumber"] == 1 and "ghp_" not in body["comment"]
    assert sent[-1][1]["value"] is True and sent[-1][1]["source"] == "human"


async def test_score_comment_over_the_collector_limit_is_cut_not_dropped() -> None:
    rec = Recorder()
    try:
        lightning = make(rec.url)
        await session(lightning, 1)
        # 20,000 characters: under max_field_bytes (32 KiB) but over the collector's 16,384
        long_id = lightning.score("quality", 0.5, comment="r" * 20_000)
        # 8,000 astral characters (4 bytes each): within the limit in characters
        astral_id = lightning.score("quality", 0.6, comment="\U0001f600" * 8_000)
        exact_id = lightning.score("quality", 0.7, comment="e" * MAX_SCORE_COMMENT_CHARS)
        assert await lightning.flush(5)
        await lightning.shutdown(1)
    finally:
        rec.close()
    sent = {body["id"]: body for path, body in rec.requests if "/scores" in path}
    cut = sent[long_id]["comment"]
    assert sent[long_id]["value"] == 0.5
    assert MAX_SCORE_COMMENT_CHARS - 8 < len(cut) <= MAX_SCORE_COMMENT_CHARS
    assert cut.startswith("r" * 16_000)
    assert re.search(r"…\[truncated: \d+ of 20000 characters omitted\]$", cut), cut[-80:]
    assert sent[astral_id]["comment"] == "\U0001f600" * 8_000
    assert sent[exact_id]["comment"] == "e" * MAX_SCORE_COMMENT_CHARS


def test_cap_score_comment_never_exceeds_the_limit() -> None:
    for limit in (0, 1, 10, 60, 100, 16_384):
        for n in (0, limit, limit + 1, limit * 2 + 5):
            text = "x" * n
            out = cap_score_comment(text, limit)
            if n <= limit:
                assert out == text
            else:
                assert len(out) <= limit, (limit, n)
                if limit >= 100:
                    assert len(out) > limit - 8
                    assert out.endswith(f"of {n} characters omitted]"), out[-60:]


# ------------------------------------------------------------------------------------------- sanitizing


def test_to_json_safe_never_raises_and_withholds_sensitive_keys() -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        password: str

    class Weird:
        @property
        def boom(self) -> int:
            raise RuntimeError("no")

    cyc: dict[str, Any] = {"a": 1}
    cyc["self"] = cyc
    value = {
        "cyc": cyc,
        "bytes": b"\x00\x01",
        "dc": Point(1, "hunter2"),
        "w": Weird(),
        "inf": float("inf"),
        "big": 2**70,
        "apiKey": "sk-123",
        "nested": {"Authorization": "Bearer abcdefgh12345"},
        "tup": (1, 2),
    }
    out: Any = to_json_safe(value, Redactor(True))
    json.dumps(out)
    assert out["cyc"]["self"] == "[circular]"
    assert out["bytes"] == "[binary bytes: 2 bytes]"
    assert out["dc"] == {"x": 1, "password": "[REDACTED:sensitive_key]"}
    assert out["apiKey"] == "[REDACTED:sensitive_key]"
    assert out["inf"] == "inf" and out["big"] == str(2**70)


def test_truncation_marker_and_bound() -> None:
    s = "é" * 50000
    cut = truncate_string(s, 1000)
    assert len(cut.encode()) <= 1000 and cut.endswith("bytes omitted]")
    assert "of 100000 bytes" in cut
    again = truncate_string(cut, 500)
    assert "of 100000 bytes" in again, "a string cut twice keeps its original size"
    value: Any = {"a": "x" * 100000, "b": ["y" * 50000], "c": 1}
    out: Any = truncate_json(value, 4096)
    assert len(json.dumps(out, separators=(",", ":")).encode()) <= 4096
    assert out["c"] == 1


def test_user_sanitizer_fails_closed() -> None:
    def broken(step: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("bug")

    lightning = Lightning(
        collector_url="http://127.0.0.1:9",
        api_key="k",
        agent_id="a",
        spool=False,
        handle_process_exit=False,
        sanitize=broken,
    )
    step = lightning._prepare(
        "step",
        {
            "stepNumber": 3,
            "toolName": "Bash",
            "toolInput": {"cmd": "secret stuff"},
            "toolOutput": "out",
            "error": "err",
        },
    )
    assert step["toolInput"] == step["toolOutput"] == step["error"] == "[withheld: sanitize() failed]"
    assert step["stepNumber"] == 3

    def scrub(step: dict[str, Any]) -> None:
        step["toolInput"] = {"cmd": "scrubbed"}

    lightning2 = Lightning(
        collector_url="http://127.0.0.1:9",
        api_key="k",
        agent_id="a",
        spool=False,
        handle_process_exit=False,
        sanitize=scrub,
    )
    assert lightning2._prepare("step", {"stepNumber": 1, "toolName": "Bash", "toolInput": {"cmd": "x"}})[
        "toolInput"
    ] == {"cmd": "scrubbed"}
    lightning.shutdown_sync(0)
    lightning2.shutdown_sync(0)


def test_bad_options_raise_at_construction() -> None:
    with pytest.raises(ValueError, match="agent_id"):
        Lightning(collector_url="http://x", api_key="k", agent_id="")
    with pytest.raises(ValueError, match="batch_size"):
        Lightning(collector_url="http://x", api_key="k", agent_id="a", batch_size=0, handle_process_exit=False)
    with pytest.raises(ValueError, match="collector_url"):
        Lightning(collector_url="ftp://x", api_key="k", agent_id="a", handle_process_exit=False)


# ------------------------------------------------------------------------------------------- backoff


def test_retry_classification_and_backoff() -> None:
    for status in (408, 425, 429, 500, 502, 503, 599):
        assert is_retriable_status(status)
    for status in (400, 401, 403, 404, 409, 413, 422):
        assert not is_retriable_status(status)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    b = Backoff(base=0.5, max_delay=30, max_retry_after=60)
    assert all(0 < b.delay(a) <= min(30, 0.5 * 2 ** (a - 1)) for a in range(1, 20))
    assert 60 <= b.delay(1, retry_after=600) <= 60.5


# ------------------------------------------------------------------------------------------- spool


def test_spool_files_claims_and_permissions(tmp_path: Path) -> None:
    warnings: list[str] = []
    a = Spool(tmp_path / "s", 1 << 20, warnings.append, lambda m: None)
    assert a.write([SpoolRecord("step", "t1", {"stepNumber": 1, "toolName": "Bash"})]) == 1
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700
    assert stat.S_IMODE(a.file.stat().st_mode) == 0o600
    assert a.claim() == [], "a process never claims its own file"
    with open(a.file, "a") as f:
        f.write('{"v":1,"kind":"step","trajec')  # a torn last line from a crash
    b = Spool(tmp_path / "s", 1 << 20, warnings.append, lambda m: None)
    records = b.claim()
    assert [(r.kind, r.trajectory_id) for r in records] == [("step", "t1")]
    claimed = list((tmp_path / "s").glob("*.claimed-*"))
    assert len(claimed) == 1 and claimed[0].name.endswith(f".claimed-{os.getpid()}")
    c = Spool(tmp_path / "s", 1 << 20, warnings.append, lambda m: None)
    assert c.claim() == [], "a claim held by a live process is left alone"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    os.rename(
        claimed[0], claimed[0].with_name(claimed[0].name.rsplit(".claimed-", 1)[0] + f".claimed-{dead.stdout.strip()}")
    )
    assert len(c.claim()) == 1, "a claim whose process died is claimed again"
    c.release_claimed()
    assert list((tmp_path / "s").glob("*.claimed-*")) == []
    full = Spool(tmp_path / "full", 100, warnings.append, lambda m: None)
    assert full.write([SpoolRecord("step", "t", {"x": "y" * 200})]) == 0
    assert any("full" in w for w in warnings)


def test_default_spool_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_spool_dir() == tmp_path / "state" / "agent-lightning" / "spool"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "home" / ".local" / "state" / "agent-lightning" / "spool"
    assert default_spool_dir() == root
    monkeypatch.delenv("LIGHTNING_SPOOL_DIR", raising=False)
    lightning = Lightning(collector_url="http://127.0.0.1:4000/", api_key="k", agent_id="a", handle_process_exit=False)
    # one subdirectory per collector: sha256("http://127.0.0.1:4000")[:16], as docs/spool.md says
    import hashlib

    assert lightning.spool_dir == root / hashlib.sha256(b"http://127.0.0.1:4000").hexdigest()[:16]
    lightning.shutdown_sync(0)


async def test_secrets_never_reach_the_spool(tmp_path: Path) -> None:
    """The collector is down: what goes to disk is the redacted, truncated record."""
    lightning = Lightning(
        collector_url="http://127.0.0.1:9",
        api_key="k",
        agent_id="a",
        spool_dir=str(tmp_path),
        handle_process_exit=False,
        shutdown_timeout=0.2,
        max_field_bytes=1024,
    )
    secret = "ghp_" + "b" * 36
    await session(lightning, 1, output={"stdout": f"token {secret} " + "z" * 5000})
    await lightning.shutdown()
    text = "".join(p.read_text() for p in tmp_path.glob("spool-*"))
    assert text and secret not in text and "[REDACTED:github_token]" in text and "bytes omitted" in text
