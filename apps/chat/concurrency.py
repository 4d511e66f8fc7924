"""Running coroutines at once, with the errors callers expect."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


async def all_or_first_error(*coroutines: Coroutine[Any, Any, T]) -> list[T]:
    """The coroutines' results, in order, from running them at once. If one fails, the others are cancelled
    (a task group) and its error is raised as it is, not wrapped in an ExceptionGroup: so the error
    handlers (errors.py) still see, say, the OperationalError of a database that went away, and answer 503.
    Other coroutines that failed before they could be cancelled have their errors logged."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failed:
        first, *others = failed.exceptions
        for other in others:
            log.warning("also failed, alongside %s: %s: %s", type(first).__name__, type(other).__name__, other)
        raise first from None
    return [task.result() for task in tasks]
