"""Drives the instrumentation's hooks the way the SDK calls them (same inputs, positionally)."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

from agent_lightning import Lightning


async def call(lightning: Lightning, event: str, data: dict[str, Any], tool_use_id: str | None = None) -> Any:
    results = []
    for matcher in lightning.hooks[event]:  # type: ignore[index]
        for cb in matcher.hooks:
            results.append(await cb(data, tool_use_id, {"signal": None}))  # type: ignore[arg-type]
    return results


async def session(
    lightning: Lightning,
    steps: int,
    prompt: str = "simulated task",
    output: Any = None,
    session_id: str | None = None,
    stop: bool = True,
) -> str:
    """One prompt with `steps` Bash calls, ended by Stop. Returns the session id."""
    sid = session_id or str(uuid.uuid4())
    base = {"session_id": sid, "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp"}
    await call(lightning, "UserPromptSubmit", {**base, "hook_event_name": "UserPromptSubmit", "prompt": prompt})
    for i in range(steps):
        tid = f"toolu_sim_{i}"
        tool_input = {"command": f"echo {i}"}
        await call(
            lightning,
            "PreToolUse",
            {
                **base,
                "hook_event_name": "PreToolUse",
                "tool_name": "Bash",
                "tool_input": tool_input,
                "tool_use_id": tid,
            },
            tid,
        )
        await call(
            lightning,
            "PostToolUse",
            {
                **base,
                "hook_event_name": "PostToolUse",
                "tool_name": "Bash",
                "tool_input": tool_input,
                "tool_use_id": tid,
                "duration_ms": 3,
                "tool_response": output if output is not None else {"stdout": str(i)},
            },
            tid,
        )
    if stop:
        await call(
            lightning,
            "Stop",
            {**base, "hook_event_name": "Stop", "stop_hook_active": False, "last_assistant_message": "done"},
        )
    return sid


def main() -> None:
    """Child process entry: instrument with the given options, simulate, end as asked."""
    cfg = json.loads(sys.argv[1])
    lightning = Lightning(**cfg["options"])
    sid = asyncio.run(session(lightning, cfg.get("steps", 3), stop=cfg.get("stop", True)))
    print(f"SESSION {sid}", flush=True)
    import time

    print(f"AGENT_END {time.time()}", flush=True)
    if cfg.get("shutdown"):
        asyncio.run(lightning.shutdown())
        print(f"STATS {json.dumps(lightning.stats().__dict__)}", flush=True)


if __name__ == "__main__":
    main()
