"""Retrieval-augmented chat: search the documents, ask the model, return an answer with citations.

The request and response shapes are in protocol.py, the prompts in prompts/, the citation format in
citations.py and the cleaning of the model's answer in answer_filter.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources

from . import protocol
from .access import Caller, access_filter
from .answer_filter import AnswerFilter
from .model_client import ModelClient
from .protocol import ChatRequest, Message, Overrides
from .search import Searcher, SearchRequest, SearchResult, one_per_citation
from .sentences import readable_answer
from .settings import Settings

NO_MODEL_NOTICE = (
    "No language model is configured, so this is not a written answer: "
    "here are the sentences of the documents that best match the question."
)
NO_RESULTS_NOTICE = "No passages in the documents you can read match this question."
# Earlier turns sent to the model, newest first, up to this many characters: keeps long
# conversations inside the model's context window and its cost bounded.
HISTORY_CHAR_BUDGET = 12_000


def _prompt(name: str) -> str:
    return resources.files(__package__).joinpath("prompts", name).read_text(encoding="utf-8").strip()


# Read once, when the app starts.
DEFAULT_SYSTEM_PROMPT = _prompt("system.txt")
FOLLOWUP_PROMPT = _prompt("followup_questions.txt")


@dataclass
class PreparedChat:
    query: str
    results: list[SearchResult]
    context: dict
    model_messages: list[dict] | None  # None when no model is configured
    overrides: Overrides


class ChatService:
    """Answers chat requests: the search, the prompt, the model's answer with its citations checked."""

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
        results = one_per_citation(results)  # each citation names one passage
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
        return PreparedChat(query, results, context, messages, overrides)

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
            content = no_model_answer(prepared.query, prepared.results)
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
        return protocol.answer_body(content, prepared.context, request.session_state)

    async def open_stream(self, request: ChatRequest, caller: Caller) -> AsyncIterator[dict]:
        """Search and open the upstream stream now (so errors become HTTP statuses), then return
        an iterator of protocol chunks: the context first, then deltas as tokens arrive."""
        prepared = await self.prepare(request, caller)
        if prepared.model_messages is None:
            pieces = _single(no_model_answer(prepared.query, prepared.results))
        else:
            pieces = await self.model.open_stream(
                prepared.model_messages, prepared.overrides.temperature, prepared.overrides.seed
            )
        return self._stream_chunks(request, prepared, pieces)

    async def _stream_chunks(self, request: ChatRequest, prepared: PreparedChat, pieces: AsyncIterator[str]):
        yield protocol.stream_start(prepared.context, request.session_state)
        answer_filter = AnswerFilter(prepared.results, prepared.overrides.suggest_followup_questions)
        try:
            async for piece in pieces:
                text = answer_filter.feed(piece)
                if text:
                    yield protocol.stream_text(text)
        finally:
            await pieces.aclose()
        text = answer_filter.finish()
        if text:
            yield protocol.stream_text(text)
        if answer_filter.followup_questions:
            yield protocol.stream_followups(answer_filter.followup_questions)


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


def no_model_answer(query: str, results: list[SearchResult]) -> str:
    """The answer given without a model: the notice, then the sentences of the passages found that best
    match the question, each passage's with its citation (sentences.py)."""
    if not results:
        return f"{NO_MODEL_NOTICE}\n\n{NO_RESULTS_NOTICE}"
    return readable_answer(NO_MODEL_NOTICE, query, [(result.citation, result.content) for result in results])


async def _single(text: str) -> AsyncIterator[str]:
    yield text
