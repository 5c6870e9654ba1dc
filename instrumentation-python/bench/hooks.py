#!/usr/bin/env python3
"""Hook overhead: time per PreToolUse+PostToolUse pair, as the SDK awaits them, against a baseline
pair of empty async callbacks measured in the same process (the machine is shared and noisy).

    .venv/bin/python bench/hooks.py [pairs] [gap-seconds]

Prints p50/p99 in microseconds for both and the instrumentation's excess over the baseline, with
a bootstrap 95% interval. The collector URL points at a closed port: sending happens on the
background thread and never on this path, so its outcome does not matter here.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agent_lightning import Lightning

Callback = Callable[[Any, str | None, Any], Awaitable[Any]]


async def empty(input_data: Any, tool_use_id: str | None, context: Any) -> Any:
    return {}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def measure(pre: Callback, post: Callback, n: int, sid: str, gap: float = 0.0) -> list[float]:
    out: list[float] = []
    ctx = {"signal": None}
    tool_input = {"command": "ls -la", "description": "list"}
    response = {"stdout": "a\nb\nc", "stderr": "", "interrupted": False}
    for i in range(n):
        tid = f"toolu_bench_{sid}_{i}"
        base = {
            "session_id": sid,
            "transcript_path": "/tmp/t",
            "cwd": "/tmp",
            "tool_name": "Bash",
            "tool_input": tool_input,
            "tool_use_id": tid,
        }
        t0 = time.perf_counter_ns()
        await pre({**base, "hook_event_name": "PreToolUse"}, tid, ctx)
        await post({**base, "hook_event_name": "PostToolUse", "tool_response": response, "duration_ms": 1}, tid, ctx)
        out.append((time.perf_counter_ns() - t0) / 1000)
        if gap:
            await asyncio.sleep(gap)  # the agent's own work between tool calls
    return out


def bootstrap(a: list[float], b: list[float], q: float, rounds: int = 200) -> tuple[float, float]:
    diffs = []
    for _ in range(rounds):
        ra = [random.choice(a) for _ in a]
        rb = [random.choice(b) for _ in b]
        diffs.append(pct(ra, q) - pct(rb, q))
    diffs.sort()
    return diffs[int(0.025 * rounds)], diffs[int(0.975 * rounds)]


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    # back to back (the sender thread always busy), then with 1 ms between pairs (closer to an agent)
    gap = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    lightning = Lightning(
        collector_url="http://127.0.0.1:9",
        api_key="k",
        agent_id="bench",
        spool=False,
        handle_process_exit=False,
        batch_size=100,
        max_buffer_bytes=1 << 30,
    )
    pre = lightning.hooks["PreToolUse"][0].hooks[0]
    post = lightning.hooks["PostToolUse"][0].hooks[0]
    await measure(pre, post, 500, "warm")
    await measure(empty, empty, 500, "warm")
    base: list[float] = []
    inst: list[float] = []
    # interleave rounds so load changes hit both alike
    for r in range(10):
        base += await measure(empty, empty, n // 10, f"b{r}", gap)
        inst += await measure(pre, post, n // 10, f"i{r}", gap)
    print(f"gap between pairs: {gap * 1000:g} ms")
    for name, v in (("baseline (empty hooks)", base), ("instrumented", inst)):
        print(
            f"{name:24s} n={len(v)} p50={pct(v, 0.5):7.1f} us  p99={pct(v, 0.99):7.1f} us  mean={statistics.mean(v):7.1f} us"
        )
    for q in (0.5, 0.99):
        lo, hi = bootstrap(inst, base, q)
        print(
            f"excess p{int(q * 100)}: {pct(inst, q) - pct(base, q):6.1f} us  (95% bootstrap interval {lo:.1f} .. {hi:.1f})"
        )
    lightning.shutdown_sync(0)


if __name__ == "__main__":
    asyncio.run(main())
