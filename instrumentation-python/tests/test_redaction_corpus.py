"""The shared redaction corpus (testdata/redaction/ at the repository root, the same files the
TypeScript package's tests run), with the corpus's pass rule (testdata/redaction/README.md) and
the TypeScript test's checks: each text goes through the public hook path (a Bash call whose
command is the text and whose stdout is the text too; a failing call whose error is the text) to
the real collector, through a proxy that keeps every request body.

- Recall: no secret, and no 16-character piece of one, in any string (keys and values) of any
  request body; none in the debug output or the warnings either.
- False positives: every benign text is stored byte for byte as the command and as the output.
- The corpus has the shape and size the issue asks for.

The files must be there: a missing corpus fails, it is never skipped."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent_lightning import Lightning

from .helpers import REPO_ROOT, Collector, FlakyProxy, rand, tool_steps
from .sim import call

CORPUS = Path(os.environ.get("REDACTION_CORPUS_DIR") or REPO_ROOT / "testdata" / "redaction")


def load(name: str) -> list[dict[str, Any]]:
    path = CORPUS / name
    assert path.is_file(), f"the shared redaction corpus is missing: {path}"
    data = json.loads(path.read_text("utf-8"))
    assert isinstance(data, list) and data, f"{path} must be a non-empty JSON array"
    return data


def strings(value: Any, out: list[str]) -> list[str]:
    """Every string (keys and values) of a JSON value."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for v in value:
            strings(v, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            out.append(k)
            strings(v, out)
    return out


async def run_through_hooks(collector: Collector, texts: list[str], *, debug: bool, failures: bool) -> dict[str, Any]:
    """One prompt whose Bash calls have the texts as command and stdout (and, with `failures`, a
    failing Read call per text with the text as its error), delivered to the real collector."""
    proxy = FlakyProxy(collector.url, fail_after_forward=0)
    a = f"py-corpus-{rand()}"
    try:
        lightning = Lightning(
            collector_url=proxy.url,
            api_key=collector.api_key,
            agent_id=a,
            spool=False,
            handle_process_exit=False,
            debug=debug,
            batch_size=50,
            max_batch_bytes=4 * 1024 * 1024,
        )
        sid = str(uuid.uuid4())
        base = {"session_id": sid, "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp"}
        await call(
            lightning, "UserPromptSubmit", {**base, "hook_event_name": "UserPromptSubmit", "prompt": "run the corpus"}
        )
        for i, text in enumerate(texts):
            tid = f"toolu_corpus_{i}"
            tool_input = {"command": text, "description": "corpus entry"}
            pre = {**base, "tool_name": "Bash", "tool_input": tool_input, "tool_use_id": tid}
            await call(lightning, "PreToolUse", {**pre, "hook_event_name": "PreToolUse"}, tid)
            response = {"stdout": text, "stderr": "", "interrupted": False}
            await call(
                lightning, "PostToolUse", {**pre, "hook_event_name": "PostToolUse", "tool_response": response}, tid
            )
        if failures:
            for i, text in enumerate(texts):
                tid = f"toolu_corpus_fail_{i}"
                pre = {**base, "tool_name": "Read", "tool_input": {"file_path": "/tmp/x"}, "tool_use_id": tid}
                await call(lightning, "PreToolUse", {**pre, "hook_event_name": "PreToolUse"}, tid)
                await call(
                    lightning,
                    "PostToolUseFailure",
                    {**pre, "hook_event_name": "PostToolUseFailure", "error": text},
                    tid,
                )
        await call(lightning, "Stop", {**base, "hook_event_name": "Stop", "last_assistant_message": "done"})
        assert await lightning.flush(30)
        stats = lightning.stats()
        await lightning.shutdown(1)
    finally:
        proxy.close()
    assert stats.dropped == 0 and stats.queued == 0, stats
    stored = collector.only(a)
    return {"bodies": proxy.bodies, "trajectory": stored, "steps": tool_steps(stored)}


def test_the_corpora_have_the_shape_and_size_the_issue_asks_for() -> None:
    secrets, benign = load("secrets.json"), load("benign.json")
    assert len(secrets) >= 80, f"{len(secrets)} secret entries"
    assert len({e["kind"] for e in secrets}) >= 40, "at least 40 kinds"
    for e in secrets:
        assert isinstance(e["kind"], str)
        assert len(e["secret"]) >= 6, f"{e['kind']}: secret too short to be meaningful"
        assert e["secret"] in e["text"], f"{e['kind']}: text must contain the secret"
    assert len(benign) >= 40, f"{len(benign)} benign entries"
    assert all(isinstance(e["text"], str) for e in benign)


async def test_recall_no_secret_reaches_the_collector_or_the_logs(
    collector: Collector, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    secrets = load("secrets.json")
    with caplog.at_level(logging.DEBUG, logger="agent_lightning"):
        got = await run_through_hooks(collector, [e["text"] for e in secrets], debug=True, failures=True)
    captured = capfd.readouterr()
    steps = got["steps"]
    assert len(steps) == 2 * len(secrets), "every call was delivered"
    haystack = "\n".join(strings(got["bodies"], []))
    leaked = [e["kind"] for e in secrets if e["secret"] in haystack]
    # stricter: no 16-character piece of a secret survives either (nothing half-redacted)
    partial = [
        e["kind"]
        for e in secrets
        if len(e["secret"]) > 16 and any(e["secret"][i : i + 16] in haystack for i in range(len(e["secret"]) - 15))
    ]
    logs = "\n".join([captured.out, captured.err, *(r.getMessage() for r in caplog.records)])
    in_logs = [e["kind"] for e in secrets if e["secret"] in logs]
    print(f"recall {len(secrets) - len(leaked)}/{len(secrets)}; partial leaks {len(partial)}")
    assert leaked == [], "secrets that reached the collector"
    assert partial == [], "secrets of which a 16-character piece reached the collector"
    assert in_logs == [], "secrets printed in logs"
    assert "[Lightning Hooks] Pre-tool: Bash" in captured.err, "the debug output was captured"
    bash = [s for s in steps if s["toolName"] == "Bash"]
    failed = [s for s in steps if s["toolName"] == "Read"]
    assert len(bash) == len(failed) == len(secrets)
    for s in bash:
        # the command and the output were both redacted, the rest of the step kept
        assert s["toolInput"]["description"] == "corpus entry"
        assert "[REDACTED:" in s["toolInput"]["command"], s["toolInput"]
        assert "[REDACTED:" in s["toolOutput"]["stdout"], s["toolOutput"]
    for s in failed:
        assert "[REDACTED:" in s["error"], s["error"]


async def test_false_positives_every_benign_text_is_stored_unchanged(collector: Collector) -> None:
    benign = load("benign.json")
    got = await run_through_hooks(collector, [e["text"] for e in benign], debug=False, failures=False)
    steps = got["steps"]
    assert len(steps) == len(benign)
    lines = 0
    changed: list[str] = []
    mismatched: list[str] = []
    for e, s in zip(benign, steps, strict=True):
        for stored in (s["toolInput"]["command"], s["toolOutput"]["stdout"]):
            if stored != e["text"]:
                mismatched.append(e["kind"])  # byte for byte, line endings and extra lines included
            want, have = e["text"].split("\n"), stored.split("\n")
            lines += len(want)
            for j, line in enumerate(want):
                if j >= len(have) or have[j] != line:
                    changed.append(f"{e['kind']}: {line[:120]!r} -> {(have[j] if j < len(have) else '')[:120]!r}")
    print(f"benign: {len(changed)} changed lines of {lines}")
    assert changed == [], f"{len(changed)} benign line(s) changed:\n" + "\n".join(changed)
    assert mismatched == [], f"benign texts not stored byte for byte: {mismatched}"
