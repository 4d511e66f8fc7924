"""Running coroutines at once, with the errors callers expect."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def all_or_first_error(*coroutines: Coroutine[Any, Any, T]) -> list[T]:
    """The coroutines' results, in order, from running them at once. If one fails, the others are cancelled
    (a task group) and its error is raised as it is, not wrapped in an ExceptionGroup: so the error
    handlers (errors.py) still see, say, the OperationalError of a database that went away, and answer 503."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
