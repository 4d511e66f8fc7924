"""What /openapi.json says, where FastAPI cannot see it by itself.

- POST /chat and /chat/stream read their body by hand (dependencies.chat_request), so FastAPI knows
  nothing of it: CHAT_REQUEST_BODY declares protocol.ChatRequest, and `describe` adds its schema.
- Every error is {"error": ...} (protocol.ErrorBody); each route lists the statuses it can answer
  with `errors(...)`. FastAPI's 422 is taken out: the app answers invalid parameters with 400.

A schemathesis run against this document (tests/apps/chat/test_openapi.py) checks that the app
answers only what it documents, in the documented shapes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from .protocol import ChatRequest, ChatStreamLine, ErrorBody

REF_PREFIX = "#/components/schemas/"

ERROR_DESCRIPTIONS = {
    400: "Malformed or invalid request, or a limit exceeded; `error` names the problem and where",
    401: "Sign-in required (AUTH_MODE=app_service without App Service authentication's headers)",
    404: "No such conversation (or answer) for this caller: unknown, or another user's",
    408: "The request body did not arrive within REQUEST_BODY_TIMEOUT_SECONDS",
    413: "The request body is larger than MAX_REQUEST_BYTES",
    429: "The signed-in user's token budget at the gateway is used up; Retry-After says when it renews",
    502: "The model's answer could not be used",
    503: "The model keeps failing (Retry-After when it said how long) or the database is unavailable",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait, when known", "schema": {"type": "integer"}}}

CHAT_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": REF_PREFIX + "ChatRequest"}}},
    }
}
CHAT_STREAM_RESPONSE = {
    "description": "One JSON object per line: the context, the answer's text as it arrives, the follow-up "
    "questions; an {error} line if the answer fails after it started",
    "content": {"application/x-ndjson": {"itemSchema": {"$ref": REF_PREFIX + "ChatStreamLine"}}},
}

# Models the routes use without FastAPI seeing them (see the module's docstring).
_EXTRA_MODELS: tuple[type[BaseModel], ...] = (ChatRequest, ChatStreamLine)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route for the error statuses it can answer with."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        responses[status] = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
        if status in (429, 503):
            responses[status]["headers"] = RETRY_AFTER
    return responses


def describe(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (built once): FastAPI's, completed as the module's docstring says."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in _EXTRA_MODELS:
            schema = model.model_json_schema(ref_template=REF_PREFIX + "{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        for path in document["paths"].values():
            for operation in path.values():
                operation["responses"].pop("422", None)
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = document
    return app.openapi_schema
