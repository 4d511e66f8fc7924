"""A fake OpenAI-compatible server on 127.0.0.1 for tests (benchmarks use benchmarks/instant_upstream.py).

It serves chat completions (plain and streamed as server-sent events) and embeddings on both the
OpenAI paths (/v1/...) and the Azure OpenAI paths (/openai/deployments/<name>/...). It can:
- answer with a scripted or default reply (the default cites the first source in the prompt),
- answer a request offering tools with a call of the first tool: its arguments scripted by
  `state.tool_arguments` (the default passes the latest question as the query), GARBAGE_ARGUMENTS (not
  JSON), or None for a plain answer without a call,
- fail the next requests with a scripted status and Retry-After,
- count requests and keep their bodies and headers,
- notice when a client goes away in the middle of a stream.

Embeddings are deterministic: a hashed bag of words, normalised, so texts sharing words are near.

    with FakeOpenAI() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="x")
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORD = re.compile(r"[a-z0-9]+")
SOURCE_LINE = re.compile(r"^(\S+#(?:page=\d+|[\w-]+)): ", re.MULTILINE)
LATEST_QUESTION = re.compile(r"Latest question: (.*)\Z", re.DOTALL)
GARBAGE_ARGUMENTS = '{"query": "unfinished'  # what a model cut off mid-call sends


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector: each lower-cased word adds +-1 to a dimension chosen by its hash."""
    vector = [0.0] * dimensions
    for word in WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    if norm == 1.0 and not any(vector):
        vector[0] = 1.0  # an empty text still gets a valid (non-zero) vector
    return [v / norm for v in vector]


def default_reply(messages: list[dict]) -> str:
    """Cite the first source listed in the last user message, or say nothing was found."""
    prompt = messages[-1]["content"] if messages else ""
    sources = SOURCE_LINE.findall(prompt)
    if not sources:
        return "I do not know: the sources do not say."
    return f"The documents answer this. See the first source [{sources[0]}] for details."


def default_tool_arguments(body: dict) -> str:
    """Search for the latest question as it is (found in the last message of a query rewrite)."""
    messages = body.get("messages") or [{}]
    match = LATEST_QUESTION.search(messages[-1].get("content") or "")
    return json.dumps({"query": match.group(1) if match else ""})


@dataclass
class ScriptedFailure:
    status: int
    retry_after: str | None = None
    path_suffix: str = ""  # only requests whose path ends with this ("" = any request)
    body: str = '{"error": {"message": "scripted failure", "type": "server_error"}}'
    content_type: str = "application/json"


@dataclass
class RecordedRequest:
    path: str
    body: dict
    headers: dict[str, str]


@dataclass
class FakeOpenAIState:
    reply: Callable[[list[dict]], str] = default_reply
    # The arguments of the tool call (a JSON text, or any text), or None: answer without calling it.
    tool_arguments: Callable[[dict], str | None] | str | None = default_tool_arguments
    stream_delay: float = 0.0  # seconds between streamed pieces
    stream_repeat: int = 1  # send the reply this many times (long streams for disconnect tests)
    stream_error_after: int | None = None  # send an error event after this many pieces, then end
    failures: deque = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    disconnects: int = 0
    completed_streams: int = 0


class FakeOpenAI:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.state = FakeOpenAIState()
        self._lock = threading.Lock()
        self._disconnected = threading.Event()
        handler = _make_handler(self)
        self._server = _Server((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)

    # Lifecycle.
    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """For OpenAI-compatible clients (OPENAI_BASE_URL)."""
        return self.url + "/v1"

    # Scripting and inspection.
    def reset(self) -> None:
        with self._lock:
            self.state = FakeOpenAIState()
        self._disconnected.clear()

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        path_suffix: str = "",
        body: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next `times` matching requests with `status` (and a Retry-After header if given).
        path_suffix narrows it to one endpoint, e.g. "/chat/completions" or "/embeddings".
        body replaces the default error body, e.g. a 200 with a malformed answer."""
        failure = ScriptedFailure(status, retry_after, path_suffix, content_type=content_type)
        if body is not None:
            failure.body = body
        with self._lock:
            for _ in range(times):
                self.state.failures.append(dataclasses.replace(failure))

    def requests_to(self, suffix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.state.requests if r.path.split("?")[0].endswith(suffix)]

    def wait_for_disconnect(self, timeout: float = 10.0) -> bool:
        return self._disconnected.wait(timeout)

    # Used by the handler.
    def _record(self, request: RecordedRequest) -> ScriptedFailure | None:
        """Keep the request; return the scripted failure it should get, if any."""
        path = request.path.split("?")[0]
        with self._lock:
            self.state.requests.append(request)
            for failure in self.state.failures:
                if path.endswith(failure.path_suffix):
                    self.state.failures.remove(failure)
                    return failure
            return None

    def _note_disconnect(self) -> None:
        with self._lock:
            self.state.disconnects += 1
        self._disconnected.set()


def _base64_floats(vector: list[float]) -> str:
    """The encoding the OpenAI SDK asks for by default: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog of 5 drops connections when 20 clients arrive at once


def _make_handler(fake: FakeOpenAI):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm on, the client's delayed
        # ACK holds the body back about 40 ms per response.
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def handle(self) -> None:
            # A client that hangs up between requests is normal, not an error to print.
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                super().handle()

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                return self._send_json(400, {"error": {"message": "body is not JSON"}})
            path = self.path.split("?")[0]
            failure = fake._record(RecordedRequest(self.path, body, {k.lower(): v for k, v in self.headers.items()}))
            if failure is not None:
                headers = {"retry-after": failure.retry_after} if failure.retry_after is not None else {}
                return self._send_raw(failure.status, failure.body.encode(), failure.content_type, headers)
            if path.endswith("/embeddings"):
                return self._embeddings(body)
            if path.endswith("/chat/completions"):
                return self._chat(body)
            return self._send_json(404, {"error": {"message": f"no route {path}"}})

        def _embeddings(self, body: dict) -> None:
            inputs = body.get("input")
            inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
            dimensions = int(body.get("dimensions") or 1536)
            encode = _base64_floats if body.get("encoding_format") == "base64" else list
            data = [
                {"object": "embedding", "index": i, "embedding": encode(fake_embedding(text, dimensions))}
                for i, text in enumerate(inputs)
            ]
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model", "fake"),
                    "usage": {"prompt_tokens": 0, "total_tokens": 0},
                },
            )

        def _chat(self, body: dict) -> None:
            if body.get("tools"):
                return self._tool_call(body)
            reply = fake.state.reply(body.get("messages") or [])
            if body.get("stream"):
                return self._stream(body, reply)
            self._completion(body, {"role": "assistant", "content": reply}, "stop")

        def _tool_call(self, body: dict) -> None:
            scripted = fake.state.tool_arguments
            arguments = scripted(body) if callable(scripted) else scripted
            if arguments is None:
                return self._completion(body, {"role": "assistant", "content": "I would rather not."}, "stop")
            call = {
                "id": "call_fake",
                "type": "function",
                "function": {"name": body["tools"][0]["function"]["name"], "arguments": arguments},
            }
            self._completion(body, {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")

        def _completion(self, body: dict, message: dict, finish_reason: str) -> None:
            self._send_json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )

        def _stream(self, body: dict, reply: str) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            pieces = re.findall(r"\S+\s*", reply) * fake.state.stream_repeat
            try:
                for number, piece in enumerate(pieces):
                    if number == fake.state.stream_error_after:
                        self._write_event({"error": {"message": "scripted failure mid-stream"}})
                        break
                    self._write_event(
                        {
                            "id": "chatcmpl-fake",
                            "object": "chat.completion.chunk",
                            "created": int(time.time()),
                            "model": body.get("model", "fake"),
                            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                        }
                    )
                    if fake.state.stream_delay:
                        time.sleep(fake.state.stream_delay)
                self._write_chunk(b"data: [DONE]\n\n")
                self._write_chunk(b"")
                with fake._lock:
                    fake.state.completed_streams += 1
            except (BrokenPipeError, ConnectionResetError):
                fake._note_disconnect()
                self.close_connection = True

        def _write_event(self, event: dict) -> None:
            self._write_chunk(b"data: " + json.dumps(event).encode() + b"\n\n")

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _send_json(self, status: int, payload: dict) -> None:
            self._send_raw(status, json.dumps(payload).encode(), "application/json", {})

        def _send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


if __name__ == "__main__":  # run standalone: python tests/apps/chat/fake_openai.py [port]
    import sys

    server = FakeOpenAI(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(f"fake OpenAI-compatible server at {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
