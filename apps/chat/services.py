"""The app's long-lived parts, built from settings: the database, the model client and the chat service.

The web app opens them at start-up and closes them at shutdown (app.py); the command line's `ingest`
does the same around one ingestion (`ingest_paths`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from .chat import ChatService
from .database import Database
from .history import ConversationStore
from .identity import TokenCredential
from .ingest import UNRESTRICTED, AccessList, Ingestor, IngestReport
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

    async def open(self) -> None:
        """Connect to the database (migrating it), and fill a new local one with the sample corpus."""
        await self.database.open()
        if self.settings.uses_embedded_database and self.settings.ingest_sample_corpus:
            await ingest_sample_corpus_if_empty(self.ingestor(), self.database, self.settings)

    async def close(self) -> None:
        """Close everything, even when one part fails to close (its error is raised once all are closed)."""
        async with contextlib.AsyncExitStack() as closing:
            closing.push_async_callback(self.database.close)
            if self.model:
                closing.push_async_callback(self.model.close)  # closes first: the stack unwinds last in, first out

    def ingestor(self) -> Ingestor:
        settings = self.settings
        return Ingestor(
            self.database,
            self.model.embed if self.model else None,
            settings.embedding_model,
            settings.chunk_size,
            settings.chunk_overlap,
        )


def build_services(settings: Settings, credential: TokenCredential | None = None) -> AppServices:
    database = Database(settings, credential=credential)
    model = ModelClient.from_settings(settings, credential=credential)
    searcher = Searcher(database, settings.search_candidates, settings.text_search_candidate_limit)
    return AppServices(settings, database, model, ChatService(settings, searcher, model, ConversationStore(database)))


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
