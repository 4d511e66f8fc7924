"""Conversations and feedback in PostgreSQL (history.py): per user, resumable, renamable, deletable, never
readable by another user; ratings with the stored answer and citations, exported as JSON lines; examples."""

from __future__ import annotations

import asyncio
import json

import pytest

from apps.chat.__main__ import main
from apps.chat.citations import cited

from .conftest import ingest
from .test_access_control import ALICE, BOB, identity_headers

ALICE_HEADERS, BOB_HEADERS = identity_headers(ALICE), identity_headers(BOB)


@pytest.fixture
def two_user_app(make_settings, corpus_dir, fake_openai, start_app):
    settings = make_settings(auth_mode="app_service")
    asyncio.run(ingest(settings, [corpus_dir]))
    with start_app(settings) as app:
        yield app


def chat(app, question: str, headers: dict, path: str = "/chat", **body):
    response = app.client.post(
        path, json={"messages": [{"role": "user", "content": question}], **body}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json() if path == "/chat" else [json.loads(line) for line in response.text.splitlines()]


def test_a_conversation_is_stored_resumed_listed_renamed_and_deleted(two_user_app):
    client = two_user_app.client
    first = chat(two_user_app, "How many vacation days do employees get?", ALICE_HEADERS)
    conversation = first["session_state"]
    lines = chat(two_user_app, "And parking?", ALICE_HEADERS, "/chat/stream", session_state=conversation)
    other = chat(two_user_app, "Laptop encryption?", ALICE_HEADERS)["session_state"]

    listed = client.get("/api/conversations", headers=ALICE_HEADERS).json()["conversations"]
    assert [c["id"] for c in listed] == [other, conversation]  # newest first
    assert listed[1]["title"] == "How many vacation days do employees get?"
    stored = client.get(f"/api/conversations/{conversation}", headers=ALICE_HEADERS).json()
    assert [(m["role"], m["content"]) for m in stored["messages"]] == [
        ("user", "How many vacation days do employees get?"),
        ("assistant", first["message"]["content"]),
        ("user", "And parking?"),
        ("assistant", "".join(line["delta"].get("content", "") for line in lines[1:])),
    ]
    assert stored["messages"][1]["context"] == first["context"]
    assert stored["messages"][3]["context"] == lines[0]["context"]
    assert "context" not in stored["messages"][0]

    renamed = client.patch(f"/api/conversations/{conversation}", json={"title": "Leave"}, headers=ALICE_HEADERS)
    assert renamed.status_code == 200 and renamed.json()["title"] == "Leave"
    assert client.delete(f"/api/conversations/{conversation}", headers=ALICE_HEADERS).status_code == 204
    assert client.get(f"/api/conversations/{conversation}", headers=ALICE_HEADERS).status_code == 404
    assert [c["id"] for c in client.get("/api/conversations", headers=ALICE_HEADERS).json()["conversations"]] == [other]


def test_a_user_can_never_read_or_change_another_users_conversation(two_user_app):
    client = two_user_app.client
    alices = chat(two_user_app, "How many vacation days?", ALICE_HEADERS)["session_state"]
    url = f"/api/conversations/{alices}"

    assert client.get("/api/conversations", headers=BOB_HEADERS).json() == {"conversations": []}
    answers = [
        client.get(url, headers=BOB_HEADERS),
        client.patch(url, json={"title": "mine"}, headers=BOB_HEADERS),
        client.delete(url, headers=BOB_HEADERS),
        client.post(
            "/chat",
            json={"messages": [{"role": "user", "content": "more"}], "session_state": alices},
            headers=BOB_HEADERS,
        ),
        client.post(
            "/chat/stream",
            json={"messages": [{"role": "user", "content": "x"}], "session_state": alices},
            headers=BOB_HEADERS,
        ),
        client.post(
            "/api/feedback",
            json={"conversation_id": alices, "message_index": 1, "rating": "down"},
            headers=BOB_HEADERS,
        ),
        client.get("/api/conversations/not-a-uuid", headers=ALICE_HEADERS),
    ]
    assert [answer.status_code for answer in answers] == [404] * 7
    assert all("error" in answer.json() for answer in answers)
    still = client.get(url, headers=ALICE_HEADERS).json()
    assert still["title"] == "How many vacation days?" and len(still["messages"]) == 2
    assert client.get("/api/conversations", headers={}).status_code == 401


def test_feedback_stores_the_stored_answer_and_its_citations_and_is_exported_as_json_lines(
    two_user_app, monkeypatch, capsys, tmp_path
):
    client = two_user_app.client
    answer = chat(two_user_app, "How many vacation days do employees get?", ALICE_HEADERS)
    conversation = answer["session_state"]

    rated = client.post(
        "/api/feedback",
        json={"conversation_id": conversation, "message_index": 1, "rating": "down", "comment": "too short"},
        headers=ALICE_HEADERS,
    )
    question = client.post(
        "/api/feedback",
        json={"conversation_id": conversation, "message_index": 0, "rating": "up"},
        headers=ALICE_HEADERS,
    )
    invalid = client.post(
        "/api/feedback",
        json={"conversation_id": conversation, "message_index": 1, "rating": "meh"},
        headers=ALICE_HEADERS,
    )
    assert rated.status_code == 201 and isinstance(rated.json()["id"], int)
    assert question.status_code == 404  # a question is no answer
    assert invalid.status_code == 400 and "rating" in invalid.json()["error"]
    client.delete(f"/api/conversations/{conversation}", headers=ALICE_HEADERS)  # the rating stays

    settings = two_user_app.settings
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("EMBEDDING_DIMENSIONS", str(settings.embedding_dimensions))
    assert main(["feedback", "export"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    (citation,) = cited(answer["message"]["content"])
    assert record["rating"] == "down" and record["comment"] == "too short" and record["user_id"] == ALICE
    assert record["question"] == "How many vacation days do employees get?"
    assert record["answer"] == answer["message"]["content"]
    assert [c["citation"] for c in record["citations"]] == [citation]
    assert "twenty-five days" in record["citations"][0]["passage"]
    assert record["answered_at"] <= record["rated_at"]
    assert main(["feedback", "export", "--output", str(tmp_path / "ratings.jsonl")]) == 0
    assert json.loads((tmp_path / "ratings.jsonl").read_text()) == record


def test_one_local_user_without_sign_in(chat_app):
    conversation = chat(chat_app, "Parking?", {})["session_state"]
    assert [c["id"] for c in chat_app.client.get("/api/conversations").json()["conversations"]] == [conversation]


def test_example_questions_come_from_headings_of_documents_the_caller_may_read(
    make_settings, private_corpus, corpus_dir, start_app
):
    from apps.chat.ingest import AccessList

    settings = make_settings(auth_mode="app_service")
    (private_corpus["alice"] / "alice.md").write_text("# Alice's salary review\n\nIn May.\n")
    asyncio.run(ingest(settings, [private_corpus["alice"]], AccessList(user_ids=(ALICE,))))
    asyncio.run(ingest(settings, [corpus_dir]))
    with start_app(settings) as app:
        alices = app.client.get("/api/examples", headers=ALICE_HEADERS).json()["examples"]
        again = app.client.get("/api/examples", headers=ALICE_HEADERS).json()["examples"]
        bobs = app.client.get("/api/examples", headers=BOB_HEADERS).json()["examples"]

    assert alices == again and 3 <= len(alices) <= 4
    assert any("Alice's salary review" in question for question in alices)
    assert not any("Alice" in question for question in bobs)
    assert any("Vacation policy" in question for question in bobs + alices)
