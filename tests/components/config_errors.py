"""The config error a test expects, as one message (every problem of the stack file, one a line)."""

from __future__ import annotations

import pytest

from components.config import ConfigError, parse_stack_config


def error_for(values: dict, stack: str = "dev") -> str:
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(values, stack)
    return str(raised.value)
