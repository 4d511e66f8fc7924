"""The wire format: what clients send and what they get back.

Chat requests and responses follow the Microsoft AI Chat Protocol (2024-05-29). Requests are pydantic
models, checked once on arrival; responses are plain dicts built by the functions below (the routes
send them as they are: FastAPI's generic encoder would only walk them again). Every error is
{"error": message}.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .search import SearchResult
from .settings import Settings

SNIPPET_CHARS = 300  # of each search result's passage


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["user", "assistant"]
    content: str


class Overrides(BaseModel):
    """The overrides this app honours; others that protocol clients send are ignored."""

    model_config = ConfigDict(extra="ignore")
    top: int | None = Field(default=None, ge=1)
    retrieval_mode: Literal["hybrid", "vectors", "text"] | None = None
    minimum_score: float | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    seed: int | None = None
    prompt_template: str | None = Field(default=None, max_length=8000)
    suggest_followup_questions: bool = False
    use_oid_security_filter: bool = False
    use_groups_security_filter: bool = False


class RequestContext(BaseModel):
    model_config = ConfigDict(extra="ignore")
    overrides: Overrides = Field(default_factory=Overrides)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messages: list[Message] = Field(min_length=1)
    context: RequestContext = Field(default_factory=RequestContext)
    session_state: Any = None


class RequestLimitError(ValueError):
    """A request that is well-formed but exceeds the configured limits (HTTP 400/413)."""


def check_limits(request: ChatRequest, settings: Settings) -> None:
    if len(request.messages) > settings.max_messages:
        raise RequestLimitError(f"too many messages: {len(request.messages)} (at most {settings.max_messages})")
    for position, message in enumerate(request.messages):
        if len(message.content) > settings.max_message_chars:
            raise RequestLimitError(
                f"messages[{position}].content is {len(message.content)} characters"
                f" (at most {settings.max_message_chars})"
            )
    if request.messages[-1].role != "user":
        raise RequestLimitError("the last message must have role 'user'")
    if not request.messages[-1].content.strip():
        raise RequestLimitError("the last message is empty")
    top = request.context.overrides.top
    if top is not None and top > settings.max_top:
        raise RequestLimitError(f"overrides.top is {top} (at most {settings.max_top})")


def answer_body(content: str, context: dict, session_state: Any) -> dict:
    """The response of POST /chat."""
    return {"message": {"role": "assistant", "content": content}, "context": context, "session_state": session_state}


# The lines of POST /chat/stream: the context first, then the answer's text as it arrives, then the
# follow-up questions (if they were asked for). A failure after the first line ends it with an error_body.


def stream_start(context: dict, session_state: Any) -> dict:
    return {"delta": {"role": "assistant"}, "context": context, "session_state": session_state}


def stream_text(text: str) -> dict:
    return {"delta": {"role": "assistant", "content": text}}


def stream_followups(questions: list[str]) -> dict:
    return {"delta": {"role": "assistant"}, "context": {"followup_questions": questions}}


def error_body(message: str) -> dict:
    return {"error": message}


def search_body(query: str, retrieval_mode: str, results: list[SearchResult]) -> dict:
    """The response of GET /api/search."""
    return {
        "query": query,
        "retrieval_mode": retrieval_mode,
        "results": [
            {
                "title": result.title,
                "source": result.source,
                "page": result.page,
                "citation": result.citation,
                "snippet": result.content[:SNIPPET_CHARS],
                "score": result.score,
            }
            for result in results
        ],
    }


def health_body(healthy: bool, database: dict, model_configured: bool) -> dict:
    """The response of GET /healthz."""
    return {
        "status": "ok" if healthy else "unhealthy",
        "database": database,
        "model": "configured" if model_configured else "not configured",
    }
