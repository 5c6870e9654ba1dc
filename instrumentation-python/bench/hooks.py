#!/usr/bin/env python3
"""Hook overhead: time per PreToolUse+PostToolUse pair, as the SDK awaits them, against a baseline
pair of empty async callbacks measured in the same process (the machine is shared and noisy).

    .venv/bin/python bench/hooks.py [pairs] [gap-seconds] [output-bytes]

Prints p50/p99 in microseconds for both, the ratio instrumented/baseline and the excess, each
with a bootstrap 95% interval. `output-bytes` sizes the tool's stdout (default a few bytes;
32768 and 1048576 are the expensive cases: the sender thread redacts and truncates each output
while the hooks run, and in CPython the two contend for the GIL). The collector URL points at a
closed port: sending happens on the background thread and never on this path.
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


async def measure(
    pre: Callback, post: Callback, n: int, sid: str, gap: float = 0.0, output_bytes: int = 0
) -> list[float]:
    out: list[float] = []
    ctx = {"signal": None}
    tool_input = {"command": "ls -la", "description": "list"}
    # a multi-line log-like output of the asked size (the redactor scans it all)
    line = "2026-12-02T03:00:00Z INFO worker[42] processed batch id=7f3c user=alice ok\n"
    stdout = (line * (output_bytes // len(line) + 1))[:output_bytes] if output_bytes else "a\nb\nc"
    response = {"stdout": stdout, "stderr": "", "interrupted": False}
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


def bootstrap(a: list[float], b: list[float], q: float, rounds: int = 200) -> tuple[tuple[float, float], ...]:
    """95% intervals of the excess (a - b) and of the ratio (a / b) of the q-quantiles."""
    diffs, ratios = [], []
    for _ in range(rounds):
        pa = pct(random.choices(a, k=len(a)), q)
        pb = pct(random.choices(b, k=len(b)), q)
        diffs.append(pa - pb)
        ratios.append(pa / pb if pb > 0 else float("inf"))
    diffs.sort()
    ratios.sort()
    lo, hi = int(0.025 * rounds), int(0.975 * rounds)
    return (diffs[lo], diffs[hi]), (ratios[lo], ratios[hi])


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    # back to back (the sender thread always busy), then with 1 ms between pairs (closer to an agent)
    gap = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    output_bytes = int(sys.argv[3]) if len(sys.argv) > 3 else 0
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
    await measure(pre, post, min(500, n), "warm", 0.0, output_bytes)
    await measure(empty, empty, min(500, n), "warm", 0.0, output_bytes)
    base: list[float] = []
    inst: list[float] = []
    # interleave rounds so load changes hit both alike
    for r in range(10):
        base += await measure(empty, empty, n // 10, f"b{r}", gap, output_bytes)
        inst += await measure(pre, post, n // 10, f"i{r}", gap, output_bytes)
    print(f"gap between pairs: {gap * 1000:g} ms, tool output {output_bytes or 5} bytes")
    for name, v in (("baseline (empty hooks)", base), ("instrumented", inst)):
        print(
            f"{name:24s} n={len(v)} p50={pct(v, 0.5):7.1f} us  p99={pct(v, 0.99):7.1f} us  "
            f"p99.9={pct(v, 0.999):8.1f} us  max={max(v):8.1f} us  mean={statistics.mean(v):7.1f} us"
        )
    for q in (0.5, 0.99):
        (lo, hi), (rlo, rhi) = bootstrap(inst, base, q)
        excess = pct(inst, q) - pct(base, q)
        ratio = pct(inst, q) / pct(base, q)
        print(
            f"p{int(q * 100)}: ratio {ratio:5.2f} (95% interval {rlo:.2f} .. {rhi:.2f}), "
            f"excess {excess:6.1f} us ({lo:.1f} .. {hi:.1f})"
        )
    print(f"{len(lightning._outbox._unprepared)} records not prepared yet by the sender at the end")
    lightning.shutdown_sync(0)


if __name__ == "__main__":
    asyncio.run(main())
