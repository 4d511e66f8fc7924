"""The app's long-lived parts, built from settings: the database, the model client, the local embedding
model (EMBEDDING_PROVIDER=local) and the chat service.

The web app opens them at start-up and closes them at shutdown (app.py); the command line's `ingest`
does the same around one ingestion (`ingest_paths`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from .chat import ChatService, Embed
from .database import Database
from .history import ConversationStore
from .identity import TokenCredential
from .ingest import UNRESTRICTED, AccessList, Ingestor, IngestReport
from .local_embeddings import LocalEmbeddings
from .model_client import ModelClient
from .sample_corpus import ingest_sample_corpus_if_empty
from .search import Searcher
from .settings import Settings


@dataclass
class AppServices:
    settings: Settings
    database: Database
    model: ModelClient | None  # None when no model is configured
    chat: ChatService
    local_embeddings: LocalEmbeddings | None = None  # with EMBEDDING_PROVIDER=local

    @property
    def embed(self) -> Embed | None:
        """What embeds documents and queries: the local model, else the model endpoint, else nothing
        (full text search only)."""
        return embedding_function(self.model, self.local_embeddings)

    async def open(self) -> None:
        """Connect to the database (migrating it), load the local embedding model if there is one, and fill
        a new local database with the sample corpus."""
        await self.database.open()
        if self.local_embeddings:
            await self.local_embeddings.open()
        if self.settings.uses_embedded_database and self.settings.ingest_sample_corpus:
            await ingest_sample_corpus_if_empty(self.ingestor(), self.database, self.settings)

    async def close(self) -> None:
        """Close everything, even when one part fails to close (its error is raised once all are closed)."""
        async with contextlib.AsyncExitStack() as closing:
            closing.push_async_callback(self.database.close)
            if self.local_embeddings:
                closing.push_async_callback(self.local_embeddings.close)
            if self.model:
                closing.push_async_callback(self.model.close)  # closes first: the stack unwinds last in, first out

    def ingestor(self) -> Ingestor:
        settings = self.settings
        return Ingestor(
            self.database,
            self.embed,
            settings.embedding_model,
            settings.chunk_size,
            settings.chunk_overlap,
            # A file in flight holds a pooled connection while it is written; more files than connections
            # would only queue for them (and a long queue ends in the pool's timeout).
            concurrency=min(settings.ingest_concurrency, settings.db_pool_max_size),
        )


def embedding_function(model: ModelClient | None, local_embeddings: LocalEmbeddings | None) -> Embed | None:
    if local_embeddings:
        return local_embeddings.embed
    return model.embed if model else None


def build_services(settings: Settings, credential: TokenCredential | None = None) -> AppServices:
    """The services; raises LocalEmbeddingsNotInstalledError (a SettingsError) when EMBEDDING_PROVIDER=local
    but the local model's packages are missing."""
    local_embeddings = LocalEmbeddings.from_settings(settings)
    database = Database(settings, credential=credential)
    model = ModelClient.from_settings(settings, credential=credential)
    searcher = Searcher(database, settings.search_candidates, settings.text_search_candidate_limit)
    chat = ChatService(
        settings, searcher, model, ConversationStore(database), embed=embedding_function(model, local_embeddings)
    )
    return AppServices(settings, database, model, chat, local_embeddings)


async def ingest_paths(
    settings: Settings,
    paths: list[Path],
    access: AccessList = UNRESTRICTED,
    credential: TokenCredential | None = None,
    *,
    collection: str | None = None,
    sync: bool = False,
) -> IngestReport:
    """Ingest files and folders with the configured database and model (the command line's `ingest`)."""
    services = build_services(settings, credential)
    try:
        await services.database.open()
        return await services.ingestor().ingest_paths(paths, access, collection=collection, sync=sync)
    finally:
        await services.close()
