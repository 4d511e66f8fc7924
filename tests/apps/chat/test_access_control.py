"""Document-level access control: identity only from App Service auth headers, and only in that mode."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from apps.chat.citations import cited
from apps.chat.ingest import AccessList

from .conftest import ingest

ALICE, BOB, FINANCE = "alice-oid", "bob-oid", "finance-group"


def identity_headers(user_id: str, groups: tuple[str, ...] = ()) -> dict[str, str]:
    principal = {"auth_typ": "aad", "claims": [{"typ": "groups", "val": group} for group in groups]}
    return {
        "X-MS-CLIENT-PRINCIPAL-ID": user_id,
        "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode(),
    }


def ingest_private_corpus(settings, folders):
    asyncio.run(ingest(settings, [folders["alice"]], AccessList(user_ids=(ALICE,))))
    asyncio.run(ingest(settings, [folders["bob"]], AccessList(user_ids=(BOB,))))
    asyncio.run(ingest(settings, [folders["finance"]], AccessList(group_ids=(FINANCE,))))
    asyncio.run(ingest(settings, [folders["public"]]))


def visible_sources(app, headers: dict[str, str], mode: str = "hybrid") -> set[str]:
    search = app.client.get(
        "/api/search", params={"q": "salary review", "top": 10, "retrieval_mode": mode}, headers=headers
    )
    assert search.status_code == 200, search.text
    chat = app.client.post(
        "/chat",
        json={"messages": [{"role": "user", "content": "salary review"}], "context": {"overrides": {"top": 10}}},
        headers=headers,
    ).json()
    from_search = {r["source"].split("/")[0] for r in search.json()["results"]}
    from_chat = {text.split("/")[0] for text in chat["context"]["data_points"]["text"]}
    from_answer = {citation.split("/")[0] for citation in cited(chat["message"]["content"])}
    assert from_chat == from_search and from_answer <= from_chat
    return from_search


@pytest.mark.parametrize("mode", ["hybrid", "vectors", "text"])
def test_users_see_only_their_own_group_and_public_documents(make_settings, private_corpus, start_app, mode):
    settings = make_settings(auth_mode="app_service")
    ingest_private_corpus(settings, private_corpus)
    with start_app(settings) as app:
        assert visible_sources(app, identity_headers(ALICE), mode) == {"alice", "public"}
        assert visible_sources(app, identity_headers(BOB, (FINANCE,)), mode) == {"bob", "finance", "public"}
        assert visible_sources(app, identity_headers("carol-oid", ("other-group",)), mode) == {"public"}


def test_overrides_cannot_switch_the_filters_off(make_settings, private_corpus, start_app):
    settings = make_settings(auth_mode="app_service")
    ingest_private_corpus(settings, private_corpus)
    with start_app(settings) as app:
        body = app.client.post(
            "/chat",
            headers=identity_headers(ALICE),
            json={
                "messages": [{"role": "user", "content": "salary review"}],
                "context": {
                    "overrides": {"use_oid_security_filter": False, "use_groups_security_filter": False, "top": 10}
                },
            },
        ).json()
    assert {text.split("/")[0] for text in body["context"]["data_points"]["text"]} == {"alice", "public"}


def test_documents_without_a_list_can_be_hidden(make_settings, private_corpus, start_app):
    settings = make_settings(auth_mode="app_service", unrestricted_documents_visible=False)
    ingest_private_corpus(settings, private_corpus)
    with start_app(settings) as app:
        assert visible_sources(app, identity_headers(ALICE)) == {"alice"}


def test_forged_identity_headers_are_ignored_outside_app_service_auth(make_settings, private_corpus, start_app):
    settings = make_settings(auth_mode="none")
    ingest_private_corpus(settings, private_corpus)
    with start_app(settings) as app:
        # Claiming to be Alice, in the finance group, changes nothing: the caller stays anonymous.
        assert visible_sources(app, identity_headers(ALICE, (FINANCE,))) == {"public"}
        assert visible_sources(app, {}) == {"public"}


def test_app_service_mode_requires_an_identity(make_settings, private_corpus, start_app):
    settings = make_settings(auth_mode="app_service")
    ingest_private_corpus(settings, private_corpus)
    with start_app(settings) as app:
        missing = app.client.post("/chat", json={"messages": [{"role": "user", "content": "hi"}]})
        malformed = app.client.get(
            "/api/search",
            params={"q": "salary"},
            headers={"X-MS-CLIENT-PRINCIPAL-ID": ALICE, "X-MS-CLIENT-PRINCIPAL": "%%%not base64"},
        )
    assert missing.status_code == 401 and "sign-in required" in missing.json()["error"]
    assert malformed.status_code == 401 and "X-MS-CLIENT-PRINCIPAL" in malformed.json()["error"].upper()
