"""`python -m apps.chat serve` with no database configured: starts the embedded PostgreSQL, serves, and
stops both when it is told to stop (SIGTERM, as a container runtime or `kill` sends). The server's limits
on idle and slow clients (apps/chat/server.py), and the gunicorn worker of the container that has them too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from apps.chat import server

from .conftest import scratch_folder

REPO_ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_stops_the_embedded_database_on_sigterm():
    with scratch_folder("serve-") as data_dir:
        serve_until_sigterm_and_check_the_database_stops(data_dir)


def serve_until_sigterm_and_check_the_database_stops(data_dir: Path) -> None:
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("POSTGRES_", "DATABASE_", "OPENAI_", "AZURE_OPENAI"))
    }
    environment.update(LOCAL_DATA_DIR=str(data_dir), INGEST_SAMPLE_CORPUS="false")
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.chat", "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    postmaster_pid = data_dir / "postgres" / "postmaster.pid"
    try:
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}/healthz"), 60, "the app to answer /healthz")
        assert postmaster_pid.exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        wait_for(lambda: not postmaster_pid.exists(), 30, "the embedded PostgreSQL to stop")
    finally:
        if process.poll() is None:
            process.kill()


# Each limit is 1 s in the test; a connection still open after BOUND has not been dropped.
BOUND = 3.0


def test_the_server_closes_idle_connections_and_drops_slow_clients(make_settings, serve_app):
    settings = make_settings(request_body_timeout_seconds=1)
    with serve_app(settings, keep_alive=1, header_timeout=1) as app:
        address = ("127.0.0.1", int(app.base_url.rsplit(":", 1)[1]))
        scenarios = {
            # Answered, then idle: closed after the keep-alive time.
            "idle after a response": (b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n", None),
            # Connects and sends nothing.
            "silent": (b"", None),
            # Slow loris: a header line now and then, never the blank line that ends them.
            "slow headers": (b"GET /healthz HTTP/1.1\r\nHost: test\r\n", b"X-Slow: 1\r\n"),
            # The headers, then a body that stops half-way.
            "slow body": (b"POST /chat HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{", None),
        }
        with ThreadPoolExecutor(len(scenarios)) as pool:
            results = dict(
                zip(scenarios, pool.map(lambda s: until_closed(address, *s), scenarios.values()), strict=True)
            )
        too_large = until_closed(address, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"x" * server.MAX_HEADER_BYTES, None)

    assert results["idle after a response"][0].startswith(b"HTTP/1.1 200 OK")
    assert results["silent"][0] == b"" and results["slow headers"][0] == b""
    assert results["slow body"][0].startswith(b"HTTP/1.1 408 ")
    assert b'"request body not received within 1 s"' in results["slow body"][0]
    for name, (_, seconds) in results.items():
        assert 0.8 < seconds < BOUND, (name, seconds)
    assert too_large[0].startswith(b"HTTP/1.1 400 ") and too_large[1] < 0.8


def until_closed(address, request: bytes, trickle: bytes | None) -> tuple[bytes, float]:
    """Sends `request` (and `trickle` every 0.1 s, if given); returns what the server answered until it
    closed the connection, and after how many seconds. Fails if it is still open after BOUND."""
    received = b""
    with socket.create_connection(address, timeout=0.1) as sock:
        sock.sendall(request)
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < BOUND:
            try:
                if trickle:
                    sock.sendall(trickle)
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return received, elapsed
            if not chunk:
                return received, elapsed
            received += chunk
    raise AssertionError(f"still open after {BOUND} s: {request[:40]!r}, answered {received[:80]!r}")


def test_the_container_worker_has_the_same_limits_and_the_dockerfile_uses_it():
    dockerfile = (REPO_ROOT / "apps" / "chat" / "Dockerfile").read_text()
    http = server.Worker.CONFIG_KWARGS["http"]

    assert issubclass(http, server.SlowClientLimits) and http.header_timeout == server.HEADER_TIMEOUT_SECONDS
    assert server.Worker.CONFIG_KWARGS["h11_max_incomplete_event_size"] == server.MAX_HEADER_BYTES
    assert "--worker-class apps.chat.server.Worker" in dockerfile
    for option in ("--keep-alive ", "--timeout ", "--graceful-timeout "):
        assert option in dockerfile
