"""The HTTP endpoints: the chat protocol, conversations and feedback, search, examples, health and the page.

Each route gets what it needs through dependencies (dependencies.py); errors are raised and answered
by the handlers in errors.py. The README next to this file describes every endpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse

from . import protocol
from .dependencies import Chat, CheckedChatRequest, Conversations, CurrentCaller, CurrentUser, SearchTop, Services
from .errors import ApiError
from .model_client import ModelError
from .openapi import CHAT_REQUEST_BODY, CHAT_STREAM_RESPONSE, errors
from .protocol import (
    ChatAnswer,
    Conversation,
    ConversationList,
    ExampleQuestions,
    FeedbackCreated,
    FeedbackRequest,
    Health,
    Overrides,
    RenameRequest,
    SearchAnswer,
    StorableText,
)

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
PLACEHOLDER_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Chat</title></head>
<body><h1>Chat API</h1><p>The web page is not installed. Use <code>POST /chat</code>.</p></body></html>"""
EXAMPLE_QUESTIONS = 4

router = APIRouter()


@router.post(
    "/chat",
    responses={200: {"model": ChatAnswer}, **errors(400, 401, 404, 408, 413, 429, 502, 503)},
    openapi_extra=CHAT_REQUEST_BODY,
)
async def chat(chat_request: CheckedChatRequest, caller: CurrentCaller, chat: Chat) -> JSONResponse:
    return JSONResponse(await chat.answer(chat_request, caller))


@router.post(
    "/chat/stream",
    response_class=StreamingResponse,
    responses={200: CHAT_STREAM_RESPONSE, **errors(400, 401, 404, 408, 413, 429, 502, 503)},
    openapi_extra=CHAT_REQUEST_BODY,
)
async def chat_stream(chat_request: CheckedChatRequest, caller: CurrentCaller, chat: Chat) -> StreamingResponse:
    # Opened before the response starts, so that a model that cannot answer still gets its error status.
    chunks = await chat.open_stream(chat_request, caller)
    return StreamingResponse(_json_lines(chunks), media_type="application/x-ndjson")


@router.get("/api/search", responses={200: {"model": SearchAnswer}, **errors(400, 401, 429, 502, 503)})
async def search(
    q: Annotated[StorableText, Query(min_length=1, max_length=1000, description="search text")],
    top: SearchTop,
    caller: CurrentCaller,
    chat: Chat,
    retrieval_mode: Annotated[str, Query(pattern="^(hybrid|vectors|text)$")] = "hybrid",
) -> JSONResponse:
    if not q.strip():
        raise ApiError(400, "q: must not be blank")
    results, mode = await chat.search(q, caller, Overrides(top=top, retrieval_mode=retrieval_mode))
    return JSONResponse(protocol.search_body(q, mode, results))


@router.get("/api/conversations", responses={200: {"model": ConversationList}, **errors(401, 503)})
async def list_conversations(user: CurrentUser, conversations: Conversations) -> JSONResponse:
    return JSONResponse({"conversations": await conversations.list(user)})


@router.get("/api/conversations/{conversation_id}", responses={200: {"model": Conversation}, **errors(401, 404, 503)})
async def read_conversation(conversation_id: str, user: CurrentUser, conversations: Conversations) -> JSONResponse:
    return JSONResponse(await conversations.read(conversation_id, user))


@router.patch(
    "/api/conversations/{conversation_id}", responses={200: {"model": Conversation}, **errors(400, 401, 404, 503)}
)
async def rename_conversation(
    conversation_id: str, rename: RenameRequest, user: CurrentUser, conversations: Conversations
) -> JSONResponse:
    return JSONResponse(await conversations.rename(conversation_id, user, rename.title))


@router.delete(
    "/api/conversations/{conversation_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted"}, **errors(401, 404, 503)},
)
async def delete_conversation(conversation_id: str, user: CurrentUser, conversations: Conversations) -> Response:
    await conversations.delete(conversation_id, user)
    return Response(status_code=204)


@router.post(
    "/api/feedback",
    status_code=201,
    responses={201: {"model": FeedbackCreated}, **errors(400, 401, 404, 503)},
)
async def rate_answer(feedback: FeedbackRequest, user: CurrentUser, conversations: Conversations) -> JSONResponse:
    feedback_id = await conversations.rate(
        user, feedback.conversation_id, feedback.message_index, feedback.rating, feedback.comment
    )
    return JSONResponse({"id": feedback_id}, status_code=201)


@router.get("/api/examples", responses={200: {"model": ExampleQuestions}, **errors(401, 503)})
async def example_questions(caller: CurrentCaller, chat: Chat) -> JSONResponse:
    return JSONResponse(protocol.example_questions_body(await chat.example_headings(caller, EXAMPLE_QUESTIONS)))


@router.get("/healthz", responses={200: {"model": Health}, 503: {"model": Health, "description": "Unhealthy"}})
async def healthz(services: Services) -> JSONResponse:
    database = await services.database.status()
    healthy = database["status"] == "ok"
    body = protocol.health_body(healthy, database, model_configured=services.model is not None)
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/", include_in_schema=False)
async def index() -> Response:
    page = STATIC_DIR / "index.html"
    return FileResponse(page) if page.is_file() else HTMLResponse(PLACEHOLDER_PAGE)


async def _json_lines(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """One JSON object per line. If the client disconnects, Starlette cancels this generator and the
    `finally` below closes the chunk iterator, which closes the upstream model request."""
    try:
        async for chunk in chunks:
            yield _json_line(chunk)
    except ModelError as error:
        yield _json_line(protocol.error_body(str(error)))
    except Exception:
        log.exception("streaming failed")
        yield _json_line(protocol.error_body("the answer stream failed; the details are in the server log"))
    finally:
        await chunks.aclose()


def _json_line(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, ensure_ascii=False) + "\n").encode()
