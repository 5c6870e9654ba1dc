"""End to end: the real claude-agent-sdk and its bundled Claude Code CLI against a scripted fake
Anthropic API, the instrumentation delivering to the real collector; each run is a child process
whose exit code and lifetime are asserted."""

from __future__ import annotations

import uuid
from pathlib import Path

from agent_lightning import NO_POST_HOOK

from .conftest import run_child
from .helpers import Collector, FakeAnthropic, message_steps, rand, text, tool, tool_steps, turn


def agent() -> str:
    return f"py-e2e-{rand()}"


def test_seed_usage_failing_bash_parallel_denied(collector: Collector, dirs: dict[str, str]) -> None:
    work = Path(dirs["work"])
    (work / "hello.txt").write_text("hello\n")
    fake = FakeAnthropic([
        turn(text("Reading the file first."), tool("toolu_py_read", "Read", file_path=str(work / "hello.txt"))),
        turn(tool("toolu_py_edit", "Edit", file_path=str(work / "hello.txt"), old_string="hello", new_string="hello world")),
        turn(
            tool("toolu_py_echo", "Bash", command="echo hi", description="say hi"),
            tool("toolu_py_fail", "Bash", command="echo out; echo err 1>&2; exit 3", description="fail on purpose"),
            tool("toolu_py_missing", "Read", file_path=str(work / "missing.txt")),
        ),
        turn(tool("toolu_py_denied", "Bash", command="rm -rf ./important", description="delete")),
        turn(text("Done: hello.txt now says hello world.")),
    ]).start()
    a = agent()
    try:
        run = run_child({"collector": collector.url, "key": collector.api_key, "agent": a, "work": str(work),
                         "spool_dir": dirs["spool"], "prompt": "Make hello.txt say hello world."}, fake.url, dirs["home"])
    finally:
        fake.close()
    assert run.code == 0, run.stderr[-3000:]
    assert (work / "hello.txt").read_text() == "hello world\n"
    t = collector.only(a)
    assert t["status"] == "succeeded", t
    assert t["prompt"] == "Make hello.txt say hello world."
    tools = tool_steps(t)
    assert [(s["toolName"], s["toolUseId"]) for s in tools] == [
        ("Read", "toolu_py_read"), ("Edit", "toolu_py_edit"), ("Bash", "toolu_py_echo"),
        ("Bash", "toolu_py_fail"), ("Read", "toolu_py_missing"), ("Bash", "toolu_py_denied"),
    ]
    by_id = {s["toolUseId"]: s for s in tools}
    assert by_id["toolu_py_read"]["toolOutput"]["file"]["content"] == "hello\n"
    assert by_id["toolu_py_echo"]["toolOutput"]["stdout"] == "hi"
    assert by_id["toolu_py_fail"]["error"].startswith("Exit code 3")
    assert "does not exist" in by_id["toolu_py_missing"]["error"].lower()
    assert by_id["toolu_py_denied"]["error"].startswith(NO_POST_HOOK)
    assert "destructive command blocked" in by_id["toolu_py_denied"]["error"]
    assert t["errorCount"] == 3
    assert [m["toolOutput"] for m in message_steps(t)][-1] == "Done: hello.txt now says hello world."
    numbers = [s["stepNumber"] for s in t["steps"]]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    print(run.after_agent, [(s["stepNumber"], s.get("kind"), s["toolName"]) for s in t["steps"]])
    assert run.after_agent < 5, run.after_agent
    _ = uuid
