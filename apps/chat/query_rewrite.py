"""Follow-up rewriting: a conversation's latest question as a standalone search query.

"And for contractors?" searched as it is finds nothing useful; with the earlier turns the model can
write "vacation days for contractors". It is asked once, bounded (MAX_TOKENS, the call required), to
call the tool `search_documents(query, collection?)` whose schema offers only the filters the search
supports (a collection, from the ones that exist). Anything else it answers (no call, no JSON, missing
or wrong arguments) counts as no rewrite: the search then uses the last message as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .prompts import read_prompt
from .protocol import text_problem

log = logging.getLogger(__name__)

TOOL_NAME = "search_documents"
# A cap on the reply, reasoning included: the gpt-5 family the stacks deploy counts its reasoning in it.
MAX_TOKENS = 1000
MAX_QUERY_CHARS = 500
# Earlier turns shown to the model, newest first: resolving a reference needs only the last few.
HISTORY_CHAR_BUDGET = 4000
PROMPT = read_prompt("query_rewrite.txt")


@dataclass(frozen=True)
class SearchQuery:
    text: str
    collection: str | None = None  # only the documents of this collection
    rewritten: bool = False  # False: the last message as it is


def search_tool(collections: list[str]) -> dict:
    """The tool's schema (OpenAI function calling)."""
    properties: dict[str, Any] = {
        "query": {"type": "string", "description": "the standalone search query", "maxLength": MAX_QUERY_CHARS}
    }
    if collections:
        properties["collection"] = {
            "type": "string",
            "enum": collections,
            "description": "only documents of this collection, when the question names it",
        }
    return {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "Search the organisation's documents.",
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": ["query"],
                "additionalProperties": False,
            },
        },
    }


def rewrite_messages(earlier: list[dict], question: str, collections: list[str]) -> list[dict]:
    """What the model is asked: the prompt, the collections it may filter by, the conversation."""
    listed = ", ".join(collections) if collections else "(none)"
    conversation = "\n".join(f"{turn['role']}: {turn['content']}" for turn in earlier)
    return [
        {"role": "system", "content": f"{PROMPT}\nCollections: {listed}"},
        {"role": "user", "content": f"Conversation so far:\n{conversation}\n\nLatest question: {question}"},
    ]


def search_query(arguments: Any, collections: list[str], question: str) -> SearchQuery:
    """The search query the tool call's arguments give, or the question itself if they are unusable."""
    if not isinstance(arguments, dict) or set(arguments) - {"query", "collection"}:
        return _unusable(question, arguments)
    query, collection = arguments.get("query"), arguments.get("collection")
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS or text_problem(query):
        return _unusable(question, arguments)
    if collection is not None and collection not in collections:
        return _unusable(question, arguments)
    return SearchQuery(" ".join(query.split()), collection, rewritten=True)


def _unusable(question: str, arguments: Any) -> SearchQuery:
    log.info("query rewrite: unusable tool arguments %.200r; searching the last message", arguments)
    return SearchQuery(question)
