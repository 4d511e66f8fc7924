"""What the routes need, as FastAPI dependencies: the app's services, the caller, the checked request.

Routes declare them with Depends, so a test can replace any of them (`app.dependency_overrides`).
They are `async def` so that FastAPI runs them on the event loop, not in its thread pool.
"""

from __future__ import annotations

import json
import math
from typing import Annotated

import anyio
from fastapi import Depends, Query, Request
from pydantic import ValidationError

from .access import AuthenticationError, Caller, caller_from_headers
from .chat import ChatService
from .errors import ApiError, describe_validation_errors
from .history import ConversationStore, owner
from .protocol import MAX_JSON_DEPTH, ChatRequest, RequestLimitError, check_limits, json_depth
from .services import AppServices
from .settings import Settings


async def app_services(request: Request) -> AppServices:
    """The services create_app built for this app."""
    return request.app.state.services


Services = Annotated[AppServices, Depends(app_services)]


async def app_settings(services: Services) -> Settings:
    return services.settings


AppSettings = Annotated[Settings, Depends(app_settings)]


async def chat_service(services: Services) -> ChatService:
    return services.chat


Chat = Annotated[ChatService, Depends(chat_service)]


async def current_caller(request: Request, settings: AppSettings) -> Caller:
    """Who is asking (anonymous unless AUTH_MODE=app_service); 401 when they must sign in."""
    try:
        return caller_from_headers(request.headers, settings)
    except AuthenticationError as error:
        raise ApiError(401, str(error)) from error


CurrentCaller = Annotated[Caller, Depends(current_caller)]


async def current_user(caller: CurrentCaller) -> str:
    """Whose conversations and feedback these are (history.owner)."""
    return owner(caller)


CurrentUser = Annotated[str, Depends(current_user)]


async def conversation_store(services: Services) -> ConversationStore:
    return services.chat.conversations


Conversations = Annotated[ConversationStore, Depends(conversation_store)]


async def chat_request(request: Request, settings: AppSettings) -> ChatRequest:
    """The body of a chat request, read within MAX_REQUEST_BYTES and REQUEST_BODY_TIMEOUT_SECONDS,
    parsed and checked; 400, 408 or 413 naming the problem. Read by hand rather than declared as a body
    parameter so that an oversized body is refused before it is all in memory, and an over-deep one
    before the parser recurses into it (its schema is in /openapi.json all the same: see openapi.py)."""
    payload = _parse_json(await _read_body(request, settings))
    if not isinstance(payload, dict):
        raise ApiError(400, "request body must be a JSON object with 'messages'")
    try:
        checked = ChatRequest.model_validate(payload)
        check_limits(checked, settings)
    except ValidationError as error:
        raise ApiError(400, describe_validation_errors(error.errors())) from error
    except RequestLimitError as error:
        raise ApiError(400, str(error)) from error
    return checked


CheckedChatRequest = Annotated[ChatRequest, Depends(chat_request)]


async def _read_body(request: Request, settings: Settings) -> bytearray:
    max_bytes = settings.max_request_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body is {declared} bytes (at most {max_bytes})")
    body = bytearray()
    # A client that sends its body slowly, or stops half-way, would otherwise hold the request open.
    with anyio.move_on_after(settings.request_body_timeout_seconds) as waiting:
        async for part in request.stream():
            body += part
            if len(body) > max_bytes:
                raise ApiError(413, f"request body is larger than {max_bytes} bytes")
    if waiting.cancelled_caught:
        raise ApiError(
            408,
            f"request body not received within {settings.request_body_timeout_seconds:g} s",
            {"Connection": "close"},
        )
    return body


def _parse_json(body: bytes) -> object:
    """JSON as RFC 8259 has it (UTF-8, -16 or -32; no NaN or Infinity, which an answer could not carry
    back), nested at most MAX_JSON_DEPTH deep."""
    if not body.strip():
        raise ApiError(400, "request body is empty; send a JSON object with 'messages'")
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        if json_depth(text) > MAX_JSON_DEPTH:
            raise ApiError(400, f"request body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep")
        return json.loads(text, parse_constant=_not_json, parse_float=_finite_number)
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError included
        raise ApiError(400, f"request body is not valid JSON: {error}") from error


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON number")


def _finite_number(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"the number {text[:20]} is too large")
    return number


async def search_top(
    settings: AppSettings,
    top: Annotated[
        int | None, Query(ge=1, description="how many results (default SEARCH_TOP, at most MAX_TOP)")
    ] = None,
) -> int:
    """The `top` of a search. Its default and limit are settings, which a route's own Query() cannot
    read, so they are applied here, with the message the Query() limit would have given."""
    if top is None:
        return settings.search_top
    if top > settings.max_top:
        raise ApiError(400, f"invalid request: top: Input should be less than or equal to {settings.max_top}")
    return top


SearchTop = Annotated[int, Depends(search_top)]
