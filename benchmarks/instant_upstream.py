"""An OpenAI-compatible upstream that answers at once, for benchmarks/chat_overhead.py.

The tests' fake server (tests/apps/chat/fake_openai.py) is built to be scripted and inspected: a
thread per connection, embeddings computed from the words, every request recorded. Here the point is
the opposite: do as little as possible per request, so that the benchmark measures the app and not
its stand-in. So:
- one asyncio protocol, answers written in a single write, HTTP/1.1 keep-alive;
- embeddings: the same unit vector for every input (prepared once per dimension count), base64 or
  JSON numbers as asked;
- chat completions: a fixed answer that cites the first source in the prompt, so the app's citation
  check keeps it; streamed answers go out as server-sent events all at once.

    python -m benchmarks.instant_upstream PORT
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
import struct
import sys

HEADER_END = b"\r\n\r\n"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
FIRST_SOURCE = re.compile(rb"Sources:\\n(\S+?#(?:page=\d+|[\w-]+)): ")  # the app's prompt, as JSON text
ANSWER = "The documents answer this. See the first source [{source}] for details."
NOT_FOUND = "I do not know: the sources do not say."


@functools.cache
def unit_vector(dimensions: int, base64_encoded: bool):
    vector = [1.0] + [0.0] * (dimensions - 1)
    return base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if base64_encoded else vector


def embeddings(request: dict) -> bytes:
    inputs = request.get("input")
    count = 1 if isinstance(inputs, str) else len(inputs or [])
    vector = unit_vector(int(request.get("dimensions") or 1536), request.get("encoding_format") == "base64")
    data = [{"object": "embedding", "index": index, "embedding": vector} for index in range(count)]
    return json_response({"object": "list", "data": data, "model": request.get("model", "instant")})


def answer_text(body: bytes) -> str:
    source = FIRST_SOURCE.search(body)
    return ANSWER.format(source=source.group(1).decode()) if source else NOT_FOUND


def chat_completion(request: dict, body: bytes) -> bytes:
    text = answer_text(body)
    if not request.get("stream"):
        message = {"role": "assistant", "content": text}
        return json_response({"object": "chat.completion", "choices": [{"index": 0, "message": message}]})
    events = [
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}).encode() + b"\n\n"
        for piece in re.findall(r"\S+\s*", text)
    ]
    return response(b"".join(events) + b"data: [DONE]\n\n", b"text/event-stream")


def json_response(payload: dict, status: bytes = b"200 OK") -> bytes:
    return response(json.dumps(payload).encode(), b"application/json", status)


def response(body: bytes, content_type: bytes, status: bytes = b"200 OK") -> bytes:
    head = b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n" % (status, content_type, len(body))
    return head + body


def answer(head: bytes, body: bytes) -> bytes:
    path = head.split(b" ", 2)[1].split(b"?", 1)[0]
    try:
        request = json.loads(body)
    except ValueError:
        return json_response({"error": {"message": "body is not JSON"}}, b"400 Bad Request")
    if path.endswith(b"/embeddings"):
        return embeddings(request)
    if path.endswith(b"/chat/completions"):
        return chat_completion(request, body)
    return json_response({"error": {"message": f"no route {path.decode()}"}}, b"404 Not Found")


class InstantUpstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(HEADER_END)) != -1:
            head = self.buffer[:end]
            length = CONTENT_LENGTH.search(head)
            body_end = end + len(HEADER_END) + (int(length.group(1)) if length else 0)
            if len(self.buffer) < body_end:
                return  # the rest of the body is still on its way
            body, self.buffer = self.buffer[end + len(HEADER_END) : body_end], self.buffer[body_end:]
            self.transport.write(answer(head, body))


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(InstantUpstream, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    import uvloop  # the app's own event loop (apps/chat/requirements.txt)

    uvloop.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
