"""The corpus a fresh local install ingests on first start, so search and chat work at once."""

from __future__ import annotations

import logging
from pathlib import Path

from .access import SYSTEM
from .database import Database
from .ingest import Ingestor
from .settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)
BUNDLED_SAMPLE_DOCS = Path(__file__).parent / "sample_docs"


def sample_corpus_paths(settings: Settings) -> list[Path]:
    """SAMPLE_CORPUS_PATHS if set; else the project's README.md and docs/*.md; else the bundled samples."""
    if settings.sample_corpus_paths:
        return list(settings.sample_corpus_paths)
    project_docs = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    existing = [path for path in project_docs if path.is_file()]
    return existing or [BUNDLED_SAMPLE_DOCS]


async def ingest_sample_corpus_if_empty(ingestor: Ingestor, database: Database, settings: Settings) -> None:
    [(any_documents,)] = await database.fetch_all("SELECT EXISTS (SELECT 1 FROM documents)", access=SYSTEM)
    if any_documents:
        return
    paths = sample_corpus_paths(settings)
    log.info("empty database: ingesting the sample corpus from %s", ", ".join(map(str, paths)))
    report = await ingestor.ingest_paths(paths)
    log.info("sample corpus: %s", report.summary())
