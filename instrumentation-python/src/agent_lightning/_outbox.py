"""The outbox: a bounded, ordered queue of records (trajectory starts, steps, completions, scores)
and the one background thread that prepares (sanitizes) and sends them.

- Hooks only append (or merge into a not-yet-sent step) under a lock and return; sanitizing,
  serializing and sending happen on the sender thread, off the agent's path.
- Order: one request at a time from the head of the queue. A trajectory's start is queued before
  its steps, its steps before its completion, so the collector always sees them in that order.
- Retries (network errors, timeouts, 408/425/429/5xx) put the records back at the head and wait
  with exponential backoff and full jitter (or Retry-After). Re-sent records are merged by the
  collector, so a retry never duplicates.
- Memory is bounded by bytes: past ``max_buffer_bytes`` the oldest steps go to the spool (or are
  dropped and counted). At shutdown whatever is left is written to the spool synchronously.
- No disk work under the lock the hooks take, and none on the hook's thread: the sender picks the
  records to spool under the lock (in memory), then redacts and writes them after releasing it.
  The spool left by earlier processes is claimed and read by the sender thread, not in
  ``instrument()``.
- The lock is re-entrant: a SIGTERM handler runs on the main thread between two bytecodes, maybe
  while that thread is inside ``add()``; its shutdown can still queue and spool.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._sanitize import dumps, error_message
from ._spool import Spool, SpoolRecord
from ._transport import Backoff, Client, Outcome

QUEUED, INFLIGHT, DONE = 0, 1, 2
MAX_STEPS_PER_REQUEST = 200
MAX_SCAN = 5000
MAX_RECORDS = 100_000
# the hook path never evicts (that is the sender's work); past this many queued records it drops
# the new step, counted, so memory stays bounded while the sender is stuck in a request
HARD_MAX_RECORDS = 2 * MAX_RECORDS
UNAUTHORIZED_LIMIT = 3


@dataclass(eq=False)
class Item:
    kind: str  # start | step | complete | score
    trajectory_id: str
    draft: dict[str, Any] | None
    payload: dict[str, Any] | None = None
    nbytes: int = 0
    state: int = DONE
    version: int = 0
    prepared_version: int = -1
    replayed: bool = False

    @property
    def ready(self) -> bool:
        return self.payload is not None and self.prepared_version == self.version


@dataclass
class OutboxConfig:
    batch_size: int
    flush_interval: float
    max_batch_bytes: int
    max_buffer_bytes: int
    backoff: Backoff


@dataclass
class Counters:
    sent: int = 0
    dropped: int = 0
    dropped_bytes: int = 0
    failed: int = 0
    retries: int = 0
    spooled: int = 0
    replayed: int = 0
    last_error: str | None = None
    unauthorized: int = 0
    extra: dict[str, int] = field(default_factory=dict)


# what a record keeps when its preparation failed: identifiers and numbers, no free text
_SAFE_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("trajectoryId", "agentId", "startTime", "sessionId"),
    "step": ("stepNumber", "kind", "toolUseId", "durationMs"),
    "complete": ("success", "status", "totalSteps", "duration", "endTime"),
    "score": ("id", "name", "value", "source", "stepNumber"),
}


def _path(item: Item) -> str:
    tid = urllib.parse.quote(item.trajectory_id, safe="")
    if item.kind == "start":
        return "/api/trajectories/start"
    if item.kind == "complete":
        return f"/api/trajectories/{tid}/complete"
    if item.kind == "score":
        return f"/api/trajectories/{tid}/scores"
    return f"/api/trajectories/{tid}/steps/batch"


class Outbox:
    def __init__(
        self,
        config: OutboxConfig,
        client: Client,
        prepare: Callable[[str, dict[str, Any]], dict[str, Any]],
        spool: Spool | None,
        start_for: Callable[[str], dict[str, Any] | None],
        warn: Callable[[str], None],
        debug: Callable[[str], None],
    ) -> None:
        self.config = config
        self._client = client
        self._prepare_fn = prepare
        self.spool = spool
        self._start_for = start_for
        # Warnings are raised under the lock but logged outside it (`_emit_warnings`): a slow or
        # re-entrant log handler must hold up neither the hooks nor the sender.
        self._log_warning = warn
        self._warnings: collections.deque[str] = collections.deque()
        self._warn = self._warnings.append
        self._debug = debug
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._queue: collections.deque[Item] = collections.deque()
        self._unprepared: list[Item] = []
        self._inflight: list[Item] = []
        self._queued_steps = 0
        self._queued_bytes = 0
        self._kick = False
        self._flushing = 0
        self._retry_at = 0.0
        self._attempt = 0
        self._split = 0
        self._restarted: set[str] = set()
        self._replay_pending = 0
        self._warned_loss = False
        self._warned_401 = False
        self._to_spill: list[Item] = []  # picked under the lock, written by the sender without it
        self._spilling = 0
        self._claiming = False
        self._started = spool is None  # True once the earlier processes' spool was claimed
        self._claim_orphaned = False
        self.closed = False
        self.paused = False  # repeated 401: nothing is sent any more, data waits for the spool
        self.counters = Counters()
        self._thread = threading.Thread(target=self._run, name="agent-lightning-sender", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ hook path (under the lock, O(1))

    def add(self, kind: str, trajectory_id: str, draft: dict[str, Any]) -> Item | None:
        item = Item(kind, trajectory_id, draft)
        with self._lock:
            if self.closed:
                return None
            if not self._push(item):
                return None
            if (
                kind in ("complete", "score")
                or self._queued_steps >= self.config.batch_size
                or self.config.flush_interval == 0
                or len(self._unprepared) >= self.config.batch_size
            ):
                self._kick = True
                self._wake.notify()
        self._emit_warnings()
        return item

    def update(self, item: Item | None, trajectory_id: str, fields: dict[str, Any], kind: str = "step") -> Item | None:
        """Adds closing fields to a step: merged into the queued record when not sent yet, else
        queued as a new record carrying only the new fields (the collector merges by stepNumber)."""
        with self._lock:
            if self.closed:
                return None
            if item is not None and item.state == QUEUED and item.draft is not None:
                item.draft = {**item.draft, **fields}
                item.version += 1
                self._unprepared.append(item)
                if self.config.flush_interval == 0:
                    self._kick = True
                    self._wake.notify()
                return item
        if kind != "step":
            return item  # a start already sent: the collector keeps the first one
        return self.add("step", trajectory_id, fields)

    def _push(self, item: Item) -> bool:
        if len(self._queue) >= MAX_RECORDS:
            # over the record bound: the sender moves the oldest steps to the spool; here (the
            # hook's thread) nothing but a counted drop once even that falls behind
            self._kick = True
            self._wake.notify()
            if item.kind == "step" and len(self._queue) >= HARD_MAX_RECORDS:
                self._lose(1, 0, "queue full (the sender is behind)")
                return False
        item.state = QUEUED
        self._queue.append(item)
        if item.kind == "step":
            self._queued_steps += 1
        self._unprepared.append(item)
        return True

    # ------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        self._claim_spool()
        next_timer = time.monotonic() + self.config.flush_interval
        while True:
            self._emit_warnings()
            # prepare (sanitize, size, enforce the byte bound) whenever woken, even while backing off
            try:
                self._prepare_pending()
            except Exception as e:  # never let the thread die
                self._debug(f"[Lightning Instrumentation] prepare error (ignored): {error_message(e)}")
            with self._lock:
                send = False
                while True:
                    if self.closed:
                        return
                    if self._unprepared and (self._kick or len(self._unprepared) >= self.config.batch_size):
                        break  # prepare first, then come back
                    now = time.monotonic()
                    if self.paused:
                        self._idle.notify_all()
                        self._wake.wait()
                        continue
                    wait = self._retry_at - now
                    if self._flushing and wait > 0:
                        wait = min(wait, 0.05 * 2 ** min(self._attempt, 6) - (now - self._retry_set_at))
                    if wait > 0:
                        self._wake.wait(wait)
                        continue
                    if self._kick or self._flushing or (self._queue and now >= next_timer):
                        send = True
                        break
                    timeout = None
                    if self._queue and self.config.flush_interval > 0:
                        timeout = max(0.001, next_timer - now)
                    self._wake.wait(timeout)
                if not send:
                    continue
                self._kick = False
            try:
                self._send_all()
            except Exception as e:  # never let the thread die
                self._debug(f"[Lightning Instrumentation] sender error (ignored): {error_message(e)}")
            next_timer = time.monotonic() + self.config.flush_interval

    _retry_set_at = 0.0

    def _claim_spool(self) -> None:
        """Claims and reads the spool files earlier processes left (up to max_spool_bytes), here on
        the sender thread so that instrument() returns at once."""
        if self.spool is None:
            return
        with self._lock:
            if self.closed:
                self._started = True
                self._idle.notify_all()
                return
            self._claiming = True
        records: list[SpoolRecord] = []
        try:
            records = self.spool.claim()
        except Exception as e:
            self._debug(f"[Lightning Instrumentation] could not read the spool: {error_message(e)}")
        finally:
            with self._lock:
                if self.closed:
                    # shutdown came first: the claimed files stay (claimed by this process, they
                    # are claimed again once it is gone) and nothing is deleted
                    self._claim_orphaned = True
                elif records:
                    self._replay(records)
                    over = self._queued_bytes - self.config.max_buffer_bytes
                    if over > 0:
                        self._evict_bytes(over)
                self._claiming = False
                self._started = True
                self._idle.notify_all()
        self._drain_spill()

    def _prepare_pending(self) -> None:
        with self._lock:
            batch, self._unprepared = self._unprepared, []
        for item in batch:
            # hand the GIL back between records: the agent's thread never waits for a whole batch
            time.sleep(0)
            draft = item.draft
            version = item.version
            if item.state != QUEUED or draft is None or item.ready:
                continue
            try:
                payload = self._prepare_fn(item.kind, draft)
                nbytes = len(dumps(payload).encode("utf-8", "surrogatepass")) + 1
            except Exception as e:
                self._debug(f"[Lightning Instrumentation] could not prepare a record: {error_message(e)}")
                # the record's kind keeps its shape; every free-text field is withheld
                keep = _SAFE_FIELDS.get(item.kind, ())
                payload = {k: draft[k] for k in keep if isinstance(draft.get(k), (str, int, float, bool))}
                if item.kind == "step":
                    payload = {"stepNumber": draft.get("stepNumber", 0), "toolName": "unknown", **payload}
                nbytes = len(dumps(payload)) + 1
            with self._lock:
                if item.version != version:
                    self._unprepared.append(item)
                    continue
                if item.state == QUEUED:
                    self._queued_bytes += nbytes - (item.nbytes if item.payload is not None else 0)
                item.payload = payload
                item.nbytes = nbytes
                item.prepared_version = version
                over = self._queued_bytes - self.config.max_buffer_bytes
                if over > 0:
                    # down to 90 % of the bound, so that eviction is not redone for every record
                    self._evict_bytes(over + self.config.max_buffer_bytes // 10)
            if self._to_spill:
                self._drain_spill()
        with self._lock:
            if len(self._queue) > MAX_RECORDS:
                self._evict(len(self._queue) - MAX_RECORDS + MAX_RECORDS // 10)
        self._drain_spill()

    def _drain_spill(self) -> None:
        """Writes the records picked for the spool (redacting any not prepared yet), without the
        lock: hooks go on queueing meanwhile."""
        with self._lock:
            if not self._to_spill:
                return
            batch, self._to_spill = self._to_spill, []
            self._spilling += 1
        try:
            self._spill(batch, "memory bound (max_buffer_bytes) reached")
        finally:
            with self._lock:
                self._spilling -= 1
                self._idle.notify_all()

    def _send_all(self) -> None:
        while True:
            self._emit_warnings()
            self._prepare_pending()
            release = False
            with self._lock:
                if self.closed or self.paused:
                    return
                request = self._next_request()
                if request is None:
                    if self._queue and not self._queue[0].ready:
                        self._unprepared.append(self._queue[0])
                        continue
                    release = self._replay_pending == 0 and self.spool is not None and self.spool.has_claimed
                    if not release:
                        self._idle.notify_all()
                        return
                else:
                    items, path, body = request
            if release:
                assert self.spool is not None
                self.spool.release_claimed()  # disk work: outside the lock
                with self._lock:
                    self._idle.notify_all()
                return
            outcome = self._client.request("POST", path, body.encode("utf-8", "surrogatepass"))
            with self._lock:
                self._inflight = []
                if self.closed:
                    return  # shutdown spooled these records already
                retry = self._handle(items, outcome)
                self._idle.notify_all()
                if retry:
                    return

    def _next_request(self) -> tuple[list[Item], str, str] | None:
        if not self._queue:
            return None
        head = self._queue[0]
        if not head.ready:
            return None
        if head.kind != "step":
            self._queue.popleft()
            self._taken([head])
            return [head], _path(head), dumps(head.payload)
        limit = max(self.config.batch_size, MAX_STEPS_PER_REQUEST)
        if self._split > 0:
            limit = min(limit, self._split)
        taken: list[Item] = []
        size = 16
        for i, item in enumerate(self._queue):
            if i >= MAX_SCAN or len(taken) >= limit:
                break
            if item.trajectory_id != head.trajectory_id:
                continue
            if item.kind != "step" or not item.ready:
                break  # never send steps past this trajectory's completion
            if taken and size + item.nbytes > self.config.max_batch_bytes:
                break
            size += item.nbytes
            taken.append(item)
        chosen = set(map(id, taken))
        self._queue = collections.deque(i for i in self._queue if id(i) not in chosen)
        self._taken(taken)
        steps: list[dict[str, Any]] = []
        by_number: dict[Any, dict[str, Any]] = {}
        for item in taken:
            p = item.payload or {}
            existing = by_number.get(p.get("stepNumber"))
            if existing is not None:
                existing.update({k: v for k, v in p.items() if v is not None})
            else:
                copy = dict(p)
                by_number[p.get("stepNumber")] = copy
                steps.append(copy)
        return taken, _path(head), dumps({"steps": steps})

    def _taken(self, items: list[Item]) -> None:
        for item in items:
            item.state = INFLIGHT
            if item.kind == "step":
                self._queued_steps -= 1
            self._queued_bytes -= item.nbytes
        self._inflight = items

    def _requeue_front(self, items: list[Item]) -> None:
        for item in reversed(items):
            item.state = QUEUED
            self._queue.appendleft(item)
            if item.kind == "step":
                self._queued_steps += 1
            self._queued_bytes += item.nbytes

    def _settled(self, items: list[Item]) -> None:
        replayed = 0
        for item in items:
            item.state = DONE
            item.draft = None
            replayed += item.replayed
        if replayed:
            self._replay_pending = max(0, self._replay_pending - replayed)

    def _handle(self, items: list[Item], outcome: Outcome) -> bool:
        """Returns True when the sender should wait before the next request."""
        c = self.counters
        if outcome.kind == "ok":
            c.sent += len(items)
            self._attempt = 0
            self._split = 0
            c.unauthorized = 0
            if items[0].kind != "start":
                # only a record past the start proves the collector knows the trajectory again
                self._restarted.discard(items[0].trajectory_id)
            self._settled(items)
            return False
        c.failed += 1
        c.last_error = outcome.error
        if outcome.kind in ("retry", "unauthorized"):
            self._requeue_front(items)
            if outcome.kind == "unauthorized":
                c.unauthorized += 1
                if c.unauthorized >= UNAUTHORIZED_LIMIT:
                    self.paused = True
                    if not self._warned_401:
                        self._warned_401 = True
                        self._warn(
                            "[Lightning Instrumentation] The collector rejected the API key "
                            f"{c.unauthorized} times (401); sending stopped. Captured data is kept and "
                            "written to the spool at exit for a corrected key. The agent is not affected. "
                            f"({outcome.error})"
                        )
                    return True
            self._attempt += 1
            c.retries += 1
            delay = self.config.backoff.delay(self._attempt, outcome.retry_after)
            self._retry_set_at = time.monotonic()
            self._retry_at = self._retry_set_at + delay
            self._kick = True  # the retry goes out when the wait ends, not at the next timer
            self._debug(f"[LightningClient] {outcome.error}; retry {self._attempt} in {delay * 1000:.0f} ms")
            return True
        first = items[0]
        tid = first.trajectory_id
        if outcome.status == 404 and first.kind != "start" and tid not in self._restarted:
            start = self._start_for(tid)
            if start is not None:
                # the collector does not know the trajectory: start it again (idempotent), retry once
                self._restarted.add(tid)
                self._requeue_front(items)
                s = Item("start", tid, None, payload=start, prepared_version=0)
                s.nbytes = len(dumps(start)) + 1
                self._requeue_front([s])
                return False
        if outcome.status in (400, 413) and len(items) > 1:
            self._requeue_front(items)
            self._split = max(1, len(items) // 2)
            return False
        self._warn(f"[Lightning Instrumentation] Collector rejected {len(items)} record(s): {outcome.error}")
        self._lose(len(items), sum(i.nbytes for i in items), outcome.error)
        self._settled(items)
        return False

    def _emit_warnings(self) -> None:
        """Logs the warnings raised so far; called without the lock. Never raises."""
        while True:
            try:
                message = self._warnings.popleft()
            except IndexError:
                return
            with contextlib.suppress(Exception):
                self._log_warning(message)

    # ------------------------------------------------------------------ loss, spool, replay

    def _lose(self, n: int, nbytes: int, why: str) -> None:
        self.counters.dropped += n
        self.counters.dropped_bytes += nbytes
        if not self._warned_loss:
            self._warned_loss = True
            self._warn(f"[Lightning Instrumentation] {n} record(s) lost: {why} (stats() counts every loss)")

    def _evict(self, n: int) -> None:
        victims: list[Item] = []
        for item in self._queue:
            if len(victims) >= n:
                break
            if item.kind == "step":
                victims.append(item)
        self._remove_to_spool(victims)

    def _evict_bytes(self, over: int) -> None:
        victims: list[Item] = []
        freed = 0
        for item in self._queue:
            if freed >= over:
                break
            if item.kind == "step" and item.ready:
                victims.append(item)
                freed += item.nbytes
        self._remove_to_spool(victims)

    def _remove_to_spool(self, victims: list[Item]) -> None:
        if not victims:
            return
        chosen = set(map(id, victims))
        self._queue = collections.deque(i for i in self._queue if id(i) not in chosen)
        for item in victims:
            item.state = DONE  # a later update() queues its fields as a new record
            self._queued_steps -= 1
            if item.payload is not None:
                self._queued_bytes -= item.nbytes
        self._to_spill.extend(victims)  # written by _drain_spill, outside the lock

    def _record(self, item: Item) -> SpoolRecord | None:
        if not item.ready:
            if item.draft is None:
                return None
            try:
                item.payload = self._prepare_fn(item.kind, item.draft)
                item.prepared_version = item.version
            except Exception:
                return None
        assert item.payload is not None
        return SpoolRecord(item.kind, item.trajectory_id, item.payload)

    def _spill(self, items: list[Item], why: str) -> None:
        """Writes items to the spool (each trajectory preceded by its idempotent start), else drops them."""
        records: list[SpoolRecord] = []
        started: set[str] = set()
        counted = 0
        for item in items:
            item.state = DONE
            if item.kind == "start":
                started.add(item.trajectory_id)
            elif item.trajectory_id not in started:
                started.add(item.trajectory_id)
                start = self._start_for(item.trajectory_id)
                if start is not None:
                    records.append(SpoolRecord("start", item.trajectory_id, start))
            r = self._record(item)
            if r is not None:
                records.append(r)
                counted += 1
        written = self.spool.write(records) if self.spool is not None else 0
        extra = len(records) - counted
        ok = max(0, min(counted, written - extra))
        with self._lock:
            self.counters.spooled += ok
            replayed = sum(i.replayed for i in items[:ok])
            if replayed:
                # spooled again by this process: the claimed files they came from can go
                self._replay_pending = max(0, self._replay_pending - replayed)
            if ok < len(items):
                lost = items[ok:]
                reason = "spool full or unwritable" if self.spool is not None else "spool disabled"
                self._lose(len(lost), sum(i.nbytes for i in lost), f"{why}; {reason}")

    def _replay(self, records: list[SpoolRecord]) -> None:
        for r in records:
            item = Item(r.kind, r.trajectory_id, None, payload=r.body, prepared_version=0, replayed=True)
            item.nbytes = len(dumps(r.body).encode("utf-8", "surrogatepass")) + 1
            item.state = QUEUED
            self._queue.append(item)
            if item.kind == "step":
                self._queued_steps += 1
            self._queued_bytes += item.nbytes
        self._replay_pending += len(records)
        self.counters.replayed += len(records)
        self._kick = True

    # ------------------------------------------------------------------ flush / shutdown (any thread)

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._inflight)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def flush(self, timeout: float) -> bool:
        """Sends everything now, retrying until delivered or `timeout` seconds passed. Returns True
        when nothing is left. Never raises."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._flushing += 1
            self._kick = True
            self._wake.notify()
            try:
                while (
                    (self._queue or self._inflight or self._to_spill or self._spilling or not self._started)
                    and not self.closed
                    and not self.paused
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._idle.wait(remaining)
                return not (self._queue or self._inflight)
            finally:
                self._flushing -= 1

    def close(self, wait: float = 2.0) -> None:
        """Stops sending and writes what is left (queued, picked for the spool and in flight) to the
        spool, synchronously. Waits at most `wait` seconds for a spool write or claim the sender
        has in progress."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            items = [*self._inflight, *self._to_spill, *self._queue]
            self._queue.clear()
            self._to_spill = []
            self._inflight = []
            self._unprepared = []
            self._queued_steps = 0
            self._queued_bytes = 0
            self._wake.notify_all()
            self._idle.notify_all()
            deadline = time.monotonic() + wait
            while self._spilling or self._claiming:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._idle.wait(remaining)
            # replayed records were delivered or are spooled again below: their files can go,
            # unless a claim is still being read or finished after the shutdown began
            release = not self._claiming and not self._claim_orphaned and not self._spilling
        if items:
            self._spill(items, "not delivered before shutdown")
        if self.spool is not None and release:
            self.spool.release_claimed()
        with contextlib.suppress(Exception):
            self._thread.join(0.05)
        self._emit_warnings()
