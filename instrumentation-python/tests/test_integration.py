"""Integration against the real `lightning` collector binary: retries, outages, 401, a hung
collector, the spool handed from one process to the next (and from the TypeScript package)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent_lightning import Lightning
from agent_lightning._spool import collector_key

from .helpers import PACKAGE_ROOT, REPO_ROOT, Collector, FlakyProxy, HungServer, free_port, rand, tool_steps
from .sim import session


def agent() -> str:
    return f"py-it-{rand()}"


def opts(url: str, key: str, a: str, **extra: Any) -> dict[str, Any]:
    return {
        "collector_url": url,
        "api_key": key,
        "agent_id": a,
        "retry_base_delay": 0.02,
        "flush_interval": 0.05,
        "handle_process_exit": False,
        **extra,
    }


def assert_once(t: dict[str, Any], steps: int) -> None:
    tools = tool_steps(t)
    assert [s["stepNumber"] for s in tools] == list(range(1, steps + 1)), [s["stepNumber"] for s in t["steps"]]
    assert [s["toolUseId"] for s in tools] == [f"toolu_sim_{i}" for i in range(steps)]
    for i, s in enumerate(tools):
        assert s["toolOutput"] == {"stdout": str(i)}
    assert t["success"] is True and t["status"] == "succeeded"


async def test_retries_never_duplicate(collector: Collector) -> None:
    proxy = FlakyProxy(collector.url, fail_after_forward=5)
    a = agent()
    try:
        lightning = Lightning(**opts(proxy.url, collector.api_key, a, batch_size=1, flush_interval=0, spool=False))
        await session(lightning, 6)
        assert await lightning.flush(15)
        stats = lightning.stats()
        assert stats.retries >= 5 and stats.dropped == 0 and stats.queued == 0, stats
        await lightning.shutdown()
    finally:
        proxy.close()
    assert_once(collector.only(a), 6)


async def test_collector_down_then_up(tmp_path: Path) -> None:
    port = free_port()
    a = agent()
    c = Collector()
    lightning = Lightning(**opts(f"http://127.0.0.1:{port}", c.api_key, a, spool_dir=str(tmp_path)))
    await session(lightning, 4)
    assert not await lightning.flush(0.5), "nothing can be delivered while the collector is down"
    assert lightning.stats().queued > 0 and lightning.stats().failed > 0
    c.start(port)
    try:
        assert await lightning.flush(15)
        await lightning.shutdown()
        assert_once(c.only(a), 4)
        assert lightning.stats().dropped == 0
    finally:
        c.dispose()


def run_sim(cfg: dict[str, Any], home: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_STATE_HOME", "LIGHTNING_SPOOL_DIR")}
    env.update({"HOME": home, "PYTHONPATH": str(PACKAGE_ROOT)})
    proc = subprocess.run(
        [sys.executable, "-m", "tests.sim", json.dumps(cfg)],
        cwd=PACKAGE_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    ended = time.time()
    agent_end = next(float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("AGENT_END"))
    return proc, ended - agent_end


def spool_dir_of(home: str, url: str) -> Path:
    """The default spool directory of a user for one collector (docs/spool.md)."""
    return Path(home) / ".local" / "state" / "agent-lightning" / "spool" / collector_key(url)


def spool_files(home: str) -> list[Path]:
    root = Path(home) / ".local" / "state" / "agent-lightning" / "spool"
    return sorted(root.glob("*/spool-*")) if root.exists() else []


def deliver_from_spool(home: str, url: str, c: Collector, a: str) -> None:
    """A later process of the same user (here in-process, on the same default spool directory),
    with the collector up: it delivers what the spool holds and deletes the delivered files."""
    spool_dir = spool_dir_of(home, url)
    later = Lightning(**opts(c.url, c.api_key, f"{a}-next", spool_dir=str(spool_dir)))
    assert later.flush_sync(15)
    later.shutdown_sync()
    assert later.stats().replayed > 0
    assert spool_files(home) == [], "delivered spool files are deleted"


@pytest.mark.parametrize("fault", ["down", "hung", "401"])
def test_process_exit_is_bounded_and_loses_nothing(collector: Collector, fault: str) -> None:
    """The seed's usage (no shutdown call): the process ends on its own, promptly, whatever the
    collector does, the data waits in the default spool (0600 files in a 0700 directory), and the
    next process delivers it exactly once."""
    home = tempfile.mkdtemp(prefix="lightning-py-home-")
    a = agent()
    hung = HungServer() if fault == "hung" else None
    url = hung.url if hung else (collector.url if fault == "401" else f"http://127.0.0.1:{free_port()}")
    key = "wrong-key" if fault == "401" else collector.api_key
    try:
        proc, lived = run_sim(
            {
                "options": {
                    "collector_url": url,
                    "api_key": key,
                    "agent_id": a,
                    "shutdown_timeout": 2.0,
                    "retry_base_delay": 0.05,
                },
                "steps": 5,
            },
            home,
        )
    finally:
        if hung:
            hung.close()
    assert proc.returncode == 0, proc.stderr
    # shutdown_timeout (2 s) bounds the instrumentation; the rest is the interpreter's own teardown
    # (about 1.5 s on this shared machine with the SDK imported, without us too)
    assert lived < 5.0, lived
    if fault == "401":
        warnings = [line for line in proc.stderr.splitlines() if "401" in line]
        assert len(warnings) == 1, proc.stderr
    files = spool_files(home)
    assert files, proc.stderr
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert {r["kind"] for r in records} == {"start", "step", "complete"}
    assert collector.trajectories(a) == []
    assert [f.parent for f in files] == [spool_dir_of(home, url)] * len(files), "one directory per collector"
    deliver_from_spool(home, url, collector, a)
    assert_once(collector.only(a), 5)


@pytest.fixture(scope="module")
def ts_spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The TypeScript package's real Spool class (instrumentation/src/spool.ts), compiled once with
    the package's own tsc into an ES module directory."""
    ts = REPO_ROOT / "instrumentation"
    tsc = ts / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "instrumentation/node_modules is needed (npm ci in instrumentation/)"
    out = tmp_path_factory.mktemp("ts")
    args = [
        "--outDir",
        str(out),
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
        "--target",
        "es2022",
        "--skipLibCheck",
        "--types",
        "node",
        str(ts / "src" / "spool.ts"),
    ]
    subprocess.run([str(tsc), *args], check=True, cwd=ts, capture_output=True, text=True)
    (out / "package.json").write_text('{"type": "module"}')
    return out


def test_spool_written_by_the_typescript_package_is_delivered(
    collector: Collector, tmp_path: Path, ts_spool: Path
) -> None:
    """The real TypeScript Spool class (instrumentation/src/spool.ts, compiled with the package's
    own tsc) writes the file; this package delivers it."""
    out = ts_spool
    spool_dir = tmp_path / "spool"
    a = agent()
    tid = str(uuid.uuid4())
    script = f"""
import {{ Spool }} from './spool.js';
const logger = {{ debug() {{}}, warn(m) {{ console.error(m); }} }};
const spool = new Spool({json.dumps(str(spool_dir))}, 1 << 20, logger, false);
const tid = {json.dumps(tid)};
const n = spool.write([
  {{ v: 1, kind: 'start', trajectoryId: tid, body: {{ trajectoryId: tid, agentId: {json.dumps(a)},
     startTime: new Date().toISOString(), prompt: 'from typescript' }} }},
  {{ v: 1, kind: 'step', trajectoryId: tid, body: {{ stepNumber: 1, toolName: 'Bash', toolUseId: 'toolu_sim_0',
     toolInput: {{ command: 'echo 0' }}, toolOutput: {{ stdout: '0' }} }} }},
  {{ v: 1, kind: 'complete', trajectoryId: tid, body: {{ success: true, endTime: new Date().toISOString(),
     totalSteps: 1 }} }},
]);
if (n !== 3) process.exit(2);
"""
    (out / "write.mjs").write_text(script)
    subprocess.run(["node", str(out / "write.mjs")], check=True, cwd=out, capture_output=True, text=True)
    assert len(list(spool_dir.glob("spool-*.jsonl"))) == 1
    lightning = Lightning(**opts(collector.url, collector.api_key, f"{a}-py", spool_dir=str(spool_dir)))
    assert lightning.flush_sync(10)
    lightning.shutdown_sync()
    assert lightning.stats().replayed == 3
    t = collector.only(a)
    assert t["prompt"] == "from typescript"
    assert_once(t, 1)
    assert list(spool_dir.glob("spool-*")) == []


def test_spool_written_by_python_is_claimed_by_the_typescript_package(tmp_path: Path, ts_spool: Path) -> None:
    """The other direction: the real TypeScript Spool class claims and parses this package's file."""
    out = ts_spool
    spool_dir = tmp_path / "spool"
    lightning = Lightning(
        collector_url=f"http://127.0.0.1:{free_port()}",
        api_key="k",
        agent_id="py-to-ts",
        spool_dir=str(spool_dir),
        handle_process_exit=False,
        shutdown_timeout=0.2,
    )
    import asyncio

    asyncio.run(session(lightning, 2))
    lightning.shutdown_sync()
    assert lightning.stats().spooled == 5  # start, 2 tool steps, the final message, complete
    script = f"""
import {{ Spool }} from './spool.js';
const logger = {{ debug() {{}}, warn(m) {{ console.error(m); }} }};
const spool = new Spool({json.dumps(str(spool_dir))}, 1 << 20, logger, false);
console.log(JSON.stringify(spool.claim()));
"""
    (out / "claim.mjs").write_text(script)
    proc = subprocess.run(["node", str(out / "claim.mjs")], check=True, cwd=out, capture_output=True, text=True)
    records = json.loads(proc.stdout)
    assert [r["kind"] for r in records] == ["start", "step", "step", "step", "complete"], records
    assert records[0]["body"]["agentId"] == "py-to-ts" and records[0]["body"]["prompt"] == "simulated task"
    assert [r["body"]["toolUseId"] for r in records[1:3]] == ["toolu_sim_0", "toolu_sim_1"]
    assert records[3]["body"]["toolOutput"] == "done"
    assert records[4]["body"]["success"] is True


MEMORY_CHILD = """
import asyncio, json, sys
from agent_lightning import Lightning
from tests.sim import session

def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
cfg = json.loads(sys.argv[1])
lightning = Lightning(**cfg)
base = hwm()

async def main():
    for chunk in range(30):
        # every output is a fresh 1 MiB string: whatever is kept shows in the peak RSS
        await session(lightning, 10, output={"stdout": ("x" * (1 << 20)) + str(chunk)}, session_id=f"s-{chunk}")
        await asyncio.sleep(0.02)
asyncio.run(main())
lightning.flush_sync(5)
print(json.dumps({"base": base, "peak": hwm(), "stats": lightning.stats().__dict__}))
lightning.shutdown_sync(0.1)
"""


def test_memory_is_bounded_by_bytes_during_an_outage(tmp_path: Path) -> None:
    """300 steps of 1 MiB output while the collector is down (a child process, so its peak RSS is
    its own): memory stays under the byte bound + 64 MiB, the rest goes to the spool, nothing is
    lost, and the next process delivers all of it."""
    a = agent()
    port = free_port()
    bound = 2 << 20
    cfg = opts(f"http://127.0.0.1:{port}", "k", a, spool_dir=str(tmp_path), max_buffer_bytes=bound)
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, json.dumps(cfg)],
        cwd=PACKAGE_ROOT,
        env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    growth = report["peak"] - report["base"]
    assert growth < bound + (64 << 20), growth
    assert report["stats"]["spooled"] > 0 and report["stats"]["dropped"] == 0, report
    c = Collector().start(port)
    try:
        later = Lightning(**opts(c.url, c.api_key, f"{a}-next", spool_dir=str(tmp_path)))
        assert later.flush_sync(60)
        later.shutdown_sync()
        found = c.all(a)
        assert len(found) == 30
        for t in found:
            tools = tool_steps(t)
            assert [s["stepNumber"] for s in tools] == list(range(1, 11))
            assert all("truncated" in s["toolOutput"]["stdout"] for s in tools)
        print(f"peak RSS growth {growth / 2**20:.1f} MiB for 300 MiB of tool output")
    finally:
        c.dispose()


def _post(collector: Collector, path: str, body: dict[str, Any]) -> Any:
    import urllib.request

    req = urllib.request.Request(
        collector.url + path,
        data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {collector.api_key}", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


async def test_prompt_follows_the_assignment_and_records_it(collector: Collector) -> None:
    """prompt() against the real registry: the fallback with nothing promoted, the promoted
    version, then the canary of a 100 % rollout; each run records its version and assignment."""
    a = agent()
    probe = Lightning(**opts(collector.url, collector.api_key, a, spool=False))
    assert await probe.prompt_details("own prompt") == ("own prompt", None, "fallback")
    _post(collector, f"/api/agents/{a}/prompts", {"text": "v1 text", "promote": True})
    _post(collector, f"/api/agents/{a}/prompts", {"text": "v2 text"})
    assert await probe.prompt_details("own prompt") == ("v1 text", "1", "collector")
    await probe.shutdown(1)
    _post(collector, f"/api/agents/{a}/prompts/2/rollout", {"percent": 100})
    # one process asks for one unit, then runs (hooks only): the run records that assignment
    lightning = Lightning(**opts(collector.url, collector.api_key, a, batch_size=1, flush_interval=0, spool=False))
    assert await lightning.prompt("own prompt", unit="user-7") == "v2 text"
    await session(lightning, 1)
    assert await lightning.flush(10)
    await lightning.shutdown()
    t = collector.only(a)
    assert t["promptVersion"] == "2"
    assignment = t["metadata"]["promptAssignment"]
    assert assignment["arm"] == "canary" and assignment["unit"] == "user-7" and assignment["rolloutId"], assignment


def _units_in_both_arms(collector: Collector, a: str) -> tuple[str, str]:
    """A unit the 50 % rollout puts in the canary and one it keeps on the promoted version."""
    found: dict[str, str] = {}
    for i in range(200):
        arm = collector.get(f"/api/agents/{a}/prompts/assignment?unit=user-{i}")["arm"]
        found.setdefault(arm, f"user-{i}")
        if len(found) == 2:
            break
    return found["canary"], found["promoted"]


async def _task(lightning: Lightning, sid: str, **context: Any) -> str:
    """One task of session `sid` the way a server runs it: hooks fire while track() reads the
    SDK's messages (or hooks only without a context). Returns its trajectory id."""
    from claude_agent_sdk import ResultMessage, SystemMessage

    async def stream() -> Any:
        yield SystemMessage(subtype="init", data={"type": "system", "subtype": "init", "session_id": sid})
        await session(lightning, 1, session_id=sid)
        yield ResultMessage(
            subtype="success", duration_ms=5, duration_api_ms=4, is_error=False, num_turns=1, session_id=sid
        )

    if context:
        async for _ in lightning.track(stream(), **context):
            pass
    else:
        await session(lightning, 1, session_id=sid)
    tid = next(t.trajectory_id for t in lightning._by_id.values() if t.session_id == sid and t.trajectory_id)
    return tid


def _rollout(collector: Collector) -> str:
    a = agent()
    _post(collector, f"/api/agents/{a}/prompts", {"text": "v1: be careful", "promote": True})
    _post(collector, f"/api/agents/{a}/prompts", {"text": "v2: be careful and run the tests first"})
    _post(collector, f"/api/agents/{a}/prompts/2/rollout", {"percent": 50})
    return a


async def test_two_units_asked_before_their_runs_each_record_their_own_assignment(collector: Collector) -> None:
    a = _rollout(collector)
    canary, promoted = _units_in_both_arms(collector, a)
    lightning = Lightning(**opts(collector.url, collector.api_key, a, flush_interval=0, spool=False))

    def recorded(tid: str) -> dict[str, Any]:
        assert lightning.flush_sync(10)
        return collector.trajectory(tid)

    pa = await lightning.prompt_details("own", unit=canary)
    pb = await lightning.prompt_details("own", unit=promoted)
    assert (pa.version, pa.arm, pb.version, pb.arm) == ("2", "canary", "1", "promoted")
    assert pa.assignment == {"arm": "canary", "unit": canary, "rolloutId": pa.rollout_id, "version": "2"}
    text, version, source = pa  # still unpacks as (text, version, source)
    assert (text, version, source) == ("v2: be careful and run the tests first", "2", "collector")

    # 1. each run is given its own result; A starts after B was asked (and ran)
    tb = await _task(lightning, "sess-b", assignment=pb)
    ta = await _task(lightning, "sess-a", assignment=pa)
    ra, rb = recorded(ta), recorded(tb)
    assert ra["promptVersion"] == "2" and ra["metadata"]["promptAssignment"] == pa.assignment
    assert rb["promptVersion"] == "1" and rb["metadata"]["promptAssignment"] == pb.assignment
    # a later task of session A keeps A's assignment
    assert recorded(await _task(lightning, "sess-a"))["promptVersion"] == "2"

    # 2. not passed, but the system prompt says which text the run used
    pa2 = await lightning.prompt_details("own", unit=canary)
    pb2 = await lightning.prompt_details("own", unit=promoted)
    r_a = recorded(await _task(lightning, "sess-a-text", system_prompt=f"{pa2.text}\nToday is Monday."))
    r_b = recorded(await _task(lightning, "sess-b-text", system_prompt=pb2.text))
    assert (r_a["promptVersion"], r_a["metadata"]["promptAssignment"]["unit"]) == ("2", canary)
    assert (r_b["promptVersion"], r_b["metadata"]["promptAssignment"]["unit"]) == ("1", promoted)

    # 3. hooks only, two units pending, nothing to tell them apart: no version rather than B's
    await lightning.prompt_details("own", unit=canary)
    await lightning.prompt_details("own", unit=promoted)
    r3 = recorded(await _task(lightning, "sess-hooks-only"))
    assert r3["promptVersion"] is None
    assert r3["metadata"]["promptAssignment"]["arm"] == "unattributed"
    await lightning.shutdown(5)

    # 4. hooks only, one unit asked at a time (a new process): each run gets its unit's version
    seq = Lightning(**opts(collector.url, collector.api_key, a, flush_interval=0, spool=False))
    await seq.prompt("own", unit=promoted)
    t4 = await _task(seq, "sess-seq-1")
    await seq.prompt("own", unit=canary)
    t5 = await _task(seq, "sess-seq-2")
    t6 = await _task(seq, "sess-seq-3")
    assert seq.flush_sync(10)
    r4, r5, r6 = (collector.trajectory(t) for t in (t4, t5, t6))
    assert (r4["promptVersion"], r4["metadata"]["promptAssignment"]["arm"]) == ("1", "promoted")
    assert (r5["promptVersion"], r5["metadata"]["promptAssignment"]["arm"]) == ("2", "canary")
    assert (r6["promptVersion"], r6["metadata"]["promptAssignment"]["unit"]) == ("2", canary)
    await seq.shutdown(5)


async def test_a_collector_that_does_not_answer_gives_the_fallback_recorded_as_unassigned(
    collector: Collector, tmp_path: Path
) -> None:
    """The collector hangs: prompt() gives up after `timeout`; the run is spooled and, delivered
    by the next process, says it ran the fallback, unassigned."""
    a = agent()
    hung = HungServer()
    try:
        lightning = Lightning(**opts(hung.url, collector.api_key, a, spool_dir=str(tmp_path)))
        r = await lightning.prompt_details("own", unit="user-slow", timeout=0.3)
        assert hung.conns, "the request reached the hanging collector"
        assert (r.text, r.version, r.source, r.arm) == ("own", None, "fallback", None)
        assert r.assignment["arm"] == "unassigned" and r.assignment["unit"] == "user-slow"
        assert r.assignment["error"].endswith("no answer within 0.3 s"), r.assignment
        tid = await _task(lightning, "sess-slow")
        await lightning.shutdown(0.5)
    finally:
        hung.close()
    later = Lightning(**opts(collector.url, collector.api_key, a, spool_dir=str(tmp_path)))
    assert later.flush_sync(15)
    later.shutdown_sync()
    t = collector.trajectory(tid)
    assert t["promptVersion"] is None
    assert t["metadata"]["promptAssignment"] == r.assignment


async def test_prompt_falls_back_quickly_when_the_collector_is_unreachable() -> None:
    lightning = Lightning(**opts(f"http://127.0.0.1:{free_port()}", "some-key-0123456789", agent(), spool=False))
    started = time.monotonic()
    r = await lightning.prompt_details("own prompt", unit="user-1")
    assert time.monotonic() - started < 3.5
    assert r.assignment["arm"] == "unassigned" and r.assignment["unit"] == "user-1" and r.assignment["error"]
    assert (r.text, r.version, r.source) == ("own prompt", None, "fallback")
    await lightning.shutdown(1)


SIGTERM_CHILD = """
import asyncio, json, sys, time
from agent_lightning import Lightning
from tests.sim import session

lightning = Lightning(**json.loads(sys.argv[1]))
asyncio.run(session(lightning, 3, stop=False))
# as inside a hook or a track() observer: the main thread holds both instrumentation locks
with lightning._lock, lightning._outbox._lock:
    print(f"HOLDING {time.time()}", flush=True)
    while True:
        time.sleep(0.05)
"""


@pytest.mark.parametrize("collector_state", ["up", "down"])
def test_sigterm_while_the_main_thread_holds_the_lock_loses_nothing(
    collector: Collector, tmp_path: Path, collector_state: str
) -> None:
    """SIGTERM lands while the main thread is inside the instrumentation (its locks held): the
    handler, on that same thread, still completes the trajectory as interrupted, delivers it (or
    spools it when the collector is down), and the process ends by the signal within
    shutdown_timeout + 4 s."""
    import signal

    a = agent()
    url = collector.url if collector_state == "up" else f"http://127.0.0.1:{free_port()}"
    cfg = opts(url, collector.api_key, a, spool_dir=str(tmp_path), shutdown_timeout=2.0, handle_process_exit=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_CHILD, json.dumps(cfg)],
        cwd=PACKAGE_ROOT,
        env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("HOLDING"), (line, proc.stderr.read() if proc.stderr else "")
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    lived = time.monotonic() - signalled
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == -signal.SIGTERM, (code, stderr)
    assert lived < 2.0 + 4.0, lived
    if collector_state == "down":
        records = [json.loads(x) for f in tmp_path.glob("spool-*") for x in f.read_text().splitlines()]
        assert [r["kind"] for r in records].count("complete") == 1, (records, stderr)
        complete = next(r["body"] for r in records if r["kind"] == "complete")
        assert complete["status"] == "interrupted" and "SIGTERM" in complete["error"], complete
        later = Lightning(**opts(collector.url, collector.api_key, f"{a}-next", spool_dir=str(tmp_path)))
        assert later.flush_sync(15)
        later.shutdown_sync()
        assert list(tmp_path.glob("spool-*")) == []
    t = collector.only(a)
    assert t["status"] == "interrupted" and "SIGTERM" in t["error"], t
    tools = tool_steps(t)
    assert [s["toolUseId"] for s in tools] == ["toolu_sim_0", "toolu_sim_1", "toolu_sim_2"]
    assert [s["toolOutput"] for s in tools] == [{"stdout": "0"}, {"stdout": "1"}, {"stdout": "2"}]
    print(f"SIGTERM ({collector_state}): the process ended {lived:.2f} s after the signal")
