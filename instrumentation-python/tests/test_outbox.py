"""The outbox against a local scripted HTTP server: what is retried and what is not, batch
splitting, the 404 re-start (and its loop, fixed once), Retry-After, the request size bound; and
that the hook's thread never waits for the disk (a spool write or the start-up claim blocked on
purpose while the hooks go on)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import agent_lightning._outbox as outbox_module
from agent_lightning import Lightning
from agent_lightning._spool import Spool, SpoolRecord

from .conftest import wait_for
from .helpers import free_port
from .sim import session

Reply = tuple[int, dict[str, str]]


class Scripted:
    """Records every request (path, body, raw size, arrival time) and answers `respond(path, n)`,
    n being how many requests to a path of that kind came before (start, steps, complete, scores)."""

    def __init__(self, respond: Callable[[str, int], Reply] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.respond = respond or (lambda kind, n: (200, {}))
        me = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                kind = me.kind(self.path)
                n = sum(1 for r in me.requests if r["kind"] == kind)
                me.requests.append(
                    {
                        "kind": kind,
                        "path": self.path,
                        "body": json.loads(raw) if raw else None,
                        "size": len(raw),
                        "at": time.monotonic(),
                    }
                )
                status, headers = me.respond(kind, n)
                body = b'{"success":true}' if status < 300 else b'{"error":"scripted"}'
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def kind(path: str) -> str:
        for k in ("start", "steps", "complete", "scores"):
            if k in path:
                return k
        return path

    def kinds(self) -> list[str]:
        return [r["kind"] for r in self.requests]

    def steps(self) -> list[list[int]]:
        """Step numbers of each steps request, in order."""
        return [[s["stepNumber"] for s in r["body"]["steps"]] for r in self.requests if r["kind"] == "steps"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Scripted]:
    s = Scripted()
    yield s
    s.close()


def make(url: str, **extra: Any) -> Lightning:
    """Nothing is sent before the trajectory's completion kicks the sender (the timer is far off
    and no batch fills up), so each test knows exactly which requests come."""
    options: dict[str, Any] = {
        "collector_url": url,
        "api_key": "k",
        "agent_id": "outbox",
        "spool": False,
        "handle_process_exit": False,
        "batch_size": 50,
        "flush_interval": 60.0,
        "retry_base_delay": 0.01,
        **extra,
    }
    return Lightning(**options)


# ------------------------------------------------------------------------------------------- statuses


async def test_other_4xx_is_dropped_not_retried(server: Scripted, caplog: pytest.LogCaptureFixture) -> None:
    server.respond = lambda kind, n: (422 if kind == "steps" else 200, {})
    lightning = make(server.url)
    with caplog.at_level(logging.WARNING, logger="agent_lightning"):
        await session(lightning, 3)
        assert await lightning.flush(10)
    stats = lightning.stats()
    await lightning.shutdown(1)
    # one request for the 3 tool steps and the final message, never repeated; the completion goes on
    assert server.kinds() == ["start", "steps", "complete"]
    assert server.steps() == [[1, 2, 3, 4]]
    assert stats.dropped == 4 and stats.retries == 0 and stats.queued == 0, stats
    rejected = [r.getMessage() for r in caplog.records if "rejected 4 record(s)" in r.getMessage()]
    assert len(rejected) == 1 and "422" in rejected[0], [r.getMessage() for r in caplog.records]


async def test_warnings_are_logged_outside_the_outbox_lock(server: Scripted) -> None:
    """A log handler that takes time (or logs through something that waits on the outbox) holds
    up neither the hooks nor the sender: the outbox's lock is free while it runs."""
    server.respond = lambda kind, n: (422 if kind == "steps" else 200, {})
    lightning = make(server.url)
    lock_free: list[bool] = []

    class Probe(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "rejected" in record.getMessage():
                other = threading.Thread(target=try_lock)
                other.start()
                other.join()

    def try_lock() -> None:
        lock = lightning._outbox._lock
        got = lock.acquire(timeout=2)
        if got:
            lock.release()
        lock_free.append(got)

    probe = Probe(level=logging.WARNING)
    logger = logging.getLogger("agent_lightning")
    logger.addHandler(probe)
    try:
        await session(lightning, 3)
        assert await lightning.flush(10)
        await lightning.shutdown(1)
    finally:
        logger.removeHandler(probe)
    assert lock_free == [True], lock_free


@pytest.mark.parametrize("status", [400, 413])
async def test_400_and_413_split_the_batch(server: Scripted, status: int) -> None:
    server.respond = lambda kind, n: (status if kind == "steps" and n == 0 else 200, {})
    lightning = make(server.url)
    await session(lightning, 4)
    assert await lightning.flush(10)
    stats = lightning.stats()
    await lightning.shutdown(1)
    # 5 steps refused as one request, then half of it, then the rest: each step once, nothing lost
    assert server.steps() == [[1, 2, 3, 4, 5], [1, 2], [3, 4, 5]]
    assert server.kinds() == ["start", "steps", "steps", "steps", "complete"]
    assert stats.dropped == 0 and stats.retries == 0, stats


async def test_413_on_a_single_step_drops_only_that_step(server: Scripted) -> None:
    server.respond = lambda kind, n: (413 if kind == "steps" and n < 4 else 200, {})
    lightning = make(server.url)
    await session(lightning, 1)  # one tool step and the final message
    assert await lightning.flush(10)
    stats = lightning.stats()
    await lightning.shutdown(1)
    # [1, 2] -> split -> [1] refused alone: dropped; [2] refused alone: dropped; no endless halving
    assert server.steps() == [[1, 2], [1], [2]]
    assert stats.dropped == 2, stats


async def test_404_resends_the_start_then_the_steps(server: Scripted) -> None:
    server.respond = lambda kind, n: (404 if kind == "steps" and n == 0 else 200, {})
    lightning = make(server.url)
    await session(lightning, 2)
    assert await lightning.flush(10)
    stats = lightning.stats()
    await lightning.shutdown(1)
    assert server.kinds() == ["start", "steps", "start", "steps", "complete"]
    starts = [r["body"] for r in server.requests if r["kind"] == "start"]
    assert starts[0] == starts[1], "the same idempotent start"
    assert server.steps() == [[1, 2, 3], [1, 2, 3]]
    assert stats.dropped == 0, stats


async def test_404_after_the_resent_start_does_not_loop(server: Scripted) -> None:
    """Regression (commit e22905b): a collector that keeps answering 404 to the steps made the
    outbox re-send the start and the steps forever. Now: one re-sent start, then the steps are
    dropped and counted, and the rest goes on."""
    server.respond = lambda kind, n: (404 if kind == "steps" else 200, {})
    lightning = make(server.url)
    await session(lightning, 2)
    assert await lightning.flush(10)
    stats = lightning.stats()
    await lightning.shutdown(1)
    assert server.kinds() == ["start", "steps", "start", "steps", "complete"]
    assert stats.dropped == 3 and stats.queued == 0, stats


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_is_honoured(server: Scripted, form: str) -> None:
    def retry_after() -> str:
        # an HTTP-date has whole seconds: 2.5 s ahead is at least 1.5 s ahead once truncated
        return "1.5" if form == "seconds" else email.utils.formatdate(time.time() + 2.5, usegmt=True)

    def respond(kind: str, n: int) -> Reply:
        if kind == "steps" and n == 0:
            return 503, {"retry-after": retry_after()}
        return 200, {}

    server.respond = respond
    # backoff alone would retry after at most 10 ms (retry_base_delay)
    lightning = make(server.url)
    await session(lightning, 2)
    # no flush(): a flush shortens the waits on purpose; the sender keeps its own schedule here
    wait_for(lambda: server.steps() == [[1, 2, 3], [1, 2, 3]], timeout=20)
    steps = [r for r in server.requests if r["kind"] == "steps"]
    gap = steps[1]["at"] - steps[0]["at"]
    stats = lightning.stats()
    await lightning.shutdown(2)
    assert gap >= 1.45, f"retried {gap:.3f} s after a Retry-After of about 1.5 s"
    assert stats.retries == 1 and stats.dropped == 0, stats


async def test_max_batch_bytes_splits_requests(server: Scripted) -> None:
    lightning = make(server.url, max_batch_bytes=4096)
    await session(lightning, 8, output={"stdout": "y" * 1500})
    assert await lightning.flush(10)
    stats = lightning.stats()
    await lightning.shutdown(1)
    requests = [r for r in server.requests if r["kind"] == "steps"]
    assert len(requests) >= 3, server.steps()
    assert all(r["size"] <= 4096 for r in requests), [r["size"] for r in requests]
    # in order, each step once
    assert [n for batch in server.steps() for n in batch] == list(range(1, 10))
    assert stats.dropped == 0


# ------------------------------------------------------------------------------------------- off the hook path


class BlockedWrites:
    """Replaces a spool's write with one that blocks until released, noting the calling threads."""

    def __init__(self, spool: Spool) -> None:
        self.real = spool.write
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: set[int] = set()
        spool.write = self.write  # type: ignore[method-assign]

    def write(self, records: list[SpoolRecord]) -> int:
        self.threads.add(threading.get_ident())
        self.entered.set()
        self.release.wait()
        return self.real(records)


def hooks_return(lightning: Lightning, steps: int, sid: str, output: Any) -> int | None:
    """Runs one session of `steps` tool calls through the hooks on a fresh thread. Returns that
    thread's id when every hook returned, None when they were still stuck after 30 s (a liveness
    bound, far above the milliseconds they take: a hook waiting on the blocked write never returns)."""
    ident: list[int] = []

    def run() -> None:
        ident.append(threading.get_ident())
        asyncio.run(session(lightning, steps, output=output, session_id=sid))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    return None if t.is_alive() else ident[0]


def test_hooks_never_wait_for_a_spool_write_of_the_byte_bound(tmp_path: Path) -> None:
    """Collector down, the byte bound crossed: the sender spools the oldest steps, and that write
    is blocked. The hooks go on returning meanwhile (the write is done without the lock they take,
    and never on their thread)."""
    lightning = make(
        f"http://127.0.0.1:{free_port()}",
        spool=True,
        spool_dir=str(tmp_path),
        max_buffer_bytes=64 * 1024,
        flush_interval=0.02,
        batch_size=5,
    )
    assert lightning._outbox.spool is not None
    blocked = BlockedWrites(lightning._outbox.spool)
    big = {"stdout": "x" * 8192}
    hook_threads: set[int] = set()
    for i in range(20):
        ident = hooks_return(lightning, 10, f"fill-{i}", big)
        assert ident is not None, "a hook blocked before the spool write was even reached"
        hook_threads.add(ident)
        if blocked.entered.wait(0.5):
            break
    assert blocked.entered.is_set(), "the byte bound never sent anything to the spool"
    queued_before = lightning.stats().queued
    for i in range(5):
        ident = hooks_return(lightning, 10, f"during-{i}", big)
        assert ident is not None, "a hook waited for the blocked spool write"
        hook_threads.add(ident)
    assert not blocked.release.is_set()
    assert lightning.stats().queued > queued_before, "the hooks kept queueing while the write was blocked"
    assert not (blocked.threads & hook_threads), "a spool write ran on a hook's thread"
    blocked.release.set()
    lightning.shutdown_sync(0.2)
    stats = lightning.stats()
    assert stats.spooled > 0 and stats.dropped == 0, stats


def test_hooks_never_spool_at_the_record_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_RECORDS queued records (here 50) the oldest steps go to the spool: done by the
    sender, never by the hook that crossed the bound; with the write blocked the hooks return."""
    monkeypatch.setattr(outbox_module, "MAX_RECORDS", 50)
    monkeypatch.setattr(outbox_module, "HARD_MAX_RECORDS", 100_000)
    lightning = make(f"http://127.0.0.1:{free_port()}", spool=True, spool_dir=str(tmp_path), batch_size=5)
    assert lightning._outbox.spool is not None
    blocked = BlockedWrites(lightning._outbox.spool)
    hook_threads: set[int] = set()
    for i in range(8):
        ident = hooks_return(lightning, 20, f"s-{i}", None)
        assert ident is not None, "a hook waited for a spool write"
        hook_threads.add(ident)
    assert blocked.entered.wait(30), "the record bound never sent anything to the spool"
    ident = hooks_return(lightning, 20, "after", None)
    assert ident is not None, "a hook waited for the blocked spool write"
    hook_threads.add(ident)
    assert not (blocked.threads & hook_threads), "a spool write ran on a hook's thread"
    blocked.release.set()
    lightning.shutdown_sync(0.2)
    stats = lightning.stats()
    assert stats.spooled > 0 and stats.dropped == 0, stats


def test_instrument_returns_before_the_spool_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Scripted
) -> None:
    """instrument() does not read earlier processes' spool (up to max_spool_bytes): the sender
    does. With that read blocked, instrument() returns; once it goes on, flush() delivers it."""
    earlier = Spool(tmp_path, 1 << 20, lambda m: None, lambda m: None)
    tid = "00000000-0000-4000-8000-000000000001"
    assert (
        earlier.write(
            [
                SpoolRecord(
                    "start", tid, {"trajectoryId": tid, "agentId": "outbox", "startTime": "2026-01-01T00:00:00Z"}
                ),
                SpoolRecord("step", tid, {"stepNumber": 1, "toolName": "Bash", "toolOutput": "spooled"}),
                SpoolRecord("complete", tid, {"success": True, "status": "succeeded", "totalSteps": 1}),
            ]
        )
        == 3
    )
    entered = threading.Event()
    release = threading.Event()
    claim_threads: list[int] = []
    real_claim = Spool.claim

    def slow_claim(self: Spool) -> list[SpoolRecord]:
        claim_threads.append(threading.get_ident())
        entered.set()
        release.wait()
        return real_claim(self)

    monkeypatch.setattr(Spool, "claim", slow_claim)
    made: list[Lightning] = []
    maker = threading.Thread(
        target=lambda: made.append(make(server.url, spool=True, spool_dir=str(tmp_path))), daemon=True
    )
    maker.start()
    maker.join(30)  # liveness bound: instrument() reading the blocked spool would never return
    assert made, "instrument() waited for the spool to be read"
    lightning = made[0]
    assert entered.wait(30) and claim_threads and claim_threads[0] != maker.ident
    threading.Timer(0.2, release.set).start()
    assert lightning.flush_sync(10), "flush() waits for the spool being read, then delivers it"
    stats = lightning.stats()
    lightning.shutdown_sync(1)
    assert stats.replayed == 3, stats
    assert server.kinds() == ["start", "steps", "complete"]
    assert server.requests[1]["body"]["steps"][0]["toolOutput"] == "spooled"
    assert list(tmp_path.glob("spool-*")) == [], "delivered spool files are deleted"


async def test_a_record_whose_preparation_fails_keeps_its_kind_and_withholds_text(server: Scripted) -> None:
    """A start (or completion) whose preparation raised is sent with its identifiers and numbers
    only, still shaped as a start (not as a step, which the collector would refuse)."""
    lightning = make(server.url)
    real = lightning._outbox._prepare_fn

    def failing(kind: str, draft: dict[str, Any]) -> dict[str, Any]:
        if kind in ("start", "complete"):
            raise RuntimeError("bug in preparation")
        return real(kind, draft)

    lightning._outbox._prepare_fn = failing
    await session(lightning, 1, prompt="secret prompt text")
    assert await lightning.flush(10)
    stats = lightning.stats()
    await lightning.shutdown(1)
    assert server.kinds() == ["start", "steps", "complete"]
    start, complete = server.requests[0]["body"], server.requests[2]["body"]
    assert set(start) == {"trajectoryId", "agentId", "startTime", "sessionId"}, start
    assert start["agentId"] == "outbox"
    assert complete["status"] == "succeeded" and complete["totalSteps"] == 1 and "result" not in complete
    assert stats.dropped == 0, stats
