"""The wire format: what clients send and what they get back.

Chat requests and responses follow the Microsoft AI Chat Protocol (2024-05-29). Requests are pydantic
models, checked once on arrival; responses are plain dicts built by the functions below (the routes
send them as they are: FastAPI's generic encoder would only walk them again; the response models
further down only describe them in /openapi.json). Every error is {"error": message}.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from .search import SearchResult
from .settings import Settings

SNIPPET_CHARS = 300  # of each search result's passage

# Arrays and objects nested deeper than this are refused before the JSON parser sees them (it recurses
# once per level). The protocol itself needs 3 levels (context.overrides.top); session_state is the
# client's own, and no real client nests it 30 deep.
MAX_JSON_DEPTH = 32

_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def text_problem(text: str) -> str | None:
    """Why `text` cannot be taken as it is, or None. PostgreSQL's text cannot hold NUL, and a UTF-16
    surrogate left unpaired (JSON's "\\ud800" alone) is no character at all: it cannot be encoded as
    UTF-8, neither for the database nor for the answer."""
    if (position := text.find("\x00")) >= 0:
        return f"contains a NUL character (\\u0000) at character {position}, which PostgreSQL cannot store"
    if match := _SURROGATE.search(text):
        return (
            f"contains an unpaired UTF-16 surrogate (\\u{ord(match.group()):04x}) at character {match.start()},"
            " which is not valid Unicode text"
        )
    return None


def _storable(text: str) -> str:
    if problem := text_problem(text):
        raise PydanticCustomError("unstorable_text", "{problem}", {"problem": problem})
    return text


# Text the app may store, search for and send back: every string of a request is of this kind.
StorableText = Annotated[str, AfterValidator(_storable)]


def _storable_json(value: Any) -> Any:
    """session_state is the client's own JSON, sent back as it came: its strings must be text too."""
    for path, text in _strings(value, ""):
        if problem := text_problem(text):
            raise PydanticCustomError("unstorable_text", "{problem}", {"problem": f"{path} {problem}".lstrip()})
    return value


def _strings(value: Any, path: str):
    """(path, string) for every string in a JSON value, object keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _strings(item, f"{path}[{position}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}[key {key!r}]", key
            yield from _strings(item, f"{path}[{key!r}]")


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of a JSON document nest, found without parsing it (strings are
    skipped, brackets counted), so that an over-deep body is refused before the recursive parser."""
    brackets = _JSON_BRACKET.findall(_JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["user", "assistant"]
    content: StorableText


class Overrides(BaseModel):
    """The overrides this app honours; others that protocol clients send are ignored."""

    model_config = ConfigDict(extra="ignore")
    top: int | None = Field(default=None, ge=1)
    retrieval_mode: Literal["hybrid", "vectors", "text"] | None = None
    minimum_score: float | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    seed: int | None = None
    prompt_template: StorableText | None = Field(default=None, max_length=8000)
    suggest_followup_questions: bool = False
    use_oid_security_filter: bool = False
    use_groups_security_filter: bool = False


class RequestContext(BaseModel):
    model_config = ConfigDict(extra="ignore")
    overrides: Overrides = Field(default_factory=Overrides)


class ChatRequest(BaseModel):
    """The last message must be the user's, and not blank; MAX_MESSAGES and MAX_MESSAGE_CHARS apply."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"messages": [{"role": "user", "content": "How do I file expenses?"}]}]},
    )
    messages: list[Message] = Field(min_length=1)
    context: RequestContext = Field(default_factory=RequestContext)
    session_state: Annotated[Any, AfterValidator(_storable_json)] = None


class RenameRequest(BaseModel):
    """The body of PATCH /api/conversations/{id}."""

    model_config = ConfigDict(extra="forbid")
    title: StorableText = Field(min_length=1, max_length=200)


class FeedbackRequest(BaseModel):
    """The body of POST /api/feedback: a rating of the answer at message_index of a stored conversation."""

    model_config = ConfigDict(extra="forbid")
    conversation_id: StorableText = Field(max_length=100)
    message_index: int = Field(ge=0, le=100_000)
    rating: Literal["up", "down"]
    comment: StorableText | None = Field(default=None, max_length=4000)


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
                "section": list(result.section),
                "citation": result.citation,
                "snippet": result.content[:SNIPPET_CHARS],
                "score": result.score,
            }
            for result in results
        ],
    }


def example_questions_body(headings: list[str]) -> dict:
    """The response of GET /api/examples."""
    return {"examples": [f"What do the documents say about {heading}?" for heading in headings]}


def health_body(healthy: bool, database: dict, model_configured: bool) -> dict:
    """The response of GET /healthz."""
    return {
        "status": "ok" if healthy else "unhealthy",
        "database": database,
        "model": "configured" if model_configured else "not configured",
    }


# What /openapi.json says the responses are. The functions above build them; the schemathesis run in
# tests/apps/chat/test_openapi.py checks that the two agree.


class ErrorBody(BaseModel):
    """Every error response, and the last line of a stream that fails."""

    error: str = Field(description="what went wrong, naming the field or limit at fault")


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class ChatAnswer(BaseModel):
    """The response of POST /chat."""

    message: AssistantMessage
    context: dict[str, Any] = Field(description="data_points.text: the cited passages; thoughts; followup_questions")
    session_state: Any = Field(description="the request's session_state, as it came")


class StreamDelta(BaseModel):
    role: Literal["assistant"]
    content: str | None = None


class ChatStreamLine(BaseModel):
    """One line of POST /chat/stream: the context first, then the answer's text, then the follow-up
    questions if they were asked for; or an error that ends the stream."""

    delta: StreamDelta | None = None
    context: dict[str, Any] | None = None
    session_state: Any = None
    error: str | None = None


class SearchHit(BaseModel):
    title: str
    source: str
    page: int
    section: list[str]  # the heading path of a Markdown or HTML section, outermost first; [] for none
    citation: str
    snippet: str
    score: float


class SearchAnswer(BaseModel):
    """The response of GET /api/search."""

    query: str
    retrieval_mode: Literal["hybrid", "vectors", "text"]
    results: list[SearchHit]


class ConversationSummary(BaseModel):
    id: str
    title: str
    updated_at: str = Field(description="ISO 8601")


class ConversationList(BaseModel):
    """The response of GET /api/conversations: the caller's conversations, newest first."""

    conversations: list[ConversationSummary]


class StoredMessageBody(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    context: dict[str, Any] | None = Field(default=None, description="an answer's context as the chat answer had it")


class Conversation(BaseModel):
    """A conversation with its messages, oldest first."""

    id: str
    title: str
    messages: list[StoredMessageBody]


class FeedbackCreated(BaseModel):
    id: int


class ExampleQuestions(BaseModel):
    """The response of GET /api/examples."""

    examples: list[str]


class Health(BaseModel):
    """The response of GET /healthz (200 healthy, 503 not)."""

    status: Literal["ok", "unhealthy"]
    database: dict[str, Any]
    model: Literal["configured", "not configured"]
