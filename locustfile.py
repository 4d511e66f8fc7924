"""Load test of the chat app: simulated users asking questions via POST /chat and POST /chat/stream.

Run against a local app (headless, 20 users, one minute; stops by itself):

    pip install -r benchmarks/requirements.txt
    python -m apps.chat serve --port 8000 &
    locust -f locustfile.py --host http://127.0.0.1:8000 --headless -u 20 -r 5 -t 60s

Questions come from apps/chat/eval/ground_truth.jsonl (override with CHAT_LOAD_QUESTIONS=path.jsonl).
Each user waits 1-3 s between questions, as a person reading an answer would, and sometimes asks a
follow-up in the same conversation. A streamed answer counts as failed when a line carries "error".
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from locust import HttpUser, between, task

QUESTIONS_FILE = Path(
    os.environ.get("CHAT_LOAD_QUESTIONS", Path(__file__).parent / "apps" / "chat" / "eval" / "ground_truth.jsonl")
)
FALLBACK_QUESTIONS = ["How do I run the app locally?", "How is the database secured?"]


def load_questions(path: Path) -> list[str]:
    if not path.exists():
        return FALLBACK_QUESTIONS
    questions = [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return questions or FALLBACK_QUESTIONS


QUESTIONS = load_questions(QUESTIONS_FILE)


def chat_request(messages: list[dict[str, str]]) -> dict:
    return {"messages": messages, "context": {"overrides": {}}}


class ChatUser(HttpUser):
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.messages: list[dict[str, str]] = []

    def next_messages(self) -> list[dict[str, str]]:
        """A new conversation most of the time; otherwise a follow-up question in the current one."""
        if len(self.messages) >= 4 or random.random() < 0.7:
            self.messages = []
        return [*self.messages, {"role": "user", "content": random.choice(QUESTIONS)}]

    def remember(self, messages: list[dict[str, str]], answer: str) -> None:
        self.messages = [*messages, {"role": "assistant", "content": answer}]

    @task(1)
    def chat(self) -> None:
        messages = self.next_messages()
        with self.client.post("/chat", json=chat_request(messages), name="/chat", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            self.remember(messages, response.json()["message"]["content"])

    @task(3)
    def chat_stream(self) -> None:
        messages = self.next_messages()
        started = time.perf_counter()
        with self.client.post(
            "/chat/stream", json=chat_request(messages), name="/chat/stream", stream=True, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            answer, first_token_at = self.read_stream(response)
            if answer is None:
                return
            # With stream=True Locust times only the response headers; these two entries time what a
            # person sees: the first piece of the answer, and the whole answer.
            self.record_stream_time("/chat/stream first token", first_token_at - started)
            self.record_stream_time("/chat/stream full answer", time.perf_counter() - started)
            self.remember(messages, answer)

    def record_stream_time(self, name: str, seconds: float) -> None:
        self.environment.events.request.fire(
            request_type="STREAM",
            name=name,
            response_time=seconds * 1000,
            response_length=0,
            exception=None,
            context={},
        )

    @staticmethod
    def read_stream(response) -> tuple[str | None, float]:
        answer, first_token_at = "", None
        for line in response.iter_lines():
            if not line:
                continue
            event = json.loads(line)
            if "error" in event:
                response.failure(f"stream error: {event['error']}")
                return None, 0.0
            content = (event.get("delta") or {}).get("content")
            if content:
                first_token_at = first_token_at or time.perf_counter()
                answer += content
        if first_token_at is None:
            response.failure("the stream ended without an answer")
            return None, 0.0
        return answer, first_token_at
