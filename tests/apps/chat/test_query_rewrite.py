"""Follow-up rewriting (query_rewrite.py) with one tool call, its fallbacks, and the user header on model calls."""

from __future__ import annotations

import asyncio
import json

import pytest

from apps.chat.model_client import USER_HEADER

from .conftest import ingest
from .fake_openai import GARBAGE_ARGUMENTS
from .test_access_control import ALICE, identity_headers

FOLLOW_UP = [
    {"role": "user", "content": "When does the car park open?"},
    {"role": "assistant", "content": "At seven [corpus/parking.md#parking]."},
    {"role": "user", "content": "And for contractors?"},
]


def search_query_thought(body: dict) -> dict:
    return next(thought for thought in body["context"]["thoughts"] if thought["title"] == "Search query")


def test_a_follow_up_is_searched_as_the_standalone_query_the_model_writes(chat_app, fake_openai):
    fake_openai.state.tool_arguments = json.dumps({"query": "staff car park opening hours"})

    body = chat_app.client.post("/chat", json={"messages": FOLLOW_UP}).json()

    thought = search_query_thought(body)
    assert thought["description"] == "staff car park opening hours"
    assert thought["props"]["rewritten"] is True
    assert body["context"]["data_points"]["text"][0].startswith("corpus/parking.md#parking")
    (rewrite,) = [r.body for r in fake_openai.requests_to("/chat/completions") if r.body.get("tools")]
    assert rewrite["tool_choice"] == {"type": "function", "function": {"name": "search_documents"}}
    # Bounded, in the parameters the deployed reasoning models accept (they refuse max_tokens and temperature).
    assert rewrite["max_completion_tokens"] <= 1000
    assert "max_tokens" not in rewrite and "temperature" not in rewrite
    parameters = rewrite["tools"][0]["function"]["parameters"]
    assert set(parameters["properties"]) == {"query", "collection"}
    assert parameters["properties"]["collection"]["enum"] == ["corpus"]
    assert "And for contractors?" in rewrite["messages"][-1]["content"]
    assert "When does the car park open?" in rewrite["messages"][-1]["content"]


def test_a_first_question_is_searched_as_it_is_without_a_rewrite_call(chat_app, fake_openai):
    body = chat_app.client.post("/chat", json={"messages": FOLLOW_UP[:1]}).json()

    assert search_query_thought(body)["description"] == "When does the car park open?"
    assert not [r for r in fake_openai.requests_to("/chat/completions") if r.body.get("tools")]


@pytest.mark.parametrize(
    "arguments",
    [
        GARBAGE_ARGUMENTS,
        None,  # answers without calling the tool
        json.dumps({"query": 5}),
        json.dumps({"query": "   "}),
        json.dumps({"query": "parking", "collection": "invented"}),
        json.dumps({"query": "parking", "owner": "me"}),
        json.dumps(["parking"]),
    ],
)
def test_an_unusable_rewrite_falls_back_to_the_last_message(chat_app, fake_openai, arguments):
    fake_openai.state.tool_arguments = arguments

    response = chat_app.client.post("/chat", json={"messages": FOLLOW_UP})

    assert response.status_code == 200, response.text
    thought = search_query_thought(response.json())
    assert thought["description"] == "And for contractors?"
    assert thought["props"]["rewritten"] is False


def test_a_rewrite_the_model_refuses_falls_back_too(chat_app, fake_openai):
    fake_openai.fail_next(400, path_suffix="/chat/completions")  # e.g. a model without tool calling

    response = chat_app.client.post("/chat", json={"messages": FOLLOW_UP})

    assert response.status_code == 200, response.text
    assert search_query_thought(response.json())["description"] == "And for contractors?"


def test_without_a_model_the_last_message_is_searched(make_settings, corpus_dir, start_app):
    settings = make_settings(openai_base_url=None)
    asyncio.run(ingest(settings, [corpus_dir]))
    with start_app(settings) as app:
        body = app.client.post("/chat", json={"messages": FOLLOW_UP}).json()
    assert search_query_thought(body)["description"] == "And for contractors?"
    assert search_query_thought(body)["props"]["retrieval_mode"] == "text"


def test_the_collection_the_model_names_narrows_the_search(make_settings, corpus_dir, tmp_path, fake_openai, start_app):
    other = tmp_path / "facilities"
    other.mkdir()
    (other / "garage.md").write_text("# Garage\n\nThe visitor car park opens at eight.\n")
    settings = make_settings()
    asyncio.run(ingest(settings, [corpus_dir, other]))
    fake_openai.state.tool_arguments = json.dumps({"query": "car park opens", "collection": "facilities"})
    with start_app(settings) as app:
        body = app.client.post("/chat", json={"messages": FOLLOW_UP}).json()

    assert search_query_thought(body)["props"]["collection"] == "facilities"
    assert {text.split("/")[0] for text in body["context"]["data_points"]["text"]} == {"facilities"}


def test_model_calls_carry_the_signed_in_user_and_none_without_one(make_settings, corpus_dir, fake_openai, start_app):
    settings = make_settings(auth_mode="app_service")
    asyncio.run(ingest(settings, [corpus_dir]))
    ingestion = fake_openai.requests_to("/embeddings")
    assert ingestion and all(USER_HEADER not in r.headers for r in ingestion)
    fake_openai.reset()
    with start_app(settings) as app:
        app.client.post("/chat", json={"messages": FOLLOW_UP}, headers=identity_headers(ALICE))
        app.client.post("/chat/stream", json={"messages": FOLLOW_UP}, headers=identity_headers(ALICE))
    calls = fake_openai.requests_to("/chat/completions") + fake_openai.requests_to("/embeddings")
    assert len(calls) == 6  # rewrite, query embedding and answer, twice
    assert {r.headers.get(USER_HEADER) for r in calls} == {ALICE}

    fake_openai.reset()
    with start_app(make_settings()) as app:
        app.client.post("/chat", json={"messages": FOLLOW_UP})
    assert all(USER_HEADER not in r.headers for r in fake_openai.requests_to("/chat/completions"))
