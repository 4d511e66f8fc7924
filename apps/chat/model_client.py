"""The language-model client: chat completions and embeddings through the OpenAI Python SDK.

Azure OpenAI or an API Management gateway in front of it is reached with an Entra bearer token
(no API keys); any OpenAI-compatible URL can be used for local development.
Upstream 429 and 5xx answers are retried a bounded number of times, honouring Retry-After;
after that the caller gets ModelUnavailableError, which the API turns into a 503.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import openai

from .identity import CachedTokenProvider, TokenCredential, default_credential
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_BACKOFF_SECONDS = 0.5


class ModelUnavailableError(RuntimeError):
    """The model endpoint kept failing (429/5xx/unreachable) after the allowed retries."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ModelResponseError(RuntimeError):
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
                if not _is_retryable(error):
                    raise ModelResponseError(f"{what} failed: {error}") from error
                headers = getattr(getattr(error, "response", None), "headers", None)
                wait = retry_after_seconds(headers)
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

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings for texts, requested in batches of EMBEDDING_BATCH_SIZE."""
        vectors: list[list[float]] = []
        size = self.settings.embedding_batch_size
        for start in range(0, len(texts), size):
            batch = texts[start : start + size]
            response = await self._with_retries(
                "embeddings",
                lambda batch=batch: self.client.embeddings.create(
                    model=self.settings.embedding_model, input=batch, dimensions=self.settings.embedding_dimensions
                ),
            )
            batch_vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
            self._check_embeddings(batch, batch_vectors)
            vectors.extend(batch_vectors)
        return vectors

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

    async def complete(self, messages: list[dict], temperature: float | None = None, seed: int | None = None) -> str:
        arguments = self._completion_arguments(messages, temperature, seed)
        response = await self._with_retries("chat", lambda: self.client.chat.completions.create(**arguments))
        if not response.choices:
            raise ModelResponseError("chat: the model returned no choices")
        return response.choices[0].message.content or ""

    async def open_stream(
        self, messages: list[dict], temperature: float | None = None, seed: int | None = None
    ) -> AsyncIterator[str]:
        """Start a streamed completion (retrying like `complete`) and return an iterator of text pieces.

        The upstream request is open once this returns, so failures surface here, before a caller
        has sent anything to its own client. Closing the iterator closes the upstream connection.
        """
        arguments = self._completion_arguments(messages, temperature, seed)

        async def start():
            # The raw event stream: the SDK still builds, authenticates and checks the request, but
            # the events are read as plain JSON (building SDK objects for every token costs more
            # than everything else this app does per request).
            context = self.client.chat.completions.with_streaming_response.create(stream=True, **arguments)
            return context, await context.__aenter__()

        context, response = await self._with_retries("chat", start)
        return _text_pieces(context, response)


async def _text_pieces(context, response) -> AsyncIterator[str]:
    """Text from server-sent chat completion chunks ("data: {json}" lines, ending with [DONE])."""
    try:
        async for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                continue  # read to the end, so the connection can be reused
            event = json.loads(data)
            if event.get("error"):
                raise ModelResponseError(f"chat: the model stream failed: {event['error']}")
            for choice in event.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield content
    finally:
        await context.__aexit__(None, None, None)
