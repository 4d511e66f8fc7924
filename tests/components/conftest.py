"""Fixtures of the component tests besides tests/conftest.py's: a stack file's config as the parser takes it."""

from __future__ import annotations

import pytest

from components.config import project_keys


@pytest.fixture
def values(stack_values):
    """`values(stack)`: a stack file's config without the `aichat:` prefix, as parse_stack_config takes it."""

    def load(stack: str = "dev") -> dict:
        return project_keys(stack_values(stack))

    return load
