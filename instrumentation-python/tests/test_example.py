"""The README's example agent (examples/basic_agent.py), run as a user would, against the fake
model and the real collector."""

from __future__ import annotations

import os
import subprocess
import sys

from .helpers import PACKAGE_ROOT, Collector, FakeAnthropic, Features, rand, sdk_env, text, tool, tool_steps, turn


def test_example_agent_runs_and_is_recorded(collector: Collector, dirs: dict[str, str]) -> None:
    fake = FakeAnthropic(
        [
            turn(tool("toolu_ex_ls", "Bash", command="ls", description="list")),
            turn(tool("toolu_ex_rm", "Bash", command="rm -rf ./build", description="clean")),
            turn(text("The largest file is big.txt.")),
        ]
    ).start()
    with open(os.path.join(dirs["work"], "big.txt"), "w") as f:
        f.write("x" * 1000)
    agent = f"py-example-{rand()}"
    env = sdk_env(fake.url, dirs["home"])
    env.update(
        {
            "COLLECTOR_URL": collector.url,
            "LIGHTNING_API_KEY": collector.api_key,
            "AGENT_ID": agent,
            "WORKDIR": dirs["work"],
            "LIGHTNING_SPOOL_DIR": dirs["spool"],
        }
    )
    try:
        proc = subprocess.run(
            [sys.executable, str(PACKAGE_ROOT / "examples" / "basic_agent.py"), "Which file is largest?"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=dirs["work"],
        )
    finally:
        fake.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "The largest file is big.txt." in proc.stdout
    assert "[success]" in proc.stdout
    features = Features(collector)
    # a collector without the scores API answers 404: the score is dropped, counted, and said once
    assert ("dropped=0" if features.scores else "dropped=1") in proc.stderr, proc.stderr
    t = collector.only(agent)
    assert t["status"] == "succeeded"
    assert t["prompt"] == "Which file is largest?"
    assert t["taskType"] == "example"
    assert t["systemPrompt"] == "You are a concise, careful assistant working in a code repository."
    assert t["costUsd"] > 0
    steps = {s["toolUseId"]: s for s in tool_steps(t)}
    assert "big.txt" in steps["toolu_ex_ls"]["toolOutput"]["stdout"]
    assert "rm -rf is not allowed here" in steps["toolu_ex_rm"]["error"]
    if features.scores:
        scores = collector.get(f"/api/trajectories/{t['id']}/scores")["scores"]
        assert [(s["name"], s["value"]) for s in scores] == [("example.finished", True)]
