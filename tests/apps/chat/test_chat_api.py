"""The chat protocol endpoints: answers with citations, streaming, retries, limits and bad input."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from apps.chat.citations import cited
from apps.chat.dependencies import chat_service

from .fake_openai import SOURCE_LINE


def ask(app, question: str, path: str = "/chat", **body) -> httpx.Response:
    payload = {"messages": [{"role": "user", "content": question}], **body}
    return app.client.post(path, json=payload)


def data_point_citations(context: dict) -> list[str]:
    return [text.split(": ", 1)[0] for text in context["data_points"]["text"]]


def stream_lines(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_answer_cites_data_points_that_hold_the_cited_passage(chat_app, fake_openai):
    response = ask(chat_app, "How many vacation days do employees get?")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"]["role"] == "assistant"
    assert isinstance(body["session_state"], str)  # the new conversation (test_history.py)
    answer_citations = cited(body["message"]["content"])
    assert answer_citations, body["message"]["content"]
    citations = data_point_citations(body["context"])
    assert set(answer_citations) <= set(citations)
    # The cited data point is the passage that answers the question.
    passage = body["context"]["data_points"]["text"][citations.index(answer_citations[0])]
    assert answer_citations[0].endswith("vacation.md#vacation-policy")
    assert "twenty-five days of paid vacation" in passage
    # The model saw exactly those passages.
    prompt = fake_openai.requests_to("/chat/completions")[-1].body["messages"][-1]["content"]
    assert passage in prompt


def test_citations_of_sources_that_were_not_retrieved_are_removed(chat_app, fake_openai):
    fake_openai.state.reply = lambda messages: (
        "Twenty-five days [corpus/vacation.md#vacation-policy], or thirty [invented.pdf#page=4], see [corpus/vacation.md]."
    )
    content = ask(chat_app, "vacation days").json()["message"]["content"]

    assert "invented.pdf" not in content
    assert content.count("[corpus/vacation.md#vacation-policy]") == 2  # a page-less citation is completed


def test_overrides_reach_the_model(chat_app, fake_openai):
    ask(
        chat_app,
        "parking",
        context={"overrides": {"temperature": 0.2, "seed": 42, "prompt_template": ">>>Answer in French.", "top": 2}},
    )

    request = fake_openai.requests_to("/chat/completions")[-1].body
    assert request["temperature"] == 0.2 and request["seed"] == 42
    assert "Answer in French." in request["messages"][0]["content"]
    assert "organisation's documents" in request["messages"][0]["content"]  # appended, not replaced
    assert len(SOURCE_LINE.findall(request["messages"][-1]["content"])) == 2


def test_conversation_history_goes_to_the_model_newest_turns_first_within_a_budget(chat_app, fake_openai):
    from apps.chat.chat import HISTORY_CHAR_BUDGET

    long_turn = "x" * (HISTORY_CHAR_BUDGET // 2 + 1)  # two of these do not fit in the budget
    messages = [
        {"role": "user", "content": long_turn},
        {"role": "assistant", "content": long_turn},
        {"role": "user", "content": "Where do I park?"},
        {"role": "assistant", "content": "In the staff car park."},
        {"role": "user", "content": "When does it open?"},
    ]
    response = chat_app.client.post("/chat", json={"messages": messages})

    assert response.status_code == 200, response.text
    sent = fake_openai.requests_to("/chat/completions")[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in sent[2:4]] == ["Where do I park?", "In the staff car park."]
    assert sent[-1]["content"].startswith("When does it open?")


def test_followup_questions_are_moved_to_the_context(chat_app, fake_openai):
    fake_openai.state.reply = lambda m: (
        "Seven in the morning [corpus/parking.md#parking].\n<<Where are the bicycle racks?>>\n<<Is parking free?>>"
    )

    body = ask(
        chat_app, "When does the car park open?", context={"overrides": {"suggest_followup_questions": True}}
    ).json()

    assert body["message"]["content"] == "Seven in the morning [corpus/parking.md#parking]."
    assert body["context"]["followup_questions"] == ["Where are the bicycle racks?", "Is parking free?"]


def test_stream_sends_context_first_then_deltas(chat_app, fake_openai):
    conversation = ask(chat_app, "Vacation?").json()["session_state"]
    response = ask(chat_app, "How many vacation days?", path="/chat/stream", session_state=conversation)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = stream_lines(response)
    first, deltas = lines[0], lines[1:]
    assert first["delta"]["role"] == "assistant"
    assert first["session_state"] == conversation
    assert first["context"]["data_points"]["text"]
    assert len(deltas) > 1 and all("delta" in line for line in deltas)
    answer = "".join(line["delta"].get("content", "") for line in deltas)
    assert answer == ask(chat_app, "How many vacation days?").json()["message"]["content"]
    assert set(cited(answer)) <= set(data_point_citations(first["context"]))


def test_stream_holds_back_split_citations_until_checked(chat_app, fake_openai):
    fake_openai.state.reply = lambda m: "Days [corpus/vacation.md#vacation-policy] and [made-up.md#page=2] end."
    lines = stream_lines(ask(chat_app, "vacation", path="/chat/stream"))

    answer = "".join(line["delta"].get("content", "") for line in lines[1:])
    assert answer == "Days [corpus/vacation.md#vacation-policy] and  end."


def test_client_disconnect_stops_the_upstream_stream(served_chat_app, fake_openai):
    fake_openai.state.stream_delay = 0.05
    fake_openai.state.stream_repeat = 400  # about a minute of tokens if nobody stops it

    with served_chat_app.client.stream(
        "POST", "/chat/stream", json={"messages": [{"role": "user", "content": "vacation"}]}
    ) as response:
        lines = response.iter_lines()
        next(lines)  # the context
        next(lines)  # the first delta: the upstream stream is running
    # Leaving the block closed the connection mid-stream.

    assert fake_openai.wait_for_disconnect(timeout=20), "the upstream request was not cancelled"
    assert fake_openai.state.completed_streams == 0


def test_a_failure_in_the_middle_of_a_stream_ends_it_with_an_error_line(chat_app, fake_openai):
    fake_openai.state.stream_error_after = 3

    response = ask(chat_app, "vacation", path="/chat/stream")

    assert response.status_code == 200  # the status was sent with the first line
    lines = stream_lines(response)
    assert "context" in lines[0]
    assert [line for line in lines[1:-1] if "error" in line] == []
    assert "mid-stream" in lines[-1]["error"]
    assert chat_app.client.get("/healthz").status_code == 200


def test_azure_openai_is_called_with_an_entra_bearer_token_and_no_key(
    make_settings, corpus_dir, start_app, fake_openai
):
    from types import SimpleNamespace

    class FakeCredential:
        def __init__(self):
            self.scopes: list[str] = []

        def get_token(self, *scopes):
            self.scopes.extend(scopes)
            return SimpleNamespace(token="entra-token-1", expires_on=time.time() + 3600)

    credential = FakeCredential()
    settings = make_settings(openai_base_url=None, azure_openai_endpoint=fake_openai.url, chat_model="chat-deployment")
    with start_app(settings, credential=credential) as app:
        response = ask(app, "parking")

    assert response.status_code == 200, response.text
    chat_request = fake_openai.requests_to("/openai/deployments/chat-deployment/chat/completions")[-1]
    assert "api-version=2024-10-21" in chat_request.path
    assert chat_request.headers["authorization"] == "Bearer entra-token-1"
    assert "api-key" not in chat_request.headers
    assert set(credential.scopes) == {"https://cognitiveservices.azure.com/.default"}
    assert len(credential.scopes) == 1  # one token, cached across the embedding and chat calls


def test_upstream_429_is_retried_honouring_retry_after(chat_app, fake_openai, caplog):
    fake_openai.fail_next(429, retry_after="1", path_suffix="/chat/completions")
    fake_openai.fail_next(503, retry_after="0", path_suffix="/chat/completions")

    response = ask(chat_app, "parking")

    assert response.status_code == 200
    assert len(fake_openai.requests_to("/chat/completions")) == 3
    waits = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert "429, retry 1/2 in 1.00s" in waits[0] and "503, retry 2/2 in 0.00s" in waits[1]


def test_upstream_keeps_failing_gives_a_clear_503(chat_app, fake_openai):
    fake_openai.fail_next(500, times=10, retry_after="0", path_suffix="/chat/completions")

    response = ask(chat_app, "parking")

    assert response.status_code == 503
    assert "language model is unavailable" in response.json()["error"]
    # One try plus MODEL_MAX_RETRIES (2) retries, then no more requests.
    assert len(fake_openai.requests_to("/chat/completions")) == 3


def test_a_used_up_user_budget_at_the_gateway_is_a_429_saying_when_it_renews(chat_app, fake_openai):
    # API Management's token quota answers 403 with the time until it is replenished; retrying cannot help.
    fake_openai.fail_next(403, retry_after="3600", path_suffix="/chat/completions")

    response = ask(chat_app, "parking")

    assert response.status_code == 429 and response.headers["retry-after"] == "3600"
    assert "token budget" in response.json()["error"]
    assert len(fake_openai.requests_to("/chat/completions")) == 1


def test_a_plain_403_from_the_model_endpoint_stays_a_502(chat_app, fake_openai):
    fake_openai.fail_next(403, path_suffix="/chat/completions")

    assert ask(chat_app, "parking").status_code == 502


def test_failing_embeddings_also_give_a_503(chat_app, fake_openai):
    fake_openai.fail_next(429, times=10, retry_after="0", path_suffix="/embeddings")

    response = ask(chat_app, "parking")

    assert response.status_code == 503
    assert "embeddings" in response.json()["error"]
    assert fake_openai.requests_to("/chat/completions") == []


def test_stream_that_cannot_start_is_a_503(chat_app, fake_openai):
    fake_openai.fail_next(503, times=10, retry_after="0", path_suffix="/chat/completions")

    response = ask(chat_app, "parking", path="/chat/stream")

    assert response.status_code == 503
    assert "language model is unavailable" in response.json()["error"]
    assert len(fake_openai.requests_to("/chat/completions")) == chat_app.settings.model_max_retries + 1


def test_retry_after_longer_than_allowed_fails_fast_with_retry_after(chat_app, fake_openai):
    fake_openai.fail_next(429, times=1, retry_after="120")

    response = ask(chat_app, "parking")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "120"
    assert len(fake_openai.state.requests) == 1


def test_a_model_answer_the_app_cannot_use_is_a_502(chat_app, fake_openai):
    fake_openai.fail_next(200, body='{"choices": []}', path_suffix="/chat/completions")

    response = ask(chat_app, "parking")

    assert response.status_code == 502
    assert "the answer has no choices[0].message" in response.json()["error"]


def test_an_unexpected_failure_is_a_500_that_keeps_its_details_in_the_log(chat_app, caplog):
    class BrokenChat:
        async def answer(self, chat_request, caller):
            raise RuntimeError("secret detail")

    chat_app.app.dependency_overrides[chat_service] = BrokenChat

    response = ask(chat_app, "parking")

    assert response.status_code == 500
    assert response.json() == {"error": "internal error; the details are in the server log"}
    assert "secret detail" in caplog.text


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"messages": []}', 400, "messages"),
        (b'{"messages": "hello"}', 400, "messages"),
        (b'{"messages": [{"role": "system", "content": "x"}]}', 400, "role"),
        (b'{"messages": [{"role": "user"}]}', 400, "content"),
        (b'{"messages": [{"role": "user", "content": "   "}]}', 400, "empty"),
        (
            b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}',
            400,
            "last message",
        ),
        (b'{"messages": [{"role": "user", "content": "hi"}], "context": {"overrides": {"top": 0}}}', 400, "top"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "context": {"overrides": {"top": 500}}}', 400, "top"),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "context": {"overrides": {"retrieval_mode": "x"}}}',
            400,
            "retrieval_mode",
        ),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "context": {"overrides": {"temperature": 9}}}',
            400,
            "temperature",
        ),
        (b"\xff\xfe\x00", 400, "not valid JSON"),
        # What PostgreSQL cannot store, or UTF-8 cannot carry back, named with where it is.
        (
            b'{"messages": [{"role": "user", "content": "a\\u0000b"}]}',
            400,
            "messages[0].content: contains a NUL character (\\u0000) at character 1, which PostgreSQL cannot store",
        ),
        (
            b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "\\ud800"}, '
            b'{"role": "user", "content": "hi"}]}',
            400,
            "messages[1].content: contains an unpaired UTF-16 surrogate (\\ud800) at character 0",
        ),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "context": {"overrides": {"prompt_template": "\\u0000"}}}',
            400,
            "context.overrides.prompt_template: contains a NUL character",
        ),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "session_state": {"ids": [1, "\\udc00"]}}',
            400,
            "session_state: ['ids'][1] contains an unpaired UTF-16 surrogate (\\udc00)",
        ),
        # Nesting: refused before the parser recurses (100,000 levels would exhaust Python's stack).
        (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "more than 32 levels deep"),
        (b'{"session_state": ' + b'{"a": ' * 32 + b"1" + b"}" * 32 + b"}", 400, "more than 32 levels deep"),
        # JSON that Python's parser accepts but an answer could not carry back.
        (b'{"messages": [{"role": "user", "content": "hi"}], "session_state": NaN}', 400, "NaN is not a JSON number"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "session_state": 1e999}', 400, "1e999 is too large"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "session_state": ' + b"9" * 5000 + b"}", 400, "JSON"),
    ],
)
@pytest.mark.parametrize("path", ["/chat", "/chat/stream"])
def test_bad_requests_get_4xx_with_a_message(read_only_chat_app, path, body, status, message):
    response = read_only_chat_app.client.post(path, content=body, headers={"content-type": "application/json"})

    assert response.status_code == status
    assert message in response.json()["error"]


def test_nesting_up_to_the_limit_brackets_in_strings_and_surrogate_pairs_are_accepted(read_only_chat_app):
    # 32 levels: the request object and 31 arrays; the brackets and quotes in the text do not count.
    body = (
        b'{"messages": [{"role": "user", "content": "Parking? \\ud83d\\ude97 [[{\\"x\\" \\\\"}], '
        b'"session_state": ' + b"[" * 31 + b"1" + b"]" * 31 + b"}"
    )
    response = read_only_chat_app.client.post("/chat", content=body)

    # Parsed and checked (not a 400); a session_state that is no conversation id names no conversation.
    assert response.status_code == 404, response.text
    assert "no conversation" in response.json()["error"]


def test_limits_on_message_count_length_and_body_size(read_only_chat_app):
    settings = read_only_chat_app.settings
    too_many = [{"role": "user", "content": "hi"}] * (settings.max_messages + 1)
    too_long = [{"role": "user", "content": "x" * (settings.max_message_chars + 1)}]

    client = read_only_chat_app.client

    assert "too many messages" in client.post("/chat", json={"messages": too_many}).json()["error"]
    assert "characters" in client.post("/chat", json={"messages": too_long}).json()["error"]
    huge = client.post("/chat", content=b"x" * (settings.max_request_bytes + 1))
    assert huge.status_code == 413 and "bytes" in huge.json()["error"]
    # The worker survived all of it.
    assert client.get("/healthz").status_code == 200


def test_search_rejects_bad_parameters(read_only_chat_app):
    for params, fragment in [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "blank"),
        ({"q": "x", "top": "many"}, "top"),
        ({"q": "x", "top": 0}, "top"),
        ({"q": "x" * 1001}, "q"),
        ({"q": "car\x00park"}, "q: contains a NUL character (\\u0000) at character 3"),
    ]:
        response = read_only_chat_app.client.get("/api/search", params=params)
        assert response.status_code == 400, params
        assert fragment in response.json()["error"]


def test_without_a_model_chat_returns_passages_and_says_so(make_settings, corpus_dir, start_app):
    import asyncio

    from .conftest import ingest

    settings = make_settings(openai_base_url=None)
    asyncio.run(ingest(settings, [corpus_dir]))
    with start_app(settings) as app:
        body = ask(app, "When does the car park open?").json()
        search = app.client.get("/api/search", params={"q": "car park"}).json()
        streamed = stream_lines(ask(app, "When does the car park open?", path="/chat/stream"))

    content = body["message"]["content"]
    assert content.startswith("No language model is configured")
    assert "seven in the morning" in content
    assert set(cited(content)) <= set(data_point_citations(body["context"]))
    assert cited(content)[0].endswith("parking.md#parking")
    assert search["retrieval_mode"] == "text"
    assert "".join(line["delta"].get("content", "") for line in streamed[1:]) == content
    # Every data point is in the answer as a passage with its citation, best first.
    assert cited(content) == data_point_citations(body["context"])
