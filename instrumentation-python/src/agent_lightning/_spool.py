"""Disk spool, the same v1 format as the TypeScript package (instrumentation/src/spool.ts).

Records that could not be delivered are appended as JSON lines
``{"v":1,"kind":"start"|"step"|"complete"|"score","trajectoryId":…,"body":<wire payload>}`` to a
file ``spool-<epochMs>-<pid>-<rand8>.jsonl`` (0600) in a 0700 directory. The next process using
the directory claims such files by atomic rename to ``<file>.claimed-<pid>`` (a claim whose pid
is dead may be claimed again), replays them and deletes them once their records were delivered
or spooled again. Either package delivers the other's files.

Replays may repeat records a crashed process had already sent; the collector makes that harmless
(idempotent starts, steps merged by (trajectoryId, stepNumber), idempotent completes, scores
keyed by their client id).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._sanitize import dumps, error_message

SUFFIX = ".jsonl"
CLAIM = ".claimed-"
KINDS = ("start", "step", "complete", "score")


@dataclass
class SpoolRecord:
    kind: str
    trajectory_id: str
    body: dict[str, Any]

    def line(self) -> str:
        return dumps({"v": 1, "kind": self.kind, "trajectoryId": self.trajectory_id, "body": self.body}) + "\n"


def default_spool_dir() -> Path:
    """``$XDG_STATE_HOME/agent-lightning/spool``, else ``~/.local/state/agent-lightning/spool``,
    else ``<tmpdir>/agent-lightning-<uid>/spool``."""
    xdg = os.environ.get("XDG_STATE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "agent-lightning" / "spool"
    try:
        home = Path.home()
        if str(home) not in ("", "/"):
            return home / ".local" / "state" / "agent-lightning" / "spool"
    except (RuntimeError, KeyError):
        pass
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"agent-lightning-{uid}" / "spool"


def collector_key(collector_url: str) -> str:
    """The default spool keeps one subdirectory per collector, so records meant for one are never
    delivered to another: 16 hex digits of the SHA-256 of the URL, trailing slashes removed."""
    import hashlib

    return hashlib.sha256(collector_url.rstrip("/").encode("utf-8")).hexdigest()[:16]


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def parse_line(line: str) -> SpoolRecord | None:
    import json

    try:
        r = json.loads(line)
    except ValueError:
        return None  # a torn last line from a crash
    if (
        isinstance(r, dict)
        and r.get("v") == 1
        and r.get("kind") in KINDS
        and isinstance(r.get("trajectoryId"), str)
        and isinstance(r.get("body"), dict)
    ):
        return SpoolRecord(r["kind"], r["trajectoryId"], r["body"])
    return None


class Spool:
    def __init__(self, directory: Path, max_bytes: int, warn: Any, debug: Any) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self._warn = warn
        self._debug = debug
        self.file = directory / f"spool-{int(time.time() * 1000)}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        self._claimed: list[Path] = []
        self._warned_full = False

    def _ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):
            st = os.stat(self.dir)
            # tighten a directory this user created earlier with looser permissions
            if st.st_uid == os.getuid() and st.st_mode & 0o077:
                os.chmod(self.dir, 0o700)

    def dir_bytes(self) -> int:
        total = 0
        try:
            with os.scandir(self.dir) as it:
                for entry in it:
                    if entry.name.startswith("spool-"):
                        with contextlib.suppress(OSError):
                            total += entry.stat().st_size
        except OSError:
            return 0
        return total

    def write(self, records: list[SpoolRecord]) -> int:
        """Appends records synchronously. Returns how many were written (the rest would overflow
        max_bytes, or the write failed)."""
        if not records:
            return 0
        try:
            self._ensure_dir()
            used = self.dir_bytes()
            lines: list[str] = []
            for r in records:
                line = r.line()
                size = len(line.encode("utf-8", "surrogatepass"))
                if used + size > self.max_bytes:
                    if not self._warned_full:
                        self._warned_full = True
                        self._warn(
                            f"[Lightning Instrumentation] Spool {self.dir} is full ({self.max_bytes} bytes); "
                            "dropping records"
                        )
                    break
                used += size
                lines.append(line)
            if not lines:
                return 0
            fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, "".join(lines).encode("utf-8", "surrogatepass"))
            finally:
                os.close(fd)
            self._debug(f"[Spool] Wrote {len(lines)} records to {self.file}")
            return len(lines)
        except Exception as e:
            self._warn(f"[Lightning Instrumentation] Could not write spool {self.file}: {error_message(e)}")
            return 0

    def claim(self) -> list[SpoolRecord]:
        """Claims the files left by other processes (and claims of dead processes) and returns their
        records in file order."""
        out: list[SpoolRecord] = []
        try:
            names = sorted(os.listdir(self.dir))
        except OSError:
            return out
        own = self.file.name
        for name in names:
            if not name.startswith("spool-") or name == own:
                continue
            if CLAIM in name:
                pid_text = name[name.rindex(CLAIM) + len(CLAIM) :]
                if not pid_text.isdigit() or pid_alive(int(pid_text)):
                    continue
                base = name[: name.rindex(CLAIM)]
            elif name.endswith(SUFFIX):
                base = name
            else:
                continue
            target = self.dir / f"{base}{CLAIM}{os.getpid()}"
            try:
                os.rename(self.dir / name, target)
            except OSError:
                continue  # another process got it first
            self._claimed.append(target)
            try:
                text = target.read_text("utf-8", "surrogateescape")
            except OSError as e:
                self._warn(f"[Lightning Instrumentation] Could not read spool {target}: {error_message(e)}")
                continue
            for line in text.split("\n"):
                if line.strip():
                    record = parse_line(line)
                    if record is not None:
                        out.append(record)
        if out:
            self._debug(f"[Spool] Replaying {len(out)} records from {len(self._claimed)} file(s)")
        return out

    def release_claimed(self) -> None:
        """Deletes the claimed files: call once their records are delivered or spooled again."""
        while True:
            try:
                path = self._claimed.pop()
            except IndexError:  # emptied meanwhile by another thread
                return
            with contextlib.suppress(OSError):
                os.unlink(path)

    @property
    def has_claimed(self) -> bool:
        return bool(self._claimed)
