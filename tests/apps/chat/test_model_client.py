"""The model client on its own, against the fake OpenAI server: what it sends, how it reads the
answers (embeddings in base64, streamed events that arrive together) and how it names bad answers."""

from __future__ import annotations

import asyncio
import json
import re

import httpx2
import pytest

from apps.chat.model_client import ModelClient, ModelResponseError, _text_pieces

from .conftest import TEST_EMBEDDING_DIMENSIONS
from .fake_openai import fake_embedding


def run(coroutine):
    return asyncio.run(coroutine)


async def with_client(settings, work):
    client = ModelClient.from_settings(settings)
    try:
        return await work(client)
    finally:
        await client.close()


def test_embeddings_are_asked_for_in_base64_and_decoded_to_the_servers_vectors(make_settings, fake_openai):
    texts = ["annual leave", "laptop encryption", "parking"]

    vectors = run(with_client(make_settings(), lambda client: client.embed(texts)))

    request = fake_openai.requests_to("/embeddings")[-1].body
    assert request["encoding_format"] == "base64" and request["dimensions"] == TEST_EMBEDDING_DIMENSIONS
    for text, vector in zip(texts, vectors, strict=True):
        assert vector == pytest.approx(fake_embedding(text, TEST_EMBEDDING_DIMENSIONS), abs=1e-6)


def test_embeddings_as_plain_numbers_are_accepted_too(make_settings, fake_openai):
    # Some OpenAI-compatible servers ignore encoding_format and always send numbers.
    answer = {"data": [{"index": 1, "embedding": [0.0] * 63 + [1.0]}, {"index": 0, "embedding": [1.0] + [0.0] * 63}]}
    fake_openai.fail_next(200, body=json.dumps(answer), path_suffix="/embeddings")

    vectors = run(with_client(make_settings(), lambda client: client.embed(["first", "second"])))

    assert vectors[0][0] == 1.0 and vectors[1][63] == 1.0  # back in input order


@pytest.mark.parametrize(
    ("path", "answer", "message"),
    [
        ("/embeddings", {"object": "list"}, "embeddings: unexpected answer"),
        ("/embeddings", {"data": [{"index": 0, "embedding": "not base64!"}]}, "embeddings: unexpected answer"),
        ("/embeddings", {"data": [{"index": 0, "embedding": [1.0, 0.0]}]}, "got 2 dimensions"),
        ("/chat/completions", {"choices": []}, "chat: the answer has no choices[0].message"),
        ("/chat/completions", {"choices": [{"text": "old style"}]}, "chat: the answer has no choices[0].message"),
    ],
)
def test_a_malformed_answer_is_an_error_that_names_it(make_settings, fake_openai, path, answer, message):
    fake_openai.fail_next(200, body=json.dumps(answer), path_suffix=path)

    async def call(client):
        if path == "/embeddings":
            return await client.embed(["question"])
        return await client.complete([{"role": "user", "content": "question"}])

    with pytest.raises(ModelResponseError, match=re.escape(message)):
        run(with_client(make_settings(), call))


def test_a_stream_line_that_is_not_json_is_an_error_that_names_it(make_settings, fake_openai):
    fake_openai.fail_next(
        200,
        body='data: {"choices": [{"delta": {"content": "Hi"}}]}\n\ndata: {oops\n\n',
        content_type="text/event-stream",
    )

    async def read_stream(client):
        pieces = await client.open_stream([{"role": "user", "content": "question"}])
        return [piece async for piece in pieces]

    with pytest.raises(ModelResponseError, match=re.escape("not JSON: {oops")):
        run(with_client(make_settings(), read_stream))


def event(text: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode() + b"\n\n"


def test_events_that_arrive_together_become_one_piece_and_split_lines_are_joined():
    # What one socket read at a time delivers: three events at once, then an event cut in two.
    second = event("world")
    reads = [event("Hello") + event(", ") + event("big "), second[:12], second[12:] + b"data: [DONE]\n\n"]

    async def body():
        for read in reads:
            yield read

    async def pieces():
        response = httpx2.Response(200, content=body())
        return [piece async for piece in _text_pieces(response)]

    assert run(pieces()) == ["Hello, big ", "world"]
