"""instrument(): hooks for the Python Claude Agent SDK that turn each user prompt into a trajectory
and each tool call into a step, delivered to the Agent Lightning collector in the background."""

from __future__ import annotations

import atexit
import collections
import contextlib
import copy
import dataclasses
import datetime
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from ._assignments import PromptAssignments, PromptResult
from ._outbox import Item, Outbox, OutboxConfig
from ._redact import Redactor
from ._sanitize import JsonValue, error_message, sanitize_field, to_json_safe, truncate_json
from ._spool import Spool, collector_key, default_spool_dir
from ._transport import Backoff, Client

if TYPE_CHECKING:
    from claude_agent_sdk import ClaudeAgentOptions, HookMatcher, Message
    from claude_agent_sdk.types import HookEvent

VERSION = "0.1.0"
NO_POST_HOOK = "Tool call did not complete: no PostToolUse/PostToolUseFailure"
SPAWNING_TOOLS = ("Task", "Agent")
MAX_SESSIONS = 10000
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# The collector's limit for a score's comment, in characters (code points, as len() counts).
MAX_SCORE_COMMENT_CHARS = 16_384


def cap_score_comment(text: str, max_chars: int = MAX_SCORE_COMMENT_CHARS) -> str:
    """Cuts a (redacted) comment to the collector's limit, marker included, so that a long comment
    costs its tail instead of the collector refusing the whole score."""
    if len(text) <= max_chars:
        return text

    def marker(omitted: int) -> str:
        return f"…[truncated: {omitted} of {len(text)} characters omitted]"

    # the marker for fewer omitted characters is never longer than this one
    reserve = len(marker(len(text)))
    if reserve >= max_chars:
        return text[:max_chars]
    keep = max_chars - reserve
    return text[:keep] + marker(len(text) - keep)


T = TypeVar("T")
StepSanitizer = Callable[[dict[str, Any]], "dict[str, Any] | None"]
_log = logging.getLogger("agent_lightning")


def _now_iso(ts: float | None = None) -> str:
    dt = datetime.datetime.fromtimestamp(time.time() if ts is None else ts, tz=datetime.timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _num(v: object) -> float | None:
    if type(v) is int or type(v) is float:
        return float(v) if math.isfinite(v) else None
    return None


def _usage(u: object) -> dict[str, int] | None:
    if not isinstance(u, Mapping):
        return None
    return {
        "inputTokens": int(_num(u.get("input_tokens")) or 0),
        "outputTokens": int(_num(u.get("output_tokens")) or 0),
        "cacheReadInputTokens": int(_num(u.get("cache_read_input_tokens")) or 0),
        "cacheCreationInputTokens": int(_num(u.get("cache_creation_input_tokens")) or 0),
    }


def _system_prompt_text(sp: object) -> str | None:
    if sp is None:
        return None
    if isinstance(sp, str):
        return sp
    if isinstance(sp, (list, tuple)):
        return "\n".join(str(x) for x in sp)
    if isinstance(sp, Mapping):
        if isinstance(sp.get("prompt"), str):
            return cast(str, sp["prompt"])
        parts = [f"[preset:{sp['preset']}]" if sp.get("preset") else f"[{sp.get('type', 'system')}]"]
        if isinstance(sp.get("append"), str):
            parts.append(cast(str, sp["append"]))
        return "\n".join(parts)
    return None


def _tool_result_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b["text"]
            for b in content
            if isinstance(b, Mapping) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
    return ""


def merge_hooks(*hook_sets: Mapping[Any, list[Any]] | None) -> dict[HookEvent, list[HookMatcher]]:
    """Concatenates the matcher lists of each event (the SDK runs all hooks of one event concurrently)."""
    out: dict[Any, list[Any]] = {}
    for hooks in hook_sets:
        for event, matchers in (hooks or {}).items():
            out.setdefault(event, []).extend(matchers)
    return out


@dataclass
class OpenStep:
    step_number: int
    tool_name: str
    tool_use_id: str
    started: float
    metadata: dict[str, Any]
    item: Item | None


@dataclass
class Trajectory:
    session_id: str
    trajectory_id: str
    start_time: float
    start_draft: dict[str, Any]
    start_item: Item | None = None
    next_step: int = 1
    tool_steps: int = 0
    open: dict[str, OpenStep] = field(default_factory=dict)
    completed: bool = False
    has_prompt: bool = False
    tracked: bool = False
    # Stop/StopFailure seen while a track() owns completion: (error or None, last message)
    stopped: tuple[str | None, str | None] | None = None
    last_message: str | None = None
    display: dict[str, list[str]] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LightningStats:
    sent: int
    """Records (starts, steps, completions, scores) the collector accepted."""
    queued: int
    """Records waiting in memory (including the request in flight)."""
    queued_bytes: int
    dropped: int
    """Records lost (spool full or off, rejected by the collector)."""
    dropped_bytes: int
    failed: int
    """HTTP requests that failed (network error, timeout, error status)."""
    retries: int
    spooled: int
    """Records written to the disk spool."""
    replayed: int
    """Records read back from the disk spool."""
    trajectories: int
    disabled: bool
    """True after repeated 401 answers: sending stopped, data goes to the spool."""
    prompt_version: str | None
    last_error: str | None


@dataclass
class _TrackState:
    sid: str | None = None
    seen: list[Trajectory] = field(default_factory=list)
    resulted: set[str] = field(default_factory=set)
    applied: bool = False
    context: tuple[Any, ...] = ()
    assignment: PromptResult | None = None


class Lightning:
    """An instrumentation instance: ``hooks`` for ClaudeAgentOptions, ``track()``/``query()`` for
    the message stream, ``score()``, ``flush()``/``shutdown()``, ``stats()``, ``prompt()``."""

    def __init__(
        self,
        *,
        collector_url: str | None = None,
        api_key: str | None = None,
        agent_id: str,
        task_type: str | None = None,
        batch_size: int = 10,
        flush_interval: float = 5.0,
        max_batch_bytes: int = 512 * 1024,
        max_buffer_bytes: int = 32 * 1024 * 1024,
        debug: bool | None = None,
        spool: bool = True,
        spool_dir: str | os.PathLike[str] | None = None,
        max_spool_bytes: int = 64 * 1024 * 1024,
        max_field_bytes: int = 32 * 1024,
        redact: bool = True,
        redact_patterns: list[re.Pattern[str] | str] | None = None,
        sanitize: StepSanitizer | None = None,
        request_timeout: float = 10.0,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        shutdown_timeout: float = 5.0,
        handle_process_exit: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        url = collector_url or os.environ.get("LIGHTNING_COLLECTOR_URL") or os.environ.get("COLLECTOR_URL")
        if not url:
            raise ValueError("instrument(): collector_url is required (or set LIGHTNING_COLLECTOR_URL)")
        key = api_key if api_key is not None else os.environ.get("LIGHTNING_API_KEY", "")
        if not isinstance(agent_id, str) or not agent_id:
            raise ValueError("instrument(): agent_id must be a non-empty string")

        def positive(name: str, v: float, allow_zero: bool = False) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0 or (v == 0 and not allow_zero):
                raise ValueError(
                    f"instrument(): {name} must be a {'non-negative' if allow_zero else 'positive'} number"
                )
            return v

        self.agent_id = agent_id
        self.task_type = task_type
        self.batch_size = int(positive("batch_size", batch_size))
        self.flush_interval = float(positive("flush_interval", flush_interval, True))
        self.max_field_bytes = max(256, int(positive("max_field_bytes", max_field_bytes)))
        self.shutdown_timeout = float(positive("shutdown_timeout", shutdown_timeout, True))
        self.debug_enabled = debug if debug is not None else os.environ.get("LIGHTNING_DEBUG") == "1"
        self._metadata = dict(metadata or {})
        self._sanitize = sanitize
        self._redactor = Redactor(redact, redact_patterns or [])
        self._plain = Redactor(False)
        user_agent = f"agent-lightning-instrumentation/{VERSION} python/{sys.version.split()[0]}"
        self._url = url
        self._key = key
        self._request_timeout = float(positive("request_timeout", request_timeout))
        self._user_agent = user_agent
        client = Client(url, key, self._request_timeout, user_agent)
        spool_obj: Spool | None = None
        if spool:
            explicit = spool_dir or os.environ.get("LIGHTNING_SPOOL_DIR")
            # docs/spool.md: an explicit directory is used as is; the default has one
            # subdirectory per collector
            directory = Path(explicit) if explicit else default_spool_dir() / collector_key(url)
            spool_obj = Spool(directory, int(positive("max_spool_bytes", max_spool_bytes)), self._warn, self._debug)
        self._lock = threading.RLock()
        self._sessions: dict[str, Trajectory] = {}
        self._by_id: dict[str, Trajectory] = {}
        self._awaiting: dict[str, collections.deque[Trajectory]] = {}
        self._last_tid: str | None = None
        self._trajectories = 0
        self._tracking = 0
        self._display_seen = False
        self._pending_contexts: collections.deque[_TrackState] = collections.deque()
        # prompt() results and which trajectory records which (see _assignments.py)
        self._assignments = PromptAssignments()
        self._unit = uuid.uuid4().hex
        self._shut = False
        self._previous_sigterm: Any = None
        self._outbox = Outbox(
            OutboxConfig(
                batch_size=self.batch_size,
                flush_interval=self.flush_interval,
                max_batch_bytes=int(positive("max_batch_bytes", max_batch_bytes)),
                max_buffer_bytes=int(positive("max_buffer_bytes", max_buffer_bytes)),
                backoff=Backoff(float(positive("retry_base_delay", retry_base_delay)), float(retry_max_delay)),
            ),
            client,
            self._prepare,
            spool_obj,
            self._start_for,
            self._warn,
            self._debug,
        )
        self.hooks: dict[HookEvent, list[HookMatcher]] = self._build_hooks()
        if handle_process_exit:
            self._attach_process_handlers()
        self._debug(f"[Lightning Instrumentation] Initialized (collector {url}, agent {agent_id})")

    # ------------------------------------------------------------------ logging

    def _debug(self, message: str) -> None:
        if self.debug_enabled:
            # never raises (e.g. a signal handler printing while its thread was printing)
            with contextlib.suppress(Exception):
                print(message, file=sys.stderr, flush=True)

    def _warn(self, message: str) -> None:
        _log.warning(message)

    @property
    def _active(self) -> bool:
        return not self._shut

    # ------------------------------------------------------------------ trajectories

    def _new_trajectory(self, session_id: str) -> Trajectory:
        tid = str(uuid.uuid4())
        now = time.time()
        metadata: dict[str, Any] = {
            **self._metadata,
            "instrumentation": f"agent-lightning-instrumentation@{VERSION} (python)",
        }
        draft: dict[str, Any] = {
            "trajectoryId": tid,
            "agentId": self.agent_id,
            "startTime": _now_iso(now),
            "sessionId": session_id,
            "metadata": metadata,
        }
        if self.task_type is not None:
            draft["taskType"] = self.task_type
        if self._pending_contexts:
            state = self._pending_contexts.popleft()
            self._apply_context(draft, state)
            self._assignments.attribute(draft, state.assignment)
        else:
            self._assignments.attribute(draft)
        t = Trajectory(session_id, tid, now, draft)
        if len(self._by_id) >= MAX_SESSIONS:
            oldest = next(iter(self._by_id))
            self._by_id.pop(oldest, None)
        self._sessions[session_id] = t
        self._by_id[tid] = t
        self._last_tid = tid
        self._trajectories += 1
        t.start_item = self._outbox.add("start", tid, dict(draft))
        self._debug(f"[Lightning Hooks] Trajectory {tid} started (session {session_id})")
        return t

    def _current(self, session_id: str) -> Trajectory:
        t = self._sessions.get(session_id)
        if t is None or t.completed:
            t = self._new_trajectory(session_id)
        return t

    def _patch_start(self, t: Trajectory, fields: dict[str, Any]) -> None:
        if not fields:
            return
        t.start_draft.update(fields)
        if t.start_item is not None:
            self._outbox.update(t.start_item, t.trajectory_id, fields, kind="start")

    def _start_for(self, trajectory_id: str) -> dict[str, Any] | None:
        t = self._by_id.get(trajectory_id)
        return self._prepare("start", dict(t.start_draft)) if t is not None else None

    def _finish(
        self,
        t: Trajectory,
        *,
        status: Literal["succeeded", "failed", "interrupted"],
        error: str | None = None,
        result: object = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if t.completed:
            return
        self._close_all_open(t, status if status != "succeeded" else "completion")
        t.completed = True
        body: dict[str, Any] = {
            "success": status == "succeeded",
            "status": status,
            "totalSteps": t.tool_steps,
            "duration": max(0, round((time.time() - t.start_time) * 1000)),
            "endTime": _now_iso(),
        }
        if error is not None:
            body["error"] = error
        if result is not None:
            body["result"] = result
        if extra:
            body.update(extra)
        waiting = self._awaiting.get(t.session_id)
        if waiting is not None and t in waiting:
            waiting.remove(t)
        self._outbox.add("complete", t.trajectory_id, body)
        self._debug(f"[Lightning Hooks] Trajectory {t.trajectory_id} complete ({status})")

    # ------------------------------------------------------------------ steps

    def _step_metadata(self, t: Trajectory, data: Mapping[str, Any]) -> dict[str, Any]:
        m: dict[str, Any] = {}
        agent_id = _str(data.get("agent_id"))
        if agent_id is not None:
            m["agentId"] = agent_id
            parent = t.parents.get(agent_id)
            if parent is not None:
                m["parentToolUseId"] = parent
        if data.get("agent_type") is not None:
            m["agentType"] = data.get("agent_type")
        if data.get("prompt_id") is not None:
            m["promptId"] = data.get("prompt_id")
        if data.get("mcp_server") is not None:
            m["mcpServer"] = data.get("mcp_server")
        return m

    def _open_step(self, t: Trajectory, data: Mapping[str, Any], tool_use_id: str) -> OpenStep:
        number = t.next_step
        t.next_step += 1
        t.tool_steps += 1
        name = _str(data.get("tool_name")) or "unknown"
        metadata = self._step_metadata(t, data)
        draft: dict[str, Any] = {
            "stepNumber": number,
            "toolName": name,
            "kind": "tool",
            "timestamp": time.time(),  # formatted off the hook path
            "toolUseId": tool_use_id,
            "toolInput": data.get("tool_input"),
            "metadata": metadata,
        }
        item = self._outbox.add("step", t.trajectory_id, draft)
        step = OpenStep(number, name, tool_use_id, time.monotonic(), metadata, item)
        t.open[tool_use_id] = step
        return step

    def _close_step(
        self,
        t: Trajectory,
        step: OpenStep,
        *,
        closed_by: str,
        output: object = None,
        has_output: bool = False,
        error: str | None = None,
        duration_ms: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        t.open.pop(step.tool_use_id, None)
        duration = duration_ms if duration_ms is not None else (time.monotonic() - step.started) * 1000
        fields: dict[str, Any] = {
            "stepNumber": step.step_number,
            "toolName": step.tool_name,
            "kind": "tool",
            "toolUseId": step.tool_use_id,
            "durationMs": max(0, round(duration)),
            "metadata": {**step.metadata, **(extra or {}), "closedBy": closed_by},
        }
        if has_output:
            fields["toolOutput"] = output
        if error is not None:
            fields["error"] = error
        step.item = self._outbox.update(step.item, t.trajectory_id, fields)

    def _close_all_open(self, t: Trajectory, reason: str) -> None:
        for step in list(t.open.values()):
            self._close_step(t, step, closed_by=reason, error=f"{NO_POST_HOOK} before {reason}")

    def _add_message(self, t: Trajectory, text: str, metadata: Mapping[str, Any] | None = None) -> None:
        if not text or text == t.last_message:
            return
        t.last_message = text
        number = t.next_step
        t.next_step += 1
        draft: dict[str, Any] = {
            "stepNumber": number,
            "toolName": "assistant",
            "kind": "message",
            "timestamp": time.time(),  # formatted off the hook path
            "toolOutput": text,
        }
        if metadata:
            draft["metadata"] = dict(metadata)
        self._outbox.add("step", t.trajectory_id, draft)

    def _add_event(self, t: Trajectory, event: str, data: Mapping[str, Any], metadata: dict[str, Any]) -> None:
        number = t.next_step
        t.next_step += 1
        details = {
            k: v for k, v in data.items() if k not in ("session_id", "transcript_path", "cwd", "hook_event_name")
        }
        self._outbox.add(
            "step",
            t.trajectory_id,
            {
                "stepNumber": number,
                "toolName": event,
                "kind": "event",
                "timestamp": time.time(),  # formatted off the hook path
                "toolInput": details,
                "metadata": metadata,
            },
        )

    # ------------------------------------------------------------------ hooks

    def _build_hooks(self) -> dict[HookEvent, list[HookMatcher]]:
        handlers: dict[str, Callable[[Mapping[str, Any], str | None], None]] = {
            "UserPromptSubmit": self._on_user_prompt,
            "PreToolUse": self._on_pre_tool,
            "PostToolUse": lambda d, _id: self._on_post_tool(d, failure=False),
            "PostToolUseFailure": lambda d, _id: self._on_post_tool(d, failure=True),
            "PostToolBatch": self._on_post_tool_batch,
            "PermissionRequest": self._on_permission_request,
            "Stop": lambda d, _id: self._on_stop(d, None),
            "StopFailure": self._on_stop_failure,
            "SubagentStart": self._on_subagent,
            "SubagentStop": self._on_subagent,
            "MessageDisplay": self._on_message_display,
            "SessionStart": self._on_session_start,
            "SessionEnd": self._on_session_end,
        }

        def wrap(event: str, handler: Callable[[Mapping[str, Any], str | None], None]) -> Any:
            async def callback(input_data: Any, tool_use_id: str | None, context: Any) -> Any:
                if self._shut or not (type(input_data) is dict or isinstance(input_data, Mapping)):
                    return {}
                try:
                    with self._lock:
                        handler(input_data, tool_use_id)
                except Exception as e:
                    self._debug(f"[Lightning Hooks] {event} handler error (ignored): {error_message(e)}")
                return {}

            callback.__name__ = f"lightning_{event}"
            return callback

        try:
            from claude_agent_sdk import HookMatcher as Matcher
        except ImportError:  # the SDK is a dependency; tolerate its absence for unit use
            hooks_plain: dict[Any, list[Any]] = {
                e: [{"matcher": None, "hooks": [wrap(e, h)]}] for e, h in handlers.items()
            }
            return hooks_plain
        hooks: dict[Any, list[Any]] = {e: [Matcher(hooks=[wrap(e, h)])] for e, h in handlers.items()}
        return hooks

    @staticmethod
    def _sid(data: Mapping[str, Any]) -> str:
        return _str(data.get("session_id")) or "unknown-session"

    def _on_user_prompt(self, data: Mapping[str, Any], _id: str | None) -> None:
        sid = self._sid(data)
        t = self._sessions.get(sid)
        if t is not None and not t.completed and t.has_prompt:
            if t.stopped is not None:
                # its Stop came; a track() will complete it from the result message
                self._awaiting.setdefault(sid, collections.deque()).append(t)
                self._sessions.pop(sid, None)
            else:
                self._finish(t, status="interrupted", error="a new prompt arrived before this one finished")
            t = None
        if t is None or t.completed:
            t = self._new_trajectory(sid)
        t.has_prompt = True
        fields: dict[str, Any] = {}
        prompt = _str(data.get("prompt"))
        if prompt is not None:
            fields["prompt"] = prompt
        if data.get("prompt_id") is not None:
            fields["metadata"] = {**t.start_draft.get("metadata", {}), "promptId": data.get("prompt_id")}
        self._patch_start(t, fields)

    def _on_pre_tool(self, data: Mapping[str, Any], _id: str | None) -> None:
        t = self._current(self._sid(data))
        tool_use_id = _str(data.get("tool_use_id")) or f"no-id-{uuid.uuid4()}"
        if self.debug_enabled:
            self._debug(f"[Lightning Hooks] Pre-tool: {data.get('tool_name')}")
        if tool_use_id not in t.open:
            self._open_step(t, data, tool_use_id)

    def _on_post_tool(self, data: Mapping[str, Any], *, failure: bool) -> None:
        t = self._current(self._sid(data))
        tool_use_id = _str(data.get("tool_use_id")) or f"no-id-{uuid.uuid4()}"
        if self.debug_enabled:
            self._debug(f"[Lightning Hooks] Post-tool: {data.get('tool_name')}{' (failed)' if failure else ''}")
        step = t.open.get(tool_use_id) or self._open_step(t, data, tool_use_id)
        extra: dict[str, Any] = {}
        if failure and data.get("is_interrupt") is not None:
            extra["isInterrupt"] = data.get("is_interrupt")
        duration = _num(data.get("duration_ms"))
        if failure:
            err = data.get("error")
            error = err if isinstance(err, str) else ("Tool failed" if err is None else repr(err))
            self._close_step(t, step, closed_by="PostToolUseFailure", error=error, duration_ms=duration, extra=extra)
        else:
            self._close_step(
                t,
                step,
                closed_by="PostToolUse",
                output=data.get("tool_response"),
                has_output=True,
                duration_ms=duration,
            )

    def _on_post_tool_batch(self, data: Mapping[str, Any], _id: str | None) -> None:
        t = self._sessions.get(self._sid(data))
        if t is None or not t.open:
            return
        calls = data.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            if not isinstance(call, Mapping):
                continue
            step = t.open.get(_str(call.get("tool_use_id")) or "")
            if step is None:
                continue
            said = _str(call.get("tool_response"))
            error = f"{NO_POST_HOOK}: {said}" if said else f"{NO_POST_HOOK} (denied, timed out or interrupted)"
            self._close_step(t, step, closed_by="PostToolBatch", error=error)

    def _on_permission_request(self, data: Mapping[str, Any], tool_use_id: str | None) -> None:
        t = self._sessions.get(self._sid(data))
        if t is None:
            return
        wanted = _str(data.get("tool_use_id")) or tool_use_id
        for step in t.open.values():
            if step.tool_use_id == wanted or (wanted is None and step.tool_name == data.get("tool_name")):
                step.metadata["permissionRequested"] = True

    def _on_stop(self, data: Mapping[str, Any], error: str | None) -> None:
        t = self._sessions.get(self._sid(data))
        if t is None or t.completed:
            return
        self._close_all_open(t, "StopFailure" if error else "Stop")
        last = _str(data.get("last_assistant_message"))
        if t.tracked or self._tracking > 0:
            t.stopped = (error, last)
            return
        if last and error is None:
            self._add_message(t, last)
        self._finish(t, status="failed" if error else "succeeded", error=error, result=last)

    def _on_stop_failure(self, data: Mapping[str, Any], _id: str | None) -> None:
        # error_details is often absent; the synthetic assistant message then carries the API's
        # text ("API Error: 400 …"), as in the TypeScript package
        details = _str(data.get("error_details")) or _str(data.get("last_assistant_message"))
        self._on_stop(data, f"{_str(data.get('error')) or 'unknown'}{': ' + details if details else ''}")

    def _on_subagent(self, data: Mapping[str, Any], _id: str | None) -> None:
        t = self._current(self._sid(data))
        event = _str(data.get("hook_event_name")) or "Subagent"
        agent_id = _str(data.get("agent_id"))
        if event == "SubagentStart" and agent_id is not None and agent_id not in t.parents:
            linked = set(t.parents.values())
            for step in t.open.values():
                if step.tool_name in SPAWNING_TOOLS and step.tool_use_id not in linked:
                    t.parents[agent_id] = step.tool_use_id
                    break
        self._add_event(t, event, data, self._step_metadata(t, data))

    def _on_message_display(self, data: Mapping[str, Any], _id: str | None) -> None:
        self._display_seen = True
        t = self._current(self._sid(data))
        key = f"{data.get('message_id')}:{data.get('index')}"
        delta = _str(data.get("delta")) or ""
        parts = t.display.setdefault(key, [])
        parts.append(delta)
        if data.get("final") is True:
            del t.display[key]
            self._add_message(t, "".join(parts), self._step_metadata(t, data))

    def _on_session_start(self, data: Mapping[str, Any], _id: str | None) -> None:
        t = self._current(self._sid(data))
        fields: dict[str, Any] = {}
        if _str(data.get("model")) and "model" not in t.start_draft:
            fields["model"] = data["model"]
        if _str(data.get("source")):
            fields["metadata"] = {**t.start_draft.get("metadata", {}), "sessionSource": data["source"]}
        self._patch_start(t, fields)

    def _on_session_end(self, data: Mapping[str, Any], _id: str | None) -> None:
        t = self._sessions.get(self._sid(data))
        if t is not None and not t.completed:
            if t.stopped is not None and not t.tracked:
                self._finish(t, status="failed" if t.stopped[0] else "succeeded", error=t.stopped[0])
            else:
                self._close_all_open(t, "SessionEnd")

    # ------------------------------------------------------------------ track() / query()

    def track(
        self,
        messages: AsyncIterable[T],
        *,
        prompt: str | None = None,
        system_prompt: object = None,
        task_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        model: str | None = None,
        assignment: PromptResult | None = None,
    ) -> AsyncIterator[T]:
        """Wraps the SDK's message stream (``query(...)`` or ``client.receive_response()``): yields
        every message unchanged and records the model, assistant text and the result (cost, usage,
        turns, errors). Re-raises exactly what the SDK raises. ``assignment`` is the
        ``prompt_details()`` result this run uses: its version and assignment are recorded on the
        run's trajectory (needed when prompt() is asked for several units before their runs start)."""
        context = (prompt, _system_prompt_text(system_prompt), task_type, dict(metadata or {}), model)
        state = _TrackState(context=context, assignment=assignment)
        with self._lock:
            # the trajectory this stream belongs to is usually created by its UserPromptSubmit hook,
            # before the first message: the context goes into its start record from the outset
            self._pending_contexts.append(state)
        return self._tracked(messages, state, context)

    async def _tracked(
        self,
        messages: AsyncIterable[T],
        state: _TrackState,
        context: tuple[Any, ...],
    ) -> AsyncIterator[T]:
        with self._lock:
            self._tracking += 1
        ended_by: str | None = "query stopped before a result message (iteration ended early)"
        status: Literal["failed", "interrupted"] = "interrupted"
        try:
            async for message in messages:
                try:
                    with self._lock:
                        self._observe(message, state, context)
                except Exception as e:
                    self._debug(f"[Lightning Instrumentation] track() observer error (ignored): {error_message(e)}")
                yield message
            ended_by = None
        except Exception as e:
            ended_by, status = error_message(e), "failed"
            raise
        except BaseException as e:  # cancellation, KeyboardInterrupt, GeneratorExit
            if not isinstance(e, GeneratorExit):
                ended_by = f"{type(e).__name__}: {error_message(e)}" if str(e) else type(e).__name__
            raise
        finally:
            with contextlib.suppress(Exception), self._lock:
                self._tracking -= 1
                with contextlib.suppress(ValueError):
                    self._pending_contexts.remove(state)
                self._end_track(state, ended_by, status)

    def _end_track(self, state: _TrackState, ended_by: str | None, status: Literal["failed", "interrupted"]) -> None:
        if self._shut:
            return
        for t in state.seen:
            if t.completed or t.trajectory_id in state.resulted:
                continue
            if t.stopped is not None and ended_by is None:
                err, last = t.stopped
                self._finish(t, status="failed" if err else "succeeded", error=err, result=last)
            else:
                self._finish(t, status=status, error=ended_by or "the message stream ended without a result")

    @staticmethod
    def _apply_context(into: dict[str, Any], state: _TrackState, current: Mapping[str, Any] | None = None) -> None:
        state.applied = True
        prompt, system_prompt, task_type, md, *rest = state.context
        current = into if current is None else current
        if prompt is not None and current.get("prompt") is None:
            into["prompt"] = prompt
        if system_prompt is not None:
            into["systemPrompt"] = system_prompt
        if task_type is not None:
            into["taskType"] = task_type
        if rest and rest[0] and current.get("model") is None:
            into["model"] = rest[0]
        if md:
            into["metadata"] = {**(current.get("metadata") or {}), **md}

    def _observe(self, message: object, state: _TrackState, context: tuple[Any, ...]) -> None:
        if self._shut:
            return
        kind = type(message).__name__
        data = getattr(message, "data", None)
        sid = _str(getattr(message, "session_id", None))
        if sid is None and isinstance(data, Mapping):
            sid = _str(data.get("session_id"))
        if sid is not None:
            state.sid = sid
        if state.sid is None:
            return
        if kind == "ResultMessage":
            self._on_result(message, state)
            return
        t = self._current(state.sid)
        if t not in state.seen:
            state.seen.append(t)
        t.tracked = True
        if not state.applied:
            with contextlib.suppress(ValueError):
                self._pending_contexts.remove(state)
            fields: dict[str, Any] = {}
            self._apply_context(fields, state, t.start_draft)
            # now that the system prompt (or the run's own prompt() result) is known
            merged = {**t.start_draft, **fields}
            self._assignments.attribute(merged, state.assignment)
            for key in ("promptVersion", "metadata"):
                if key in merged:
                    fields[key] = merged[key]
            if "promptVersion" not in merged and "promptVersion" in t.start_draft:
                fields["promptVersion"] = None
            self._patch_start(t, fields)
        subtype = getattr(message, "subtype", None)
        if kind == "SystemMessage" and isinstance(data, Mapping):
            if subtype == "init":
                fields = {}
                if _str(data.get("model")):
                    fields["model"] = data["model"]
                md = dict(t.start_draft.get("metadata", {}))
                for src, dst in (
                    ("claude_code_version", "claudeCodeVersion"),
                    ("permissionMode", "permissionMode"),
                    ("cwd", "cwd"),
                ):
                    if data.get(src) is not None:
                        md[dst] = data[src]
                fields["metadata"] = md
                self._patch_start(t, fields)
            elif subtype == "permission_denied":
                step = t.open.get(_str(data.get("tool_use_id")) or "")
                if step is not None:
                    reason = _str(data.get("message")) or "the tool call was not allowed"
                    self._close_step(t, step, closed_by="permission_denied", error=f"Permission denied: {reason}")
        elif kind == "AssistantMessage":
            parent = _str(getattr(message, "parent_tool_use_id", None))
            if not self._display_seen:
                for block in getattr(message, "content", None) or []:
                    text = getattr(block, "text", None)
                    if type(block).__name__ == "TextBlock" and isinstance(text, str):
                        self._add_message(t, text, {"parentToolUseId": parent} if parent else None)
            model = _str(getattr(message, "model", None))
            if model and model != "<synthetic>" and "model" not in t.start_draft:
                self._patch_start(t, {"model": model})
        elif kind == "UserMessage" and t.open:
            for block in getattr(message, "content", None) or []:
                if type(block).__name__ != "ToolResultBlock":
                    continue
                step = t.open.get(getattr(block, "tool_use_id", "") or "")
                if step is None:
                    continue
                content = getattr(block, "content", None)
                if getattr(block, "is_error", None):
                    text = _tool_result_text(content)
                    self._close_step(t, step, closed_by="tool_result", error=f"{NO_POST_HOOK}: {text}")
                else:
                    self._close_step(t, step, closed_by="tool_result", output=content, has_output=True)

    def _on_result(self, message: object, state: _TrackState) -> None:
        sid = state.sid or ""
        waiting = self._awaiting.get(sid)
        t = waiting[0] if waiting else self._sessions.get(sid)
        if t is None or t.completed:
            return
        if t not in state.seen:
            state.seen.append(t)
        state.resulted.add(t.trajectory_id)
        is_error = getattr(message, "is_error", False) is True
        result = _str(getattr(message, "result", None))
        extra: dict[str, Any] = {}
        for attr, key in (("total_cost_usd", "costUsd"), ("num_turns", "numTurns")):
            v = _num(getattr(message, attr, None))
            if v is not None:
                extra[key] = v if key == "costUsd" else int(v)
        usage = _usage(getattr(message, "usage", None))
        if usage:
            extra["usage"] = usage
        md: dict[str, Any] = {}
        for attr, key in (
            ("subtype", "subtype"),
            ("stop_reason", "stopReason"),
            ("terminal_reason", "terminalReason"),
            ("permission_denials", "permissionDenials"),
            ("model_usage", "modelUsage"),
        ):
            v = getattr(message, attr, None)
            if v:
                md[key] = v
        if md:
            extra["metadata"] = md
        if result and not is_error:
            self._add_message(t, result)
        error = None
        if is_error:
            errors = [e for e in (getattr(message, "errors", None) or []) if isinstance(e, str)]
            error = "\n".join(errors) if errors else (result or str(getattr(message, "subtype", "error")))
        duration = _num(getattr(message, "duration_ms", None))
        if duration is not None:
            extra["duration"] = round(duration)  # the SDK's own measure of the run
        self._finish(t, status="failed" if is_error else "succeeded", error=error, result=result, extra=extra)

    def query(
        self,
        *,
        prompt: str | AsyncIterable[dict[str, Any]],
        options: ClaudeAgentOptions | None = None,
        transport: Any = None,
        assignment: PromptResult | None = None,
    ) -> AsyncIterator[Message]:
        """Drop-in for ``claude_agent_sdk.query``: the same arguments, this instance's hooks merged
        into ``options.hooks``, and the stream tracked (equals ``track(query(...))``); ``assignment``
        as for ``track()``."""
        from claude_agent_sdk import ClaudeAgentOptions as Options
        from claude_agent_sdk import query as sdk_query

        opts = options if options is not None else Options()
        merged = dataclasses.replace(opts, hooks=merge_hooks(self.hooks, opts.hooks))
        stream = sdk_query(prompt=prompt, options=merged, transport=transport)
        return self.track(
            stream,
            prompt=prompt if isinstance(prompt, str) else None,
            system_prompt=opts.system_prompt,
            assignment=assignment,
        )

    # ------------------------------------------------------------------ scores

    def current_trajectory_id(self) -> str | None:
        """The id of the trajectory started most recently (the current or last one), or None."""
        return self._last_tid

    def score(
        self,
        name: str,
        value: float | bool | str,
        *,
        comment: str | None = None,
        trajectory_id: str | None = None,
        step_number: int | None = None,
        source: Literal["human", "llm", "code", "sdk"] | None = None,
        id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Queues a score for a trajectory (default: the current/last one), delivered, retried and
        spooled like steps. Returns the score's client id (a UUID unless given), or None when the
        score was refused (bad name or value, no trajectory): a warning says why, nothing raises."""
        tid = trajectory_id or self._last_tid
        problem = None
        if not isinstance(name, str) or not _NAME_RE.match(name):
            problem = "name must be 1..64 characters of [A-Za-z0-9_.:-]"
        elif isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            problem = "value must be a finite number"
        elif isinstance(value, str) and not 1 <= len(value) <= 256:
            problem = "a label value must be 1..256 characters"
        elif not isinstance(value, (bool, int, float, str)):
            problem = "value must be a number, a boolean or a string label"
        elif id is not None and not _ID_RE.match(id):
            problem = "id must be 1..128 characters of [A-Za-z0-9_.:-]"
        elif tid is None:
            problem = "no trajectory yet (pass trajectory_id)"
        elif self._shut:
            problem = "the instance is shut down"
        if problem is not None:
            self._warn(f"[Lightning Instrumentation] score({name!r}) ignored: {problem}")
            return None
        assert tid is not None
        score_id = id or str(uuid.uuid4())
        body: dict[str, Any] = {"id": score_id, "name": name, "value": value, "source": source or "sdk"}
        if comment is not None:
            body["comment"] = comment
        if step_number is not None:
            body["stepNumber"] = step_number
        if metadata is not None:
            body["metadata"] = dict(metadata)
        self._outbox.add("score", tid, body)
        return score_id

    # ------------------------------------------------------------------ preparation (sender thread)

    def _prepare(self, kind: str, d: dict[str, Any]) -> dict[str, Any]:
        if kind == "step":
            return self._prepare_step(d)
        if kind == "complete":
            return self._prepare_complete(d)
        if kind == "score":
            out = dict(d)
            if "comment" in out:
                out["comment"] = cap_score_comment(self._text(out["comment"]))
            if "metadata" in out:
                out["metadata"] = sanitize_field(out["metadata"], self._redactor, self.max_field_bytes)
            return out
        return self._prepare_start(d)

    def _text(self, v: object) -> str:
        safe = sanitize_field(v, self._redactor, self.max_field_bytes)
        return safe if isinstance(safe, str) else str(safe)

    def _prepare_start(self, d: dict[str, Any]) -> dict[str, Any]:
        out = {
            k: d[k]
            for k in (
                "trajectoryId",
                "agentId",
                "startTime",
                "taskType",
                "sessionId",
                "promptVersion",
                "model",
            )
            if d.get(k) is not None
        }
        for key in ("prompt", "systemPrompt"):
            if d.get(key) is not None:
                out[key] = self._text(d[key])
        if d.get("metadata") is not None:
            md = sanitize_field(d["metadata"], self._redactor, self.max_field_bytes)
            if isinstance(md, dict):
                out["metadata"] = md
        return out

    def _prepare_complete(self, d: dict[str, Any]) -> dict[str, Any]:
        out = {
            k: d[k]
            for k in (
                "success",
                "status",
                "totalSteps",
                "duration",
                "endTime",
                "costUsd",
                "usage",
                "numTurns",
            )
            if d.get(k) is not None
        }
        if d.get("result") is not None:
            out["result"] = sanitize_field(d["result"], self._redactor, self.max_field_bytes)
        if d.get("error") is not None:
            out["error"] = self._text(d["error"])
        if d.get("metadata") is not None:
            md = sanitize_field(d["metadata"], self._redactor, self.max_field_bytes)
            if isinstance(md, dict):
                out["metadata"] = md
        return out

    def _prepare_step(self, d: dict[str, Any]) -> dict[str, Any]:
        limit = self.max_field_bytes
        step: dict[str, Any] = {"stepNumber": d["stepNumber"], "toolName": d.get("toolName") or "unknown"}
        for key in ("kind", "timestamp", "toolUseId", "durationMs"):
            if d.get(key) is not None:
                step[key] = d[key]
        if isinstance(step.get("timestamp"), float):
            step["timestamp"] = _now_iso(step["timestamp"])
        for key in ("toolInput", "toolOutput", "metadata"):
            if key in d:
                step[key] = to_json_safe(d[key], self._redactor, limit)
        if d.get("error") is not None:
            step["error"] = self._text(d["error"])
        if self._sanitize is not None:
            step = self._user_sanitize(step)
        for key in ("toolInput", "toolOutput"):
            if key in step:
                step[key] = truncate_json(step[key], limit)
        if isinstance(step.get("error"), str):
            step["error"] = truncate_json(step["error"], limit)
        if "metadata" in step:
            md = truncate_json(step["metadata"], limit)
            step["metadata"] = md if isinstance(md, dict) else {"truncated": md}
        return step

    def _user_sanitize(self, step: dict[str, Any]) -> dict[str, Any]:
        """Runs the user's sanitizer on a copy; fails closed (fields withheld, never sent raw)."""
        assert self._sanitize is not None
        try:
            candidate = copy.deepcopy(step)
            returned = self._sanitize(candidate)
            result = candidate if returned is None else returned
            if not isinstance(result, dict):
                raise TypeError("sanitize() must return a dict or None")
            out: dict[str, Any] = {"stepNumber": step["stepNumber"], "toolName": step["toolName"]}
            for key in ("kind", "timestamp", "toolUseId", "durationMs"):
                if key in step:
                    out[key] = step[key]
            for key in ("toolInput", "toolOutput", "metadata"):
                if key in result:
                    out[key] = to_json_safe(result[key], self._plain)
            if result.get("error") is not None:
                out["error"] = str(to_json_safe(result["error"], self._plain))
            return out
        except Exception as e:
            self._debug(f"[Lightning Instrumentation] sanitize() raised; fields withheld: {error_message(e)}")
            withheld: dict[str, Any] = {
                k: step[k]
                for k in ("stepNumber", "toolName", "kind", "timestamp", "toolUseId", "durationMs")
                if k in step
            }
            for key in ("toolInput", "toolOutput", "error"):
                if step.get(key) is not None:
                    withheld[key] = "[withheld: sanitize() failed]"
            withheld["metadata"] = {
                **(step.get("metadata") or {}),
                "sanitizeError": "sanitize() failed; fields withheld",
            }
            return withheld

    # ------------------------------------------------------------------ prompts

    def _prompt_sync(self, fallback: str, unit: str | None, timeout: float) -> PromptResult:
        result = self._ask(fallback, self._unit if unit is None else unit, timeout)
        with self._lock:
            self._assignments.remember(result)
        return result

    def _ask(self, fallback: str, unit: str, timeout: float) -> PromptResult:
        import urllib.parse

        def use_fallback(error: str | None = None, rollout_id: object = None) -> PromptResult:
            if error is None:  # the collector assigned the rollout's baseline: no stored prompt
                return PromptResult(
                    fallback,
                    None,
                    "fallback",
                    {"arm": "fallback", "unit": unit, "rolloutId": rollout_id, "version": None},
                )
            return PromptResult(fallback, None, "fallback", {"arm": "unassigned", "unit": unit, "error": error})

        if self._outbox.paused:
            return use_fallback("the collector rejected the API key")
        if not isinstance(unit, str) or not (1 <= len(unit) <= 256):
            self._warn("[Lightning Instrumentation] prompt(): unit must be 1-256 characters; using the fallback")
            return use_fallback("unit must be 1-256 characters")
        agent = urllib.parse.quote(self.agent_id, safe="")
        # prompt() never waits long for a collector: `timeout` seconds per request.
        client = Client(self._url, self._key, timeout, self._user_agent)
        try:
            outcome = client.request(
                "GET", f"/api/agents/{agent}/prompts/assignment?unit={urllib.parse.quote(unit, safe='')}"
            )
            # A collector from before rollouts has no assignment route: ask for the promoted version.
            if outcome.kind == "rejected" and outcome.status == 404 and "no API route" in (outcome.error or ""):
                outcome = client.request("GET", f"/api/agents/{agent}/prompts/latest")
        finally:
            client.close()
        body = outcome.body
        if outcome.kind == "ok" and isinstance(body, Mapping):
            text, version, arm = body.get("text"), body.get("version"), body.get("arm", "promoted")
            rollout_id = body.get("rolloutId")
            if isinstance(text, str) and isinstance(version, (int, str)) and not isinstance(version, bool):
                self._debug(f"[Lightning Instrumentation] Using prompt version {version} ({arm}) for unit {unit}")
                v = str(version)
                return PromptResult(
                    text, v, "collector", {"arm": arm, "unit": unit, "rolloutId": rollout_id, "version": v}
                )
            if arm == "fallback":
                return use_fallback(None, rollout_id)
        if outcome.kind == "rejected" and outcome.status == 404:
            return use_fallback("no prompt stored for this agent")
        if outcome.kind != "ok":
            self._warn(f"[Lightning Instrumentation] Could not fetch the prompt, using the fallback: {outcome.error}")
        return use_fallback(outcome.error or "unexpected answer")

    async def prompt(self, fallback: str, unit: str | None = None, timeout: float = 3.0) -> str:
        """The prompt this run should use: the canary or the promoted version the collector's
        assignment route gives ``unit`` (default: one id per instance, so each run is one draw),
        else ``fallback`` (no promoted version, the key rejected, or no answer within ``timeout``
        seconds). The run records its ``promptVersion`` and assignment (metadata
        ``promptAssignment``); see ``prompt_details()`` for runs of several units at once."""
        return (await self.prompt_details(fallback, unit, timeout))[0]

    async def prompt_details(self, fallback: str, unit: str | None = None, timeout: float = 3.0) -> PromptResult:
        """``(text, version, source)`` where source is ``"collector"`` or ``"fallback"``, with
        ``arm``, ``unit``, ``rollout_id`` and ``assignment``. Pass it to ``track()``/``query()``
        as ``assignment=`` when several units are asked for before their runs start."""
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            self._warn("[Lightning Instrumentation] prompt(): timeout must be a positive number of seconds; using 3")
            timeout = 3.0
        return await _in_thread(self._prompt_sync, fallback, unit, float(timeout))

    # ------------------------------------------------------------------ lifecycle

    def stats(self) -> LightningStats:
        c = self._outbox.counters
        return LightningStats(
            sent=c.sent,
            queued=self._outbox.pending,
            queued_bytes=self._outbox.queued_bytes,
            dropped=c.dropped,
            dropped_bytes=c.dropped_bytes,
            failed=c.failed,
            retries=c.retries,
            spooled=c.spooled,
            replayed=c.replayed,
            trajectories=self._trajectories,
            disabled=self._outbox.paused,
            prompt_version=self._assignments.latest_version,
            last_error=c.last_error,
        )

    @property
    def spool_dir(self) -> Path | None:
        return self._outbox.spool.dir if self._outbox.spool is not None else None

    def flush_sync(self, timeout: float | None = None) -> bool:
        """Blocks until everything queued is delivered or `timeout` (default shutdown_timeout)
        seconds passed. Returns True when nothing is left. Never raises."""
        return self._outbox.flush(self.shutdown_timeout if timeout is None else timeout)

    async def flush(self, timeout: float | None = None) -> bool:
        """Sends everything queued now, retrying until delivered or the timeout; never raises."""
        return await _in_thread(self.flush_sync, timeout)

    def shutdown_sync(self, timeout: float | None = None, *, reason: str | None = None, failed: bool = False) -> None:
        """Completes unfinished trajectories as interrupted (or failed), delivers within `timeout`,
        writes the rest to the spool, and stops. Idempotent; never raises."""
        with self._lock:
            if self._shut:
                return
            for t in [*self._sessions.values(), *(t for q in self._awaiting.values() for t in q)]:
                if not t.completed:
                    if t.stopped is not None and not failed and reason is None:
                        err, last = t.stopped
                        self._finish(t, status="failed" if err else "succeeded", error=err, result=last)
                    else:
                        self._finish(
                            t,
                            status="failed" if failed else "interrupted",
                            error=reason or "shutdown() was called before the agent finished",
                        )
            self._shut = True
        self._detach_process_handlers()
        try:
            self._outbox.flush(self.shutdown_timeout if timeout is None else timeout)
        finally:
            self._outbox.close()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Flushes, stops, and writes what could not be delivered to the spool; returns within the
        timeout (default ``shutdown_timeout``) whatever the collector does."""
        await _in_thread(self.shutdown_sync, timeout)

    # ------------------------------------------------------------------ process exit

    def _attach_process_handlers(self) -> None:
        atexit.register(self._at_exit)
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                    self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _detach_process_handlers(self) -> None:
        with contextlib.suppress(Exception):
            atexit.unregister(self._at_exit)
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                    signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def _at_exit(self) -> None:
        started = time.time()
        self._debug(f"[Lightning Instrumentation] exit: delivering what is left (at most {self.shutdown_timeout:g} s)")
        try:
            self._exit_shutdown()
        finally:
            self._debug(
                f"[Lightning Instrumentation] exit: done in {time.time() - started:.3f} s (started at {started:.3f})"
            )

    def _exit_shutdown(self) -> None:
        exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        if isinstance(exc, KeyboardInterrupt):
            self.shutdown_sync(reason="the process was interrupted (SIGINT) before the agent finished")
        elif isinstance(exc, BaseException):
            from_sdk = type(exc).__module__.startswith("claude_agent_sdk")
            text = f"{type(exc).__name__}: {error_message(exc)}"
            if from_sdk:
                self.shutdown_sync(reason=text, failed=True)
            else:
                self.shutdown_sync(reason=f"the process ended with an exception before the agent finished: {text}")
        else:
            self.shutdown_sync(reason="the process exited before the agent finished")

    def _on_sigterm(self, signum: int, frame: object) -> None:
        # Runs on the main thread between two bytecodes, maybe while that very thread holds the
        # instrumentation's locks (inside a hook or track()). Both locks are re-entrant, so the
        # shutdown here never waits for a lock its own thread holds: it completes the unfinished
        # trajectories, delivers within shutdown_timeout and spools the rest synchronously, then
        # the signal's default action ends the process.
        with contextlib.suppress(Exception):
            self.shutdown_sync(reason="the process received SIGTERM before the agent finished")
        with contextlib.suppress(Exception):
            # a shutdown() already under way elsewhere would not finish before the process ends:
            # spool what it has not delivered yet (idempotent)
            self._outbox.close()
        previous = self._previous_sigterm if self._previous_sigterm is not None else signal.SIG_DFL
        with contextlib.suppress(Exception):
            signal.signal(signal.SIGTERM, previous)
        if callable(previous):
            previous(signum, frame)
        else:
            os.kill(os.getpid(), signal.SIGTERM)


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Runs a blocking call off the event loop (anyio, so asyncio and trio both work)."""
    import anyio.to_thread

    return await anyio.to_thread.run_sync(fn, *args)


instrument = Lightning
"""Creates an instrumentation instance: ``instrument(collector_url=…, api_key=…, agent_id=…)``.
Only bad options raise, here; nothing raises later."""


def to_json(value: object) -> JsonValue:
    """JSON helper for callers: any value as JSON data the collector accepts."""
    return to_json_safe(value, Redactor(False))
