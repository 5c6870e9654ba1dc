"""Test helpers: the real collector binary, a scripted fake Anthropic Messages API, small proxies."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import string
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_ROOT.parent


def rand(n: int = 8) -> str:
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collector_binary() -> str:
    bin_path = os.environ.get("LIGHTNING_BIN") or str(REPO_ROOT / "target" / "debug" / "lightning")
    if not os.path.exists(bin_path):
        raise RuntimeError(f"collector binary not found at {bin_path}: cargo build -p lightning or set LIGHTNING_BIN")
    return bin_path


class Collector:
    """`lightning serve` on a free loopback port with a fresh SQLite data directory."""

    def __init__(self, api_key: str | None = None) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="lightning-py-it-")
        self.api_key = api_key or f"it-key-{rand()}-0123456789abcdef"
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(self.data_dir) / "collector.log"

    def start(self, port: int | None = None) -> Collector:
        self.port = port or self.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "API_KEY", "PORT", "HOST")}
        env["RUST_LOG"] = env.get("RUST_LOG", "warn")
        out = open(self.log, "ab")  # noqa: SIM115 (the child owns it)
        self.proc = subprocess.Popen(
            [
                collector_binary(),
                "serve",
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--data-dir",
                self.data_dir,
                "--api-key",
                self.api_key,
            ],
            env=env,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"collector did not become healthy: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def dispose(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def get(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path, headers={"authorization": f"Bearer {self.api_key}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def trajectories(self, agent_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/api/trajectories?agentId={agent_id}&limit=1000")["trajectories"])

    def trajectory(self, tid: str) -> dict[str, Any]:
        return dict(self.get(f"/api/trajectories/{tid}"))

    def all(self, agent_id: str) -> list[dict[str, Any]]:
        """Every trajectory of an agent with its steps, oldest first."""
        full = [self.trajectory(t["id"]) for t in self.trajectories(agent_id)]
        return sorted(full, key=lambda t: t.get("startTime") or "")

    def only(self, agent_id: str) -> dict[str, Any]:
        found = self.trajectories(agent_id)
        assert len(found) == 1, f"expected 1 trajectory for {agent_id}, found {len(found)}: {found}"
        return self.trajectory(found[0]["id"])


# ---------------------------------------------------------------------------------------------- fake model


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tool(id_: str, name: str, **input_: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": id_, "name": name, "input": input_}


def turn(*content: dict[str, Any]) -> dict[str, Any]:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    return {"content": list(content), "stop_reason": stop}


def api_error(status: int, message: str) -> dict[str, Any]:
    """A turn answered with an HTTP error instead (400: an API error the CLI gives up on)."""
    return {"content": [], "stop_reason": "end_turn", "error_status": status, "error_message": message}


class FakeAnthropic:
    """A scripted stand-in for the Anthropic Messages API, good enough for the Claude Code CLI (the
    Python twin of instrumentation/test/helpers/fake-anthropic.ts). A main-loop request is answered
    with the first scripted turn whose tool calls are not all answered yet, so CLI retries get the
    same answer. Requests whose first user message contains `sub_marker` follow `sub_turns` (a
    subagent's own conversation)."""

    def __init__(
        self,
        turns: list[dict[str, Any]],
        sub_turns: list[dict[str, Any]] | None = None,
        sub_marker: str = "SUBTASK",
        model: str = "claude-sonnet-4-5-20250929",
        routes: list[tuple[str, list[dict[str, Any]]]] | None = None,
    ) -> None:
        self.turns = turns
        self.routes = routes or []
        self.sub_turns = sub_turns or []
        self.sub_marker = sub_marker
        self.model = model
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self._json(200, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                path = self.path.split("?")[0]
                fake.requests.append({"path": path, "body": body})
                if path.endswith("/count_tokens"):
                    self._json(200, {"input_tokens": 42})
                    return
                if not path.endswith("/v1/messages"):
                    self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
                    return
                picked = fake.pick(body)
                if picked.get("error_status"):
                    error = {"type": "invalid_request_error", "message": picked.get("error_message", "scripted error")}
                    self._json(int(picked["error_status"]), {"type": "error", "error": error})
                    return
                self._answer(picked)

            def _json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _answer(self, t: dict[str, Any]) -> None:
                usage = {
                    "input_tokens": 1200,
                    "output_tokens": 60,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                }
                mid = f"msg_{rand(12)}"
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()

                def send(event: str, data: Any) -> None:
                    self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

                send(
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {
                            "id": mid,
                            "type": "message",
                            "role": "assistant",
                            "model": fake.model,
                            "content": [],
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": {**usage, "output_tokens": 1},
                        },
                    },
                )
                for i, block in enumerate(t["content"]):
                    if block["type"] == "text":
                        send(
                            "content_block_start",
                            {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                        )
                        send(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": i,
                                "delta": {"type": "text_delta", "text": block["text"]},
                            },
                        )
                    else:
                        send(
                            "content_block_start",
                            {
                                "type": "content_block_start",
                                "index": i,
                                "content_block": {
                                    "type": "tool_use",
                                    "id": block["id"],
                                    "name": block["name"],
                                    "input": {},
                                },
                            },
                        )
                        js = json.dumps(block["input"])
                        half = len(js) // 2
                        for part in (js[:half], js[half:]):
                            send(
                                "content_block_delta",
                                {
                                    "type": "content_block_delta",
                                    "index": i,
                                    "delta": {"type": "input_json_delta", "partial_json": part},
                                },
                            )
                    send("content_block_stop", {"type": "content_block_stop", "index": i})
                send(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": t["stop_reason"], "stop_sequence": None},
                        "usage": {"output_tokens": 60},
                    },
                )
                send("message_stop", {"type": "message_stop"})
                self.wfile.flush()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def main_loop(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if isinstance(r["body"], dict) and r["body"].get("tools")]

    def pick(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("tools"):
            return turn(text("Scripted session"))  # side requests (titles, summaries)
        messages = body.get("messages") or []
        script = self.turns
        first_user = next((m for m in messages if m.get("role") == "user"), None)
        if self.sub_turns and first_user is not None and self.sub_marker in json.dumps(first_user.get("content")):
            script = self.sub_turns
        prompts = [m for m in messages if m.get("role") == "user" and "tool_result" not in json.dumps(m.get("content"))]
        for marker, route in self.routes:
            if prompts and marker in json.dumps(prompts[-1].get("content")):
                script = route
        answered = set()
        for m in messages:
            if m.get("role") == "user" and isinstance(m.get("content"), list):
                for b in m["content"]:
                    if isinstance(b, dict) and b.get("type") == "tool_result":
                        answered.add(b.get("tool_use_id"))
        for t in script:
            ids = [b["id"] for b in t["content"] if b["type"] == "tool_use"]
            if not ids or any(i not in answered for i in ids):
                return t
        return script[-1]


def sdk_env(base_url: str, home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    env.update(
        {
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "sk-ant-test-dummy-key",
            "CLAUDE_CONFIG_DIR": str(Path(home) / ".claude"),
            "HOME": home,
            "IS_SANDBOX": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }
    )
    return env


# ---------------------------------------------------------------------------------------------- faults


class HungServer:
    """Accepts TCP connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


class FlakyProxy:
    """Forwards to the collector; for the first `fail_after_forward` requests it forwards (the
    collector stores them) and then answers 503 anyway, so the client must retry what was stored."""

    def __init__(self, target: str, fail_after_forward: int, status: int = 503) -> None:
        self.target = target
        self.remaining = fail_after_forward
        self.status = status
        self.seen: list[str] = []
        self.bodies: list[Any] = []  # every request body, as received
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                proxy.seen.append(self.path)
                try:
                    proxy.bodies.append(json.loads(raw) if raw else None)
                except ValueError:
                    proxy.bodies.append(raw.decode("utf-8", "replace"))
                req = urllib.request.Request(
                    proxy.target + self.path,
                    data=raw,
                    method="POST",
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        status, data = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                if proxy.remaining > 0:
                    proxy.remaining -= 1
                    status, data = proxy.status, b'{"error":"injected"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Features:
    """What the collector under test supports, read from its OpenAPI document: the tests assert the
    contract's new fields (status `interrupted`, step kinds, scores) where the server has them, and
    the older equivalent (success false, the error text) where it does not."""

    def __init__(self, collector: Collector) -> None:
        doc = json.dumps(collector.get("/api/openapi.json"))
        self.interrupted = "interrupted" in doc
        self.kinds = '"message"' in doc and '"event"' in doc
        self.scores = "/scores" in doc


def tool_steps(t: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps that are tool calls (messages and events carry no toolUseId)."""
    return [s for s in t["steps"] if s.get("kind", "tool") == "tool" and s.get("toolUseId")]


def message_steps(t: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s for s in t["steps"] if s.get("kind") == "message" or (not s.get("toolUseId") and s["toolName"] == "assistant")
    ]
