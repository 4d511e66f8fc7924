"""Retrieval-augmented chat: search the documents, ask the model, return an answer with citations.

Request and response shapes follow the Microsoft AI Chat Protocol (2024-05-29).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .access import Caller, access_filter
from .model_client import ModelClient
from .search import Searcher, SearchRequest, SearchResult
from .settings import Settings

NO_MODEL_NOTICE = (
    "No language model is configured, so this is not a written answer: "
    "here are the most relevant passages from the documents."
)
NO_RESULTS_NOTICE = "No passages in the documents you can read match this question."
PASSAGE_PREVIEW_CHARS = 400
# Earlier turns sent to the model, newest first, up to this many characters: keeps long
# conversations inside the model's context window and its cost bounded.
HISTORY_CHAR_BUDGET = 12_000

DEFAULT_SYSTEM_PROMPT = """You are an assistant that answers questions about the organisation's documents.
Answer ONLY with facts from the sources listed below. If they do not contain the answer, say that you do not know.
Keep answers short. Each source starts with its name, then a colon, then the passage.
After every fact, cite the name of the source it comes from in square brackets, for example [handbook.pdf#page=3].
Use the names exactly as given and cite each source separately, like [a.md#page=1][b.pdf#page=2]."""

FOLLOWUP_PROMPT = """Then write three brief follow-up questions the user might ask next, each in double angle brackets,
for example <<What is the notice period?>>. Do not repeat questions already asked."""


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


class AnswerFilter:
    """Cleans model output as it streams: keeps only citations of real data points, and pulls out
    <<follow-up questions>> when they were asked for.

    Text that might be the start of a citation or follow-up is held back until it is complete.
    """

    MAX_CITATION_CHARS = 300  # a longer bracketed text is not a citation, so it is not held back
    CITATION = re.compile(rf"\[([^\[\]\n]{{1,{MAX_CITATION_CHARS}}})\]")

    def __init__(self, results: list[SearchResult], collect_followups: bool):
        self.citations = {result.citation for result in results}
        self.first_citation_of_source: dict[str, str] = {}
        for result in results:
            self.first_citation_of_source.setdefault(result.source, result.citation)
        self.collect_followups = collect_followups
        self.followup_questions: list[str] = []
        self._pending = ""
        self._followup_text = ""

    def feed(self, text: str) -> str:
        if self._followup_text:
            self._followup_text += text
            return ""
        self._pending += text
        if self.collect_followups and "<<" in self._pending:
            self._pending, self._followup_text = self._pending.split("<<", 1)
            self._followup_text = "<<" + self._followup_text
            return self._release(len(self._pending))
        return self._release(self._safe_length())

    def finish(self) -> str:
        text = self._release(len(self._pending))
        self.followup_questions = [q.strip() for q in re.findall(r"<<([^<>]+)>>", self._followup_text) if q.strip()]
        return text

    def _safe_length(self) -> int:
        """How much of the pending text cannot be part of an unfinished [citation] or <<."""
        open_bracket = self._pending.rfind("[")
        if (
            open_bracket != -1
            and "]" not in self._pending[open_bracket:]
            and len(self._pending) - open_bracket <= self.MAX_CITATION_CHARS
        ):
            return open_bracket
        if self.collect_followups and self._pending.endswith("<"):
            return len(self._pending) - 1
        return len(self._pending)

    def _release(self, length: int) -> str:
        released, self._pending = self._pending[:length], self._pending[length:]
        return self.CITATION.sub(self._checked_citation, released)

    def _checked_citation(self, match: re.Match) -> str:
        name = match.group(1).strip()
        if name in self.citations:
            return f"[{name}]"
        if name in self.first_citation_of_source:  # cited the file without a page
            return f"[{self.first_citation_of_source[name]}]"
        if "#page=" in name:  # looks like a citation of something that was not retrieved: drop it
            return ""
        return match.group(0)  # ordinary bracketed text


@dataclass
class PreparedChat:
    results: list[SearchResult]
    context: dict
    model_messages: list[dict] | None  # None when no model is configured
    overrides: Overrides


class ChatService:
    def __init__(self, settings: Settings, searcher: Searcher, model: ModelClient | None):
        self.settings = settings
        self.searcher = searcher
        self.model = model

    async def search(self, query: str, caller: Caller, overrides: Overrides) -> tuple[list[SearchResult], str]:
        """Search with the request's overrides; returns the results and the retrieval mode used."""
        mode = overrides.retrieval_mode or "hybrid"
        if self.model is None:
            mode = "text"  # no embeddings without a model
        embedding = (await self.model.embed([query]))[0] if mode != "text" else None
        results = await self.searcher.search(
            SearchRequest(
                query=query,
                top=overrides.top or self.settings.search_top,
                minimum_score=(
                    overrides.minimum_score
                    if overrides.minimum_score is not None
                    else self.settings.search_minimum_score
                ),
                retrieval_mode=mode,
                embedding=embedding,
                access=access_filter(
                    caller, self.settings, overrides.use_oid_security_filter, overrides.use_groups_security_filter
                ),
            )
        )
        return results, mode

    async def prepare(self, request: ChatRequest, caller: Caller) -> PreparedChat:
        overrides = request.context.overrides
        query = request.messages[-1].content
        results, mode = await self.search(query, caller, overrides)
        thoughts = [
            {
                "title": "Search query",
                "description": query,
                "props": {"retrieval_mode": mode, "top": overrides.top or self.settings.search_top},
            },
            {
                "title": "Search results",
                "description": [
                    {"citation": r.citation, "title": r.title, "score": round(r.score, 6)} for r in results
                ],
            },
            {"title": "Model", "description": self.settings.chat_model if self.model else "none configured"},
        ]
        context = {"data_points": {"text": [result.data_point for result in results]}, "thoughts": thoughts}
        messages = self._model_messages(request, results) if self.model else None
        return PreparedChat(results, context, messages, overrides)

    def _model_messages(self, request: ChatRequest, results: list[SearchResult]) -> list[dict]:
        overrides = request.context.overrides
        system = DEFAULT_SYSTEM_PROMPT
        if overrides.prompt_template:
            # As in Azure's samples: ">>>" appends to the built-in prompt, anything else replaces it.
            template = overrides.prompt_template
            system = system + "\n" + template[3:] if template.startswith(">>>") else template
        if overrides.suggest_followup_questions:
            system += "\n" + FOLLOWUP_PROMPT
        sources = "\n".join(result.data_point for result in results) or "(no sources found)"
        history = recent_history(request.messages[:-1], HISTORY_CHAR_BUDGET)
        question = request.messages[-1].content
        return [
            {"role": "system", "content": system},
            *history,
            {"role": "user", "content": f"{question}\n\nSources:\n{sources}"},
        ]

    async def answer(self, request: ChatRequest, caller: Caller) -> dict:
        prepared = await self.prepare(request, caller)
        if prepared.model_messages is None:
            content = passages_answer(prepared.results)
            followups: list[str] = []
        else:
            raw = await self.model.complete(
                prepared.model_messages, prepared.overrides.temperature, prepared.overrides.seed
            )
            answer_filter = AnswerFilter(prepared.results, prepared.overrides.suggest_followup_questions)
            content = (answer_filter.feed(raw) + answer_filter.finish()).strip()
            followups = answer_filter.followup_questions
        if followups:
            prepared.context["followup_questions"] = followups
        return {
            "message": {"role": "assistant", "content": content},
            "context": prepared.context,
            "session_state": request.session_state,
        }

    async def open_stream(self, request: ChatRequest, caller: Caller) -> AsyncIterator[dict]:
        """Search and open the upstream stream now (so errors become HTTP statuses), then return
        an iterator of protocol chunks: the context first, then deltas as tokens arrive."""
        prepared = await self.prepare(request, caller)
        if prepared.model_messages is None:
            pieces = _single(passages_answer(prepared.results))
        else:
            pieces = await self.model.open_stream(
                prepared.model_messages, prepared.overrides.temperature, prepared.overrides.seed
            )
        return self._stream_chunks(request, prepared, pieces)

    async def _stream_chunks(self, request: ChatRequest, prepared: PreparedChat, pieces: AsyncIterator[str]):
        yield {"delta": {"role": "assistant"}, "context": prepared.context, "session_state": request.session_state}
        answer_filter = AnswerFilter(prepared.results, prepared.overrides.suggest_followup_questions)
        try:
            async for piece in pieces:
                text = answer_filter.feed(piece)
                if text:
                    yield {"delta": {"role": "assistant", "content": text}}
        finally:
            await pieces.aclose()
        text = answer_filter.finish()
        if text:
            yield {"delta": {"role": "assistant", "content": text}}
        if answer_filter.followup_questions:
            yield {"delta": {"role": "assistant"}, "context": {"followup_questions": answer_filter.followup_questions}}


def recent_history(messages: list[Message], char_budget: int) -> list[dict]:
    """The latest messages whose contents fit in char_budget, oldest first."""
    kept: list[dict] = []
    used = 0
    for message in reversed(messages):
        used += len(message.content)
        if used > char_budget:
            break
        kept.append({"role": message.role, "content": message.content})
    return kept[::-1]


def passages_answer(results: list[SearchResult]) -> str:
    """The answer given without a model: the notice and the best passages, each with its citation."""
    if not results:
        return f"{NO_MODEL_NOTICE}\n\n{NO_RESULTS_NOTICE}"
    passages = []
    for result in results:
        preview = (
            result.content
            if len(result.content) <= PASSAGE_PREVIEW_CHARS
            else (result.content[:PASSAGE_PREVIEW_CHARS].rsplit(" ", 1)[0] + " ...")
        )
        passages.append(f"- {preview} [{result.citation}]")
    return NO_MODEL_NOTICE + "\n\n" + "\n".join(passages)


async def _single(text: str) -> AsyncIterator[str]:
    yield text
