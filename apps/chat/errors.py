"""How the API answers errors: {"error": message} with a status, from one table of exception handlers
that create_app hands to FastAPI. Routes raise; they do not catch."""

from __future__ import annotations

import logging

import psycopg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from .history import ConversationNotFoundError
from .model_client import ModelBudgetExhaustedError, ModelError, ModelRetryLaterError, ModelUnavailableError
from .protocol import error_body

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Turned into {"error": message} with the given HTTP status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def describe_validation_errors(errors) -> str:
    """Pydantic's errors as one message naming each field, e.g. "invalid request: messages[0].content: ..."."""
    parts = []
    for error in errors:
        location = ""
        for part in error.get("loc", ()):
            if isinstance(part, int):
                location += f"[{part}]"
            elif part not in ("body", "query"):
                location += f".{part}" if location else str(part)
        parts.append(f"{location or 'request'}: {error.get('msg')}")
    return "invalid request: " + "; ".join(parts)


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message), status_code=status, headers=headers)


async def _api_error(_: Request, error: ApiError) -> JSONResponse:
    return _error_response(error.status, error.message, error.headers)


async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
    return _error_response(error.status_code, str(error.detail))


async def _invalid_parameters(_: Request, error: RequestValidationError) -> JSONResponse:
    return _error_response(400, describe_validation_errors(error.errors()))


async def _not_found(_: Request, error: ConversationNotFoundError) -> JSONResponse:
    return _error_response(404, str(error))


def _retry_after_header(error: ModelRetryLaterError) -> dict[str, str] | None:
    return {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after else None


async def _model_unavailable(_: Request, error: ModelUnavailableError) -> JSONResponse:
    return _error_response(503, str(error), _retry_after_header(error))


async def _budget_exhausted(_: Request, error: ModelBudgetExhaustedError) -> JSONResponse:
    return _error_response(429, str(error), _retry_after_header(error))


async def _unusable_model_answer(_: Request, error: ModelError) -> JSONResponse:
    return _error_response(502, str(error))


async def _database_unavailable(_: Request, error: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", error)
    return _error_response(503, "the database is unavailable; try again later")


async def _unexpected(_: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return _error_response(500, "internal error; the details are in the server log")


# The most specific class wins: ModelUnavailableError is a ModelError, and everything is an Exception.
EXCEPTION_HANDLERS = {
    ApiError: _api_error,
    StarletteHTTPException: _http_error,
    RequestValidationError: _invalid_parameters,
    ConversationNotFoundError: _not_found,
    ModelUnavailableError: _model_unavailable,
    ModelBudgetExhaustedError: _budget_exhausted,
    ModelError: _unusable_model_answer,
    psycopg.OperationalError: _database_unavailable,
    PoolTimeout: _database_unavailable,
    Exception: _unexpected,
}
