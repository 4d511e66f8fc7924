"""The language-model client: chat completions and embeddings through the OpenAI Python SDK.

Azure OpenAI or an API Management gateway in front of it is reached with an Entra bearer token
(no API keys); any OpenAI-compatible URL can be used for local development.
Upstream 429 and 5xx answers are retried a bounded number of times, honouring Retry-After;
after that the caller gets ModelUnavailableError, which the API turns into a 503.

Requests go through the SDK's plain `post` (its documented way to send a request body as is) rather
than the typed `chat.completions.create` / `embeddings.create`. The client does all the same work
(Entra token, Azure deployment URL and api-version, timeouts, error types), but skips walking every
message through the SDK's type annotations and building response objects: that was a fifth of the
app's CPU per chat request. The JSON answers are checked here instead.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import sys
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx2
import openai

from .identity import CachedTokenProvider, TokenCredential, default_credential
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_BACKOFF_SECONDS = 0.5
# The signed-in user a request is made for (Entra object id): API Management counts per-user token
# budgets by it (docs/gateway.md). Absent for the ingestion job and for an anonymous local caller.
USER_HEADER = "x-aichat-user"


class ModelError(RuntimeError):
    """The language model could not give an answer (the API turns it into a 502 or 503)."""


class ModelRetryLaterError(ModelError):
    """The model cannot answer now; `retry_after` (seconds) says when to try again, when it is known."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ModelUnavailableError(ModelRetryLaterError):
    """The model endpoint kept failing (429/5xx/unreachable) after the allowed retries."""


class ModelBudgetExhaustedError(ModelRetryLaterError):
    """The gateway refused: the signed-in user's token quota for its period is used up.

    API Management's token quota answers 403 with a Retry-After that says when the quota is replenished
    (llm-token-limit, token-quota; docs/gateway.md, "Per-user budgets"). Retrying sooner cannot help."""


class ModelResponseError(ModelError):
    """The model endpoint answered, but with something this app cannot use."""


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait according to retry-after-ms or retry-after (seconds or an HTTP date)."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


def _is_retryable(error: Exception) -> bool:
    if isinstance(error, (openai.APIConnectionError, openai.APITimeoutError)):
        return True
    return isinstance(error, openai.APIStatusError) and (error.status_code == 429 or error.status_code >= 500)


def _is_quota_refusal(error: Exception, retry_after: float | None) -> bool:
    """The gateway's per-user token quota: a 403 that says when to come back (a plain 403 does not)."""
    return isinstance(error, openai.APIStatusError) and error.status_code == 403 and retry_after is not None


class ModelClient:
    def __init__(
        self, settings: Settings, openai_client: Any, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ):
        self.settings = settings
        self.client = openai_client
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, credential: TokenCredential | None = None) -> ModelClient | None:
        """The configured client, or None when no model endpoint is configured."""
        common = dict(max_retries=0, timeout=settings.model_timeout_seconds)  # retries are ours, below
        if settings.azure_openai_endpoint:
            tokens = CachedTokenProvider(credential or default_credential(), settings.azure_openai_token_scope)
            client = openai.AsyncAzureOpenAI(
                azure_endpoint=settings.azure_openai_endpoint,
                api_version=settings.azure_openai_api_version,
                azure_ad_token_provider=tokens.token,
                **common,
            )
        elif settings.openai_base_url:
            # Local OpenAI-compatible servers usually ignore the key but the SDK insists on one.
            client = openai.AsyncOpenAI(
                base_url=settings.openai_base_url, api_key=settings.openai_api_key or "not-needed", **common
            )
        else:
            return None
        return cls(settings, client)

    async def close(self) -> None:
        await self.client.close()

    async def _with_retries(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        max_retries = self.settings.model_max_retries
        for attempt in range(max_retries + 1):
            try:
                return await call()
            except Exception as error:
                headers = getattr(getattr(error, "response", None), "headers", None)
                wait = retry_after_seconds(headers)
                if _is_quota_refusal(error, wait):
                    raise ModelBudgetExhaustedError(
                        "your token budget for this period is used up; it renews later", retry_after=wait
                    ) from error
                if not _is_retryable(error):
                    raise ModelResponseError(f"{what} failed: {error}") from error
                description = getattr(error, "status_code", type(error).__name__)
                if attempt == max_retries or (wait is not None and wait > self.settings.model_max_retry_wait_seconds):
                    raise ModelUnavailableError(
                        f"the language model is unavailable ({what}: upstream answered {description}"
                        f" after {attempt + 1} attempt(s)); try again later",
                        retry_after=wait,
                    ) from error
                wait = FIRST_BACKOFF_SECONDS * 2**attempt if wait is None else wait
                log.warning("%s: upstream %s, retry %d/%d in %.2fs", what, description, attempt + 1, max_retries, wait)
                await self._sleep(wait)
        raise AssertionError("unreachable")

    async def embed(self, texts: list[str], user: str | None = None) -> list[list[float]]:
        """Embeddings for texts, requested in batches of EMBEDDING_BATCH_SIZE (for `user`, if given)."""
        vectors: list[list[float]] = []
        size = self.settings.embedding_batch_size
        for start in range(0, len(texts), size):
            batch = texts[start : start + size]
            body = {
                "model": self.settings.embedding_model,
                "input": batch,
                "dimensions": self.settings.embedding_dimensions,
                "encoding_format": "base64",  # a quarter of the bytes of JSON numbers, and no float parsing
            }
            response = await self._with_retries("embeddings", lambda body=body: self._post("/embeddings", body, user))
            batch_vectors = _embedding_vectors(response)
            self._check_embeddings(batch, batch_vectors)
            vectors.extend(batch_vectors)
        return vectors

    async def _post(self, path: str, body: dict, user: str | None) -> Any:
        """The JSON answer to a POST (the SDK raises its usual errors for 4xx/5xx and connection failures)."""
        return await self.client.post(path, body=body, cast_to=object, options=_user_options(user))

    def _check_embeddings(self, batch: list[str], vectors: list[list[float]]) -> None:
        if len(vectors) != len(batch):
            raise ModelResponseError(f"embeddings: asked for {len(batch)} vectors, got {len(vectors)}")
        expected = self.settings.embedding_dimensions
        for vector in vectors:
            if len(vector) != expected:
                raise ModelResponseError(
                    f"embeddings: got {len(vector)} dimensions, EMBEDDING_DIMENSIONS is {expected}"
                )

    def _completion_arguments(self, messages: list[dict], temperature: float | None, seed: int | None) -> dict:
        arguments: dict[str, Any] = {"model": self.settings.chat_model, "messages": messages}
        if temperature is not None:
            arguments["temperature"] = temperature
        if seed is not None:
            arguments["seed"] = seed
        return arguments

    async def complete(
        self, messages: list[dict], temperature: float | None = None, seed: int | None = None, user: str | None = None
    ) -> str:
        arguments = self._completion_arguments(messages, temperature, seed)
        response = await self._with_retries("chat", lambda: self._post("/chat/completions", arguments, user))
        return _first_message(response, "chat").get("content") or ""

    async def tool_arguments(self, messages: list[dict], tool: dict, max_tokens: int, user: str | None = None) -> Any:
        """What the model passes to the function `tool` (OpenAI tool calling, the call required, at most
        max_tokens long), parsed from JSON; None when it answered otherwise or its arguments are no JSON."""
        name = tool["function"]["name"]
        arguments = {
            **self._completion_arguments(messages, temperature=None, seed=None),
            "tools": [tool],
            "tool_choice": {"type": "function", "function": {"name": name}},
            # Not max_tokens or temperature: the reasoning models the stacks deploy (gpt-5 family) refuse both
            # with a 400, and the caller would fall back every time.
            "max_completion_tokens": max_tokens,
        }
        response = await self._with_retries(name, lambda: self._post("/chat/completions", arguments, user))
        calls = _first_message(response, name).get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and function.get("name") == name:
                try:
                    return json.loads(function.get("arguments") or "")
                except (TypeError, ValueError):
                    return None
        return None

    async def open_stream(
        self, messages: list[dict], temperature: float | None = None, seed: int | None = None, user: str | None = None
    ) -> AsyncIterator[str]:
        """Start a streamed completion (retrying like `complete`) and return an iterator of text pieces.

        The upstream request is open once this returns, so failures surface here, before a caller
        has sent anything to its own client. Closing the iterator closes the upstream connection.
        """
        arguments = {**self._completion_arguments(messages, temperature, seed), "stream": True}
        # cast_to=httpx2.Response with stream=True: the SDK hands back the response with its body
        # unread (after checking the status), so the events can be read as they arrive.
        response = await self._with_retries(
            "chat",
            lambda: self.client.post(
                "/chat/completions", body=arguments, cast_to=httpx2.Response, stream=True, options=_user_options(user)
            ),
        )
        return _text_pieces(response)


def _user_options(user: str | None) -> dict:
    return {"headers": {USER_HEADER: user}} if user else {}


def _first_message(response: Any, what: str) -> dict:
    try:
        message = response["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as error:
        raise ModelResponseError(f"{what}: the answer has no choices[0].message: {str(response)[:200]}") from error
    if not isinstance(message, dict):
        raise ModelResponseError(f"{what}: the answer has no choices[0].message: {str(response)[:200]}")
    return message


async def _text_pieces(response: httpx2.Response) -> AsyncIterator[str]:
    """Text from a stream of server-sent chat completion chunks ("data: {json}" lines, then [DONE]).

    Chunks that arrive together (a busy worker reads several at once) become one piece, so the
    caller writes one line to its client instead of one per token. Closing this closes the upstream
    response.
    """
    pending = ""
    try:
        async for block in response.aiter_text():
            lines = (pending + block).split("\n")
            pending = lines.pop()  # an incomplete line waits for the rest
            text = "".join(_event_text(line) for line in lines)
            if text:
                yield text
        text = _event_text(pending)
        if text:
            yield text
    finally:
        await response.aclose()


def _event_text(line: str) -> str:
    """The text a server-sent event line carries ("" for other lines and the final [DONE])."""
    if not line.startswith("data:"):
        return ""
    data = line[len("data:") :].strip()
    if data == "[DONE]":
        return ""
    try:
        event = json.loads(data)
    except ValueError as error:
        raise ModelResponseError(f"chat: the model stream sent something that is not JSON: {data[:200]}") from error
    if not isinstance(event, dict):
        raise ModelResponseError(f"chat: the model stream sent something that is not an event: {data[:200]}")
    if event.get("error"):
        raise ModelResponseError(f"chat: the model stream failed: {event['error']}")
    pieces = []
    for choice in event.get("choices") or []:
        content = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
        if isinstance(content, str):
            pieces.append(content)
    return "".join(pieces)


def _embedding_vectors(response: Any) -> list[list[float]]:
    """The vectors of an embeddings answer, in input order. Each is base64 little-endian float32 as
    asked for, or a list of numbers from servers that ignore encoding_format."""
    try:
        items = sorted(response["data"], key=lambda item: item["index"])
        return [_vector(item["embedding"]) for item in items]
    except (KeyError, TypeError, ValueError) as error:
        raise ModelResponseError(f"embeddings: unexpected answer: {str(response)[:200]}") from error


def _vector(embedding: Any) -> list[float]:
    if isinstance(embedding, list):
        return [float(value) for value in embedding]
    floats = array("f", base64.b64decode(embedding, validate=True))
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tolist()
