"""Ingestion: files -> text chunks -> embeddings -> PostgreSQL.

Which document a file is (its collection and its path inside it) is decided in sources.py.
Per file: an unchanged file (same content hash, chunking and embedding model) is left alone;
a new or changed file has its chunks written in one transaction, replacing the old ones;
a file that cannot be read is reported and skipped while the others go in.
With `sync`, the documents of each folder given whose files are gone from it are then removed, in one
transaction per folder: searches see all of them or none of them.
Finding, reading and parsing files blocks, so it runs in a worker thread: the web app ingests its
sample corpus while it serves, and its event loop must keep answering.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from pgvector import Vector

from .access import SYSTEM
from .concurrency import all_or_first_error
from .database import Database
from .documents import Chunk, DocumentError, ParsedDocument, parse_document, split_into_chunks
from .sources import Scan, SourceFile, find_source_files

log = logging.getLogger(__name__)

CHUNK_COLUMNS = "document_id, ordinal, page, content, embedding, section, anchor"
# Emptied at the end of each transaction; one per pooled connection.
STAGED_CHUNKS_SQL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS staged_chunks (document_id bigint, ordinal integer, page integer,"
    " content text, embedding vector, section text[], anchor text) ON COMMIT DELETE ROWS"
)
EmbedFunction = Callable[[list[str]], Awaitable[list[list[float]]]]
# Part of every content hash: a change to how documents are cut into chunks (version 2: sections and
# their anchors) re-chunks every document at its next ingestion.
CHUNKING_VERSION = 2


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
    removed: list[str] = field(default_factory=list)  # by sync: their files are gone
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source or path, reason)
    chunks_written: int = 0

    def add(self, other: IngestReport) -> None:
        """Append another report's outcomes to this one's."""
        for item in fields(self):  # lists are joined, counts summed
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    def summary(self) -> str:
        lines = [
            f"added {len(self.added)}, replaced {len(self.replaced)}, unchanged {len(self.unchanged)},"
            f" permissions updated {len(self.permissions_updated)}, removed {len(self.removed)},"
            f" failed {len(self.failed)}; {self.chunks_written} chunks written"
        ]
        lines += [f"  removed {name}" for name in self.removed]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.failed]
        return "\n".join(lines)


class Ingestor:
    def __init__(
        self,
        database: Database,
        embed: EmbedFunction | None,
        embedding_model: str,
        chunk_size: int,
        chunk_overlap: int,
        *,
        concurrency: int = 1,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.database = database
        self.concurrency = concurrency
        self.embed = embed
        # Recorded per document so that switching models (or turning one on) re-embeds everything.
        self.embedding_model = embedding_model if embed else ""
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    async def ingest_paths(
        self,
        paths: Sequence[Path],
        access: AccessList = UNRESTRICTED,
        *,
        collection: str | None = None,
        sync: bool = False,
    ) -> IngestReport:
        """Ingest files and folders into their collections (sources.py), or all into `collection`.
        With sync, documents under each folder given whose files are gone from it are removed."""
        report = IngestReport()
        roots = dict(await self.database.fetch_all("SELECT name, root FROM collections"))
        scans, report.failed = await asyncio.to_thread(find_source_files, list(paths), roots, collection)
        for scan in scans:
            await self._record_collection(scan)
            await self._ingest_files(scan.files, access, report)
            if sync and scan.folder is not None:
                report.removed += await self._remove_missing(scan)
        return report

    async def _ingest_files(self, files: Sequence[SourceFile], access: AccessList, report: IngestReport) -> None:
        """Up to `concurrency` files at once, each in its own transaction: while one file's chunks are
        written, the next is parsed and embedded, and the database indexes several files' chunks on as many
        cores. New documents take turns only for the term index's word counts (migration 0007); a changed
        document from the deletion of its old chunks on. The report lists the files in the scan's order,
        whichever finishes first."""
        outcomes = [IngestReport() for _ in files]
        queue = iter(zip(files, outcomes, strict=True))

        async def worker() -> None:
            for source_file, outcome in queue:  # one iterator for all workers: each file is taken once
                await self._read_and_ingest(source_file, access, outcome)

        await all_or_first_error(*(worker() for _ in range(min(self.concurrency, len(files)))))
        for outcome in outcomes:
            report.add(outcome)

    async def _read_and_ingest(self, source_file: SourceFile, access: AccessList, report: IngestReport) -> None:
        try:
            data, content_hash = await asyncio.to_thread(self._read, source_file.path)
        except OSError as error:
            report.failed.append((source_file.source, f"cannot read file: {error.strerror or error}"))
            return
        await self._ingest_file(source_file, data, content_hash, access, report)

    def _read(self, path: Path) -> tuple[bytes, str]:
        """The file's bytes and their content hash (which names the chunking too)."""
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        return data, f"sha256:{digest}:chunks={self.chunk_size}/{self.chunk_overlap}:v{CHUNKING_VERSION}"

    async def _ingest_file(
        self, source_file: SourceFile, data: bytes, content_hash: str, access: AccessList, report: IngestReport
    ) -> None:
        source = source_file.source
        existing = await self._existing_document(source_file)
        renamed_from = existing[4] if existing and existing[4] != source else None  # a legacy name
        if existing and not renamed_from and existing[0] == content_hash and existing[1] == self.embedding_model:
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
            (
                chunk.ordinal,
                chunk.page,
                chunk.content,
                Vector(vector) if vector is not None else None,
                list(chunk.section),
                chunk.anchor,
            )
            for chunk, vector in zip(chunks, embeddings, strict=True)
        ]
        await self._replace_document(source, renamed_from, parsed.title, content_hash, access, rows)
        (report.replaced if existing else report.added).append(source)
        report.chunks_written += len(rows)

    def _parse_into_chunks(self, path: Path, data: bytes) -> tuple[ParsedDocument, list[Chunk]]:
        parsed = parse_document(path, data)
        return parsed, split_into_chunks(parsed.pages, self.chunk_size, self.chunk_overlap)

    async def _existing_document(self, source_file: SourceFile):
        """(content_hash, embedding_model, user ids, group ids, source) of the file's document: the one of
        its source, else one still under the name ingestion gave it before collections (migration 0003)."""
        async with self.database.transaction(SYSTEM) as conn:
            cursor = await conn.execute(
                "SELECT content_hash, embedding_model, allowed_user_ids, allowed_group_ids, source"
                " FROM documents WHERE source = %(source)s OR (legacy_source AND source = %(legacy)s)"
                " ORDER BY source = %(source)s DESC LIMIT 1",
                {"source": source_file.source, "legacy": source_file.legacy_source},
            )
            return await cursor.fetchone()

    async def _record_collection(self, scan: Scan) -> None:
        async with self.database.transaction(SYSTEM) as conn:
            await conn.execute(
                "INSERT INTO collections (name, root) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET root = EXCLUDED.root, ingested_at = now()",
                (scan.collection, str(scan.root)),
            )

    async def _update_access(self, source: str, access: AccessList) -> None:
        async with self.database.transaction(SYSTEM) as conn:
            await conn.execute(
                "UPDATE documents SET allowed_user_ids = %s, allowed_group_ids = %s WHERE source = %s",
                (list(access.user_ids), list(access.group_ids), source),
            )

    async def _replace_document(
        self, source: str, renamed_from: str | None, title: str, content_hash: str, access: AccessList, rows
    ) -> None:
        """Upsert the document and swap its chunks in one transaction: readers see old or new, never a mix.
        A document found under its legacy name is renamed in the same transaction."""
        async with self.database.transaction(SYSTEM) as conn:
            if renamed_from:
                await conn.execute("UPDATE documents SET source = %s WHERE source = %s", (source, renamed_from))
            cursor = await conn.execute(
                "INSERT INTO documents (source, title, content_hash, embedding_model, allowed_user_ids, allowed_group_ids)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (source) DO UPDATE SET title = EXCLUDED.title, content_hash = EXCLUDED.content_hash,"
                " embedding_model = EXCLUDED.embedding_model, allowed_user_ids = EXCLUDED.allowed_user_ids,"
                " allowed_group_ids = EXCLUDED.allowed_group_ids, legacy_source = false, ingested_at = now()"
                " RETURNING id",
                (source, title, content_hash, self.embedding_model, list(access.user_ids), list(access.group_ids)),
            )
            (document_id,) = await cursor.fetchone()
            await conn.execute("DELETE FROM chunks WHERE document_id = %s", (document_id,))
            # PostgreSQL refuses COPY into a table with row-level security: the rows are copied into a
            # temporary table and inserted from there in one statement (the term index's trigger runs once).
            await conn.execute(STAGED_CHUNKS_SQL)
            async with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY staged_chunks ({CHUNK_COLUMNS}) FROM STDIN WITH (FORMAT BINARY)") as copy,
            ):
                copy.set_types(["int8", "int4", "int4", "text", "vector", "text[]", "text"])
                for row in rows:
                    await copy.write_row((document_id, *row))
            await conn.execute(f"INSERT INTO chunks ({CHUNK_COLUMNS}) SELECT {CHUNK_COLUMNS} FROM staged_chunks")

    async def _remove_missing(self, scan: Scan) -> list[str]:
        """Remove, in one statement (one transaction), the documents under a scanned folder whose files
        are no longer in it, including those still under their legacy names; returns their sources."""
        async with self.database.transaction(SYSTEM) as conn:
            cursor = await conn.execute(
                "DELETE FROM documents WHERE"
                " (collection = %(collection)s AND starts_with(path, %(folder)s) AND NOT path = ANY(%(names)s))"
                " OR (legacy_source AND starts_with(source, %(legacy_prefix)s) AND NOT source = ANY(%(legacy_names)s))"
                " RETURNING source",
                {
                    "collection": scan.collection,
                    "folder": scan.folder,
                    "names": [f.name for f in scan.files],
                    "legacy_prefix": scan.legacy_prefix,
                    "legacy_names": [f.legacy_source for f in scan.files],
                },
            )
            return sorted(source for (source,) in await cursor.fetchall())
