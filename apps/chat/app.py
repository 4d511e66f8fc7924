"""The FastAPI application: services built from settings, routes, error handlers, start-up and shutdown.

Production: `gunicorn -k uvicorn_worker.UvicornWorker 'apps.chat.app:create_app()'` (see the Dockerfile).
Local: `python -m apps.chat serve`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .errors import EXCEPTION_HANDLERS
from .identity import TokenCredential
from .logging_setup import configure_logging
from .openapi import describe
from .routes import STATIC_DIR, router
from .services import AppServices, build_services
from .settings import Settings, load_settings


def create_app(settings: Settings | None = None, credential: TokenCredential | None = None) -> FastAPI:
    """The app, configured by `settings` (default: the environment). `credential` stands in for
    azure-identity's (tests)."""
    configure_logging()
    app = FastAPI(
        title="Enterprise chat",
        lifespan=_lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.services = build_services(settings or load_settings(), credential)
    app.include_router(router)
    app.openapi = partial(describe, app)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: AppServices = app.state.services
    try:
        await services.open()
        yield
    finally:
        await services.close()
