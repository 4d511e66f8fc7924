"""A local stand-in for Azure Resource Manager: recorded JSON responses served over http on 127.0.0.1.

Routes map a request path to a response file; the query string is ignored except `$skiptoken` (a
second page is its own route: `path?$skiptoken=...`), and each request's api-version is recorded.
Unknown paths get ARM's 404 error body, any method but GET a 405. A test can make one path answer
another file (`answer`) or an ARM error (`fail`, `forbid`). Next links in a recording point at
management.azure.com, as ARM's do; they are rewritten to the stand-in so paging stays local.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REAL_ARM = "https://management.azure.com"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    api_version: str | None


def arm_error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}}


class ArmStandIn:
    def __init__(self, routes: Mapping[str, Path]):
        self._routes = {key.lower(): file for key, file in routes.items()}
        self._errors: dict[str, tuple[int, dict[str, Any]]] = {}
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # A short poll interval makes `shutdown` (once per test) quick; the default waits up to 0.5 s.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ArmStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # What a test changes -------------------------------------------------------------------------

    def answer(self, path: str, file: Path) -> None:
        self._routes[path.lower()] = file

    def fail(self, path: str, status: int, code: str) -> None:
        self._errors[path.lower()] = arm_error(status, code, f"the stand-in was told to answer {status} {code}")

    def forbid(self, path: str) -> None:
        self.fail(path, 403, "AuthorizationFailed")

    # Serving ---------------------------------------------------------------------------------------

    def respond(self, method: str, raw_path: str) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        self.requests.append(Request(method, parts.path, (query.get("api-version") or [None])[0]))
        if method != "GET":
            return arm_error(405, "MethodNotAllowed", f"the stand-in only serves reads, not {method}")
        key = parts.path.lower()
        if "$skiptoken" in query:
            key += f"?$skiptoken={query['$skiptoken'][0]}".lower()
        if key in self._errors:
            return self._errors[key]
        if key not in self._routes:
            return arm_error(404, "ResourceNotFound", f"no recorded response for {parts.path}")
        text = self._routes[key].read_text().replace(REAL_ARM, self.base_url)
        return 200, json.loads(text)


def _handler_for(stand_in: ArmStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            status, body = stand_in.respond(self.command, self.path)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: object) -> None:
            pass  # the tests read `requests` instead

    return Handler
