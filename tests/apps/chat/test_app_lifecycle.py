"""Start-up and shutdown: everything the app opened is closed, even when closing one part fails."""

from __future__ import annotations

import asyncio

import pytest

from apps.chat.services import AppServices
from apps.chat.settings import Settings


class Part:
    """Stands in for the database or the model client: records its closing, and may fail at it."""

    def __init__(self, name: str, closed: list[str], error: Exception | None = None):
        self.name = name
        self.closed = closed
        self.error = error

    async def close(self) -> None:
        self.closed.append(self.name)
        if self.error:
            raise self.error


def test_the_database_is_closed_even_when_closing_the_model_fails():
    closed: list[str] = []
    services = AppServices(
        settings=Settings(),
        database=Part("database", closed),
        model=Part("model", closed, RuntimeError("the model client did not close")),
        chat=None,
    )

    with pytest.raises(RuntimeError, match="the model client did not close"):
        asyncio.run(services.close())

    assert closed == ["model", "database"]


def test_without_a_model_only_the_database_is_closed():
    closed: list[str] = []
    services = AppServices(settings=Settings(), database=Part("database", closed), model=None, chat=None)

    asyncio.run(services.close())

    assert closed == ["database"]


def test_a_start_up_that_fails_still_closes_the_model_client(start_app, monkeypatch):
    closed: list[str] = []

    async def failing_open(self) -> None:
        raise ConnectionError("the database is not there")

    monkeypatch.setattr("apps.chat.database.Database.open", failing_open)
    monkeypatch.setattr("apps.chat.model_client.ModelClient.close", lambda self: Part("model", closed).close())

    settings = Settings(openai_base_url="http://127.0.0.1:9/v1")  # never called: start-up fails first
    with pytest.raises(ConnectionError, match="the database is not there"), start_app(settings):
        pass

    assert closed == ["model"]
