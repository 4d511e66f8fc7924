"""Conversations and answer feedback, stored in PostgreSQL (migration 0004) per user.

A conversation belongs to the user who started it: the caller's Entra object id with AUTH_MODE=app_service,
else the one local user (LOCAL_USER). Every statement names the user, so one user's conversation is, to
every other, a conversation that does not exist (ConversationNotFoundError, answered 404).
Its id is the chat protocol's session_state: the answer of a request without one starts a conversation.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from . import citations
from .access import Caller
from .database import Database

LOCAL_USER = "local"
TITLE_CHARS = 80


class ConversationNotFoundError(LookupError):
    """No such conversation for this user (HTTP 404)."""


@dataclass(frozen=True)
class StoredMessage:
    role: str
    content: str
    context: dict | None = None  # an answer's context (data_points, thoughts)

    def as_json(self) -> dict:
        return {"role": self.role, "content": self.content, "context": self.context}


def owner(caller: Caller) -> str:
    return caller.user_id or LOCAL_USER


def title_of(question: str) -> str:
    """A new conversation's title: the start of its first question, on one line."""
    words = " ".join(question.split())
    return words if len(words) <= TITLE_CHARS else words[: TITLE_CHARS - 1].rstrip() + "…"


def not_found(conversation_id: Any) -> ConversationNotFoundError:
    return ConversationNotFoundError(f"no conversation {str(conversation_id)[:100]!r}")


def conversation_uuid(conversation_id: Any) -> uuid.UUID:
    """The id as a UUID; anything else (another string, a number, an object) names no conversation."""
    if isinstance(conversation_id, str):
        with contextlib.suppress(ValueError):
            return uuid.UUID(conversation_id)
    raise not_found(conversation_id)


def cited_passages(answer: str, context: dict | None) -> list[dict]:
    """The data points an answer cites, as {citation, passage}, in the order it cites them."""
    data_points = (context or {}).get("data_points", {}).get("text", [])
    passages = {citations.citation_of_data_point(text): text for text in data_points}
    return [
        {"citation": cited, "passage": passages[cited][len(cited) + 2 :]}
        for cited in citations.cited(answer)
        if cited in passages
    ]


_APPEND_SQL = """
WITH conversation AS (
    -- The row lock orders concurrent appends; message_count is re-read after waiting for it.
    UPDATE conversations SET message_count = message_count + %(count)s, updated_at = now()
    WHERE id = %(id)s AND user_id = %(user)s
    RETURNING id, message_count - %(count)s AS first_position
)
INSERT INTO conversation_messages (conversation_id, position, role, content, context)
SELECT c.id, c.first_position + m.number - 1, m.message->>'role', m.message->>'content',
       nullif(m.message->'context', 'null'::jsonb)
FROM conversation c, jsonb_array_elements(%(messages)s) WITH ORDINALITY AS m(message, number)
"""

_RATED_ANSWER_SQL = """
SELECT a.content, a.context, a.created_at,
       coalesce((SELECT q.content FROM conversation_messages q
                 WHERE q.conversation_id = a.conversation_id AND q.position < a.position AND q.role = 'user'
                 ORDER BY q.position DESC LIMIT 1), '')
FROM conversation_messages a JOIN conversations c ON c.id = a.conversation_id
WHERE c.id = %(id)s AND c.user_id = %(user)s AND a.position = %(position)s AND a.role = 'assistant'
"""


class ConversationStore:
    def __init__(self, database: Database):
        self.database = database

    async def start(self, user: str, question: str) -> str:
        """A new, empty conversation; returns its id."""
        conversation_id = uuid.uuid4()
        async with self.database.connection() as conn:
            await conn.execute(
                "INSERT INTO conversations (id, user_id, title) VALUES (%s, %s, %s)",
                (conversation_id, user, title_of(question)),
            )
        return str(conversation_id)

    async def check(self, conversation_id: Any, user: str) -> str:
        """The id of the user's conversation; ConversationNotFoundError if they have none of that id."""
        rows = await self.database.fetch_all(
            "SELECT id FROM conversations WHERE id = %s AND user_id = %s", (conversation_uuid(conversation_id), user)
        )
        if not rows:
            raise not_found(conversation_id)
        return str(rows[0][0])

    async def append(self, conversation_id: str, user: str, messages: list[StoredMessage]) -> None:
        """Add messages at the end of the user's conversation (nothing if it was deleted meanwhile)."""
        async with self.database.connection() as conn:
            await conn.execute(
                _APPEND_SQL,
                {
                    "id": conversation_uuid(conversation_id),
                    "user": user,
                    "count": len(messages),
                    "messages": Jsonb([message.as_json() for message in messages]),
                },
            )

    async def list(self, user: str) -> list[dict]:
        rows = await self.database.fetch_all(
            "SELECT id, title, updated_at FROM conversations WHERE user_id = %s ORDER BY updated_at DESC, id", (user,)
        )
        return [{"id": str(id_), "title": title, "updated_at": updated.isoformat()} for id_, title, updated in rows]

    async def read(self, conversation_id: Any, user: str) -> dict:
        rows = await self.database.fetch_all(
            "SELECT c.id, c.title, m.role, m.content, m.context FROM conversations c"
            " LEFT JOIN conversation_messages m ON m.conversation_id = c.id"
            " WHERE c.id = %s AND c.user_id = %s ORDER BY m.position",
            (conversation_uuid(conversation_id), user),
        )
        if not rows:
            raise not_found(conversation_id)
        messages = [_message_body(role, content, context) for _, _, role, content, context in rows if role]
        return {"id": str(rows[0][0]), "title": rows[0][1], "messages": messages}

    async def rename(self, conversation_id: Any, user: str, title: str) -> dict:
        async with self.database.connection() as conn:
            cursor = await conn.execute(
                "UPDATE conversations SET title = %s WHERE id = %s AND user_id = %s RETURNING id",
                (title, conversation_uuid(conversation_id), user),
            )
            if await cursor.fetchone() is None:
                raise not_found(conversation_id)
        return await self.read(conversation_id, user)

    async def delete(self, conversation_id: Any, user: str) -> None:
        async with self.database.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM conversations WHERE id = %s AND user_id = %s RETURNING id",
                (conversation_uuid(conversation_id), user),
            )
            if await cursor.fetchone() is None:
                raise not_found(conversation_id)

    async def rate(self, user: str, conversation_id: Any, message_index: int, rating: str, comment: str | None) -> int:
        """Store a rating of the user's answer at message_index, with a copy of the answer, its question
        and its cited passages as stored (not as the client says); returns the feedback's id."""
        key = {"id": conversation_uuid(conversation_id), "user": user, "position": message_index}
        async with self.database.connection() as conn, conn.transaction():
            answer = await (await conn.execute(_RATED_ANSWER_SQL, key)).fetchone()
            if answer is None:
                raise ConversationNotFoundError(
                    f"no answer at message_index {message_index} in conversation {str(conversation_id)[:100]!r}"
                )
            content, context, answered_at, question = answer
            cursor = await conn.execute(
                "INSERT INTO feedback (user_id, conversation_id, message_index, rating, comment, question, answer,"
                " citations, answered_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    user,
                    key["id"],
                    message_index,
                    rating,
                    comment or "",
                    question,
                    content,
                    Jsonb(cited_passages(content, context)),
                    answered_at,
                ),
            )
            return (await cursor.fetchone())[0]

    async def feedback_records(self) -> list[dict]:
        """Every rating, oldest first, as `feedback export` writes it."""
        rows = await self.database.fetch_all(
            "SELECT id, user_id, conversation_id, message_index, rating, comment, question, answer, citations,"
            " answered_at, created_at FROM feedback ORDER BY id"
        )
        return [_feedback_record(*row) for row in rows]


def _message_body(role: str, content: str, context: dict | None) -> dict:
    return (
        {"role": role, "content": content}
        if context is None
        else {"role": role, "content": content, "context": context}
    )


def _feedback_record(
    id_: int, user: str, conversation_id: uuid.UUID | None, message_index: int, rating: str, comment: str,
    question: str, answer: str, cited: list, answered_at: datetime, rated_at: datetime,
) -> dict:  # fmt: skip
    return {
        "id": id_,
        "user_id": user,
        "conversation_id": str(conversation_id) if conversation_id else None,
        "message_index": message_index,
        "rating": rating,
        "comment": comment,
        "question": question,
        "answer": answer,
        "citations": cited,
        "answered_at": answered_at.isoformat(),
        "rated_at": rated_at.isoformat(),
    }
