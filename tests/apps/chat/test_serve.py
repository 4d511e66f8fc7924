"""`python -m apps.chat serve` with no database configured: starts the embedded PostgreSQL, serves, and
stops both when it is told to stop (SIGTERM, as a container runtime or `kill` sends)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

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
