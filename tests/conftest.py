"""Shared fixtures: the real program evaluated under Pulumi mocks, once per stack per test session."""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.config import StackConfig, load_stack_config
from components.context import StackContext
from tools.offline import ProgramRun, run_program, run_under_mocks, stack_config_values

STACKS = ("dev", "prod")


@pytest.fixture(scope="session")
def program_runs() -> dict[str, ProgramRun]:
    """{stack: ProgramRun} for every stack file in the repo (evaluated once; tests must not mutate)."""
    return {stack: run_program(stack) for stack in STACKS}


@pytest.fixture(params=STACKS)
def program(request, program_runs) -> ProgramRun:
    """Parametrised over dev and prod: a test using it runs once per stack."""
    return program_runs[request.param]


@pytest.fixture
def dev(program_runs) -> ProgramRun:
    return program_runs["dev"]


@pytest.fixture
def prod(program_runs) -> ProgramRun:
    return program_runs["prod"]


@pytest.fixture
def stack_values() -> Callable[[str], dict[str, Any]]:
    """A fresh, mutable copy of a stack file's config values, for tests that break one key."""

    def load(stack: str) -> dict[str, Any]:
        return copy.deepcopy(stack_config_values(stack))

    return load


@pytest.fixture
def run_with() -> Callable[..., ProgramRun]:
    """Run the program for a stack with the given config values (see stack_values)."""

    def run(stack: str, values: dict[str, Any]) -> ProgramRun:
        return run_program(stack, config=values)

    return run


@pytest.fixture
def declare() -> Callable[..., ProgramRun]:
    """Evaluate a few resources (usually one component) under mocks: `declare(lambda context, config: ...)`.

    `build` gets the stack's StackContext and its validated StackConfig, from which it passes the component
    its own settings section (`KeyVaultArgs(context, config.key_vault, ...)`), as __main__.py does."""

    def run(build: Callable[[StackContext, StackConfig], Any], stack: str = "dev") -> ProgramRun:
        def declare_resources() -> Any:
            config = load_stack_config()
            return build(StackContext.for_current_deployment(config), config)

        return run_under_mocks(stack, declare_resources)

    return run


# Tests clean up after themselves: scratch folders outside pytest's tmp_path carry this prefix, and a
# run that leaves one behind fails. (pytest keeps its own tmp_path folders only for failed tests: pytest.ini.)
# The process id keeps a test run that runs beside another (two checkouts, CI and a developer) to its own.
SCRATCH_PREFIX = f"aichat-tests-{os.getpid()}-"
_SCRATCH_AT_START = pytest.StashKey[set[str]]()


def _scratch_entries() -> set[str]:
    return {entry.name for entry in Path(tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*")}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_SCRATCH_AT_START] = _scratch_entries()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left_behind = sorted(_scratch_entries() - session.config.stash[_SCRATCH_AT_START])
    if left_behind:
        where = tempfile.gettempdir()
        session.config.get_terminal_writer().line(f"tests left these in {where}: {', '.join(left_behind)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
