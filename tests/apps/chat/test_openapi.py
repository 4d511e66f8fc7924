"""/openapi.json describes the app as it is: the request bodies, every status each route can answer and
the shapes of the answers. Schemathesis generates requests from it, valid and broken, and checks each
answer: no 5xx, no undocumented status, bodies as documented."""

from __future__ import annotations

import schemathesis
from hypothesis import settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from apps.chat.app import create_app
from apps.chat.settings import Settings

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
ERROR_STATUSES = {
    ("post", "/chat"): {"400", "401", "404", "408", "413", "429", "502", "503"},
    ("post", "/chat/stream"): {"400", "401", "404", "408", "413", "429", "502", "503"},
    ("get", "/api/search"): {"400", "401", "429", "502", "503"},
    ("get", "/api/examples"): {"401", "503"},
    ("get", "/api/conversations"): {"401", "503"},
    ("get", "/api/conversations/{conversation_id}"): {"401", "404", "503"},
    ("patch", "/api/conversations/{conversation_id}"): {"400", "401", "404", "503"},
    ("delete", "/api/conversations/{conversation_id}"): {"204", "401", "404", "503"},
    ("post", "/api/feedback"): {"201", "400", "401", "404", "503"},
    ("get", "/healthz"): {"503"},
}


# The document depends on the routes only, so one built from an app that never starts is the one served
# (the last test checks it); schemathesis needs it when the tests are collected. (Its loader from a fixture,
# schemathesis.pytest.from_fixture, fails under pytest 9: it sets a node attribute pytest no longer has.)
DOCUMENT = create_app(Settings(database_url="postgresql://127.0.0.1:9/never-used")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(max_examples=100, deadline=None, derandomize=True, database=None)
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(case, read_only_chat_app):
    kwargs = case.as_transport_kwargs()
    if isinstance(kwargs.get("data"), (bytes, str)):
        kwargs["content"] = kwargs.pop("data")  # httpx's name for a raw body
    response = read_only_chat_app.client.request(**kwargs)

    case.validate_response(response, checks=CHECKS)


def test_openapi_json_documents_the_request_bodies_and_every_status_the_app_answers(read_only_chat_app):
    document = read_only_chat_app.client.get("/openapi.json").json()
    operations = {
        (method, path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    schemas = document["components"]["schemas"]

    assert document == DOCUMENT  # what schemathesis runs on
    assert {key: set(operation["responses"]) - {"200"} for key, operation in operations.items()} == ERROR_STATUSES
    for key, operation in operations.items():
        for status, response in operation["responses"].items():
            if status not in ("200", "201", "204") and key != ("get", "/healthz"):
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    for path in ("/chat", "/chat/stream"):
        body = operations[("post", path)]["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatRequest"}
    assert schemas["ChatRequest"]["required"] == ["messages"]
    assert set(schemas["Message"]["properties"]) == {"role", "content"}
    assert "HTTPValidationError" not in schemas  # FastAPI's 422, which the app never answers
