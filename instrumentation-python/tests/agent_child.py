"""A user's agent, run as a child process by the end-to-end tests: the real claude-agent-sdk with
the README's usage, ``ClaudeAgentOptions(hooks=lightning.hooks)`` (or ``lightning.query``), ending
in the way the test asks. Prints ``AGENT_END <epoch>`` when the agent's loop is over."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, HookMatcher, ResultMessage, query
from claude_agent_sdk.types import HookEvent

from agent_lightning import instrument, merge_hooks

cfg: dict[str, Any] = json.loads(sys.argv[1])

options_kw: dict[str, Any] = {"collector_url": cfg["collector"], "api_key": cfg["key"], "agent_id": cfg["agent"]}
for key in ("spool_dir", "shutdown_timeout", "flush_interval", "batch_size", "request_timeout"):
    if key in cfg:
        options_kw[key] = cfg[key]
lightning = instrument(**options_kw)


async def guard(input_data: Any, tool_use_id: str | None, context: Any) -> Any:
    """The user's own hook: denies destructive commands."""
    if "rm -rf" in json.dumps(input_data.get("tool_input")):
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": "destructive command blocked",
            }
        }
    return {}


async def announce(input_data: Any, tool_use_id: str | None, context: Any) -> Any:
    print(f"PRE {input_data.get('tool_name')} {json.dumps(input_data.get('tool_input'))}", flush=True)
    return {}


async def main() -> None:
    user_hooks: dict[HookEvent, list[HookMatcher]] = {
        "PreToolUse": [HookMatcher(matcher="Bash", hooks=[guard]), HookMatcher(hooks=[announce])]
    }
    mode = cfg.get("mode", "hooks")
    options = ClaudeAgentOptions(
        cwd=cfg["work"],
        model="claude-sonnet-4-5-20250929",
        permission_mode="default",
        allowed_tools=cfg.get("allowed_tools", ["Read", "Edit", "Bash", "Task", "Agent"]),
        setting_sources=[],
        max_turns=cfg.get("max_turns", 20),
        system_prompt=cfg.get("system_prompt"),
        stderr=lambda line: None,
        hooks=user_hooks if mode == "query" else merge_hooks(lightning.hooks, user_hooks),
    )
    prompt = cfg.get("prompt", "Do the scripted task.")
    stream = (
        lightning.query(prompt=prompt, options=options) if mode == "query" else query(prompt=prompt, options=options)
    )
    try:
        async for message in stream:
            if isinstance(message, ResultMessage):
                print(f"RESULT {message.subtype} {message.is_error} {message.session_id}", flush=True)
            if cfg.get("ending") == "raise_in_loop" and type(message).__name__ == "UserMessage":
                raise RuntimeError("user code failed inside the loop")
            if cfg.get("ending") == "break" and type(message).__name__ == "UserMessage":
                break  # the user's code has what it wanted: the agent is left unfinished
    finally:
        print(f"AGENT_END {time.time()}", flush=True)
    ending = cfg.get("ending", "normal")
    if ending == "sys_exit":
        sys.exit(3)
    if ending == "exception":
        raise RuntimeError("user code failed after the agent")
    if ending == "shutdown":
        began = time.time()
        await lightning.shutdown()
        print(f"SHUTDOWN_DONE {time.time() - began} {json.dumps(lightning.stats().__dict__)}", flush=True)


if __name__ == "__main__":
    os.chdir(cfg["work"])
    asyncio.run(main())
