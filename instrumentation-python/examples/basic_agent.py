#!/usr/bin/env python3
"""A runnable example agent: the Python Claude Agent SDK with Agent Lightning instrumentation.

    cd instrumentation-python && python3 -m venv .venv && .venv/bin/pip install -e .
    COLLECTOR_URL=http://localhost:4000 LIGHTNING_API_KEY=... ANTHROPIC_API_KEY=... \\
      .venv/bin/python examples/basic_agent.py "Summarise README.md in one sentence"

Environment: COLLECTOR_URL (default http://localhost:4000), LIGHTNING_API_KEY (an `ingest` key,
never the admin API_KEY: `lightning keys create --name example-agent --scope ingest`), AGENT_ID (default example-agent), ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL for a
compatible endpoint), WORKDIR (default: the current directory), LIGHTNING_DEBUG=1 for logs.
Undelivered data is spooled to ~/.local/state/agent-lightning/spool/<16 hex digits of the
collector URL's SHA-256> and sent by the next run.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    HookMatcher,
    ResultMessage,
    TextBlock,
    ToolUseBlock,
)

from agent_lightning import instrument

task = " ".join(sys.argv[1:]) or "List the files in this directory and say which one is largest."

lightning = instrument(
    collector_url=os.environ.get("COLLECTOR_URL", "http://localhost:4000"),
    api_key=os.environ.get("LIGHTNING_API_KEY", ""),
    agent_id=os.environ.get("AGENT_ID", "example-agent"),
    task_type="example",
)


async def block_dangerous(input_data: Any, tool_use_id: str | None, context: Any) -> Any:
    """Your own hooks still work: lightning.query() merges them with the instrumentation's."""
    command = str((input_data.get("tool_input") or {}).get("command", ""))
    if re.search(r"\brm\s+-rf\b", command):
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": "rm -rf is not allowed here",
            }
        }
    return {}


async def main() -> int:
    # The latest optimized prompt for this agent, or this fallback when the collector has none.
    system_prompt = await lightning.prompt("You are a concise, careful assistant working in a code repository.")
    options = ClaudeAgentOptions(
        cwd=os.environ.get("WORKDIR", os.getcwd()),
        system_prompt=system_prompt,
        allowed_tools=["Read", "Glob", "Grep", "Bash"],
        max_turns=10,
        hooks={"PreToolUse": [HookMatcher(matcher="Bash", hooks=[block_dangerous])]},
    )
    exit_code = 0
    try:
        # lightning.query() = the SDK's query() with the instrumentation's hooks merged in and the
        # result (cost, usage, turns, errors) recorded on the trajectory
        async for message in lightning.query(prompt=task, options=options):
            if isinstance(message, AssistantMessage):
                for block in message.content:
                    if isinstance(block, TextBlock):
                        print(block.text)
                    elif isinstance(block, ToolUseBlock):
                        print(f"-> {block.name} {block.input}")
            elif isinstance(message, ResultMessage):
                print(f"\n[{message.subtype}] turns={message.num_turns} cost=${message.total_cost_usd or 0:.4f}")
        trajectory = lightning.current_trajectory_id()
        if trajectory is not None:
            lightning.score("example.finished", True, comment="the run ended without an error")
    except Exception as error:  # the SDK raises after an error result; the trajectory is already recorded
        print(f"agent failed: {error}", file=sys.stderr)
        exit_code = 1
    finally:
        await lightning.shutdown()
        s = lightning.stats()
        print(
            f"[lightning] sent={s.sent} dropped={s.dropped} spooled={s.spooled}"
            + (f" lastError={s.last_error}" if s.last_error else ""),
            file=sys.stderr,
        )
    return exit_code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
