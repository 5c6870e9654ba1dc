#!/usr/bin/env python3
"""Time from the agent's end to process exit, with the seed's usage (no shutdown call): a child
process runs a simulated 5-step session through the hooks and returns; the instrumentation's
exit handler delivers or spools. Conditions: a healthy collector (the real binary at
$LIGHTNING_BIN), a down one (closed port), a hung one (accepts, never answers), and a baseline
child that imports the same modules without instrumenting (the interpreter's own teardown).

    .venv/bin/python bench/exit.py [runs-per-condition]

Runs are interleaved across conditions; prints the median and min..max per condition (seconds).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import PACKAGE_ROOT, Collector, HungServer, free_port

BASELINE = """
import asyncio, time
import claude_agent_sdk, agent_lightning  # the same imports, no instrument()
async def main():
    await asyncio.sleep(0)
asyncio.run(main())
print(f"AGENT_END {time.time()}", flush=True)
"""


def lived(args: list[str], home: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_STATE_HOME", "LIGHTNING_SPOOL_DIR")}
    env.update({"HOME": home, "PYTHONPATH": str(PACKAGE_ROOT)})
    proc = subprocess.run(
        [sys.executable, *args], cwd=PACKAGE_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    ended = time.time()
    end = next(float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("AGENT_END"))
    assert proc.returncode == 0, proc.stderr
    return ended - end


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    collector = Collector().start()
    hung = HungServer()
    urls = {"healthy": collector.url, "down": f"http://127.0.0.1:{free_port()}", "hung": hung.url}
    results: dict[str, list[float]] = {name: [] for name in ("baseline", *urls)}
    try:
        for _ in range(runs):
            for name in results:
                home = tempfile.mkdtemp(prefix="lightning-bench-")
                if name == "baseline":
                    results[name].append(lived(["-c", BASELINE], home))
                    continue
                cfg = {
                    "options": {
                        "collector_url": urls[name],
                        "api_key": collector.api_key,
                        "agent_id": f"bench-exit-{name}",
                    },
                    "steps": 5,
                }
                results[name].append(lived(["-m", "tests.sim", json.dumps(cfg)], home))
    finally:
        collector.dispose()
        hung.close()
    print(f"time from the agent's end to process exit (s), n={runs} per condition, shutdown_timeout=5 s")
    for name, values in results.items():
        print(
            f"  {name:9s} median {statistics.median(values):5.2f}   min..max {min(values):5.2f} .. {max(values):5.2f}"
        )


if __name__ == "__main__":
    main()
