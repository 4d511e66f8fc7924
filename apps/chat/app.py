"""The FastAPI application: the chat protocol endpoints, search, health and the web page.

Production: `gunicorn -k uvicorn_worker.UvicornWorker 'apps.chat.app:create_app()'` (see the Dockerfile).
Local: `python -m apps.chat serve`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from psycopg_pool import PoolTimeout
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .access import AuthenticationError, caller_from_headers
from .chat import ChatRequest, ChatService, Overrides, RequestLimitError, check_limits
from .database import Database
from .identity import TokenCredential
from .ingest import UNRESTRICTED, AccessList, Ingestor, IngestReport
from .logging_setup import configure_logging
from .model_client import ModelClient, ModelResponseError, ModelUnavailableError
from .sample_corpus import ingest_sample_corpus_if_empty
from .search import Searcher
from .settings import Settings, load_settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
PLACEHOLDER_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Chat</title></head>
<body><h1>Chat API</h1><p>The web page is not installed. Use <code>POST /chat</code>.</p></body></html>"""


class ApiError(Exception):
    """Turned into {"error": message} with the given HTTP status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass
class AppServices:
    settings: Settings
    database: Database
    model: ModelClient | None
    chat: ChatService

    async def close(self) -> None:
        if self.model:
            await self.model.close()
        await self.database.close()


def build_services(settings: Settings, credential: TokenCredential | None = None) -> AppServices:
    database = Database(settings, credential=credential)
    model = ModelClient.from_settings(settings, credential=credential)
    searcher = Searcher(database, settings.search_candidates, settings.text_search_candidate_limit)
    return AppServices(settings, database, model, ChatService(settings, searcher, model))


def build_ingestor(services: AppServices) -> Ingestor:
    settings = services.settings
    return Ingestor(
        services.database,
        services.model.embed if services.model else None,
        settings.embedding_model,
        settings.chunk_size,
        settings.chunk_overlap,
    )


async def ingest_paths(
    settings: Settings, paths: list[Path], access: AccessList = UNRESTRICTED, credential: TokenCredential | None = None
) -> IngestReport:
    """Ingest files and folders with the configured database and model (the CLI's `ingest`)."""
    services = build_services(settings, credential)
    await services.database.open()
    try:
        return await build_ingestor(services).ingest_paths(paths, access)
    finally:
        await services.close()


def create_app(settings: Settings | None = None, credential: TokenCredential | None = None) -> FastAPI:
    configure_logging()
    settings = settings or load_settings()
    services = build_services(settings, credential)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await services.database.open()
        if settings.uses_embedded_database and settings.ingest_sample_corpus:
            await ingest_sample_corpus_if_empty(build_ingestor(services), services.database, settings)
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(title="Enterprise chat", lifespan=lifespan, docs_url="/api/docs", redoc_url=None)
    app.state.services = services
    _add_error_handlers(app)
    _add_routes(app, services)
    return app


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError):
        return _error_response(error.status, error.message, error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException):
        return _error_response(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(_: Request, error: RequestValidationError):
        return _error_response(400, _describe_validation_errors(error.errors()))

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_unavailable(_: Request, error: Exception):
        log.warning("database unavailable: %s", error)
        return _error_response(503, "the database is unavailable; try again later")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception):
        log.exception("unhandled error")
        return _error_response(500, "internal error; the details are in the server log")


def _describe_validation_errors(errors) -> str:
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query"))
        parts.append(f"{location or 'request'}: {error.get('msg')}")
    return "invalid request: " + "; ".join(parts)


async def _read_chat_request(request: Request, settings: Settings) -> ChatRequest:
    """Read the body within MAX_REQUEST_BYTES, then parse and check it, naming any problem."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise ApiError(413, f"request body is {declared} bytes (at most {settings.max_request_bytes})")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > settings.max_request_bytes:
            raise ApiError(413, f"request body is larger than {settings.max_request_bytes} bytes")
    if not body.strip():
        raise ApiError(400, "request body is empty; send a JSON object with 'messages'")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, f"request body is not valid JSON: {error}") from error
    if not isinstance(payload, dict):
        raise ApiError(400, "request body must be a JSON object with 'messages'")
    try:
        chat_request = ChatRequest.model_validate(payload)
        check_limits(chat_request, settings)
    except ValidationError as error:
        raise ApiError(400, _describe_validation_errors(error.errors())) from error
    except RequestLimitError as error:
        raise ApiError(400, str(error)) from error
    return chat_request


def _caller(request: Request, settings: Settings):
    try:
        return caller_from_headers(request.headers, settings)
    except AuthenticationError as error:
        raise ApiError(401, str(error)) from error


def _model_error(error: Exception) -> ApiError:
    if isinstance(error, ModelUnavailableError):
        headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after else None
        return ApiError(503, str(error), headers)
    return ApiError(502, str(error))


def _add_routes(app: FastAPI, services: AppServices) -> None:
    settings = services.settings

    @app.post("/chat")
    async def chat(request: Request):
        chat_request = await _read_chat_request(request, settings)
        caller = _caller(request, settings)
        try:
            # A JSONResponse of plain dicts and strings: FastAPI's generic encoder would walk it again.
            return JSONResponse(await services.chat.answer(chat_request, caller))
        except (ModelUnavailableError, ModelResponseError) as error:
            raise _model_error(error) from error

    @app.post("/chat/stream")
    async def chat_stream(request: Request):
        chat_request = await _read_chat_request(request, settings)
        caller = _caller(request, settings)
        try:
            chunks = await services.chat.open_stream(chat_request, caller)
        except (ModelUnavailableError, ModelResponseError) as error:
            raise _model_error(error) from error
        return StreamingResponse(_json_lines(chunks), media_type="application/x-ndjson")

    @app.get("/api/search")
    async def search(
        request: Request,
        q: str = Query(min_length=1, max_length=1000, description="search text"),
        top: int = Query(default=settings.search_top, ge=1, le=settings.max_top),
        retrieval_mode: str = Query(default="hybrid", pattern="^(hybrid|vectors|text)$"),
    ):
        if not q.strip():
            raise ApiError(400, "q: must not be blank")
        caller = _caller(request, settings)
        try:
            results, mode = await services.chat.search(q, caller, Overrides(top=top, retrieval_mode=retrieval_mode))
        except (ModelUnavailableError, ModelResponseError) as error:
            raise _model_error(error) from error
        return {
            "query": q,
            "retrieval_mode": mode,
            "results": [
                {
                    "title": r.title,
                    "source": r.source,
                    "page": r.page,
                    "citation": r.citation,
                    "snippet": r.content[:300],
                    "score": r.score,
                }
                for r in results
            ],
        }

    @app.get("/healthz")
    async def healthz():
        database = await services.database.status()
        healthy = database["status"] == "ok"
        body = {
            "status": "ok" if healthy else "unhealthy",
            "database": database,
            "model": "configured" if services.model else "not configured",
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/", include_in_schema=False)
    async def index():
        page = STATIC_DIR / "index.html"
        return FileResponse(page) if page.is_file() else HTMLResponse(PLACEHOLDER_PAGE)

    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


async def _json_lines(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """One JSON object per line. If the client disconnects, Starlette cancels this generator and the
    `finally` below closes the chunk iterator, which closes the upstream model request."""
    try:
        async for chunk in chunks:
            yield (json.dumps(chunk, ensure_ascii=False) + "\n").encode()
    except (ModelUnavailableError, ModelResponseError) as error:
        yield (json.dumps({"error": str(error)}) + "\n").encode()
    except Exception:
        log.exception("streaming failed")
        yield (json.dumps({"error": "the answer stream failed; the details are in the server log"}) + "\n").encode()
    finally:
        await chunks.aclose()
