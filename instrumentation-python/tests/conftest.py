from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .helpers import PACKAGE_ROOT, Collector, sdk_env


@pytest.fixture(scope="session")
def collector() -> Iterator[Collector]:
    c = Collector().start()
    yield c
    c.dispose()


EXIT_SLACK = 4.0


@dataclass
class ChildRun:
    code: int
    stdout: str
    stderr: str
    started: float
    ended: float
    agent_end: float | None

    @property
    def exit_handler(self) -> float | None:
        """Seconds the instrumentation's exit handler took (from its debug line), if it ran."""
        for line in self.stderr.splitlines():
            if "exit: done in " in line:
                return float(line.split("exit: done in ")[1].split()[0])
        return None

    def assert_bounded_exit(self, shutdown_timeout: float = 5.0) -> None:
        """The process's own lifetime past the agent's end (its loop finished, to the parent seeing
        it exit) is under shutdown_timeout + 4 s, the TypeScript tests' bound: the
        instrumentation's part is bounded by shutdown_timeout, the 4 s are for the SDK stopping
        the CLI and the interpreter's teardown on a loaded machine."""
        took = self.exit_handler
        assert self.after_agent < shutdown_timeout + EXIT_SLACK, (self.after_agent, took, self.stderr[-2000:])
        print(f"process lived {self.after_agent:.2f} s past the agent's end (exit handler {took} s)")

    @property
    def after_agent(self) -> float:
        """Seconds the process lived past the agent's end (its loop finished)."""
        assert self.agent_end is not None, f"no AGENT_END line:\n{self.stdout}\n{self.stderr}"
        return self.ended - self.agent_end


def spawn_child(cfg: dict[str, Any], fake_url: str, home: str) -> subprocess.Popen[str]:
    env = sdk_env(fake_url, home)
    env["PYTHONPATH"] = str(PACKAGE_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env["LIGHTNING_DEBUG"] = "1"  # the exit handler reports how long it took
    return subprocess.Popen(
        [sys.executable, "-m", "tests.agent_child", json.dumps(cfg)],
        cwd=PACKAGE_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a suite started in the background (`cmd &` without job control)
        # inherits SIGINT ignored, and Python then never turns Ctrl-C into KeyboardInterrupt.
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish_child(proc: subprocess.Popen[str], started: float, timeout: float = 120) -> ChildRun:
    """Waits for the process itself (not for its pipes, which a leftover grandchild could hold
    open): `ended` is when it exited."""
    parts: dict[str, list[str]] = {"out": [], "err": []}
    readers = []
    for name, stream in (("out", proc.stdout), ("err", proc.stderr)):
        if stream is not None:
            r = threading.Thread(target=lambda s=stream, p=parts[name]: p.append(s.read()), daemon=True)
            r.start()
            readers.append(r)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    ended = time.time()
    for r in readers:
        r.join(10)
    out, err = "".join(parts["out"]), "".join(parts["err"])
    agent_end = None
    for line in out.splitlines():
        if line.startswith("AGENT_END "):
            agent_end = float(line.split()[1])
    return ChildRun(proc.returncode, out, err, started, ended, agent_end)


def run_child(cfg: dict[str, Any], fake_url: str, home: str, timeout: float = 120) -> ChildRun:
    started = time.time()
    return finish_child(spawn_child(cfg, fake_url, home), started, timeout)


@pytest.fixture
def dirs() -> Iterator[dict[str, str]]:
    work = tempfile.mkdtemp(prefix="lightning-py-work-")
    home = tempfile.mkdtemp(prefix="lightning-py-home-")
    yield {"work": work, "home": home, "spool": str(Path(home) / "spool")}
    import shutil

    for d in (work, home):
        shutil.rmtree(d, ignore_errors=True)


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


os.environ.setdefault("LIGHTNING_BIN", str(PACKAGE_ROOT.parent / "target" / "debug" / "lightning"))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: Any) -> bool | None:
    """Runs `async def` tests in a fresh event loop (no plugin needed)."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(pyfuncitem.obj(**args))
        return True
    return None
