"""Retrieval-augmented chat: rewrite a follow-up into a search query, search the documents, ask the model,
return an answer with citations, and store the turn in the caller's conversation.

The request and response shapes are in protocol.py, the prompts in prompts/, the citation format in
citations.py, the cleaning of the model's answer in answer_filter.py, follow-up rewriting in
query_rewrite.py and the conversations in history.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from . import protocol, query_rewrite
from .access import Caller, access_filter
from .answer_filter import AnswerFilter
from .history import ConversationStore, StoredMessage, owner
from .model_client import ModelClient, ModelResponseError
from .prompts import read_prompt
from .protocol import ChatRequest, Message, Overrides
from .query_rewrite import SearchQuery
from .search import Searcher, SearchRequest, SearchResult, one_per_citation
from .sentences import readable_answer
from .settings import Settings

NO_MODEL_NOTICE = (
    "No language model is configured, so this is not a written answer: "
    "here are the sentences of the documents that best match the question."
)
NO_RESULTS_NOTICE = "No passages in the documents you can read match this question."
# Embeds texts (for a user, if given): ModelClient.embed, or LocalEmbeddings.embed with EMBEDDING_PROVIDER=local.
Embed = Callable[[list[str], str | None], Awaitable[list[list[float]]]]
# Earlier turns sent to the model, newest first, up to this many characters: keeps long
# conversations inside the model's context window and its cost bounded.
HISTORY_CHAR_BUDGET = 12_000


log = logging.getLogger(__name__)

# Read once, when the app starts.
DEFAULT_SYSTEM_PROMPT = read_prompt("system.txt")
FOLLOWUP_PROMPT = read_prompt("followup_questions.txt")


@dataclass
class PreparedChat:
    caller: Caller
    query: SearchQuery
    results: list[SearchResult]
    context: dict
    model_messages: list[dict] | None  # None when no model is configured
    overrides: Overrides
    conversation_id: str  # the answer's session_state
    new_messages: list[StoredMessage]  # what the conversation gains before the answer


class ChatService:
    """Answers chat requests: the search, the prompt, the model's answer with its citations checked."""

    def __init__(
        self,
        settings: Settings,
        searcher: Searcher,
        model: ModelClient | None,
        conversations: ConversationStore,
        embed: Embed | None,
    ):
        """`embed` makes the query's vector (services.embedding_function picks it); None: text search only."""
        self.settings = settings
        self.searcher = searcher
        self.model = model
        self.conversations = conversations
        self.embed = embed

    async def search(
        self, query: str, caller: Caller, overrides: Overrides, collection: str | None = None
    ) -> tuple[list[SearchResult], str]:
        """Search with the request's overrides; returns the results and the retrieval mode used."""
        mode = overrides.retrieval_mode or "hybrid"
        if self.embed is None:
            mode = "text"  # no embeddings without a model (or the local one)
        embedding = (await self.embed([query], caller.user_id))[0] if mode != "text" else None
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
                collection=collection,
            )
        )
        return results, mode

    async def example_headings(self, caller: Caller, count: int) -> list[str]:
        """Section headings of documents the caller may read, to suggest questions about."""
        return await self.searcher.example_headings(access_filter(caller, self.settings), count)

    async def search_query(self, messages: list[Message], caller: Caller) -> SearchQuery:
        """What to search for: a follow-up rewritten with the conversation by one tool call
        (query_rewrite.py), else, without a model, an earlier turn or a usable call, the last message."""
        question = messages[-1].content
        if self.model is None or len(messages) == 1:
            return SearchQuery(question)
        collections = await self.searcher.collection_names()
        earlier = recent_history(messages[:-1], query_rewrite.HISTORY_CHAR_BUDGET)
        try:
            arguments = await self.model.tool_arguments(
                query_rewrite.rewrite_messages(earlier, question, collections),
                query_rewrite.search_tool(collections),
                query_rewrite.MAX_TOKENS,
                caller.user_id,
            )
        except ModelResponseError as error:  # e.g. a model without tool calling; unavailable ones still fail
            log.warning("query rewrite failed, searching the last message: %s", error)
            return SearchQuery(question)
        return query_rewrite.search_query(arguments, collections, question)

    async def _conversation(self, request: ChatRequest, caller: Caller) -> tuple[str, list[StoredMessage]]:
        """The request's conversation (a new one without session_state) and what the request adds to it:
        a new conversation keeps the messages the client brought, a known one gains the last."""
        user, question = owner(caller), request.messages[-1].content
        if request.session_state is None:
            conversation_id = await self.conversations.start(user, question)
            return conversation_id, [StoredMessage(message.role, message.content) for message in request.messages]
        return await self.conversations.check(request.session_state, user), [StoredMessage("user", question)]

    async def prepare(self, request: ChatRequest, caller: Caller) -> PreparedChat:
        overrides = request.context.overrides
        conversation_id, new_messages = await self._conversation(request, caller)
        started = time.perf_counter()
        query = await self.search_query(request.messages, caller)
        rewritten = time.perf_counter()
        results, mode = await self.search(query.text, caller, overrides, query.collection)
        searched = time.perf_counter()
        results = one_per_citation(results)  # each citation names one passage
        thoughts = [
            {
                "title": "Search query",
                "description": query.text,
                "props": {
                    "retrieval_mode": mode,
                    "top": overrides.top or self.settings.search_top,
                    "rewritten": query.rewritten,
                    "collection": query.collection,
                },
            },
            {
                "title": "Search results",
                "description": [
                    {"citation": r.citation, "title": r.title, "score": round(r.score, 6)} for r in results
                ],
            },
            {"title": "Model", "description": self.settings.chat_model if self.model else "none configured"},
            {
                "title": "Timings",
                "description": {
                    "query_rewrite_ms": round((rewritten - started) * 1000, 1),
                    "search_ms": round((searched - rewritten) * 1000, 1),
                },
            },
        ]
        context = {"data_points": {"text": [result.data_point for result in results]}, "thoughts": thoughts}
        messages = self._model_messages(request, results) if self.model else None
        return PreparedChat(caller, query, results, context, messages, overrides, conversation_id, new_messages)

    async def _record(self, prepared: PreparedChat, answer: str) -> None:
        """Store the turn, the answer with the context the client got."""
        await self.conversations.append(
            prepared.conversation_id,
            owner(prepared.caller),
            [*prepared.new_messages, StoredMessage("assistant", answer, prepared.context)],
        )

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
            content = no_model_answer(prepared.query.text, prepared.results)
            followups: list[str] = []
        else:
            raw = await self.model.complete(
                prepared.model_messages, prepared.overrides.temperature, prepared.overrides.seed, caller.user_id
            )
            answer_filter = AnswerFilter(prepared.results, prepared.overrides.suggest_followup_questions)
            content = (answer_filter.feed(raw) + answer_filter.finish()).strip()
            followups = answer_filter.followup_questions
        if followups:
            prepared.context["followup_questions"] = followups
        await self._record(prepared, content)
        return protocol.answer_body(content, prepared.context, prepared.conversation_id)

    async def open_stream(self, request: ChatRequest, caller: Caller) -> AsyncIterator[dict]:
        """Search and open the upstream stream now (so errors become HTTP statuses), then return
        an iterator of protocol chunks: the context first, then deltas as tokens arrive."""
        prepared = await self.prepare(request, caller)
        if prepared.model_messages is None:
            pieces = _single(no_model_answer(prepared.query.text, prepared.results))
        else:
            pieces = await self.model.open_stream(
                prepared.model_messages, prepared.overrides.temperature, prepared.overrides.seed, caller.user_id
            )
        return self._stream_chunks(prepared, pieces)

    async def _stream_chunks(self, prepared: PreparedChat, pieces: AsyncIterator[str]):
        """The protocol's lines; the turn is stored once the answer is complete (not if the client left)."""
        yield protocol.stream_start(prepared.context, prepared.conversation_id)
        answer_filter = AnswerFilter(prepared.results, prepared.overrides.suggest_followup_questions)
        answer: list[str] = []
        try:
            async for piece in pieces:
                text = answer_filter.feed(piece)
                if text:
                    answer.append(text)
                    yield protocol.stream_text(text)
        finally:
            await pieces.aclose()
        text = answer_filter.finish()
        if text:
            answer.append(text)
            yield protocol.stream_text(text)
        if answer_filter.followup_questions:
            prepared.context["followup_questions"] = answer_filter.followup_questions
            yield protocol.stream_followups(answer_filter.followup_questions)
        await self._record(prepared, "".join(answer).strip())


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
