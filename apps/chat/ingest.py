"""Ingestion: files -> text chunks -> embeddings -> PostgreSQL.

Per file: an unchanged file (same content hash, chunking and embedding model) is left alone;
a new or changed file has its chunks written in one transaction, replacing the old ones;
a file that cannot be read is reported and skipped while the others go in.
Finding, reading and parsing files blocks, so it runs in a worker thread: the web app ingests its
sample corpus while it serves, and its event loop must keep answering.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pgvector import Vector

from .database import Database
from .documents import Chunk, DocumentError, ParsedDocument, is_supported, parse_document, split_into_chunks

log = logging.getLogger(__name__)
EmbedFunction = Callable[[list[str]], Awaitable[list[list[float]]]]


@dataclass(frozen=True)
class AccessList:
    """Who may read a document; both empty means every signed-in user (when that is allowed)."""

    user_ids: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()


UNRESTRICTED = AccessList()  # no lists: readable by every signed-in user (if the app allows it)


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    permissions_updated: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source or path, reason)
    chunks_written: int = 0

    def summary(self) -> str:
        lines = [
            f"added {len(self.added)}, replaced {len(self.replaced)}, unchanged {len(self.unchanged)},"
            f" permissions updated {len(self.permissions_updated)}, failed {len(self.failed)};"
            f" {self.chunks_written} chunks written"
        ]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.failed]
        return "\n".join(lines)


@dataclass(frozen=True)
class SourceFile:
    path: Path
    source: str  # the stable name shown in citations, e.g. docs/guide.md


def find_source_files(paths: Iterable[Path], report: IngestReport) -> list[SourceFile]:
    """Expand files and folders into supported files, naming each one relative to the current folder
    when it lies inside it, otherwise relative to the folder the user named."""
    found: list[SourceFile] = []
    for given in paths:
        if given.is_dir():
            candidates = sorted(
                p
                for p in given.rglob("*")
                if p.is_file()
                and is_supported(p)
                and not any(part.startswith(".") for part in p.relative_to(given).parts)
            )
        elif given.is_file():
            candidates = [given]
        else:
            report.failed.append((str(given), "no such file or folder"))
            continue
        base = given.resolve().parent
        for path in candidates:
            found.append(SourceFile(path, _source_name(path.resolve(), base)))
    return found


def _source_name(path: Path, base: Path) -> str:
    for root in (Path.cwd().resolve(), base):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.as_posix()


class Ingestor:
    def __init__(
        self,
        database: Database,
        embed: EmbedFunction | None,
        embedding_model: str,
        chunk_size: int,
        chunk_overlap: int,
    ):
        self.database = database
        self.embed = embed
        # Recorded per document so that switching models (or turning one on) re-embeds everything.
        self.embedding_model = embedding_model if embed else ""
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    async def ingest_paths(self, paths: Sequence[Path], access: AccessList = UNRESTRICTED) -> IngestReport:
        report = IngestReport()
        for source_file in await asyncio.to_thread(find_source_files, paths, report):
            try:
                data, content_hash = await asyncio.to_thread(self._read, source_file.path)
            except OSError as error:
                report.failed.append((source_file.source, f"cannot read file: {error.strerror or error}"))
                continue
            await self._ingest_file(source_file, data, content_hash, access, report)
        return report

    def _read(self, path: Path) -> tuple[bytes, str]:
        """The file's bytes and their content hash (which names the chunking too)."""
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        return data, f"sha256:{digest}:chunks={self.chunk_size}/{self.chunk_overlap}"

    async def _ingest_file(
        self, source_file: SourceFile, data: bytes, content_hash: str, access: AccessList, report: IngestReport
    ) -> None:
        source = source_file.source
        existing = await self._existing_document(source)
        if existing and existing[0] == content_hash and existing[1] == self.embedding_model:
            if (tuple(existing[2]), tuple(existing[3])) == (access.user_ids, access.group_ids):
                report.unchanged.append(source)
            else:
                await self._update_access(source, access)
                report.permissions_updated.append(source)
            return
        try:
            parsed, chunks = await asyncio.to_thread(self._parse_into_chunks, source_file.path, data)
        except DocumentError as error:
            log.warning("skipping %s: %s", source, error)
            report.failed.append((source, str(error)))
            return
        embeddings = await self.embed([c.content for c in chunks]) if self.embed else [None] * len(chunks)
        rows = [
            (chunk.ordinal, chunk.page, chunk.content, Vector(vector) if vector is not None else None)
            for chunk, vector in zip(chunks, embeddings, strict=True)
        ]
        await self._replace_document(source, parsed.title, content_hash, access, rows)
        (report.replaced if existing else report.added).append(source)
        report.chunks_written += len(rows)

    def _parse_into_chunks(self, path: Path, data: bytes) -> tuple[ParsedDocument, list[Chunk]]:
        parsed = parse_document(path, data)
        return parsed, split_into_chunks(parsed.pages, self.chunk_size, self.chunk_overlap)

    async def _existing_document(self, source: str):
        async with self.database.connection() as conn:
            cursor = await conn.execute(
                "SELECT content_hash, embedding_model, allowed_user_ids, allowed_group_ids"
                " FROM documents WHERE source = %s",
                (source,),
            )
            return await cursor.fetchone()

    async def _update_access(self, source: str, access: AccessList) -> None:
        async with self.database.connection() as conn:
            await conn.execute(
                "UPDATE documents SET allowed_user_ids = %s, allowed_group_ids = %s WHERE source = %s",
                (list(access.user_ids), list(access.group_ids), source),
            )

    async def _replace_document(self, source: str, title: str, content_hash: str, access: AccessList, rows) -> None:
        """Upsert the document and swap its chunks in one transaction: readers see old or new, never a mix."""
        async with self.database.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "INSERT INTO documents (source, title, content_hash, embedding_model, allowed_user_ids, allowed_group_ids)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (source) DO UPDATE SET title = EXCLUDED.title, content_hash = EXCLUDED.content_hash,"
                " embedding_model = EXCLUDED.embedding_model, allowed_user_ids = EXCLUDED.allowed_user_ids,"
                " allowed_group_ids = EXCLUDED.allowed_group_ids, ingested_at = now()"
                " RETURNING id",
                (source, title, content_hash, self.embedding_model, list(access.user_ids), list(access.group_ids)),
            )
            (document_id,) = await cursor.fetchone()
            await conn.execute("DELETE FROM chunks WHERE document_id = %s", (document_id,))
            async with (
                conn.cursor() as cursor,
                cursor.copy(
                    "COPY chunks (document_id, ordinal, page, content, embedding) FROM STDIN WITH (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["int8", "int4", "int4", "text", "vector"])
                for row in rows:
                    await copy.write_row((document_id, *row))
