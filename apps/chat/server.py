"""How the app is served: uvicorn's options for `python -m apps.chat serve`, and the gunicorn worker of the
container (apps/chat/Dockerfile), both with limits on slow and idle clients.

uvicorn closes a connection left idle between requests (`timeout_keep_alive`), but waits forever for a
request whose headers never end, or that never starts: a few hundred such connections ("slow loris")
would hold a worker's sockets and memory. SlowClientLimits closes a connection whose request headers
have not all arrived HEADER_TIMEOUT_SECONDS after it opened (or after its previous response), and
refuses headers larger than MAX_HEADER_BYTES. A body that arrives too slowly is the app's to refuse
(408, REQUEST_BODY_TIMEOUT_SECONDS, see dependencies.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn_worker import UvicornWorker

# Idle time allowed between two requests on one connection, for `serve` (a browser on this machine);
# in the container, gunicorn's --keep-alive sets it (see the Dockerfile).
KEEP_ALIVE_SECONDS = 5
# A browser sends its headers in one packet; 10 s leaves room for a bad mobile link.
HEADER_TIMEOUT_SECONDS = 10.0
# App Service authentication's headers (the principal, its token cookies) take a few KB; h11 allows 16 KB.
MAX_HEADER_BYTES = 64 * 1024
# On SIGTERM, requests still running (a streamed answer, a client reading slowly) get this long.
GRACEFUL_SHUTDOWN_SECONDS = 30


class SlowClientLimits:
    """Header time and size limits, mixed into a uvicorn HTTP protocol (httptools' or h11's).

    Both set `self.cycle` to a new request cycle as soon as a request's headers are complete: while it
    is the same cycle as when the wait began (or None), the headers are still on their way.
    """

    header_timeout: float = HEADER_TIMEOUT_SECONDS
    max_header_bytes: int = MAX_HEADER_BYTES

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._wait_for_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._wait_for_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self._awaiting_headers() and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self.send_400_response(f"Request headers larger than {self.max_header_bytes} bytes")

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def _wait_for_headers(self) -> None:
        self._cycle_before_headers = self.cycle
        self._header_bytes = 0
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _awaiting_headers(self) -> bool:
        return self.cycle is self._cycle_before_headers and (self.cycle is None or self.cycle.response_complete)

    def _headers_too_slow(self) -> None:
        if self._awaiting_headers() and not self.transport.is_closing():
            self.transport.close()


def slow_client_protocol(header_timeout: float = HEADER_TIMEOUT_SECONDS) -> type:
    """uvicorn's default HTTP protocol (httptools when installed, else h11) with SlowClientLimits."""
    return type("HttpProtocol", (SlowClientLimits, AutoHTTPProtocol), {"header_timeout": header_timeout})


def uvicorn_options(
    keep_alive: int = KEEP_ALIVE_SECONDS, header_timeout: float = HEADER_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """uvicorn.Config's keyword arguments for `serve` (tests pass shorter timeouts)."""
    return {
        "http": slow_client_protocol(header_timeout),
        "timeout_keep_alive": keep_alive,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }


class Worker(UvicornWorker):
    """The container's gunicorn worker: uvicorn with the same limits as `serve`. gunicorn's own settings
    give the rest: --keep-alive the idle timeout, --graceful-timeout the shutdown's."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "http": slow_client_protocol(),
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
