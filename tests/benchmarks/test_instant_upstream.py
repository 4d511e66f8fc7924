"""The chat-overhead benchmark's upstream must be one the app's real model client can use,
or the benchmark would time errors: embeddings, answers with a citation, and streams."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps.chat.model_client import ModelClient
from apps.chat.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMPT = [{"role": "user", "content": "When does the car park open?\n\nSources:\nparking.md#page=1: At seven.\n"}]


@pytest.fixture(scope="module")
def upstream_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.instant_upstream", str(port)], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 30
        while not accepts_connections(port):
            assert server.poll() is None and time.monotonic() < deadline, "the instant upstream did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=10)


def accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def call(upstream_url: str, work):
    async def run():
        client = ModelClient.from_settings(Settings(openai_base_url=upstream_url, embedding_dimensions=16))
        try:
            return await work(client)
        finally:
            await client.close()

    return asyncio.run(run())


def test_embeddings_have_the_requested_count_and_dimensions(upstream_url):
    vectors = call(upstream_url, lambda client: client.embed(["one", "two", "three"]))

    assert len(vectors) == 3 and all(len(vector) == 16 for vector in vectors)
    assert sum(value * value for value in vectors[0]) == pytest.approx(1.0)


def test_answers_cite_the_first_source_of_the_prompt(upstream_url):
    answer = call(upstream_url, lambda client: client.complete(PROMPT))

    assert "[parking.md#page=1]" in answer


def test_streamed_answers_join_to_the_same_answer(upstream_url):
    async def streamed(client):
        pieces = await client.open_stream(PROMPT)
        return "".join([piece async for piece in pieces])

    assert call(upstream_url, streamed) == call(upstream_url, lambda client: client.complete(PROMPT))
