"""Running coroutines at once (apps/chat/concurrency.py)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from apps.chat.concurrency import all_or_first_error


def test_results_come_back_in_the_order_given_whichever_finishes_first():
    async def after(seconds: float, value: str) -> str:
        await asyncio.sleep(seconds)
        return value

    assert asyncio.run(all_or_first_error(after(0.05, "slow"), after(0, "fast"))) == ["slow", "fast"]


def test_a_failure_is_raised_as_itself_and_cancels_the_others():
    cancelled = []

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise psycopg.OperationalError("the server closed the connection")

    async def waits() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(psycopg.OperationalError, match="closed the connection"):
        asyncio.run(all_or_first_error(fails(), waits()))
    assert cancelled == [True]
