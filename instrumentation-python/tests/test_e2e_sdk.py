"""End to end: the real claude-agent-sdk and its bundled Claude Code CLI against a scripted fake
Anthropic API, the instrumentation delivering to the real collector; each run is a child process
whose exit code and lifetime are asserted."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from agent_lightning import NO_POST_HOOK, Lightning

from .conftest import ChildRun, finish_child, run_child, spawn_child
from .helpers import (
    Collector,
    FakeAnthropic,
    HungServer,
    api_error,
    free_port,
    message_steps,
    rand,
    text,
    tool,
    tool_steps,
    turn,
)


def agent() -> str:
    return f"py-e2e-{rand()}"


def test_seed_usage_failing_bash_parallel_denied(collector: Collector, dirs: dict[str, str]) -> None:
    work = Path(dirs["work"])
    (work / "hello.txt").write_text("hello\n")
    fake = FakeAnthropic(
        [
            turn(text("Reading the file first."), tool("toolu_py_read", "Read", file_path=str(work / "hello.txt"))),
            turn(
                tool(
                    "toolu_py_edit",
                    "Edit",
                    file_path=str(work / "hello.txt"),
                    old_string="hello",
                    new_string="hello world",
                )
            ),
            turn(
                tool("toolu_py_echo", "Bash", command="echo hi", description="say hi"),
                tool("toolu_py_fail", "Bash", command="echo out; echo err 1>&2; exit 3", description="fail on purpose"),
                tool("toolu_py_missing", "Read", file_path=str(work / "missing.txt")),
            ),
            turn(tool("toolu_py_denied", "Bash", command="rm -rf ./important", description="delete")),
            turn(text("Done: hello.txt now says hello world.")),
        ]
    ).start()
    a = agent()
    try:
        run = run_child(
            {
                "collector": collector.url,
                "key": collector.api_key,
                "agent": a,
                "work": str(work),
                "spool_dir": dirs["spool"],
                "prompt": "Make hello.txt say hello world.",
            },
            fake.url,
            dirs["home"],
        )
    finally:
        fake.close()
    assert run.code == 0, run.stderr[-3000:]
    assert (work / "hello.txt").read_text() == "hello world\n"
    t = collector.only(a)
    assert t["status"] == "succeeded", t
    assert t["prompt"] == "Make hello.txt say hello world."
    tools = tool_steps(t)
    assert [(s["toolName"], s["toolUseId"]) for s in tools] == [
        ("Read", "toolu_py_read"),
        ("Edit", "toolu_py_edit"),
        ("Bash", "toolu_py_echo"),
        ("Bash", "toolu_py_fail"),
        ("Read", "toolu_py_missing"),
        ("Bash", "toolu_py_denied"),
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
    run.assert_bounded_exit()


def _cfg(collector: Collector, dirs: dict[str, str], a: str, **extra: object) -> dict[str, object]:
    return {
        "collector": collector.url,
        "key": collector.api_key,
        "agent": a,
        "work": dirs["work"],
        "spool_dir": dirs["spool"],
        **extra,
    }


def _two_step_task() -> list[dict[str, object]]:
    return [
        turn(tool("toolu_e_1", "Bash", command="echo one", description="one")),
        turn(tool("toolu_e_2", "Bash", command="echo two", description="two")),
        turn(text("All done.")),
    ]


def test_max_turns_is_recorded_as_failed(collector: Collector, dirs: dict[str, str]) -> None:
    fake = FakeAnthropic(
        [turn(tool(f"toolu_mt_{i}", "Bash", command=f"echo {i}", description="n")) for i in range(6)]
    ).start()
    a = agent()
    try:
        run = run_child(_cfg(collector, dirs, a, max_turns=2), fake.url, dirs["home"])
    finally:
        fake.close()
    # the SDK raises after the error result: the user's process fails with the traceback, as without us
    assert run.code == 1, run.stderr[-2000:]
    assert "Reached maximum number of turns" in run.stderr or "error_max_turns" in run.stderr, run.stderr[-2000:]
    run.assert_bounded_exit()
    t = collector.only(a)
    assert t["success"] is False
    assert t["status"] == "failed"
    assert "maximum number of turns" in t["error"], t["error"]
    assert [s["toolUseId"] for s in tool_steps(t)] == ["toolu_mt_0", "toolu_mt_1"]


def test_subagent_steps_are_nested(collector: Collector, dirs: dict[str, str]) -> None:
    fake = FakeAnthropic(
        [
            turn(
                tool(
                    "toolu_task",
                    "Agent",
                    description="inspect",
                    prompt="SUBTASK: run echo sub",
                    subagent_type="general-purpose",
                    run_in_background=False,
                )
            ),
            turn(text("The subagent finished.")),
        ],
        sub_turns=[
            turn(tool("toolu_sub_echo", "Bash", command="echo sub", description="sub echo")),
            turn(text("sub done")),
        ],
    ).start()
    a = agent()
    try:
        run = run_child(_cfg(collector, dirs, a), fake.url, dirs["home"])
    finally:
        fake.close()
    assert run.code == 0, run.stderr[-3000:]
    t = collector.only(a)
    tools = {s["toolUseId"]: s for s in tool_steps(t)}
    assert set(tools) == {"toolu_task", "toolu_sub_echo"}, [(s["toolName"], s.get("toolUseId")) for s in t["steps"]]
    inner = tools["toolu_sub_echo"]
    assert inner["metadata"].get("agentId"), inner["metadata"]
    assert inner["metadata"].get("parentToolUseId") == "toolu_task", inner["metadata"]
    events = [s for s in t["steps"] if s["toolName"] in ("SubagentStart", "SubagentStop")]
    assert [e["toolName"] for e in events] == ["SubagentStart", "SubagentStop"], [s["toolName"] for s in t["steps"]]
    assert events[0]["metadata"]["parentToolUseId"] == "toolu_task"
    assert t["status"] == "succeeded"
    run.assert_bounded_exit()


@pytest.mark.parametrize("ending,code", [("exception", 1), ("sys_exit", 3), ("raise_in_loop", 1)])
def test_endings_lose_nothing(collector: Collector, dirs: dict[str, str], ending: str, code: int) -> None:
    fake = FakeAnthropic(_two_step_task()).start()
    a = agent()
    try:
        run = run_child(_cfg(collector, dirs, a, ending=ending), fake.url, dirs["home"])
    finally:
        fake.close()
    assert run.code == code, run.stderr[-2000:]
    run.assert_bounded_exit()
    t = collector.only(a)
    if ending == "raise_in_loop":
        # the user's code stopped the agent after the first tool call: the run did not finish
        assert t["success"] is False
        assert t["status"] == "interrupted"
        assert [s["toolUseId"] for s in tool_steps(t)][:1] == ["toolu_e_1"]
    else:
        # the agent had finished before the process failed: its trajectory stays succeeded
        assert t["status"] == "succeeded"
        assert [s["toolUseId"] for s in tool_steps(t)] == ["toolu_e_1", "toolu_e_2"]


def _spawn_and_signal(collector: Collector, dirs: dict[str, str], a: str, sig: int) -> tuple[ChildRun, float]:
    fake = FakeAnthropic(
        [
            turn(tool("toolu_s_1", "Bash", command="echo before", description="before")),
            turn(tool("toolu_s_2", "Bash", command="python3 -c 'import time; time.sleep(30)'", description="long")),
            turn(text("never reached")),
        ]
    ).start()
    lines: list[str] = []
    try:
        started = time.time()
        proc = spawn_child(_cfg(collector, dirs, a), fake.url, dirs["home"])
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("PRE Bash") and "time.sleep(30)" in line:
                break
        time.sleep(0.3)
        signalled = time.time()
        proc.send_signal(sig)
        run = finish_child(proc, started, timeout=60)
        run.stdout = "".join(lines) + run.stdout
    finally:
        fake.close()
    return run, signalled


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_is_interrupted(collector: Collector, dirs: dict[str, str], sig: int) -> None:
    a = agent()
    run, signalled = _spawn_and_signal(collector, dirs, a, sig)
    # the signal's own outcome is kept: killed by it (or Python's 130 for an unhandled Ctrl-C)
    assert run.code in (-sig, 128 + sig), (run.code, run.stderr[-2000:])
    # the SDK's own teardown (stopping the CLI) comes first; past the agent's end, the
    # instrumentation's shutdown_timeout (5 s) is the bound
    lived = run.ended - signalled
    if sig == signal.SIGTERM:
        assert lived < 7, lived  # our handler: shutdown within 5 s, then the default action
    else:
        run.assert_bounded_exit()
    t = collector.only(a)
    assert t["success"] is False
    assert t["status"] == "interrupted"
    assert "SIG" in (t["error"] or ""), t["error"]
    steps = {s["toolUseId"]: s for s in tool_steps(t)}
    assert steps["toolu_s_1"]["toolOutput"]["stdout"] == "before"
    assert "time.sleep(30)" in steps["toolu_s_2"]["toolInput"]["command"]
    assert steps["toolu_s_2"]["error"].startswith(NO_POST_HOOK)


def test_query_drop_in_records_result_details(collector: Collector, dirs: dict[str, str]) -> None:
    fake = FakeAnthropic(_two_step_task()).start()
    a = agent()
    try:
        run = run_child(_cfg(collector, dirs, a, mode="query", system_prompt="You are terse."), fake.url, dirs["home"])
    finally:
        fake.close()
    assert run.code == 0, run.stderr[-2000:]
    t = collector.only(a)
    result_line = next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))
    assert t["sessionId"] == result_line.split()[3]
    assert t["status"] == "succeeded"
    assert t["systemPrompt"] == "You are terse."
    assert t["model"] == "claude-sonnet-4-5-20250929"
    assert t["costUsd"] > 0
    assert t["numTurns"] >= 3
    assert t["usage"]["inputTokens"] > 0
    assert t["result"] == "All done."
    assert [s["toolUseId"] for s in tool_steps(t)] == ["toolu_e_1", "toolu_e_2"]
    assert [m["toolOutput"] for m in message_steps(t)] == ["All done."]
    run.assert_bounded_exit()


async def test_client_session_two_prompts_two_trajectories(collector: Collector, dirs: dict[str, str]) -> None:
    """ClaudeSDKClient: each prompt of one session is its own trajectory with its own prompt,
    linked by sessionId; nothing lands on a completed trajectory."""
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient

    from agent_lightning import Lightning

    from .helpers import sdk_env

    fake = FakeAnthropic(
        [],
        routes=[
            (
                "FIRST",
                [turn(tool("toolu_c_1", "Bash", command="echo first", description="1")), turn(text("first done"))],
            ),
            (
                "SECOND",
                [turn(tool("toolu_c_2", "Bash", command="echo second", description="2")), turn(text("second done"))],
            ),
        ],
    ).start()
    a = agent()
    lightning = Lightning(
        collector_url=collector.url,
        api_key=collector.api_key,
        agent_id=a,
        spool_dir=dirs["spool"],
        handle_process_exit=False,
    )
    env = sdk_env(fake.url, dirs["home"])
    options = ClaudeAgentOptions(
        cwd=dirs["work"],
        model="claude-sonnet-4-5-20250929",
        permission_mode="default",
        allowed_tools=["Bash"],
        setting_sources=[],
        hooks=lightning.hooks,
        env=env,
    )
    try:
        async with ClaudeSDKClient(options=options) as client:
            for prompt in ("FIRST task", "SECOND task"):
                await client.query(prompt)
                async for _ in lightning.track(client.receive_response(), prompt=prompt):
                    pass
    finally:
        fake.close()
    assert await lightning.flush(10)
    await lightning.shutdown()
    found = collector.all(a)
    assert [t["prompt"] for t in found] == ["FIRST task", "SECOND task"]
    assert found[0]["sessionId"] == found[1]["sessionId"]
    assert [[s["toolUseId"] for s in tool_steps(t)] for t in found] == [["toolu_c_1"], ["toolu_c_2"]]
    assert [t["status"] for t in found] == ["succeeded", "succeeded"]
    assert [t["result"] for t in found] == ["first done", "second done"]
    assert all(t["costUsd"] > 0 for t in found)


def _stored_or_delivered(collector: Collector, a: str, spool: str) -> dict[str, object]:
    """The trajectory as stored: delivered by the process itself, or spooled by it and delivered
    by the next instrumented process (here one on the same spool directory)."""
    if not collector.trajectories(a):
        later = Lightning(
            collector_url=collector.url,
            api_key=collector.api_key,
            agent_id=f"{a}-next",
            spool_dir=spool,
            handle_process_exit=False,
        )
        assert later.flush_sync(15)
        later.shutdown_sync()
        assert later.stats().replayed > 0
    assert list(Path(spool).glob("spool-*")) == [], "nothing left in the spool"
    return collector.only(a)


def test_api_error_ending_is_failed(collector: Collector, dirs: dict[str, str]) -> None:
    """The Messages API answers 400 after a first tool call: the CLI gives up, the SDK reports an
    error result; the trajectory is failed with the API's message, its step stored once."""
    fake = FakeAnthropic(
        [
            turn(tool("toolu_api_0", "Bash", command="echo api", description="api")),
            api_error(400, "scripted invalid request"),
        ]
    ).start()
    a = agent()
    try:
        run = run_child(_cfg(collector, dirs, a), fake.url, dirs["home"])
    finally:
        fake.close()
    print(f"api error: exit code {run.code}")
    # the SDK raises after the error result, as it does without us: the user's exit code is kept
    assert run.code == 1, run.stderr[-2000:]
    assert "scripted invalid request" in run.stdout + run.stderr or "400" in run.stderr, run.stderr[-2000:]
    run.assert_bounded_exit()
    t = _stored_or_delivered(collector, a, dirs["spool"])
    assert t["status"] == "failed" and t["success"] is False, t
    assert "scripted invalid request" in str(t["error"]) or "400" in str(t["error"]), t["error"]
    steps = tool_steps(t)
    assert [s["toolUseId"] for s in steps] == ["toolu_api_0"]
    assert steps[0]["toolOutput"]["stdout"] == "api"


@pytest.mark.parametrize("mode", ["hooks", "query"])
def test_break_out_of_the_loop_is_interrupted(collector: Collector, dirs: dict[str, str], mode: str) -> None:
    """The user's code breaks out of the message loop after the first tool result: the process
    exits 0 by itself, the trajectory is interrupted with its first step, stored once."""
    fake = FakeAnthropic(_two_step_task()).start()
    a = agent()
    try:
        run = run_child(_cfg(collector, dirs, a, ending="break", mode=mode), fake.url, dirs["home"])
    finally:
        fake.close()
    assert run.code == 0, run.stderr[-2000:]
    run.assert_bounded_exit()
    t = _stored_or_delivered(collector, a, dirs["spool"])
    assert t["status"] == "interrupted" and t["success"] is False, t
    assert t["error"], t
    ids = [s["toolUseId"] for s in tool_steps(t)]
    assert ids[:1] == ["toolu_e_1"] and len(ids) == len(set(ids)), ids
    assert tool_steps(t)[0]["toolOutput"]["stdout"] == "one"


@pytest.mark.parametrize("fault", ["down", "hung"])
def test_await_shutdown_with_the_collector_down_or_hung(collector: Collector, dirs: dict[str, str], fault: str) -> None:
    """`await lightning.shutdown()` after the agent, the collector down or hung: it returns within
    shutdown_timeout (the code after it runs), the process exits 0 within shutdown_timeout + 4 s of
    the agent's end, everything is spooled, and the next process delivers it once."""
    hung = HungServer() if fault == "hung" else None
    url = hung.url if hung is not None else f"http://127.0.0.1:{free_port()}"
    fake = FakeAnthropic(_two_step_task()).start()
    a = agent()
    try:
        cfg = _cfg(collector, dirs, a, ending="shutdown", shutdown_timeout=5.0)
        cfg["collector"] = url
        run = run_child(cfg, fake.url, dirs["home"])
    finally:
        fake.close()
        if hung is not None:
            hung.close()
    assert run.code == 0, run.stderr[-2000:]
    line = next((x for x in run.stdout.splitlines() if x.startswith("SHUTDOWN_DONE ")), None)
    assert line is not None, f"the code after await shutdown() did not run:\n{run.stdout}\n{run.stderr[-2000:]}"
    _, took, stats_json = line.split(" ", 2)
    stats = json.loads(stats_json)
    assert float(took) <= 5.0 + 1.0, took
    assert stats["dropped"] == 0 and stats["spooled"] >= 4, stats
    run.assert_bounded_exit()
    print(f"await shutdown() with the collector {fault}: {float(took):.2f} s")
    assert collector.trajectories(a) == []
    t = _stored_or_delivered(collector, a, dirs["spool"])
    assert t["status"] == "succeeded", t
    assert [s["toolUseId"] for s in tool_steps(t)] == ["toolu_e_1", "toolu_e_2"]


async def test_two_units_asked_before_their_real_sdk_runs_record_their_own_versions(
    collector: Collector, dirs: dict[str, str]
) -> None:
    """A server asks prompt() for two users before either run starts; the real SDK runs them
    (B given its result, A recognised by its system prompt text): each records its own version."""
    import json
    import urllib.request

    from claude_agent_sdk import ClaudeAgentOptions

    from agent_lightning import Lightning, PromptResult

    from .helpers import sdk_env

    a_id = agent()

    def post(path: str, body: dict[str, object]) -> None:
        req = urllib.request.Request(
            collector.url + path,
            data=json.dumps(body).encode(),
            headers={"authorization": f"Bearer {collector.api_key}", "content-type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=10).close()

    base = f"/api/agents/{a_id}/prompts"
    post(base, {"text": "You answer briefly.", "promote": True})
    post(base, {"text": "You answer briefly and cite the file you read."})
    post(f"{base}/2/rollout", {"percent": 50})
    arms: dict[str, str] = {}
    for i in range(200):
        arms.setdefault(collector.get(f"{base}/assignment?unit=user-{i}")["arm"], f"user-{i}")
        if len(arms) == 2:
            break
    lightning = Lightning(
        collector_url=collector.url, api_key=collector.api_key, agent_id=a_id, spool=False, handle_process_exit=False
    )
    pa = await lightning.prompt_details("You are an agent.", unit=arms["canary"])
    pb = await lightning.prompt_details("You are an agent.", unit=arms["promoted"])
    assert (pa.version, pa.arm, pb.version, pb.arm) == ("2", "canary", "1", "promoted")

    async def run(system_prompt: str, assignment: PromptResult | None) -> str:
        fake = FakeAnthropic([turn(text("Answered."))]).start()
        sid = ""
        try:
            options = ClaudeAgentOptions(
                cwd=dirs["work"],
                model="claude-sonnet-4-5-20250929",
                permission_mode="default",
                setting_sources=[],
                system_prompt=system_prompt,
                env=sdk_env(fake.url, dirs["home"]),
            )
            async for m in lightning.query(prompt="Answer.", options=options, assignment=assignment):
                if type(m).__name__ == "ResultMessage":
                    sid = str(getattr(m, "session_id", ""))
        finally:
            fake.close()
        return sid

    sb = await run(pb.text, pb)
    sa = await run(pa.text, None)
    assert await lightning.flush(10)
    await lightning.shutdown()
    by_session = {t["sessionId"]: t for t in collector.trajectories(a_id)}
    assert by_session[sb]["promptVersion"] == "1"
    assert by_session[sb]["metadata"]["promptAssignment"] == pb.assignment
    assert by_session[sa]["promptVersion"] == "2"
    assert by_session[sa]["metadata"]["promptAssignment"] == pa.assignment
