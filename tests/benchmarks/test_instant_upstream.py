"""The chat-overhead benchmark's upstream must be one the app's real model client can use,
or the benchmark would time errors: embeddings, answers with a citation, and streams."""

from __future__ import annotations

import asyncio

import pytest

from apps.chat.model_client import ModelClient
from apps.chat.settings import Settings
from benchmarks.chat_overhead import instant_upstream

PROMPT = [{"role": "user", "content": "When does the car park open?\n\nSources:\nparking.md#page=1: At seven.\n"}]


@pytest.fixture(scope="module")
def upstream_url(tmp_path_factory):
    with instant_upstream(tmp_path_factory.mktemp("upstream")) as url:
        yield url + "/v1"


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
